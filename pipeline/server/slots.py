"""The queueing fault: N engine slots, each held S seconds per job, granted first come first served.

Why a fault and not a real engine setting: the ``fast`` engine answers instantly, so with it no
job ever waits and a client's queue handling (pending for a long time, progress moving, the
order results come back in) is never exercised. With ``engine_slots=N`` and
``engine_seconds=S`` each job, after its latency, waits ``pending`` for one of N slots, then
holds it ``processing`` for S seconds (its ``progress`` moving from 10 to 90) and while the
engine reads it, so jobs genuinely queue behind each other as they do on a busy real engine.

The gate reads N from the live ``FaultConfig`` on every grant, so a test or ``POST
/_admin/faults`` can widen or narrow it mid-run; ``engine_slots=0`` (the default) turns it off.
Waiters are served strictly in arrival order (a ``deque`` of futures, not ``asyncio.Semaphore``,
whose wake-up order is not part of its contract).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Callable

PROGRESS_STEPS = 8   # progress updates while a slot is held (10 -> 90)


class SlotGate:
    """First-come-first-served slots; capacity read from ``capacity()`` at each grant."""

    def __init__(self, capacity: Callable[[], int]) -> None:
        self.capacity = capacity
        self.busy = 0
        self.granted = 0                      # slots handed out since start (a grant sequence)
        self._waiters: deque[asyncio.Future[int]] = deque()

    @property
    def waiting(self) -> int:
        return sum(1 for w in self._waiters if not w.done())

    async def acquire(self) -> int:
        """Wait for a slot; returns its grant number (0, 1, 2 ... in the order slots were given)."""
        if not self._waiters and self.busy < max(1, self.capacity()):
            return self._grant()
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():   # granted just as we were cancelled: hand it on
                self.release()
            raise

    def release(self) -> None:
        self.busy -= 1
        self._wake()

    def _grant(self) -> int:
        self.busy += 1
        n, self.granted = self.granted, self.granted + 1
        return n

    def _wake(self) -> None:
        while self._waiters and self.busy < max(1, self.capacity()):
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(self._grant())


async def hold(seconds: float, set_progress: Callable[[float], None]) -> None:
    """Keep the slot ``seconds`` while ``progress`` climbs from 10 to 90 (the caller holds the slot)."""
    for step in range(1, PROGRESS_STEPS + 1):
        await asyncio.sleep(seconds / PROGRESS_STEPS)
        set_progress(10.0 + 80.0 * step / PROGRESS_STEPS)
