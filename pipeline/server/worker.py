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

Database outages: a claim loop survives any error (it backs off, up to ``BACKOFF_MAX_S``, and goes
on), and saving a page already read is retried until the database answers (``_save``), so a page
read before an outage is neither lost nor turned into an error; the lease decides: if another
worker took the job over meanwhile, the store says so and nothing is written. ``alive`` is what
the liveness probe asks: every claim loop still running.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import socket
import time
import uuid
from typing import Awaitable, Callable

from .counters import Counters
from pipeline.ocr.base import EngineError
from pipeline.ocr.pool import EngineRunner
from .size_limits import SizeLimits
from .faults import FaultConfig
from .hosted import HostedSettings
from .jobs import read_page
from .lifecycle import DONE, ERROR, Job, JobEvents
from .links import ResultLinks
from .slots import SlotGate, hold
from .store import Store
from .webhooks import outbox_delivery

log = logging.getLogger("pipeline.server.worker")

IDLE_POLL_S = 1.0          # an idle worker looks for work this often even without a NOTIFY
PURGE_EVERY_S = 60.0
BACKOFF_FIRST_S = 0.1      # after a database error a loop pauses this long, doubling ...
BACKOFF_MAX_S = 2.0        # ... up to this, so it claims again within seconds of the database's return
EXPORT_MIN_S = 3.0         # the shortest exporter lease (three sweeps, at least this)


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class FleetWorker:
    """``concurrency`` claim loops over one engine runner; webhook events go to the store's outbox."""

    def __init__(self, *, store: Store, engine: EngineRunner, faults: FaultConfig, events: JobEvents,
                 links: ResultLinks, counters: Counters, lease_s: float, worker_id: str, concurrency: int,
                 public_base_url: str | None, hosted: HostedSettings | None = None,
                 limits: SizeLimits | None = None) -> None:
        self.hosted, self.rng = hosted, random.Random()
        self.limits = limits
        self.store, self.engine, self.faults, self.events = store, engine, faults, events
        self.links, self.counters, self.lease_s = links, counters, lease_s
        self.worker_id, self.concurrency, self.public_base_url = worker_id, concurrency, public_base_url
        self.slots = SlotGate(lambda: self.faults.engine_slots)
        self.draining = False
        self.in_hand: set[str] = set()
        self.lost_leases = 0
        self._loops: list[asyncio.Task] = []
        self._rng = random.Random(0)

    @property
    def alive(self) -> bool:
        """Every claim loop is running (or the worker is draining): what ``/livez`` reports."""
        return self.draining or (bool(self._loops) and not any(t.done() for t in self._loops))

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
        pause = BACKOFF_FIRST_S
        while not self.draining:
            if self.faults.worker_loop_exit.fire(self._rng):
                log.error("claim loop ended (injected fault worker_loop_exit)")
                return
            try:
                job = await self.store.claim(self.worker_id, self.lease_s)
                if job is None:
                    await self.store.wait_for_work(IDLE_POLL_S)
                    continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away (or anything else): back off, go on
                log.warning("cannot claim a job (%s); trying again in %.1f s", exc, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, BACKOFF_MAX_S)
                continue
            pause = BACKOFF_FIRST_S
            self.in_hand.add(job.id)
            try:
                await self._run(job)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug around one job must not end the loop
                log.exception("job %s: unexpected error; the claim loop goes on", job.id)
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
        processing = outbox_delivery(job, "job.processing")
        if processing is not None:   # no webhook: no row to write
            try:
                await self.store.announce(job, "job.processing", self.worker_id, processing)
            except Exception as exc:  # job.processing is informative; the final event is what must arrive
                log.warning("job %s: job.processing not queued: %s", job.id, exc)
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
                job.text = await read_page(self.engine, job, self.hosted, self.rng, self.limits)
                job.status = DONE
            except EngineError as exc:
                job.status, job.error_code, job.error = ERROR, exc.code, str(exc)
        await self._finish(job)

    async def _finish(self, job: Job) -> None:
        job.image, job.finished = None, time.monotonic()
        if job.status == DONE:
            url = self.links.make(self.public_base_url or job.base_url, job.id, job.format)
            if await self._save(job, self.store.complete, outbox_delivery(job, "job.completed", url)):
                self.counters.jobs_done += 1
                if self.faults.worker_kill_after_save.fire(self._rng):
                    os.kill(os.getpid(), signal.SIGKILL)   # test fault: a crash right after the commit
        elif await self._save(job, self.store.fail, outbox_delivery(job, "job.failed")):
            self.counters.jobs_failed += 1

    async def _save(self, job: Job, write: Callable[..., Awaitable[bool]], webhook: tuple[str, str] | None) -> bool:
        """Write the outcome, retrying through a database outage until the store answers.

        The renewer keeps trying to extend the lease meanwhile; once the database is back, either
        this worker still owns the job (the write goes in) or another took it over after the lease
        (the store answers False, or the renewer cancels us): never an error because of the outage."""
        pause = BACKOFF_FIRST_S
        while True:
            try:
                return await write(job, self.worker_id, webhook)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("job %s: cannot save the result yet (%s); retrying in %.1f s", job.id, exc, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, BACKOFF_MAX_S)


async def sweep_forever(store: Store, *, worker_id: str, role: str, lease_s: float, result_ttl_s: float,
                        alive: Callable[[], bool] = lambda: True,
                        exporting: Callable[[float], None] = lambda _: None) -> None:
    """Every replica: say it is alive (only while its claim loops are), hold or seek the exporter
    lease, put jobs of dead workers back, forget expired results.

    ``exporting`` is told until when (monotonic) this member may export the fleet gauges: the
    lease's length counted from before the database granted it, so a member whose sweeper stalls
    stops exporting before another can take the lease over (never two exporters at once)."""
    every = max(0.1, min(lease_s / 3, 5.0))
    export_s = max(3 * every, EXPORT_MIN_S)
    since_purge = PURGE_EVERY_S
    while True:
        try:
            if alive():
                await store.heartbeat(worker_id, role)
            asked = time.monotonic()
            exporting(asked + export_s if await store.exporter(worker_id, export_s) else 0.0)
            await store.requeue_expired(lambda job: outbox_delivery(job, "job.failed"))
            if since_purge >= PURGE_EVERY_S:
                await store.purge_expired(result_ttl_s)
                since_purge = 0.0
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            exporting(0.0)
            log.warning("store maintenance failed: %s", exc)
        await asyncio.sleep(every)
        since_purge += every


__all__ = ["FleetWorker", "new_worker_id", "sweep_forever"]
