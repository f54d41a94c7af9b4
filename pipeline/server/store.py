"""The server's state behind one interface: jobs, the price ledger, rate-limit windows, leases.

Why an interface: one ``pipeline serve`` keeps everything in its own memory (``MemoryStore``,
the embedded default and the tests' fast path); a fleet of API replicas and workers keeps it
in PostgreSQL (``PgStore``) so any replica answers any request and a worker can die without
losing a job. The handlers and the job lifecycle only ever call the methods below, so the
same routes serve both.

Lifecycle methods carry the worker's id: ``complete`` and ``fail`` change a job only while
that worker still holds its lease, and say whether they did, so a job whose lease ran out and
was taken over is finished once, by one worker, and announced (webhook) once. The memory
store runs every job in the process that created it, so it has no leases and always agrees.
"""

from __future__ import annotations

import abc
from dataclasses import asdict, dataclass
from typing import Callable

from .lifecycle import Job
from .ratelimit import Verdict


Delivery = tuple[str, str]   # a webhook event to put in the outbox: (its stable delivery id, the JSON body)


@dataclass
class OutboxEvent:
    """A webhook event a dispatcher has claimed: sent until a 2xx, every attempt with the same id and body."""

    id: str
    event: str
    url: str
    body: str
    attempts: int          # attempts made before this one


class StoreUnavailable(Exception):
    """The shared store cannot be reached or set up at start-up (the message names the host, never a password)."""


@dataclass
class Stats:
    """What ``/healthz`` and ``/metrics`` report, so an operator or an autoscaler can size workers."""

    queued: int = 0                  # pending, waiting for a worker
    running: int = 0                 # processing now
    done_last_minute: int = 0        # finished (done or error) in the last 60 s
    failed_last_minute: int = 0
    p50_ms: float = 0.0              # job time (processing start to finish) over the last 5 minutes
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    workers: int = 0                 # worker processes seen alive
    jobs_kept: int = 0               # job records held (results not yet expired)
    webhooks_pending: int = 0        # webhook events not yet answered 2xx (fleet outbox)
    webhooks_failed: int = 0         # webhook events given up after the whole retry schedule

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (0 for none)."""
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, round(q * (len(sorted_values) - 1))))
    return float(sorted_values[rank])


class Store(abc.ABC):
    """Everything a replica reads or writes that another replica may need."""

    kind = "abstract"
    shared = False                   # True: other processes see the same state (a fleet)

    async def open(self) -> None:
        """Connect and migrate (PostgreSQL); nothing for memory."""

    async def close(self) -> None:
        """Release connections."""

    # -- jobs -----------------------------------------------------------------------------
    @abc.abstractmethod
    async def add(self, job: Job) -> None: ...

    async def add_charged(self, job: Job) -> bool:
        """A fleet's submit: charge ``job.price`` to ``job.token`` and queue the job, both or neither;
        ``False`` when the balance is short (the memory store charges, then its runner starts the job)."""
        raise NotImplementedError

    @abc.abstractmethod
    async def load(self, job_id: str) -> Job | None: ...

    @abc.abstractmethod
    async def link_expired_once(self, job_id: str) -> None:
        """The ``expire_result_link`` fault was served: later polls get a fresh link."""

    # -- worker side (fleet); the memory store runs jobs in-process and never leases ------------
    async def claim(self, worker_id: str, lease_s: float) -> Job | None:
        """The next job, round-robin between tokens, oldest first per token; leased to ``worker_id``."""
        raise NotImplementedError

    async def renew(self, job_id: str, worker_id: str, lease_s: float, progress: float) -> bool:
        """Extend the lease (and report progress); ``False`` when the lease was lost."""
        raise NotImplementedError

    async def complete(self, job: Job, worker_id: str, webhook: Delivery | None = None) -> bool:
        """processing -> done with ``job.text``, once, with its ``job.completed`` in the outbox in the
        same transaction; ``False`` if another worker owns it now."""
        raise NotImplementedError

    async def fail(self, job: Job, worker_id: str, webhook: Delivery | None = None) -> bool:
        """processing -> error (and the price refunded), once; ``False`` as for ``complete``."""
        raise NotImplementedError

    async def announce(self, job: Job, event: str, worker_id: str, webhook: Delivery | None) -> bool:
        """Put a non-final event (``job.processing``) in the outbox, once per job."""
        raise NotImplementedError

    # -- the webhook outbox (fleet) ----------------------------------------------------------
    async def outbox_claim(self, member: str, limit: int, hold_s: float) -> list[OutboxEvent]:
        """Up to ``limit`` due events, held for this member ``hold_s`` (a dead member's come back then)."""
        return []

    async def outbox_sent(self, delivery_id: str, member: str) -> None:
        """The receiver answered 2xx: never send it again."""

    async def outbox_retry(self, delivery_id: str, member: str, retry_in_s: float | None, error: str) -> None:
        """An attempt failed: try again in ``retry_in_s``, or (None) give up: state ``failed``."""

    async def wait_for_webhooks(self, timeout: float) -> None:
        """Return when an event may have been queued (or after ``timeout``)."""

    async def exporter(self, member: str, lease_s: float) -> bool:
        """Take or keep the lease of the one member exporting fleet-wide gauges; whether it is ours."""
        return True

    async def resign_exporter(self, member: str) -> None:
        """Give the exporter lease up (a clean stop), so another member takes it at once."""

    # -- outages -------------------------------------------------------------------------
    def is_outage(self, exc: BaseException) -> bool:
        """Whether ``exc`` means the store cannot be reached (answer 503, retry), not a bug."""
        return False

    async def ping(self) -> None:
        """Raise when the store cannot be reached (readiness)."""

    async def requeue_expired(self, failed: Callable[[Job], Delivery | None] = lambda job: None) -> int:
        """Jobs whose worker stopped renewing go back to the queue; returns how many. Those claimed too
        often fail (refunded) with the event ``failed(job)`` makes (its ``job.failed`` webhook)."""
        return 0

    async def purge_expired(self, result_ttl_s: float) -> int:
        """Forget finished jobs older than the result lifetime; returns how many."""
        return 0

    async def heartbeat(self, worker_id: str, role: str) -> None:
        """Say this process is alive (``Stats.workers`` counts workers seen recently)."""

    async def wait_for_work(self, timeout: float) -> None:
        """Return when a job may have been queued (or after ``timeout``)."""

    # -- money and limits -----------------------------------------------------------------
    @abc.abstractmethod
    async def balance(self, token: str) -> float: ...

    @abc.abstractmethod
    async def charge(self, token: str, amount: float) -> bool:
        """Take ``amount`` if the balance covers it; ``False`` (nothing taken) otherwise."""

    @abc.abstractmethod
    async def refund(self, token: str, amount: float) -> None: ...

    @abc.abstractmethod
    async def rate_check(self, token: str, endpoint: str) -> Verdict:
        """Count one request against the token's windows if allowed (``ratelimit.judge``)."""

    # -- operations -----------------------------------------------------------------------
    @abc.abstractmethod
    async def stats(self) -> Stats: ...

    async def link_secret(self) -> bytes | None:
        """The result-link signing secret every replica shares (None: keep the process's own)."""
        return None


__all__ = ["Stats", "Store", "StoreUnavailable", "percentile"]
