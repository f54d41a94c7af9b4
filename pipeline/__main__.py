"""Entry point for ``python -m pipeline`` and the installed ``pipeline`` command."""

import signal
import sys

from pipeline.exitcodes import ExitCode


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


def console() -> None:
    """The ``pipeline`` command installed with the package ([project.scripts] in pyproject.toml)."""
    sys.exit(_main())


if __name__ == "__main__":
    sys.exit(_main())
