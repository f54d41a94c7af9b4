"""A job's record and the events of its life, shared by the runner, the stores and the webhooks.

Why a module of its own: the job runner announces transitions and the webhook sender turns
them into deliveries; with the record and the event interface here, both depend on this module
and neither on the other (``jobs`` -> ``lifecycle`` <- ``webhooks``), so the server reads top
down. Subscribers are plain callables, called in order, synchronously, at the transition: they
must not block (the webhook sender only queues a task).

Events: ``job.processing`` (pending -> processing), ``job.completed`` (-> done, with a fresh
result link), ``job.failed`` (-> error).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Callable

log = logging.getLogger("pipeline.server.lifecycle")

PENDING, PROCESSING, DONE, ERROR = "pending", "processing", "done", "error"
TERMINAL = (DONE, ERROR)
EVENTS = ("job.processing", "job.completed", "job.failed")

Subscriber = Callable[["Job", str, "str | None"], None]


@dataclass
class Job:
    id: str
    token: str
    model: str
    language: str | None
    format: str                      # "text" | "json"
    inline: bool                     # return_result_in_response
    webhook_url: str | None
    image: bytes | None              # released once the engine has read it
    base_url: str                    # scheme://host the client used, for result links
    price: float = 0.0
    status: str = PENDING
    progress: float = 0.0
    text: str | None = None          # the result document (format=json: serialized JSON)
    error: str | None = None
    error_code: str | None = None
    # fault decisions, made at creation
    lost: bool = False
    expire_link: bool = False
    never_finish: bool = False
    fail: bool = False
    released: asyncio.Event = field(default_factory=asyncio.Event)
    slot_grant: int | None = None    # queueing fault: the order this job got its engine slot
    started: float | None = None     # monotonic, for processing_time_ms
    finished: float | None = None
    created: float = field(default_factory=time.monotonic)   # benchmarks: the job's own time (/_admin/jobs)

    def processing_ms(self) -> int:
        if self.started is None:
            return 0
        return int(((self.finished or time.monotonic()) - self.started) * 1000)


class JobEvents:
    """Publish/subscribe for job transitions; a failing subscriber is logged, never the job's problem."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, fn: Subscriber) -> None:
        self._subscribers.append(fn)

    def emit(self, job: Job, event: str, result_url: str | None = None) -> None:
        if event not in EVENTS:
            raise ValueError(f"unknown job event {event!r}")
        for fn in self._subscribers:
            try:
                fn(job, event, result_url)
            except Exception:  # one subscriber's bug must not fail the job or starve the others
                log.exception("subscriber %r failed on %s for job %s", fn, event, job.id)


__all__ = ["DONE", "ERROR", "EVENTS", "PENDING", "PROCESSING", "TERMINAL", "Job", "JobEvents"]
