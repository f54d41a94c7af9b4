"""One rate limiter per endpoint, shared by every worker of a run.

Why client-side limiting at all: deAPI's Basic plan allows 5 OCR submits a minute and 50 a
day, 50/200 status calls (deapi-api.md §4.4). Sixty-four workers that each learn about the
limit from their own 429 waste requests that count against the day; one shared limiter spends
the budget evenly and nobody hits the wall.

Per endpoint (``submit``, ``status``, ``download``, ...):

* **per minute**: a token bucket refilled at ``per_minute / 60`` per second with a burst of
  ``burst`` (1 by default), so requests are spread evenly instead of arriving in a clump;
  plus a sliding 60-second log that never lets more than ``per_minute`` through in any
  60-second window, whatever the burst (the server counts fixed windows, which a paced
  sequence can straddle);
* **per day**: a count for the run; when the day's budget is spent the endpoint is *closed*
  for the rest of the run (``DailyBudgetSpent``) instead of sleeping until midnight UTC;
* **corrections from the server**: ``X-RateLimit-Limit``/``-Daily-Limit`` lower than the plan
  replace it (the account is on a smaller plan than configured), ``-Daily-Remaining`` raises
  the day's count (another client used the quota), ``-Remaining: 0`` empties the bucket;
* **a 429 pauses the endpoint for everyone** for ``Retry-After`` (``pause``); a daily 429
  closes it (``close_day``).

Waiters queue on one lock per endpoint (FIFO), so a new worker cannot overtake one that has
waited; except callers that pass a ``rank`` (status polls): they queue among themselves by it,
the best-ranked one taking the next call (``acquire``). The clock and the sleep function are injectable: tests drive a fake clock, never the
wall clock.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Mapping

Limit = tuple[int | None, int | None]   # (per minute, per day); None = no limit
WINDOW = 60.0
EPS = 1e-6  # clock slack: `now + (t - now)` can land a rounding error short of t; never spin on it

# deAPI's plans (deapi-api.md §4.4). Premium's status limit is not published: 300 like submits.
PLANS: dict[str, dict[str, Limit]] = {
    "unlimited": {},
    "custom": {},
    "basic": {"submit": (5, 50), "status": (50, 200), "price": (50, 200)},
    "premium": {"submit": (300, None), "status": (300, None), "price": (300, None)},
}


class EndpointShut(Exception):
    """The run stopped using this endpoint (a stop request): waiters leave at once."""

    def __init__(self, endpoint: str, reason: str) -> None:
        super().__init__(f"{endpoint}: {reason}")
        self.endpoint, self.reason = endpoint, reason


class DailyBudgetSpent(Exception):
    def __init__(self, endpoint: str) -> None:
        super().__init__(f"the daily {endpoint} budget is spent for this run")
        self.endpoint = endpoint


@dataclass
class _Bucket:
    per_minute: int | None
    per_day: int | None
    tokens: float
    updated: float
    used_today: int = 0
    paused_until: float = 0.0
    day_closed: bool = False
    recent: deque = field(default_factory=deque)   # acquisition times within the last WINDOW s
    waited: float = 0.0                            # total seconds waiters slept (for reports)


def _int(value: object) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


class _Gate:
    """Ranked waiters of one endpoint (``RateLimiter.acquire(rank=...)``)."""

    def __init__(self) -> None:
        self.busy = False
        self.waiters: list[tuple[Callable[[], float], asyncio.Future]] = []

    def pass_on(self) -> None:
        """The holder is through: the best-ranked waiter goes next (it keeps ``busy``)."""
        while self.waiters:
            best = max(self.waiters, key=lambda e: e[0]())  # first of equals: arrival order
            self.waiters.remove(best)
            if not best[1].done():
                best[1].set_result(None)
                return
        self.busy = False


class RateLimiter:
    def __init__(self, limits: Mapping[str, Limit] | None = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, burst: int = 1) -> None:
        self.clock, self.sleep = clock, sleep
        self.burst = max(1, burst)
        self._buckets: dict[str, _Bucket] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._gates: dict[str, _Gate] = {}
        self._shut: dict[str, str] = {}                  # endpoint -> why it was shut
        self._shut_events: dict[str, asyncio.Event] = {}
        for endpoint, (pm, pd) in (limits or {}).items():
            self._set_limits(endpoint, pm, pd)

    @classmethod
    def for_plan(cls, plan: str, overrides: Mapping[str, Limit] | None = None, **kw) -> "RateLimiter":
        """A plan's limits (``basic``, ``premium``, ``unlimited``, ``custom`` = none), with
        ``overrides`` replacing single numbers (``None`` in an override keeps the plan's)."""
        if plan not in PLANS:
            raise ValueError(f"unknown rate-limit plan {plan!r}; choose one of {', '.join(PLANS)}")
        limits = dict(PLANS[plan])
        for ep, (pm, pd) in (overrides or {}).items():
            base = limits.get(ep, (None, None))
            limits[ep] = (pm if pm is not None else base[0], pd if pd is not None else base[1])
        return cls(limits, **kw)

    # -- state --------------------------------------------------------------------------------

    def _set_limits(self, endpoint: str, per_minute: int | None, per_day: int | None) -> _Bucket:
        for n in (per_minute, per_day):
            if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
                raise ValueError(f"rate limit for {endpoint!r} must be a whole number >= 1 or None, not {n!r}")
        b = self._buckets.get(endpoint)
        if b is None:
            cap = float(min(self.burst, per_minute)) if per_minute else 0.0
            b = self._buckets[endpoint] = _Bucket(per_minute, per_day, cap, self.clock())
        else:
            b.per_minute, b.per_day = per_minute, per_day
            if per_minute:
                b.tokens = min(b.tokens, float(min(self.burst, per_minute)))
        return b

    def _bucket(self, endpoint: str) -> _Bucket:
        b = self._buckets.get(endpoint)
        return b if b is not None else self._set_limits(endpoint, None, None)

    def limits(self, endpoint: str) -> Limit:
        b = self._buckets.get(endpoint)
        return (b.per_minute, b.per_day) if b else (None, None)

    def closed(self, endpoint: str) -> bool:
        b = self._buckets.get(endpoint)
        return bool(b and b.day_closed)

    def used_today(self, endpoint: str) -> int:
        b = self._buckets.get(endpoint)
        return b.used_today if b else 0

    def waited(self, endpoint: str) -> float:
        b = self._buckets.get(endpoint)
        return b.waited if b else 0.0

    # -- acquire ------------------------------------------------------------------------------

    async def acquire(self, endpoint: str, rank: Callable[[], float] | None = None) -> None:
        """Wait until one request to ``endpoint`` may go; raise ``DailyBudgetSpent`` if never today.

        ``rank``: the callers that pass one queue by it instead of by arrival: whenever the
        next call may go, the waiter whose ``rank()`` is highest *then* goes (ties: first come).
        Why: status polls wait here when the status limit is the tight resource (premium: one
        call a job at the submit rate), and first come first served then answers the polls in
        the order they were planned, not the order the jobs are likely done; the poller ranks
        each by the chance its job is done now (``PollPlanner.done_chance``)."""
        if rank is not None and self._buckets.get(endpoint) is not None:
            await self._ranked(endpoint, rank)
            return
        await self._acquire(endpoint)

    async def _ranked(self, endpoint: str, rank: Callable[[], float]) -> None:
        """One ranked waiter at a time goes on to the limiter; the others wait here, and the
        best of them is chosen when it leaves."""
        gate = self._gates.setdefault(endpoint, _Gate())
        if gate.busy or gate.waiters:
            entry = (rank, asyncio.get_running_loop().create_future())
            gate.waiters.append(entry)
            try:
                await entry[1]
            except asyncio.CancelledError:
                if entry in gate.waiters:
                    gate.waiters.remove(entry)
                elif entry[1].done() and not entry[1].cancelled():
                    gate.pass_on()  # chosen, then cancelled: the next one goes
                raise
        else:
            gate.busy = True
        try:
            await self._acquire(endpoint)
        finally:
            gate.pass_on()

    async def _acquire(self, endpoint: str) -> None:
        if endpoint in self._shut:
            raise EndpointShut(endpoint, self._shut[endpoint])
        b = self._buckets.get(endpoint)
        if b is None:
            return
        lock = self._locks.setdefault(endpoint, asyncio.Lock())
        async with lock:  # FIFO: one waiter at a time takes the next slot
            while True:
                if endpoint in self._shut:
                    raise EndpointShut(endpoint, self._shut[endpoint])
                if b.day_closed or (b.per_day is not None and b.used_today >= b.per_day):
                    b.day_closed = True
                    raise DailyBudgetSpent(endpoint)
                now = self.clock()
                if now < b.paused_until - EPS:
                    await self._sleep(endpoint, b, b.paused_until - now)
                    continue
                if b.per_minute is None:
                    break
                while b.recent and b.recent[0] <= now - WINDOW + EPS:
                    b.recent.popleft()
                if len(b.recent) >= b.per_minute:  # the sliding window is full
                    await self._sleep(endpoint, b, b.recent[0] + WINDOW - now)
                    continue
                rate = b.per_minute / WINDOW
                b.tokens = min(float(min(self.burst, b.per_minute)), b.tokens + max(now - b.updated, 0.0) * rate)
                b.updated = now
                if b.tokens >= 1.0:
                    b.tokens -= 1.0
                    break
                wait = (1.0 - b.tokens) / rate
                await self._sleep(endpoint, b, wait)
                # Credit exactly the token this wait earned (re-deriving it from the clock can
                # fall short by a rounding error and spin); a pause set meanwhile still applies.
                b.tokens, b.updated = 1.0, now + wait
            b.used_today += 1
            if b.per_minute is not None:
                b.recent.append(self.clock())

    async def _sleep(self, endpoint: str, b: _Bucket, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        b.waited += seconds
        if self.sleep is asyncio.sleep:
            # Real time: a ``shut`` wakes the sleeper at once (a stop must not wait out a
            # minute-long pause of a Basic plan).
            event = self._shut_events.setdefault(endpoint, asyncio.Event())
            try:
                await asyncio.wait_for(event.wait(), seconds)
            except asyncio.TimeoutError:
                pass
            return
        await self.sleep(seconds)

    def shut(self, endpoint: str, reason: str) -> None:
        """No more calls to ``endpoint`` in this run: waiters and later callers get
        ``EndpointShut`` at once."""
        self._shut[endpoint] = reason
        self._shut_events.setdefault(endpoint, asyncio.Event()).set()

    # -- feedback from the server -------------------------------------------------------------

    def pause(self, endpoint: str, seconds: float) -> None:
        """A 429 said "wait": nobody calls ``endpoint`` for ``seconds``."""
        b = self._bucket(endpoint)
        b.paused_until = max(b.paused_until, self.clock() + max(seconds, 0.0))

    def close_day(self, endpoint: str) -> None:
        """A daily 429: ``endpoint`` stays closed for the rest of the run."""
        self._bucket(endpoint).day_closed = True

    def observe(self, endpoint: str, headers: Mapping[str, str] | object) -> None:
        """Correct the local view from the server's ``X-RateLimit-*`` headers (any response)."""
        get = getattr(headers, "get", None)
        if get is None:
            return
        limit, daily_limit = _int(get("X-RateLimit-Limit")), _int(get("X-RateLimit-Daily-Limit"))
        remaining, daily_remaining = _int(get("X-RateLimit-Remaining")), _int(get("X-RateLimit-Daily-Remaining"))
        b = self._buckets.get(endpoint)
        if b is None and limit is None and daily_limit is None:
            return
        b = self._bucket(endpoint)
        # The server's numbers win when they are stricter than the configured plan.
        pm = limit if limit and (b.per_minute is None or limit < b.per_minute) else b.per_minute
        pd = daily_limit if daily_limit and (b.per_day is None or daily_limit < b.per_day) else b.per_day
        if (pm, pd) != (b.per_minute, b.per_day):
            self._set_limits(endpoint, pm, pd)
        if daily_remaining is not None and b.per_day is not None:
            b.used_today = max(b.used_today, b.per_day - daily_remaining)
        if remaining == 0 and b.per_minute is not None:
            b.tokens, b.updated = 0.0, self.clock()
