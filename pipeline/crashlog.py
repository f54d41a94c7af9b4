"""What an unexpected exception leaves behind: exit 70, one line on stderr, the traceback in a file.

Why not Python's default (a traceback on stderr and exit 1): exit 1 means "some files failed"
in our table, which a cron wrapper treats as routine, so a bug would go unnoticed night after
night. ``INTERNAL_ERROR`` (70, ``EX_SOFTWARE``) is unmistakable, and the traceback is kept in
``<output>/.pipeline/crash-<timestamp>.log`` where the run report lives, instead of in a mail
nobody reads. The token never appears: tracebacks carry no local variables, and the client
scrubs the token out of every message it builds.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

from pipeline import __version__
from pipeline.exitcodes import ExitCode


def crash_log_path(control_dir: Path | None) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"-{os.getpid()}"
    folder = control_dir if control_dir is not None else Path(tempfile.gettempdir())
    return folder / f"crash-{stamp}.log" if control_dir is not None else folder / f"pipeline-crash-{stamp}.log"


def write_traceback(control_dir: Path | None, header: str) -> Path | None:
    """Append ``header`` and the current exception's traceback to this process's crash log
    (the temp folder when ``control_dir`` cannot be written); the log's path, or None."""
    text = f"{header}\n{traceback.format_exc()}\n"
    for target in (crash_log_path(control_dir), crash_log_path(None)):
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "a", encoding="utf-8") as fh:
                fh.write(text)
            return target
        except OSError:
            continue
    return None


def report_crash(control_dir: Path | None, command: str | None) -> int:
    """Call from an ``except`` block: write the current exception's traceback; exit code 70."""
    exc_type, exc, _ = sys.exc_info()
    path = write_traceback(control_dir, f"pipeline {__version__} crashed in command {command!r} at "
                                        f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n"
                                        f"python {sys.version.split()[0]} on {sys.platform}\n")
    name = exc_type.__name__ if exc_type else "error"
    where = f"traceback in {path}" if path else "the traceback could not be written"
    print(f"pipeline: internal error ({name}: {str(exc)[:200]}); {where}; please report it",
          file=sys.stderr, flush=True)
    return int(ExitCode.INTERNAL_ERROR)
