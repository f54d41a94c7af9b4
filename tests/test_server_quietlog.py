"""A served member's log says a repeated problem once a minute (server/quietlog.py): a database
outage made every member log each retry of each of its loops, 184 lines in 30 s for an API
replica; measured again with the filter on: 13."""

from __future__ import annotations

import io
import logging

from pipeline.server.quietlog import RepeatFilter


def logger_with_filter(now: list[float]) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    handler.addFilter(RepeatFilter(60.0, clock=lambda: now[0]))
    log = logging.getLogger(f"test.quietlog.{id(out)}")
    log.propagate = False
    log.addHandler(handler)
    return log, out


def test_a_retry_repeated_through_an_outage_is_said_once_a_minute_with_the_count():
    now = [0.0]
    log, out = logger_with_filter(now)
    for i in range(100):            # a retry every 0.5 s, its numbers changing
        log.warning("error connecting in 'pool-1': port %d refused; trying again in %.1f s", 39871, 0.1 * (i % 5))
        log.warning("discarding closed connection: <AsyncConnection [BAD] at 0x7f40%04x>", i)
        now[0] += 0.5
    log.warning("cannot claim a job (couldn't get a connection); trying again in 2.0 s")   # another kind
    log.warning("job %s failed: %s", "a1b2", "INPUT_TOO_LARGE")
    log.warning("job %s failed: %s", "c3d4", "INPUT_TOO_LARGE")   # another job: not merged
    now[0] += 30.0
    log.warning("error connecting in 'pool-1': port 39871 refused; trying again in 2.0 s")
    lines = out.getvalue().splitlines()
    pool = [ln for ln in lines if "error connecting" in ln]
    assert len(pool) == 2, lines                          # the first, then one after the window
    assert "(99 more like this in the last 80 s)" in pool[1], pool
    assert sum("discarding closed connection" in ln for ln in lines) == 1
    assert sum("cannot claim a job" in ln for ln in lines) == 1
    assert sum(ln.startswith(f"{log.name}: job ") for ln in lines) == 2


def test_a_critical_record_is_never_dropped():
    now = [0.0]
    log, out = logger_with_filter(now)
    for _ in range(3):
        log.critical("the store refuses this user")
    assert out.getvalue().count("the store refuses this user") == 3
