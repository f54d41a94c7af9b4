"""Jobs: the in-memory store and each job's life as an asyncio task.

pending --(latency ± jitter)--(engine slot, fault engine_slots)--> processing --(engine)--> done | error

Why one task per job: the latency sleep of one job must never wait behind another job's OCR
(a benchmark keeps 64 jobs in flight with 0.5 s latency), while the OCR itself is bounded by
the engine runner's workers. The store keeps finished jobs up to ``max_jobs_kept`` and drops
the oldest finished ones first, so a long benchmark does not grow memory without bound.
"""

from __future__ import annotations

import asyncio
import math
import json
import logging
import random
import time
from collections import OrderedDict
from typing import Any, Callable

from .counters import Counters
from pipeline.ocr.base import EngineError
from pipeline.ocr.pool import EngineRunner
from .faults import FaultConfig
from .hosted import HostedSettings, answer_document, hosted_markdown, is_hosted
from .ledger import Ledger
from .lifecycle import DONE, ERROR, PENDING, PROCESSING, TERMINAL, Job, JobEvents
from .links import ResultLinks
from .size_limits import SizeLimits, check_answer, check_input
from .slots import SlotGate, hold

log = logging.getLogger("pipeline.server.jobs")

class JobStore:
    """Jobs by id, oldest first; finished jobs beyond ``limit`` are forgotten oldest-first."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self._jobs: OrderedDict[str, Job] = OrderedDict()

    def add(self, job: Job) -> None:
        self._jobs[job.id] = job
        excess = len(self._jobs) - self.limit
        if excess > 0:  # oldest finished first; usually the very first entries, so this is cheap
            victims = []
            for old_id, old in self._jobs.items():
                if old.status in TERMINAL:
                    victims.append(old_id)
                    if len(victims) >= excess:
                        break
            for old_id in victims:
                del self._jobs[old_id]

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def __len__(self) -> int:
        return len(self._jobs)

    def __iter__(self):
        return iter(list(self._jobs.values()))


class JobRunner:
    """Creates jobs, runs their lifecycle and announces each transition on ``events``.

    The runner knows nothing of webhooks: the sender subscribes to ``events`` (``app.py`` wires
    it), so the lifecycle and its deliveries do not import each other."""

    def __init__(self, *, engine: EngineRunner, store: JobStore, counters: Counters, faults: FaultConfig,
                 rng: random.Random, ledger: Ledger, links: ResultLinks, events: JobEvents,
                 public_base_url: str | None, hosted: HostedSettings | None = None,
                 limits: SizeLimits | None = None) -> None:
        self.hosted = hosted or HostedSettings()
        self.limits = limits
        self.engine, self.store, self.counters, self.faults, self.rng = engine, store, counters, faults, rng
        self.ledger, self.links, self.events = ledger, links, events
        self.public_base_url = public_base_url
        self.tasks: set[asyncio.Task] = set()
        self.slots = SlotGate(lambda: self.faults.engine_slots)

    def create(self, job: Job) -> Job:
        """Register the job, decide its faults and start its task."""
        decide_faults(job, self.faults, self.rng)
        self.store.add(job)
        task = asyncio.create_task(self._run(job), name=f"job-{job.id}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return job

    def result_url(self, job: Job, base_url: str | None = None) -> str:
        """A signed link; the first one is already expired when the job drew ``expire_result_link``.

        ``base_url``: the origin the status poll came in through. In a fleet the replica that took
        the submit may be gone since; the link must point where the client can reach now."""
        url = self.links.make(self.public_base_url or base_url or job.base_url, job.id, job.format,
                              expired=job.expire_link)
        job.expire_link = False  # expired once: the next status poll hands out a fresh link
        return url

    def release_stuck(self) -> int:
        """Let every job held by ``job_never_finish`` go on (tests, benchmarks, ``/_admin/release``)."""
        n = 0
        for job in self.store:
            if job.never_finish and not job.released.is_set():
                job.released.set()
                n += 1
        return n

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def _latency(self) -> float:
        f = self.faults
        jitter = self.rng.uniform(-f.latency_jitter, f.latency_jitter) if f.latency_jitter else 0.0
        base = f.latency * math.exp(self.rng.gauss(0.0, f.latency_sigma)) if f.latency_sigma else f.latency
        return max(0.0, base + jitter)

    async def _run(self, job: Job) -> None:
        try:
            delay = self._latency()
            if delay > 0:
                await asyncio.sleep(delay)
            if self.faults.engine_slots > 0:   # queueing fault: pending until a slot is free
                job.slot_grant = await self.slots.acquire()
                try:
                    self._start(job)
                    await hold(self.faults.engine_seconds, lambda p: setattr(job, "progress", p))
                    await self._process(job)
                finally:
                    self.slots.release()
            else:
                self._start(job)
                await self._process(job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # one broken job never takes the server down
            log.exception("job %s crashed", job.id)
            self._fail(job, "UNKNOWN_ERROR", f"internal error while processing the job: {exc}")
        finally:
            job.image = None  # release the upload

    async def _process(self, job: Job) -> None:
        """processing -> done | error: the held and failing faults, then the engine."""
        if job.never_finish:
            job.progress = 50.0
            await job.released.wait()
        if job.fail:
            self._fail(job, self.faults.job_error_code, "The job failed (injected fault job_error).")
            return
        job.progress = max(job.progress, 50.0)
        try:
            job.text = await read_page(self.engine, job, self.hosted, self.rng, self.limits)
        except EngineError as exc:
            self._fail(job, exc.code, str(exc))
            return
        job.status, job.progress, job.finished = DONE, 100.0, time.monotonic()
        self.counters.jobs_done += 1
        # The webhook always carries a valid link; expire_result_link is a status-poll fault.
        self.events.emit(job, "job.completed",
                         self.links.make(self.public_base_url or job.base_url, job.id, job.format))

    def _start(self, job: Job) -> None:
        job.status, job.progress, job.started = PROCESSING, 10.0, time.monotonic()
        self.events.emit(job, "job.processing")

    def _fail(self, job: Job, code: str, message: str) -> None:
        job.status, job.error_code, job.error, job.finished = ERROR, code, message, time.monotonic()
        self.counters.jobs_failed += 1
        self.ledger.refund(job.token, job.price)
        self.events.emit(job, "job.failed")


def decide_faults(job: Job, faults: FaultConfig, rng: random.Random) -> None:
    """The job faults, rolled once when the job is created (never when its task happens to run)."""
    job.lost = faults.lose_request_id.fire(rng)
    job.expire_link = faults.expire_result_link.fire(rng)
    job.never_finish = faults.job_never_finish.fire(rng)
    job.fail = faults.job_error.fire(rng)


async def read_page(engine: EngineRunner, job: Job, hosted: HostedSettings | None = None,
                    rng: random.Random | None = None, limits: SizeLimits | None = None) -> str:
    """The engine's reading of the job's image as the result document (text, or JSON serialized);
    a hosted-like model's job answers Markdown and takes its drawn time (``hosted.py``);
    ``limits`` refuse too tall an image or too long an answer as the hosted model does."""
    check_input(limits, job.model, job.image or b"")
    if is_hosted(job.model):
        markdown = await hosted_markdown(engine, job.image or b"", job.language,
                                         hosted or HostedSettings(), rng or random.Random())
        check_answer(limits, job.model, markdown)   # the Markdown, before it is serialized (once)
        return answer_document(markdown, job.format)
    page = await engine.recognize(job.image or b"", job.language)
    check_answer(limits, job.model, page.text)
    return json.dumps(page.to_json(), ensure_ascii=False) if job.format == "json" else page.text


def status_body(job: Job, result_url: Callable[[Job], str]) -> dict[str, Any]:
    """The ``request-status`` ``data`` object for ``job``."""
    data: dict[str, Any] = {"status": job.status, "progress": job.progress, "result": None, "result_url": None,
                            "preview": None, "results_alt_formats": None, "error": job.error,
                            "error_code": job.error_code}
    if job.status == DONE:
        data["result_url"] = result_url(job)
        if job.inline:
            data["result"] = job.text
    return data


__all__ = ["DONE", "ERROR", "PENDING", "PROCESSING", "TERMINAL", "Job", "JobRunner", "JobStore", "decide_faults", "read_page",
           "status_body"]
