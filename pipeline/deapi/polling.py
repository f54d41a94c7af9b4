"""Polling that learns how long jobs take, so a typical job costs one status call.

Why: status calls are budgeted like submits (Basic: 200 a day against 50 submits), and each
one is a round trip. Polling every second wastes the budget on slow jobs; polling late wastes
wall time on fast ones. So the first poll is timed from what recent jobs took.

The moment a job finished is never observed directly: a poll only says "done by now" or "not
yet". Samples taken at the poll that saw a job done can never be shorter than the current
first-poll delay, so a plain percentile of them only drifts later. Each finished job therefore
gives a sample that can move both ways:

* found done at its first poll: 97 % of that poll's time (it was done by then, perhaps
  earlier; 90 % while no recent first poll missed at all, to come down faster from a prior
  that is too long);
* found done later: the midpoint between the last "not yet" and the "done".

The first poll waits for the 90th percentile of the last ``window`` samples, minus the time
already spent since the submit; with 64 jobs in flight the window smooths the late feedback
instead of oscillating. A miss is usually a near miss, so the second poll comes soon (a tenth
of the estimate, at least ``minimum``); later ones back off by ``backoff`` (x1.5) up to
``maximum``. Before any job has finished, ``first`` is the prior. Every poll goes through the
client's ``status`` rate limiter; the learner only says *when*.
"""

from __future__ import annotations

import time
from collections import deque

HIT_SHRINK = 0.97        # near the job time (some recent first polls missed)
HIT_SHRINK_FAST = 0.90   # no recent miss at all: the delay is surely too long, come down faster
PERCENTILE = 0.9
MAX_TRACKED = 100_000  # submit times kept for jobs not yet finished


class PollLearner:
    def __init__(self, *, first: float = 1.0, minimum: float = 0.2, maximum: float = 30.0, backoff: float = 1.5,
                 window: int = 200, clock=time.monotonic) -> None:
        self.first, self.minimum, self.maximum, self.backoff = first, minimum, maximum, backoff
        self.clock = clock
        self.samples: deque[float] = deque(maxlen=window)
        self._recent_misses: deque[bool] = deque(maxlen=window)
        self.hits = self.misses = 0
        self._submitted: dict[str, float] = {}

    def submitted(self, request_id: str) -> None:
        if len(self._submitted) >= MAX_TRACKED:  # ids nobody waited for: drop the oldest
            self._submitted.pop(next(iter(self._submitted)))
        self._submitted[request_id] = self.clock()

    def submitted_at(self, request_id: str) -> float | None:
        return self._submitted.get(request_id)

    def forget(self, request_id: str) -> None:
        """A job that will not report a duration (timed out, lost): drop its start time."""
        self._submitted.pop(request_id, None)

    def finished(self, request_id: str, polls: int = 1, last_miss_at: float | None = None) -> None:
        """A job was seen terminal after ``polls`` status calls (``last_miss_at``: seconds after
        submit of the last poll that found it unfinished)."""
        t0 = self._submitted.pop(request_id, None)
        if t0 is None:
            return
        seen = self.clock() - t0
        if polls <= 1 or last_miss_at is None:
            self.hits += 1
            self._recent_misses.append(False)
            self.samples.append(seen * (HIT_SHRINK if any(self._recent_misses) else HIT_SHRINK_FAST))
        else:
            self.misses += 1
            self._recent_misses.append(True)
            self.samples.append((last_miss_at + seen) / 2)

    def typical(self) -> float:
        if not self.samples:
            return self.first
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(PERCENTILE * len(ordered)))]

    def first_delay(self, elapsed: float = 0.0) -> float:
        return min(self.maximum, max(self.minimum, self.typical() - elapsed))

    def second_delay(self) -> float:
        return min(self.maximum, max(self.minimum, 0.1 * self.typical()))

    def next_delay(self, previous: float) -> float:
        return min(self.maximum, max(self.minimum, previous * self.backoff))
