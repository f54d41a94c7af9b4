"""A process's log says a repeated problem once a minute, not several times a second (``serve``
and ``run``; here, beside ``cli``, as both use it).

Why: while the fleet's database is down, every member retries it from several loops at once
(the connection pool every 0.25-2 s, the LISTEN connection, the worker's claim loop, the
webhook outbox, the store's maintenance), and each retry logged a warning: a 30 s outage wrote
184 lines in an API replica's log and 226 in a worker's (measured with ``pg_ctl stop`` under
two members), so a ten-minute outage buried each log under thousands of lines saying the same,
and the line that says what started it scrolled away. ``RepeatFilter`` lets the first record of
a kind through, drops the repeats for ``window_s`` and then lets one through that says how many
it dropped (``pipeline.cli`` puts it on the ``serve`` process's log handler, and on ``run``'s,
where a webhook secret that refuses every push logged each retry of each job). A kind is the logger and the message with its numbers taken out ("trying again in
0.4 s", "port 39871", "at 0x7f40193df690"), so messages about different jobs (their ids differ) are never merged.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Callable

WINDOW_S = 60.0
_NUMBERS = re.compile(r"0x[0-9a-fA-F]+|\d+(?:\.\d+)?")   # and object addresses ("at 0x7f40...")
KIND_CHARS = 80   # a kind is told by the message's start: the rest is the driver's detail


class RepeatFilter(logging.Filter):
    """At most one record of a kind per ``window_s``; the next one says how many were dropped."""

    def __init__(self, window_s: float = WINDOW_S, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window_s, self.clock = window_s, clock
        self._seen: dict[tuple[str, str], list] = {}   # kind -> [when let through, dropped since]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.CRITICAL:
            return True
        now = self.clock()
        message = record.getMessage()
        kind = (record.name, _NUMBERS.sub("#", message)[:KIND_CHARS])
        seen = self._seen.get(kind)
        if seen is not None and now - seen[0] < self.window_s:
            seen[1] += 1
            return False
        if seen is not None and seen[1]:
            record.msg, record.args = f"{message} ({seen[1]} more like this in the last {now - seen[0]:.0f} s)", ()
        self._seen[kind] = [now, 0]
        if len(self._seen) > 1000:   # kinds not seen for a window are forgotten
            self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.window_s}
        return True

