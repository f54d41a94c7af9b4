"""Polling that learns how long jobs take, so a typical job costs one status call.

The first poll of a job waits for a high percentile (p90) of recently observed job durations
(measured from submit to the poll that saw it finished), minus the time already elapsed;
later polls back off by ``backoff`` up to ``maximum``. Before any job has finished, the
configured ``first`` delay is the prior.
"""

from __future__ import annotations

import time
from collections import deque


class PollLearner:
    def __init__(self, *, first: float = 1.0, minimum: float = 0.2, maximum: float = 30.0, backoff: float = 1.5,
                 window: int = 200, percentile: float = 0.9, clock=time.monotonic) -> None:
        self.first, self.minimum, self.maximum, self.backoff = first, minimum, maximum, backoff
        self.percentile = percentile
        self.clock = clock
        self.durations: deque[float] = deque(maxlen=window)
        self._submitted: dict[str, float] = {}

    def submitted(self, request_id: str) -> None:
        self._submitted[request_id] = self.clock()

    def submitted_at(self, request_id: str) -> float | None:
        return self._submitted.get(request_id)

    def finished(self, request_id: str) -> None:
        t0 = self._submitted.pop(request_id, None)
        if t0 is not None:
            self.durations.append(self.clock() - t0)

    def typical(self) -> float:
        if not self.durations:
            return self.first
        ordered = sorted(self.durations)
        return ordered[min(len(ordered) - 1, int(self.percentile * len(ordered)))]

    def first_delay(self, elapsed: float = 0.0) -> float:
        return min(self.maximum, max(self.minimum, self.typical() - elapsed))

    def next_delay(self, previous: float) -> float:
        return min(self.maximum, max(self.minimum, previous * self.backoff))
