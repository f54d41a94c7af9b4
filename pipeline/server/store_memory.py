"""The in-process store: today's job dictionary, ledger and rate limiter behind ``Store``.

Why it stays the default: one ``pipeline serve`` (and every test) needs no database, and a
dictionary lookup costs nothing. Jobs run as tasks in this same process (``jobs.JobRunner``),
so there are no leases: the worker methods of ``Store`` are not used here.
"""

from __future__ import annotations

import time

from .jobs import JobStore
from .ledger import Ledger
from .lifecycle import DONE, ERROR, PENDING, PROCESSING, Job
from .ratelimit import RateLimiter, Verdict
from .store import Stats, Store, percentile

MINUTE_S, WINDOW_S = 60.0, 300.0


class MemoryStore(Store):
    kind = "memory"

    def __init__(self, jobs: JobStore, ledger: Ledger, limiter: RateLimiter) -> None:
        self.jobs, self.ledger, self.limiter = jobs, ledger, limiter

    # the job dictionary, as tests and the admin counters read it
    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def __len__(self) -> int:
        return len(self.jobs)

    def __iter__(self):
        return iter(self.jobs)

    async def add(self, job: Job) -> None:
        self.jobs.add(job)

    async def load(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    async def link_expired_once(self, job_id: str) -> None:
        pass  # the flag lives on the job object itself

    async def balance(self, token: str) -> float:
        return self.ledger.balance(token)

    async def charge(self, token: str, amount: float) -> bool:
        return self.ledger.charge(token, amount)

    async def refund(self, token: str, amount: float) -> None:
        self.ledger.refund(token, amount)

    async def rate_check(self, token: str, endpoint: str) -> Verdict:
        return self.limiter.check(token, endpoint)

    async def stats(self) -> Stats:
        now = time.monotonic()
        s = Stats(workers=1, jobs_kept=len(self.jobs))
        times: list[float] = []
        for job in self.jobs:
            if job.status == PENDING:
                s.queued += 1
            elif job.status == PROCESSING:
                s.running += 1
            elif job.status in (DONE, ERROR) and job.finished is not None:
                if now - job.finished <= MINUTE_S:
                    s.done_last_minute += 1
                    s.failed_last_minute += job.status == ERROR
                if now - job.finished <= WINDOW_S and job.started is not None:
                    times.append((job.finished - job.started) * 1000.0)
        times.sort()
        s.p50_ms, s.p90_ms, s.p99_ms = (percentile(times, q) for q in (0.5, 0.9, 0.99))
        return s


__all__ = ["MemoryStore"]
