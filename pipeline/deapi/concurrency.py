"""Adaptive concurrency (AIMD) for jobs in flight: grow while the API keeps up, back off when not.

Why: the right number of jobs in flight depends on the account's plan and on how busy deAPI
is, neither of which the user knows. Too few wastes wall time; too many queues jobs at the
API (each still counts towards the per-job deadline).

``AdaptiveLimit`` is a semaphore whose size changes (``async with limit:``). It starts in
*slow start* (every success adds 1, so the limit doubles each round of jobs, as TCP does)
until the first sign of overload; from then on every success adds ``1/limit`` (about +1 per
round: additive increase). The limit halves (multiplicative decrease) **at most once per
round** of jobs - ``limit`` jobs finished since the last cut - as TCP cuts once per round trip,
because the jobs that finish right after a bad one met the same conditions. Two signals:

* **a storm of 429s on submits** (``on_overload``): more than half of the round's submit answers
  were 429. A 429 is first of all a *rate* signal, and the shared rate limiter handles it (it
  waits ``Retry-After`` for everyone and takes the ``X-RateLimit-*`` numbers as its limits);
  jobs in flight waiting in the limiter cost the API nothing, so a few 429s must not shrink the
  window (halving on every one collapsed it to one job under a 20 % 429 mix). 429s of the
  status endpoint are never reported here: they slow polling, not the window.
* **queueing at the API that threatens the deadline**, judged once a round: most of the round's
  jobs were seen still *queued* (``pending``, not yet on a worker), and their median time is
  over ``latency_factor`` x the lowest round median seen *and* over ``queue_limit_s`` (a
  twentieth of the per-job deadline). Jobs that wait in the API's queue cost the API nothing
  but keep its workers busy - cutting then only leaves them idle - so a queue alone is no
  reason; a queue that grows with the window until jobs risk their deadline is. A job that was
  slow while *processing* is a dense page, not an overloaded API, and never counts; a round
  median, not one job, is compared, so a wide spread of job times is no signal either.

It never leaves ``[minimum, maximum]``; shrinking never cancels running jobs, it only holds
new ones back until enough have finished. Feed it the job's own time (request id to result),
not time spent waiting for the rate limiter, or limiter waits read as a slow API.
"""

from __future__ import annotations

import asyncio
from collections import deque


STORM_WINDOW = 16  # recent submit 429s and job successes judged for a storm


class AdaptiveLimit:
    def __init__(self, minimum: int, maximum: int, initial: int | None = None, *,
                 latency_factor: float = 3.0, queue_limit_s: float = 45.0) -> None:
        self.minimum = max(1, int(minimum))
        self.maximum = max(self.minimum, int(maximum))
        start = initial if initial is not None else self.minimum
        self._limit = float(min(self.maximum, max(self.minimum, start)))
        self.in_flight = 0
        self.latency_factor = latency_factor
        self.queue_limit_s = queue_limit_s
        self.baseline: float | None = None      # lowest round median of job times seen
        self._round: list[tuple[float, bool]] = []
        self._round_size = 4
        self.slow_start = True
        self.decreases = 0
        self.increases = 0
        self._since_decrease = 0
        self._cut_armed = True
        self._recent: deque[bool] = deque(maxlen=STORM_WINDOW)  # last events: True = a 429
        self.overloads = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def limit(self) -> int:
        return int(self._limit)

    # -- the semaphore ------------------------------------------------------------------------

    async def acquire(self) -> None:
        if self.in_flight < self.limit and not self._waiters:
            self.in_flight += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut  # the slot was counted for us by _wake
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release_nowait()  # woken and cancelled at once: hand the slot on
            else:
                try:
                    self._waiters.remove(fut)
                except ValueError:
                    pass
            raise

    def release_nowait(self) -> None:
        self.in_flight = max(0, self.in_flight - 1)
        self._wake()

    async def release(self) -> None:
        self.release_nowait()

    async def __aenter__(self) -> "AdaptiveLimit":
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release_nowait()

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self.limit:
            fut = self._waiters.popleft()
            if not fut.done():
                self.in_flight += 1
                fut.set_result(None)

    # -- the signals --------------------------------------------------------------------------

    def on_success(self, latency: float | None = None, queued: bool = False) -> None:
        """A job finished; ``latency`` is its own time (submit to result), if known;
        ``queued``: a poll saw it still waiting for a worker at the API."""
        self._since_decrease += 1
        self._recent.append(False)
        if self._since_decrease >= max(1, self.limit):
            self._cut_armed = True  # a full round since the last cut
        if latency is not None:
            if not self._round:
                self._round_size = max(4, self.limit)  # a round: as many jobs as were allowed in flight
            self._round.append((latency, queued))
            if len(self._round) >= self._round_size and self._end_round():
                return
        step = 1.0 if self.slow_start else 1.0 / max(self._limit, 1.0)
        before = self.limit
        self._limit = min(float(self.maximum), self._limit + step)
        if self.limit > before:
            self.increases += 1
        self._wake()

    def _end_round(self) -> bool:
        """Judge the round of job times just completed; True if it cut the limit."""
        times = sorted(t for t, _ in self._round)
        median = times[len(times) // 2]
        queued = sum(1 for _, q in self._round if q) / len(self._round)
        self._round = []
        if self.baseline is None or median < self.baseline:
            self.baseline = median
            return False
        if queued > 0.5 and median > self.latency_factor * self.baseline and median > self.queue_limit_s:
            before = self.decreases
            self._decrease_once_per_round()
            return self.decreases > before
        return False

    def on_overload(self) -> None:
        """A 429 answer to a submit. Cuts only in a storm (most of the round's submits)."""
        self.overloads += 1
        self._recent.append(True)
        if len(self._recent) >= min(STORM_WINDOW, max(2, self.limit)) and \
                sum(self._recent) > len(self._recent) / 2:
            self._decrease_once_per_round()

    def _decrease_once_per_round(self) -> None:
        if not self._cut_armed:
            return
        self._cut_armed = False
        self.slow_start = False
        self.decreases += 1
        self._since_decrease = 0
        self._limit = max(float(self.minimum), self._limit / 2)
