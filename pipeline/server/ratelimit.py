"""Per token and endpoint rate limits: a per-minute and a per-day window, like deAPI's plans.

Fixed windows (the minute and the UTC day) as Laravel's limiter uses; the clock is injectable
so tests move time instead of sleeping.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable


@dataclass
class Verdict:
    allowed: bool
    headers: dict[str, str]
    limit_type: str | None = None
    retry_after: int = 0


class RateLimiter:
    def __init__(self, limits: dict[str, tuple[int | None, int | None]], clock: Callable[[], float] | None = None):
        self.limits = limits
        self.clock = clock or time.time
        self._minute: dict[tuple[str, str], tuple[int, int]] = {}   # (token, ep) -> (window, count)
        self._day: dict[tuple[str, str], tuple[int, int]] = {}

    def check(self, token: str, endpoint: str) -> Verdict:
        per_min, per_day = self.limits.get(endpoint, (None, None))
        if per_min is None and per_day is None:
            return Verdict(True, {})
        now = self.clock()
        minute, day = int(now // 60), int(now // 86400)
        key = (token, endpoint)
        mw, mc = self._minute.get(key, (minute, 0))
        if mw != minute:
            mw, mc = minute, 0
        dw, dc = self._day.get(key, (day, 0))
        if dw != day:
            dw, dc = day, 0
        headers = {}
        if per_min is not None:
            headers["X-RateLimit-Limit"] = str(per_min)
        if per_day is not None:
            headers["X-RateLimit-Daily-Limit"] = str(per_day)
        if per_day is not None and dc >= per_day:
            retry = int((day + 1) * 86400 - now) + 1
            headers.update({"X-RateLimit-Daily-Remaining": "0", "X-RateLimit-Type": "daily", "Retry-After": str(retry)})
            if per_min is not None:
                headers["X-RateLimit-Remaining"] = str(max(per_min - mc, 0))
            return Verdict(False, headers, "daily", retry)
        if per_min is not None and mc >= per_min:
            retry = int((minute + 1) * 60 - now) + 1
            headers.update({"X-RateLimit-Remaining": "0", "X-RateLimit-Type": "minute", "Retry-After": str(retry)})
            if per_day is not None:
                headers["X-RateLimit-Daily-Remaining"] = str(max(per_day - dc, 0))
            return Verdict(False, headers, "minute", retry)
        mc, dc = mc + 1, dc + 1
        self._minute[key], self._day[key] = (mw, mc), (dw, dc)
        if per_min is not None:
            headers["X-RateLimit-Remaining"] = str(per_min - mc)
        if per_day is not None:
            headers["X-RateLimit-Daily-Remaining"] = str(per_day - dc)
        return Verdict(True, headers)
