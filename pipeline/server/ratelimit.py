"""Per token and endpoint rate limits: a per-minute and a per-day window, like deAPI's plans.

Fixed windows (the clock minute and the UTC day, as Laravel's limiter and deAPI's "daily reset
at midnight UTC" do). The clock is injectable so tests move time instead of sleeping. A refused
request does not count against the windows (Laravel only records a hit when it lets one through).

``X-RateLimit-*`` headers are returned on allowed requests too, not only on 429s: a client can
calibrate its pace from them before it ever hits the limit.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

MINUTE, DAY = 60, 86_400


@dataclass
class Verdict:
    allowed: bool
    headers: dict[str, str] = field(default_factory=dict)
    limit_type: str | None = None      # "minute" | "daily" when refused
    retry_after: int = 0


def windows(now: float) -> tuple[int, int]:
    """The fixed windows ``now`` falls in: (minute number, UTC day number)."""
    return int(now // MINUTE), int(now // DAY)


def judge(per_min: int | None, per_day: int | None, mc: int, dc: int, now: float) -> Verdict:
    """Allow one more request after ``mc``/``dc`` hits in this minute/day, or say which window refused.

    Pure, so the in-memory limiter and the PostgreSQL store (which counts hits in a table shared
    by every replica) answer with the same headers."""
    minute, day = windows(now)
    refused = None
    if per_day is not None and dc >= per_day:
        refused = ("daily", (day + 1) * DAY - now)
    elif per_min is not None and mc >= per_min:
        refused = ("minute", (minute + 1) * MINUTE - now)
    if refused is None:
        mc, dc = mc + 1, dc + 1
    headers = {}
    if per_min is not None:
        headers["X-RateLimit-Limit"] = str(per_min)
        headers["X-RateLimit-Remaining"] = str(max(per_min - mc, 0))
    if per_day is not None:
        headers["X-RateLimit-Daily-Limit"] = str(per_day)
        headers["X-RateLimit-Daily-Remaining"] = str(max(per_day - dc, 0))
    if refused is None:
        return Verdict(True, headers)
    kind, seconds = refused
    retry = max(1, math.ceil(seconds))
    headers.update({"X-RateLimit-Type": kind, "Retry-After": str(retry)})
    if kind == "minute":
        headers["X-RateLimit-Remaining"] = "0"
    else:
        headers["X-RateLimit-Daily-Remaining"] = "0"
    return Verdict(False, headers, kind, retry)


class RateLimiter:
    def __init__(self, limits: dict[str, tuple[int | None, int | None]], clock: Callable[[], float] | None = None):
        self.limits = limits
        self.clock = clock or time.time
        # (token, endpoint) -> (window number, hits in it)
        self._minute: dict[tuple[str, str], tuple[int, int]] = {}
        self._day: dict[tuple[str, str], tuple[int, int]] = {}

    def check(self, token: str, endpoint: str) -> Verdict:
        """Count one request if it is allowed; say which window refused it otherwise."""
        per_min, per_day = self.limits.get(endpoint, (None, None))
        if per_min is None and per_day is None:
            return Verdict(True)
        now = self.clock()
        minute, day = windows(now)
        key = (token, endpoint)
        mw, mc = self._minute.get(key, (minute, 0))
        dw, dc = self._day.get(key, (day, 0))
        verdict = judge(per_min, per_day, mc if mw == minute else 0, dc if dw == day else 0, now)
        if verdict.allowed:
            self._minute[key] = (minute, (mc if mw == minute else 0) + 1)
            self._day[key] = (day, (dc if dw == day else 0) + 1)
        return verdict
