"""What a run writes to stderr when nobody watches it: lines a many-night cron log can be read by.

Why: cron appends every night's stderr to one file (``pipeline run cfg >>ocr.log 2>&1``). Lines
without a time or a run id cannot be told apart, a log that starts with the first progress line
does not say what ran against what, and "3 rejected" without the file names sends someone to
the state store. So when stderr is not a terminal every line is prefixed with the UTC time and
the run's id (``2026-12-06T03:40:00Z run 12 pipeline: ...``; before the state store gives the id,
``run -``), the run opens with a start line, and each rejected or failed file gets a line with its
reason. A terminal gets the same messages without the prefix (a person sees the time).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TextIO


def utc_stamp(now: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))


class StampedStream:
    """A text stream that writes each complete line as ``<UTC time> run <id> <line>``.

    Only whole lines are written (a line is assembled from several ``write`` calls, as
    ``print`` makes them); ``flush`` writes a pending partial line too. The runner sets
    ``run_id`` once the state store has given it."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.run_id: int | None = None
        self._pending = ""

    def _prefix(self) -> str:
        return f"{utc_stamp()} run {self.run_id if self.run_id is not None else '-'} "

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        if lines:
            self.stream.write("".join(f"{self._prefix()}{line}\n" for line in lines))
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self.stream.write(f"{self._prefix()}{self._pending}\n")
            self._pending = ""
        self.stream.flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.stream.fileno()


def for_stderr(stream: TextIO) -> TextIO:
    """``stream`` itself on a terminal, a ``StampedStream`` over it otherwise (``run`` puts it in
    place of ``sys.stderr``, so the CLI's own messages, the log records and a crash line get the
    prefix too)."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return stream if tty or isinstance(stream, StampedStream) else StampedStream(stream)


def set_run_id(stream: TextIO, run_id: int) -> None:
    if isinstance(stream, StampedStream):
        stream.run_id = run_id


def start_line(config, config_path: str | None, version: str) -> str:
    """Version, config, input, output, engine (embedded) or base URL, model, and the language."""
    from pipeline.ocr.languages import what_engine_does

    api = config.api
    if config.embedded:
        where = (f"embedded server, engine {api.embedded.engine} x{api.embedded.workers} "
                 f"({what_engine_does(api.embedded.engine, api.language)})")
    else:
        where = f"API {api.base_url}, language {api.language!r}"
    return (f"start: pipeline {version}; config {Path(config_path).resolve() if config_path else '-'}; input {config.input}; "
            f"output {config.output}; {where}; model {api.model}")


def file_line(rel: str, outcome: str, code: str | None, reason: str | None) -> str:
    """``rejected: scans/a.pdf: not_a_pdf: ...``: the file, its code and the reason."""
    return f"{outcome}: {one_line(rel)}: {code or outcome}: {one_line(reason or 'no reason recorded')}"


def one_line(name: str) -> str:
    """``name`` with its control characters escaped (``new\\nline.png``): a file name may hold a
    newline or a tab, and a log line must stay one line, or the rest reads as another event."""
    if name.isprintable():
        return name
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in name)
