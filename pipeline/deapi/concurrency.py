"""Adaptive concurrency (AIMD) for jobs in flight: grow while the API keeps up, back off when not.

``AdaptiveLimit`` is an async context manager like a semaphore whose size changes. It starts
in *slow start* (every success adds 1, so the limit doubles each round of jobs, as TCP does)
until the first sign of overload; from then on every success adds ``1/limit`` (about +1 per
round: additive increase). A 429 or a job latency far above the best seen halves the limit
(multiplicative decrease). It never leaves ``[minimum, maximum]``.
"""

from __future__ import annotations

import asyncio


class AdaptiveLimit:
    def __init__(self, minimum: int, maximum: int, initial: int | None = None, *,
                 latency_factor: float = 3.0) -> None:
        self.minimum, self.maximum = max(1, minimum), max(minimum, maximum)
        self._limit = float(initial if initial is not None else self.minimum)
        self.in_flight = 0
        self.latency_factor = latency_factor
        self.best_latency: float | None = None
        self.slow_start = True
        self.decreases = 0
        self._cond = asyncio.Condition()

    @property
    def limit(self) -> int:
        return int(self._limit)

    async def acquire(self) -> None:
        async with self._cond:
            await self._cond.wait_for(lambda: self.in_flight < self.limit)
            self.in_flight += 1

    async def release(self) -> None:
        async with self._cond:
            self.in_flight -= 1
            self._cond.notify_all()

    async def __aenter__(self) -> "AdaptiveLimit":
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release()

    def on_success(self, latency: float | None = None) -> None:
        if latency is not None:
            if self.best_latency is None or latency < self.best_latency:
                self.best_latency = latency
            elif latency > self.best_latency * self.latency_factor:
                self._decrease()
                return
        step = 1.0 if self.slow_start else 1.0 / max(self._limit, 1.0)
        self._limit = min(float(self.maximum), self._limit + step)
        self._wake()

    def on_overload(self) -> None:
        self._decrease()

    def _decrease(self) -> None:
        self.slow_start = False
        self.decreases += 1
        self._limit = max(float(self.minimum), self._limit / 2)

    def _wake(self) -> None:
        async def notify() -> None:
            async with self._cond:
                self._cond.notify_all()
        try:
            asyncio.get_running_loop().create_task(notify())
        except RuntimeError:
            pass
