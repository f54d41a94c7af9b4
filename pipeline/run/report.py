"""What a run tells people: live progress, the summary line, the run report and failures list.

On a terminal the progress is a tqdm bar; under cron (no TTY) it is one log line every
``log_interval_s``, because a bar redrawn a million times makes an unreadable mail. The run
report (``<output>/.pipeline/run-report.json``) and the failures list
(``<output>/.pipeline/failures.json``) are written at the end of every run, including runs
stopped early, so a scheduler or a person can see exactly what failed and why.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection, TextIO

from tqdm import tqdm

from pipeline.config import RUN_REPORT
from pipeline.exitcodes import ExitCode
from pipeline.formats.output import write_json_atomic_sync
from pipeline.run.state import FAILED_STATES, StateStore

EXIT_MEANING = {
    ExitCode.OK: "all files done",
    ExitCode.FILES_FAILED: "some files failed (see failures.json)",
    ExitCode.STOPPED_EARLY: "stopped early; work is left for the next run",
    ExitCode.LOCKED: "another run holds the lock",
    ExitCode.AUTH_OR_BALANCE: "the API refused the token or the balance is exhausted",
    ExitCode.API_UNREACHABLE: "the API could not be reached, or went away mid-run; work is left for the next run",
    ExitCode.CONFIG_ERROR: "bad configuration",
    ExitCode.INTERNAL_ERROR: "internal error",
}


REPORT_LIST_LIMIT = 1000  # per-file lists in the run report beyond this are counted, not listed


@dataclass
class RunStats:
    started: float = field(default_factory=time.time)
    outcomes: Counter = field(default_factory=Counter)
    scan_problems: list[dict[str, str]] = field(default_factory=list)
    seen: int = 0
    regenerated: int = 0     # of the done files: only given missing outputs from their .json, no API call
    pages_read: int = 0      # pages read this run (OCR or a PDF's text layer)
    left_out: Counter = field(default_factory=Counter)   # images include passed by, by suffix
    # files left for a later run as modified less than min_file_age_s ago: how many, the first named
    young: int = 0
    young_named: list[str] = field(default_factory=list)

    def add_young(self, rel: str) -> None:
        self.young += 1
        if len(self.young_named) < REPORT_LIST_LIMIT:
            self.young_named.append(rel)

    def add(self, outcome: str) -> None:
        self.outcomes[outcome] += 1

    @property
    def elapsed(self) -> float:
        return time.time() - self.started


@dataclass
class PageCount:
    """Pages so far: of the files opened this run (``found``), read this run (``read``)."""

    files_opened: int = 0
    found: int = 0
    read: int = 0


class Progress:
    """tqdm on a terminal, a periodic log line otherwise, nothing with ``off``.

    ``total()`` gives the number of files in the tree once the background count is done
    (``None`` before): from then on the bar has a total and an ETA, and the log line says
    "N of M files, ETA ...". ``pages()`` gives the pages found and read so far: the line counts
    them too, and the ETA is by pages (pages left of the files opened, plus the files not yet
    opened at the pages per file seen so far, at the pages per second read so far), since one
    200-page PDF is as much work as 200 letters. ``update`` is called for each file finished
    and each page read, so a long PDF keeps the line moving. ``in_flight`` is the real number
    of jobs at the API."""

    def __init__(self, mode: str, log_interval_s: float, stream: TextIO | None = None,
                 total: Callable[[], int | None] | None = None,
                 pages: Callable[[], PageCount] | None = None) -> None:
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "bar" if self.stream.isatty() else "log"
        self.mode = mode
        self.log_interval_s = log_interval_s
        self._total = total or (lambda: None)
        self._pages = pages or PageCount
        self._last_log = time.monotonic()
        self._started = time.monotonic()
        self._bar = tqdm(unit="file", file=self.stream, dynamic_ncols=True) if mode == "bar" else None

    def update(self, stats: RunStats, in_flight: int, file_done: bool = True) -> None:
        total = self._total()
        if self._bar is not None:
            if total is not None and self._bar.total != total:
                self._bar.total = total
            o = stats.outcomes
            self._bar.set_postfix(done=o["done"], skipped=o["skipped"], failed=o["failed"] + o["rejected"],
                                  pages=self._pages().read, in_flight=in_flight, refresh=False)
            self._bar.update(1 if file_done else 0)
        elif self.mode == "log" and time.monotonic() - self._last_log >= self.log_interval_s:
            self._last_log = time.monotonic()
            print(f"progress: {progress_line(stats)}, {in_flight} in flight{self.eta(stats, total)}",
                  file=self.stream, flush=True)

    def eta(self, stats: RunStats, total: int | None) -> str:
        finished = sum(stats.outcomes.values())
        pages = self._pages()
        read = f"{pages.read} of {pages.found} pages read" + ("" if total is not None else " so far")
        if total is None:
            return f"; {read}"
        elapsed = time.monotonic() - self._started
        if pages.read == 0 or elapsed <= 0:
            return f"; {finished} of {total} files, {read}"
        not_opened = max(0, total - stats.seen)   # files no worker has taken yet
        per_file = pages.found / pages.files_opened if pages.files_opened else 1.0
        left = max(0, pages.found - pages.read) + not_opened * per_file
        return f"; {finished} of {total} files, {read}, ETA {_duration(left * elapsed / pages.read)}"

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def progress_line(stats: RunStats) -> str:
    o = stats.outcomes
    rate = (o["done"] / stats.elapsed) if stats.elapsed > 0 else 0.0
    regen = f" ({stats.regenerated} of them only given new outputs, no API call)" if stats.regenerated else ""
    pages = f" ({stats.pages_read} pages read)" if stats.pages_read else ""
    return (f"{o['done']} done{pages}{regen}, {o['skipped']} already done, {o['failed']} failed, {o['rejected']} rejected, "
            f"{o['still_failed']} failed earlier, {o['deferred']} left for next run, "
            f"{len(stats.scan_problems)} scan problems"
            f"{f', {adopted} adopted from existing outputs' if (adopted := o['adopted']) else ''}"
            f"{f', {vanished} vanished during the run' if (vanished := o['vanished']) else ''}"
            f"{f', {changed} changed during the run' if (changed := o['changed']) else ''}"
            f" in {stats.elapsed:.1f}s ({rate:.1f} files/s)")


def young_line(stats: RunStats, min_age_s: float, named: int = 5) -> str:
    """The run's line on the files left as still being written: the exit code is 3 while any is,
    and before only "N left for next run" said so, never which nor why (a file whose clock
    stays ahead, a scanner that never finishes one, kept a nightly run at exit 3, unnamed)."""
    names = ", ".join(stats.young_named[:named])
    more = f" and {stats.young - named} more" if stats.young > named else ""
    return (f"{stats.young} files were modified less than min_file_age_s ({min_age_s:g}s) ago and wait "
            f"for a later run: {names}{more} (see still_being_written_files in the report)")


def failures(state: StateStore, stats: RunStats,
             in_tree: Callable[[str], bool] = lambda rel: True) -> tuple[list[dict[str, Any]], int]:
    """Every file of the tree not done because of an error, plus this run's scan problems; and
    how many failed files the state store remembers that are no longer in the tree (deleted,
    renamed, excluded: ``pipeline.run.tree``), which are not failures of this tree."""
    rows, gone = [], 0
    for rec in state.iter_files(FAILED_STATES):
        if not in_tree(rec.rel):
            gone += 1
            continue
        rows.append({"path": rec.rel, "state": rec.state, "class": rec.error_class or rec.state,
                     "code": rec.error_code, "reason": rec.error, "failed_runs": rec.failures})
    rows += [{"path": p["path"], "state": "scan_problem", "class": "scan", "code": p["code"], "reason": p["reason"]}
             for p in stats.scan_problems]
    return rows, gone


def write_run_report(control_dir: Path, *, run_id: int, exit_code: ExitCode, stats: RunStats,
                     state: StateStore, stop_reason: str | None, api_stats: dict[str, Any],
                     possible_duplicates: int, resubmitted: int, server_counters: dict | None,
                     adoption_refused: list[dict[str, str]] | None = None,
                     cost: dict | None = None, output_notes: list[dict[str, str]] | None = None,
                     in_tree: Callable[[str], bool] = lambda rel: True,
                     resubmitted_pages: Collection[tuple[str, int]] = ()) -> dict[str, Any]:
    fail_rows, gone = failures(state, stats, in_tree)
    report = {
        "run_id": run_id,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stats.started)),
        "duration_s": round(stats.elapsed, 3),
        "exit_code": int(exit_code),
        "exit_meaning": EXIT_MEANING.get(exit_code, ""),
        "stop_reason": stop_reason,
        "this_run": dict(stats.outcomes),
        "outputs_regenerated": stats.regenerated,
        "files_by_state": state.count_by_state(),
        "scan_problems": len(stats.scan_problems),
        # images of formats no include pattern matches (.heic, .djvu, ...), by suffix: not read
        "left_out_images": dict(sorted(stats.left_out.items())),
        # files modified less than min_file_age_s ago, left for a later run (exit 3): which
        "still_being_written": stats.young,
        "still_being_written_files": stats.young_named,
        "failures": len(fail_rows),
        "failures_file": str(control_dir / "failures.json"),
        # failed files remembered from earlier runs whose path is no longer in the tree: not counted
        "failures_gone_from_tree": gone,
        "api_calls": api_stats,
        "possible_duplicate_submits": possible_duplicates,
        # this run's pages (status lists every night's): a report must not carry one crash for ever
        "possible_duplicates": state.possible_duplicates(resubmitted_pages),
        "resubmitted_pages": resubmitted,
        "resubmissions": state.resubmissions(resubmitted_pages),
        # outputs found on disk for files the state store did not know, and not taken over
        "adoption_refused_count": len(adoption_refused or ()),
        "adoption_refused": (adoption_refused or [])[:REPORT_LIST_LIMIT],
        "cost": cost,
        # outputs written in a lesser form than configured (a plain PDF where PDF/A could not be)
        "output_notes_count": len(output_notes or ()),
        "output_notes": (output_notes or [])[:REPORT_LIST_LIMIT],
    }
    if server_counters is not None:
        report["embedded_server_counters"] = _bounded_counters(server_counters)
    write_json_atomic_sync(control_dir / "failures.json", fail_rows)
    write_json_atomic_sync(control_dir / RUN_REPORT, report)
    return report


def _bounded_counters(counters: dict[str, Any]) -> dict[str, Any]:
    """The embedded server's counters for the report, with ``submits_by_hash`` (one entry an
    upload: 234 KB of the report for a night of 3,000 small scans, ~80 MB for a million) summed
    up as the number of distinct uploads and the uploads sent more than once (the ones that
    matter: paid twice), at most ``REPORT_LIST_LIMIT`` of them listed."""
    by_hash = counters.get("submits_by_hash") or {}
    repeated = sorted((h, n) for h, n in by_hash.items() if n > 1)
    out = {k: v for k, v in counters.items() if k != "submits_by_hash"}
    out["distinct_uploads"] = len(by_hash) + int(counters.get("hashes_forgotten") or 0)  # past 100k kept
    out["uploads_sent_more_than_once_count"] = len(repeated)
    out["uploads_sent_more_than_once"] = dict(repeated[:REPORT_LIST_LIMIT])
    return out
