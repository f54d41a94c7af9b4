"""What every file's processing shares with the rest of the run (``RunContext``), and the
outcomes the runner counts.

Split from ``process`` so that the run's shared state (the API port, the budget's admit, the
stop flags, the counters of the report) reads apart from the per-file steps that use it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Protocol

from pipeline.config import Config
from pipeline.deapi import errors as api_errors
from pipeline.formats.writer import OutputOptions, write_outputs
from pipeline.inputs.prepare import PrecheckLimits
from pipeline.run.budget import BalanceShort, CapReached
from pipeline.run.placing import placement_notes
from pipeline.run.reading import ReadPool
from pipeline.run.state import StateStore
from pipeline.run.strips import StripStats


class Outcome:
    DONE = "done"                 # processed (or reused) this run, outputs written
    SKIPPED = "skipped"           # already done with the same content and settings
    FAILED = "failed"             # failed this run (transient or permanent)
    REJECTED = "rejected"         # not a usable image
    STILL_FAILED = "still_failed"  # failed in an earlier run; not retried (see --retry-failed)
    DEFERRED = "deferred"         # left for the next run (stop requested, daily quota)
    ADOPTED = "adopted"           # unknown to the state store, its outputs on disk taken over (free)
    VANISHED = "vanished"         # moved or deleted while this run read it: nothing recorded, the next run looks again
    CHANGED = "changed"           # written to while this run read it (replaced, still being copied): likewise


class StopSubmitting(Exception):
    """Raised inside a file's processing when the run no longer submits new work."""


class ApiPort(Protocol):  # what this module needs of the deAPI client
    async def submit_ocr(self, data: bytes, filename: str, content_type: str, **kw: Any) -> str: ...
    async def wait_for_job(self, request_id: str, deadline_s: float, confirm: bool = False) -> Any: ...
    async def get_status(self, request_id: str) -> Any: ...
    async def fetch_result(self, request_id: str, status: Any, deadline_s: float | None = None) -> str: ...


@dataclass
class RunContext:
    """Everything the per-file code shares with the rest of the run."""

    config: Config
    state: StateStore
    api: ApiPort
    api_ready: Callable[[], Awaitable[PrecheckLimits]]  # start-up checks, run once before the first prepare
    run_id: int
    force: bool = False
    retry_failed: bool = False
    webhook_events: Any | None = None        # PushWatch over JobEvents when webhook mode is on
    webhook_url: str | None = None
    job_slots: Any | None = None             # AdaptiveLimit (or a semaphore) around submit+await
    prepare_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(2))
    # the threads that open and pre-check sources: a stopped run leaves them unwaited (run.reading)
    read_pool: ReadPool = field(default_factory=ReadPool)
    submissions_closed: str | None = None    # why new submissions stopped (daily quota, signal, ...)
    fatal: BaseException | None = None       # auth or balance: the run must stop
    # asked before each upload: under the min_free_mb floor it closes submissions (run.diskfloor)
    check_disk: Callable[[], None] = lambda: None
    # Works being computed right now, so that identical files in flight together pay once. A
    # finished work leaves nothing here (its results live in the outputs and the state store,
    # where an identical file finds them): memory stays flat in the number of files.
    in_run_works: dict[str, asyncio.Future] = field(default_factory=dict)
    possible_duplicates: int = 0
    resubmitted: int = 0
    # (work key, page) of the pages this run resubmitted or met with an unknown outcome: the run
    # report lists these, not every such page of every earlier night
    resubmitted_pages: set[tuple[str, int]] = field(default_factory=set)
    in_flight: int = 0                       # pages submitted (or being submitted) and not finished
    stop_flag: Callable[[], bool] = lambda: False  # the run was asked to stop (hashing checks it)
    regenerated: int = 0                     # done files given missing outputs from their .json
    adoption_refused: list[dict[str, str]] = field(default_factory=list)  # outputs found, not taken over
    pricing: Any | None = None               # PriceBook: a page's quote by its upload size
    budget: Any | None = None                # Budget: caps and balance, checked as a page is admitted
    outage: Any | None = None                # outage.OutageBreaker: an API gone mid-run is no file's strike
    # Pages, for the progress line and its ETA (a 200-page PDF must not look stalled): pages of the
    # files opened this run, and those of them read (OCR or text layer) this run.
    files_opened: int = 0
    pages_found: int = 0
    pages_read: int = 0
    on_page: Callable[[], None] | None = None   # the runner's progress, told of each page read
    output_notes: list[dict[str, str]] = field(default_factory=list)  # e.g. a PDF that could not be PDF/A
    mets_folders: set[str] = field(default_factory=set)  # folders whose files' METS were written this run
    placer: Any | None = None                # placing.Placer: word positions for text-only answers
    strips: StripStats = field(default_factory=StripStats)  # pages too tall for the model, cut (run.strips)

    def page_read(self) -> None:
        self.pages_read += 1
        if self.on_page is not None:
            self.on_page()

    async def write_outputs(self, rel: str, names: Any, document: dict, source_path: Path) -> list[str]:
        """``formats.writer.write_outputs`` with this run's output options; its notes are kept
        for the run report."""
        notes: list[str] = []
        options = OutputOptions(pdfa=self.config.pdf.pdfa, pdfa_fallback=self.config.pdf.pdfa_fallback)
        if "mets" in names:
            self.mets_folders.add(rel.rpartition("/")[0])
        try:
            return await write_outputs(self.config.output, rel, names, document, source_path, options, notes)
        finally:
            notes += placement_notes(document, names)
            self.output_notes += [{"path": rel, "note": n} for n in notes]

    def close_submissions(self, reason: str) -> None:
        if self.submissions_closed is None:
            self.submissions_closed = reason
        if self.outage is not None:   # uploads waiting to be resent give up now (outage.next_answer)
            self.outage.wake()

    def admit(self, cost: float | None) -> None:
        """The budget's yes to one upload (a page's, or the outage breaker's test page), or the
        run stops submitting: a cap (exit 3) or the balance (exit 5)."""
        if self.budget is None:
            return
        try:
            self.budget.admit(cost)
        except CapReached as exc:
            self.close_submissions(exc.reason)
            raise StopSubmitting(exc.reason) from None
        except BalanceShort as exc:
            if self.fatal is None:
                self.fatal = api_errors.InsufficientBalanceError(exc.reason)
            self.close_submissions(exc.reason)
            raise StopSubmitting(exc.reason) from None

    def stopping(self) -> bool:
        """The run is ending (a signal, the outage breaker, max_runtime_s, a full disk, or a
        fatal error): in-flight jobs get the grace; a cap or a daily limit only stops submits."""
        return self.stop_flag() or self.fatal is not None
