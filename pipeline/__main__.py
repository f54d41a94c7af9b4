"""Entry point for ``python -m pipeline`` and the installed ``pipeline`` command."""

import logging
import os
import signal
import sys
from typing import NoReturn

from pipeline.exitcodes import ExitCode
from pipeline.run.crashpoints import crashpoint


def _stop_like_ctrl_c(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _main() -> int:
    """SIGTERM is a stop from the first instant, as SIGINT is: until the run sets its own
    handlers (and in the other commands) both raise ``KeyboardInterrupt``, which the CLI turns
    into exit 3. Before, a SIGTERM (a systemd stop, a ``kill``) while the interpreter imported the
    run's modules (a second or more on a loaded machine) ended it by the signal (exit -15/143),
    and a Ctrl-C there printed a traceback and exited -2 (130). The CLI is imported here, after
    the handler is set (``pipeline.cli`` imports most of the package)."""
    signal.signal(signal.SIGTERM, _stop_like_ctrl_c)
    try:
        from pipeline.cli import main

        return main()
    except KeyboardInterrupt:  # one the command's own handling did not see (it came while starting)
        print("pipeline: stopped by a signal while starting; nothing was done", file=sys.stderr)
        return ExitCode.STOPPED_EARLY


def _leave(code: int) -> NoReturn:
    """The command has ended and said its outcome: the process leaves now, with its code, and a
    signal can no longer change it. Found by killing runs at random moments: a Ctrl-C (or a
    SIGTERM) in the interpreter's own teardown after ``main`` returned (joining threads, atexit
    hooks, freeing modules: 0.1-0.9 s after a run's last line) met the handler the interpreter
    resets to the default there, and the process died of the signal (exit 130 or 143, no word)
    after its log had said ``exit 1 (FILES_FAILED)``. Every file the command wrote is closed by
    now (the state store, the reports, the outputs), so the teardown has nothing left to do but
    cost that time; the standard streams and log handlers are flushed first."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    crashpoint("process_exit")   # tests: a signal after the outcome was said
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):   # a closed pipe or stream: nothing more can be said on it
            pass
    logging.shutdown()
    os._exit(int(code or 0))


def console() -> None:
    """The ``pipeline`` command installed with the package ([project.scripts] in pyproject.toml)."""
    _leave(_main())


if __name__ == "__main__":
    _leave(_main())
