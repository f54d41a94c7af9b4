"""Fleet workers: claim jobs from the shared store, run them under a renewed lease, drain on stop.

Why a loop per engine worker that claims one job at a time: a worker holds only what it is
reading, so a worker killed mid-job costs one page, which goes back to the queue when its lease
runs out (``store.requeue_expired``, run by every replica's sweeper) and is read by another
worker. While the engine reads, a renewer extends the lease every third of its length; if the
store says the lease is gone (this worker was paused past it and another took the job over),
the page is abandoned without writing anything. ``complete``/``fail`` are guarded by the
lease, so a result is written once and ``job.completed`` announced once.

Draining (SIGTERM): no new claims; the jobs in hand finish and are written; then the process
exits. A Kubernetes ``terminationGracePeriodSeconds`` longer than one page covers it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid

from .counters import Counters
from pipeline.ocr.base import EngineError
from pipeline.ocr.pool import EngineRunner
from .size_limits import SizeLimits
from .faults import FaultConfig
from .jobs import read_page
from .lifecycle import DONE, ERROR, Job, JobEvents
from .links import ResultLinks
from .slots import SlotGate, hold
from .store import Store

log = logging.getLogger("pipeline.server.worker")

IDLE_POLL_S = 1.0          # an idle worker looks for work this often even without a NOTIFY
PURGE_EVERY_S = 60.0


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class FleetWorker:
    """``concurrency`` claim loops over one engine runner, announcing transitions on ``events``."""

    def __init__(self, *, store: Store, engine: EngineRunner, faults: FaultConfig, events: JobEvents,
                 links: ResultLinks, counters: Counters, lease_s: float, worker_id: str, concurrency: int,
                 public_base_url: str | None, limits: SizeLimits | None = None) -> None:
        self.limits = limits
        self.store, self.engine, self.faults, self.events = store, engine, faults, events
        self.links, self.counters, self.lease_s = links, counters, lease_s
        self.worker_id, self.concurrency, self.public_base_url = worker_id, concurrency, public_base_url
        self.slots = SlotGate(lambda: self.faults.engine_slots)
        self.draining = False
        self.in_hand: set[str] = set()
        self.lost_leases = 0
        self._loops: list[asyncio.Task] = []

    def start(self) -> None:
        self._loops = [asyncio.create_task(self._loop(), name=f"worker-loop-{i}") for i in range(self.concurrency)]

    async def drain(self) -> None:
        """Take no new job; return when the jobs in hand are finished and written."""
        self.draining = True
        await asyncio.gather(*self._loops, return_exceptions=True)

    async def close(self) -> None:
        self.draining = True
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)

    async def _loop(self) -> None:
        while not self.draining:
            try:
                job = await self.store.claim(self.worker_id, self.lease_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away: wait, then try again
                log.warning("cannot claim a job: %s", exc)
                await asyncio.sleep(IDLE_POLL_S)
                continue
            if job is None:
                await self.store.wait_for_work(IDLE_POLL_S)
                continue
            self.in_hand.add(job.id)
            try:
                await self._run(job)
            finally:
                self.in_hand.discard(job.id)

    async def _run(self, job: Job) -> None:
        work = asyncio.create_task(self._process(job), name=f"job-{job.id}")
        lost = asyncio.Event()
        renewer = asyncio.create_task(self._renew(job, work, lost), name=f"lease-{job.id}")
        try:
            await work
        except asyncio.CancelledError:
            if not lost.is_set():
                raise  # we are being shut down, not abandoning a lost lease
            self.lost_leases += 1
            log.warning("job %s: lease lost to another worker; abandoned without writing", job.id)
        except Exception:
            log.exception("job %s crashed", job.id)
            job.status, job.error_code, job.error = ERROR, "UNKNOWN_ERROR", "internal error while processing the job"
            await self._finish(job)
        finally:
            renewer.cancel()
            await asyncio.gather(renewer, return_exceptions=True)

    async def _renew(self, job: Job, work: asyncio.Task, lost: asyncio.Event) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                kept = await self.store.renew(job.id, self.worker_id, self.lease_s, job.progress)
            except Exception as exc:  # keep reading; the next renewal may reach the database
                log.warning("job %s: cannot renew the lease: %s", job.id, exc)
                continue
            if not kept:
                lost.set()
                work.cancel()
                return

    async def _process(self, job: Job) -> None:
        job.started = time.monotonic()
        self.events.emit(job, "job.processing")
        if self.faults.engine_slots > 0:
            job.slot_grant = await self.slots.acquire()
            try:
                await hold(self.faults.engine_seconds, lambda p: setattr(job, "progress", p))
                await self._read(job)
            finally:
                self.slots.release()
        else:
            await self._read(job)

    async def _read(self, job: Job) -> None:
        if job.never_finish:
            job.progress = 50.0
            await job.released.wait()   # held until the process stops (release is in-memory only)
        if job.fail:
            job.status, job.error_code = ERROR, self.faults.job_error_code
            job.error = "The job failed (injected fault job_error)."
        else:
            job.progress = max(job.progress, 50.0)
            try:
                job.text = await read_page(self.engine, job, self.limits)
                job.status = DONE
            except EngineError as exc:
                job.status, job.error_code, job.error = ERROR, exc.code, str(exc)
        await self._finish(job)

    async def _finish(self, job: Job) -> None:
        job.image, job.finished = None, time.monotonic()
        if job.status == DONE:
            if await self.store.complete(job, self.worker_id):
                self.counters.jobs_done += 1
                self.events.emit(job, "job.completed",
                                 self.links.make(self.public_base_url or job.base_url, job.id, job.format))
        elif await self.store.fail(job, self.worker_id):
            self.counters.jobs_failed += 1
            self.events.emit(job, "job.failed")


async def sweep_forever(store: Store, *, worker_id: str, role: str, lease_s: float, result_ttl_s: float) -> None:
    """Every replica: say it is alive, put jobs of dead workers back, forget expired results."""
    every = max(0.1, min(lease_s / 3, 5.0))
    since_purge = PURGE_EVERY_S
    while True:
        try:
            await store.heartbeat(worker_id, role)
            await store.requeue_expired()
            if since_purge >= PURGE_EVERY_S:
                await store.purge_expired(result_ttl_s)
                since_purge = 0.0
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("store maintenance failed: %s", exc)
        await asyncio.sleep(every)
        since_purge += every


__all__ = ["FleetWorker", "new_worker_id", "sweep_forever"]
