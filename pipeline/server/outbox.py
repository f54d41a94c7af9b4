"""Fleet webhooks from the database outbox: sent until a 2xx, by any member, once per delivery id.

Why an outbox: a worker that announced ``job.completed`` from its own memory lost it when it was
killed right after saving the result, and a drain cancelled sends the database already counted as
made. Now the event's body and stable delivery id are written in the transaction that saves the
result (``store.complete``), and every member runs a dispatcher: it claims due events for the
length of one attempt and a margin (``HOLD_MARGIN_S``: a killed dispatcher's claims come back to
the others after that), posts each one, marks it
``sent`` only when the receiver answered 2xx, and otherwise schedules the next attempt on deAPI's
retry schedule (``webhooks.RETRY_SCHEDULE_S`` times ``webhook_time_scale``) until the schedule is
spent: then the event is ``failed`` and ``/metrics`` counts it (``pipeline_webhooks_failed``).

Delivery is at least once: a member killed between the receiver's 2xx and the ``sent`` mark has
the event sent again by another, with the same ``webhook-id``, which is how Standard Webhooks
receivers drop repeats. A database outage only pauses the dispatcher (it backs off and goes on).
On a drain the dispatcher sends what is due before the process exits (``DRAIN_S`` at most).
"""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp

from .counters import Counters
from .store import OutboxEvent, Store
from .webhooks import RETRY_SCHEDULE_S, post_once

log = logging.getLogger("pipeline.server.outbox")

BATCH = 16            # events claimed at a time
IDLE_POLL_S = 0.5     # an idle dispatcher looks this often even without a NOTIFY (retries come due)
BACKOFF_MAX_S = 2.0   # the longest pause after a database error
DRAIN_S = 10.0        # a draining member sends what is due for at most this long
HOLD_MARGIN_S = 5.0   # a claim lasts the webhook timeout plus this


def next_pause(attempts_made: int, time_scale: float) -> float | None:
    """Seconds until the next attempt after ``attempts_made`` failed ones; None: the schedule is spent."""
    if attempts_made >= len(RETRY_SCHEDULE_S):
        return None
    return RETRY_SCHEDULE_S[attempts_made] * time_scale


class OutboxDispatcher:
    def __init__(self, *, store: Store, member: str, secret: str, time_scale: float, timeout_s: float,
                 counters: Counters) -> None:
        self.store, self.member, self.secret = store, member, secret
        self.time_scale, self.timeout_s, self.counters = time_scale, timeout_s, counters
        self.session: aiohttp.ClientSession | None = None
        self.task: asyncio.Task | None = None
        self._stopping = False   # checked by the loop too: Python 3.11's wait_for can swallow a cancel

    def start(self) -> None:
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        self.task = asyncio.create_task(self._forever(), name="webhook-outbox")

    @property
    def alive(self) -> bool:
        return self.task is not None and (self._stopping or not self.task.done())

    async def stop(self) -> None:
        self._stopping = True
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def drain(self, within_s: float = DRAIN_S) -> int:
        """Let the loop finish its pass (a cancelled post may have reached the receiver and would be
        sent again), then send every event that is due, within ``within_s``."""
        self._stopping = True
        sent, until = 0, time.monotonic() + within_s
        if self.task is not None:
            done, _ = await asyncio.wait({self.task}, timeout=within_s)
            if not done:
                self.task.cancel()
                await asyncio.gather(self.task, return_exceptions=True)
        while time.monotonic() < until and self.session is not None:
            try:
                n = await asyncio.wait_for(self.deliver_due(), max(0.1, until - time.monotonic()))
            except asyncio.TimeoutError:
                break
            except Exception as exc:
                if not self.store.is_outage(exc):
                    raise
                log.warning("drain: cannot reach the store for webhook events: %s", exc)
                break
            if n == 0:
                break
            sent += n
        return sent

    async def _forever(self) -> None:
        pause = 0.1
        while not self._stopping:
            try:
                n = await self.deliver_due()
            except asyncio.CancelledError:
                raise
            except Exception as exc:   # an outage or a bug: never the end of deliveries
                log.warning("webhook outbox: %s; trying again in %.1f s", exc, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, BACKOFF_MAX_S)
                continue
            pause = 0.1
            if n == 0:
                await self.store.wait_for_webhooks(IDLE_POLL_S)

    async def deliver_due(self) -> int:
        """One pass: claim due events, attempt each once (in parallel), record the outcome."""
        events = await self.store.outbox_claim(self.member, BATCH, self.timeout_s + HOLD_MARGIN_S)
        if events:
            await asyncio.gather(*(self._attempt(e) for e in events))
        return len(events)

    async def _attempt(self, e: OutboxEvent) -> None:
        assert self.session is not None
        self.counters.webhooks_sent += 1
        problem = await post_once(self.session, self.secret, e.url, e.event, e.id, e.body.encode())
        if problem is None:
            self.counters.webhooks_delivered += 1
            await self.store.outbox_sent(e.id, self.member)
            return
        self.counters.webhook_failures += 1
        pause = next_pause(e.attempts + 1, self.time_scale)
        if pause is None:
            log.warning("webhook %s %s given up after %d attempts: %s", e.event, e.id, e.attempts + 1, problem)
        await self.store.outbox_retry(e.id, self.member, pause, problem)


__all__ = ["OutboxDispatcher", "next_pause"]
