"""A served member's log says a repeated problem once a minute (pipeline/quietlog.py): a database
outage made every member log each retry of each of its loops, 184 lines in 30 s for an API
replica; measured again with the filter on: 13."""

from __future__ import annotations

import io
import logging

from pipeline.quietlog import RepeatFilter


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


def test_serve_quiets_its_own_log_handler_and_no_one_elses(capsys):
    """``python -m pipeline serve`` puts the filter on the handler it sets up; ``serve_from_args``
    called in a process whose logging is set up already (here: pytest's) leaves its handlers
    alone. Before, the filter went onto whatever handlers the root logger had, pytest's too, and
    a later test's log capture lost a line said in the same minute."""
    import socket
    import subprocess
    import sys

    from pipeline.server.cli import serve_from_args
    from test_server_cli import parse

    with socket.socket() as busy:   # a busy port: serve stops at once (exit 2) once logging is set
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        before = [list(h.filters) for h in logging.getLogger().handlers]
        assert serve_from_args(parse("--token", "t", "--engine", "fast", "--port", str(port))) == 2
        assert [list(h.filters) for h in logging.getLogger().handlers] == before
        probe = ("import logging, sys\n"
                 "from pipeline.cli import main\n"
                 f"code = main(['serve', '--token', 't', '--engine', 'fast', '--port', '{port}'])\n"
                 "print(code, [type(f).__name__ for h in logging.getLogger().handlers for f in h.filters])\n")
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60).stdout
    assert out.split(None, 1) == ["2", "['RepeatFilter']\n"], out
