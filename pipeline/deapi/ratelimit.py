"""One rate limiter per endpoint, shared by every worker of a run.

Each endpoint (submit, status, download) has a per-minute budget paced as a token bucket (so
requests are spread evenly instead of bursting into a 429) and a per-day count. The server's
``X-RateLimit-Remaining``/``-Daily-Remaining`` headers correct the local view; a 429 pauses the
endpoint for everyone for ``Retry-After``; a daily 429 (or the day's budget spent) closes the
endpoint for the rest of the run. The clock and sleep are injectable for tests.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

PLANS: dict[str, dict[str, tuple[int | None, int | None]]] = {
    "unlimited": {},
    "basic": {"submit": (5, 50), "status": (50, 200)},
    "premium": {"submit": (300, None), "status": (300, None)},
}


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


class RateLimiter:
    def __init__(self, limits: dict[str, tuple[int | None, int | None]] | None = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, burst: int = 1) -> None:
        self.clock, self.sleep = clock, sleep
        self.burst = burst
        self._buckets: dict[str, _Bucket] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        for endpoint, (pm, pd) in (limits or {}).items():
            self._buckets[endpoint] = _Bucket(pm, pd, float(min(burst, pm) if pm else 0), clock())

    @classmethod
    def for_plan(cls, plan: str, overrides: dict[str, tuple[int | None, int | None]] | None = None,
                 **kw) -> "RateLimiter":
        limits = dict(PLANS.get(plan, {}))
        for ep, (pm, pd) in (overrides or {}).items():
            base = limits.get(ep, (None, None))
            limits[ep] = (pm if pm is not None else base[0], pd if pd is not None else base[1])
        return cls(limits, **kw)

    def closed(self, endpoint: str) -> bool:
        b = self._buckets.get(endpoint)
        return bool(b and b.day_closed)

    async def acquire(self, endpoint: str) -> None:
        b = self._buckets.get(endpoint)
        if b is None:
            return
        lock = self._locks.setdefault(endpoint, asyncio.Lock())
        async with lock:  # FIFO: one waiter at a time takes the next slot
            while True:
                if b.day_closed or (b.per_day is not None and b.used_today >= b.per_day):
                    b.day_closed = True
                    raise DailyBudgetSpent(endpoint)
                now = self.clock()
                if now < b.paused_until:
                    await self.sleep(b.paused_until - now)
                    continue
                if b.per_minute is None:
                    break
                rate = b.per_minute / 60.0
                b.tokens = min(float(min(self.burst, b.per_minute)), b.tokens + max(now - b.updated, 0.0) * rate)
                b.updated = now
                if b.tokens >= 1.0:
                    b.tokens -= 1.0
                    break
                wait = (1.0 - b.tokens) / rate
                await self.sleep(wait)
                # Credit exactly the token this wait earned (re-deriving it from the clock can
                # fall short by a rounding error and spin); a pause set meanwhile still applies.
                b.tokens, b.updated = 1.0, now + wait
            b.used_today += 1

    def pause(self, endpoint: str, seconds: float) -> None:
        b = self._buckets.get(endpoint)
        if b is None:
            b = self._buckets[endpoint] = _Bucket(None, None, 0.0, self.clock())
        b.paused_until = max(b.paused_until, self.clock() + max(seconds, 0.0))

    def close_day(self, endpoint: str) -> None:
        b = self._buckets.setdefault(endpoint, _Bucket(None, None, 0.0, self.clock()))
        b.day_closed = True

    def observe(self, endpoint: str, headers: dict[str, str] | object) -> None:
        """Correct the local view from the server's ``X-RateLimit-*`` headers."""
        get = getattr(headers, "get", None)
        b = self._buckets.get(endpoint)
        if get is None or b is None:
            return
        daily = get("X-RateLimit-Daily-Remaining")
        if daily is not None and b.per_day is not None:
            try:
                b.used_today = max(b.used_today, b.per_day - int(daily))
            except ValueError:
                pass
