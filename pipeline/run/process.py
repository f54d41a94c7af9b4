"""One file's way through the pipeline: plan -> prepare -> submit -> await -> write -> record.

``FileProcessor.process(entry)`` owns every decision about a single input file and records
each step in the state store *before* acting on it, so a crash at any instant leaves a state
from which the next run continues without paying twice:

* plan: skip a file whose content and settings are unchanged (size + mtime + inode fast path,
  content hash when those moved); reuse the results of an identical file already done.
* prepare: the file's pages come from one page source (``pages``): an image prepared by Pillow,
  or a PDF rendered one page at a time. Pages are taken in order and only a window of them
  (``jobs_in_flight`` + ``prepare_workers``) is held at once, so a long PDF never sits in memory.
  Each page has its own state: done pages (from an earlier, partly failed or killed run) are
  neither rendered nor submitted again, and a PDF page with real embedded text costs no call.
* submit: page intent written, POST, request id written. A page that already has a request id
  is re-attached (polled), never resubmitted; a request id the server no longer knows, or a
  submit whose outcome is unknown, is resubmitted *knowingly* and listed in the run report.
* await: inline result, polling, or a webhook hint with polling as the fallback.
* write: every configured output (``.txt``, ``.json``, ALTO, hOCR, PDF; ``pipeline.formats``)
  atomically; only then is the file ``done``. A done file missing an output the config now asks
  for gets it rendered from its stored ``.json``, with no API call (``_regenerate``).

The module knows nothing of the worker pool (``runner``) or of HTTP details (``deapi``). What it
shares with the run is ``context.RunContext``; what makes work the same, ``workkeys``; how a file
fails, ``failures``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline import __version__
from pipeline.run.adopt import Adoption, Refusal, examine
from pipeline.run.context import Outcome, RunContext, StopSubmitting
from pipeline.run.crashpoints import crashpoint
from pipeline.run.failures import IN_FLUX, FileFailure, changed_since_walk, in_flux, output_failure, unreadable
from pipeline.run.overrides import file_config
from pipeline.run.placing import (document_pages, limits_for_regeneration, needs_placement, place_missing,
                                  record_placements, without_positions)
from pipeline.deapi import errors as api_errors
from pipeline.formats import NEEDS_BOXES, SUFFIXES
from pipeline.formats.markdown import plain_text
from pipeline.formats.model import answer_text, holds_nothing
from pipeline.formats.writer import FOLDER_METS, OutputError, missing_outputs, read_document
from pipeline.formats.output import PAGE_SEPARATOR, name_clash, output_paths, too_long
from pipeline.inputs.pages import PageFailed, PageSource, TextLayerPage, open_source, sniff_pdf
from pipeline.inputs.prepare import PrecheckLimits, PreparedPage, RejectedInput
from pipeline.inputs.scan import ScanEntry
from pipeline.run.outage import api_side, forgive
from pipeline.run.strips import StripReader
from pipeline.run.workkeys import (HashAbandoned, fingerprint_of, hash_and_sniff, pdf_settings_fingerprint,
                                   settings_fingerprint, work_key)


class Verdict:
    """What ``FileProcessor.decide`` says a file needs."""

    SKIP = "skip"                  # done with this content and settings, every output on disk
    REGENERATE = "regenerate"      # done, but an output the config asks for is missing (free)
    STILL_FAILED = "still_failed"  # failed in an earlier run and not retried
    WORK = "work"                  # to be prepared and (for pages not yet done) submitted
    DEFERRED = "deferred"          # a stop came while hashing
    FAILED = "failed"              # cannot even be read
    ADOPT = "adopt"                # unknown to the state store; its outputs on disk are its results


@dataclass
class Decision:
    verdict: str
    rec: Any                       # the file's FileRecord, or None
    sha: str | None = None
    key: str | None = None         # the work key (content hash + result-changing settings)
    stat: dict = field(default_factory=dict)
    same_stat: bool = False
    pdf: bool = False
    missing: list = field(default_factory=list)
    failure: Any = None            # FileFailure when FAILED
    adoption: Any = None           # adopt.Adoption when ADOPT
    refusal: str | None = None     # why outputs found on disk were not adopted



@dataclass
class PageResult:
    index: int
    text: str
    structured: Any | None
    request_id: str | None
    submits: int
    reused: bool = False
    job_seconds: float | None = None   # from request id to result, when this run awaited it
    queued: bool = False               # a poll saw the job still queued at the API (not yet on a worker)
    text_source: str = "ocr"           # ocr | text_layer (a PDF page's own text, no API call)
    facts: dict | None = None          # how the page was prepared (the .json "image.pages" entry)
    placed: dict | None = None         # a text-only answer's words on the page's geometry (placing.py)



class FileProcessor:
    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.fingerprint = settings_fingerprint(ctx.config)
        self.pdf_fingerprint = pdf_settings_fingerprint(ctx.config)
        outputs = ctx.config.outputs
        self.suffixes = [SUFFIXES[n] for n in outputs] + ([".page-999.xml"] if "page" in outputs else [])
        self.clash_suffixes = [SUFFIXES[n] for n in outputs]
        self.reserved = (FOLDER_METS,) if ctx.config.mets_per_folder and "mets" in outputs else ()

    def _fingerprints(self, rel: str) -> tuple[str, str]:
        """(image, PDF) fingerprints of ``rel``'s settings, its ``overrides:`` applied."""
        own = file_config(self.ctx.config, rel)
        if own is self.ctx.config:
            return self.fingerprint, self.pdf_fingerprint
        return settings_fingerprint(own), pdf_settings_fingerprint(own)

    # -- plan ---------------------------------------------------------------------------------

    async def decide(self, entry: ScanEntry) -> Decision:
        """Whether ``entry`` needs work, without acting on it (``run`` and ``plan`` both ask here).

        It only reads the state store and the file: ``process`` acts on the answer, ``plan``
        counts it."""
        ctx, state = self.ctx, self.ctx.state
        fingerprint, pdf_fingerprint = self._fingerprints(entry.rel)
        rec = state.get_file(entry.rel)
        too_long_why = too_long(ctx.config.output, entry.rel, self.suffixes)
        if too_long_why is not None:  # refused before anything is paid, not after the write fails
            if rec and rec.state == "rejected_input" and rec.error_code == "name_too_long" and not ctx.retry_failed:
                return Decision(Verdict.STILL_FAILED, rec)
            return Decision(Verdict.FAILED, rec, failure=FileFailure(
                "rejected_input", "rejected_input", too_long_why, "name_too_long"))
        if rec is None or rec.state != "done":   # about to be read: can its outputs be named?
            clash = await asyncio.to_thread(name_clash, ctx.config.input, ctx.config.output, entry.rel,
                                            self.clash_suffixes, self.reserved)
            if clash is not None:   # asked again each run: renamed, the file is read (no --retry-failed)
                return Decision(Verdict.FAILED, rec, failure=FileFailure(
                    "rejected_input", "rejected_input", clash, "output_clash"))
        same_stat = bool(rec and rec.sha256 and rec.size == entry.size and rec.mtime_ns == entry.mtime_ns
                         and rec.inode == entry.inode)
        if same_stat and not ctx.force:
            sha = rec.sha256
            if rec.work_key in (work_key(sha, fingerprint), work_key(sha, pdf_fingerprint)):
                pdf_content = rec.work_key == work_key(sha, pdf_fingerprint)
            else:  # settings changed since: look at the content again
                pdf_content = await asyncio.to_thread(sniff_pdf, entry.path)
        else:
            try:
                sha, pdf_content = await asyncio.to_thread(hash_and_sniff, entry.path, ctx.stop_flag)
            except HashAbandoned:
                return Decision(Verdict.DEFERRED, rec)
            except OSError as exc:
                return Decision(Verdict.FAILED, rec, failure=unreadable(
                    entry, f"cannot read the file: {exc.strerror or exc}", "unreadable"))
        key = work_key(sha, pdf_fingerprint if pdf_content else fingerprint)
        stat = {"size": entry.size, "mtime_ns": entry.mtime_ns, "inode": entry.inode, "sha256": sha}
        decision = Decision(Verdict.WORK, rec, sha=sha, key=key, stat=stat, same_stat=same_stat, pdf=pdf_content)
        if rec and rec.work_key == key and not ctx.force:
            if rec.state == "done":
                decision.missing = missing_outputs(rec.outputs, ctx.config.output, entry.rel, ctx.config.outputs)
                decision.verdict = Verdict.REGENERATE if decision.missing else Verdict.SKIP
            elif rec.state in ("failed_permanent", "rejected_input", "quarantined") and not ctx.retry_failed:
                decision.verdict = Verdict.STILL_FAILED
        if rec is None and not ctx.force:  # unknown to the state store: are its outputs on disk?
            found = await asyncio.to_thread(examine, ctx.config.output, entry.rel, sha, fingerprint_of(key),
                                            ctx.config.outputs)
            if isinstance(found, Adoption):
                decision.verdict, decision.adoption = Verdict.ADOPT, found
            elif isinstance(found, Refusal):
                decision.refusal = found.reason
        return decision

    async def process(self, entry: ScanEntry) -> str:
        ctx, state = self.ctx, self.ctx.state
        d = await self.decide(entry)
        rec, key = d.rec, d.key
        if d.verdict == Verdict.DEFERRED:
            return Outcome.DEFERRED
        if d.verdict == Verdict.FAILED:
            return self._fail(entry, d.failure)
        if d.verdict in (Verdict.SKIP, Verdict.REGENERATE) and not d.same_stat:
            state.set_file(entry.rel, "done", **d.stat)
        if d.verdict == Verdict.SKIP:
            return Outcome.SKIPPED
        if d.verdict == Verdict.REGENERATE:
            try:
                if await self._regenerate(entry, rec.outputs, d.missing):
                    return Outcome.DONE
            except FileFailure as failure:
                return self._fail(entry, failure)
            # no readable .json: the results are gone, so the file is processed again
        if d.verdict == Verdict.STILL_FAILED:
            return Outcome.STILL_FAILED
        if d.verdict == Verdict.ADOPT:
            try:
                return await self._adopt(entry, key, d.stat, d.adoption)
            except FileFailure as failure:
                return self._fail(entry, failure)
        if d.refusal is not None:
            ctx.adoption_refused.append({"path": entry.rel, "reason": d.refusal})
        if rec and rec.state in ("failed_permanent", "rejected_input", "quarantined") and ctx.retry_failed:
            state.reset_for_retry(entry.rel)
        if rec is None or rec.work_key != key:
            state.set_file(entry.rel, "pending", run_id=ctx.run_id, work_key=key, **d.stat)
        try:
            pages, prepared = await self._results_for_work(entry, key)
            await self._write(entry, key, d.sha, prepared, pages)
        except StopSubmitting:
            return Outcome.DEFERRED
        except FileFailure as failure:
            return self._fail(entry, failure)
        finally:
            self._forget_work(key)
        return Outcome.DONE

    def _forget_work(self, key: str) -> None:
        """Once its file is written (or failed), a work's results leave memory: an identical
        file met later reuses the outputs through the state store instead."""
        fut = self.ctx.in_run_works.get(key)
        if fut is not None and fut.done():
            del self.ctx.in_run_works[key]

    def internal_failure(self, entry: ScanEntry, reason: str) -> str:
        """A bug met while handling this file: recorded as a transient failure (retried next
        run), so one file's bad luck never stops the run."""
        try:
            return self._fail(entry, FileFailure("failed_transient", "transient", reason, "internal_error"))
        except Exception:  # noqa: BLE001 - the state store itself failed: count it, go on
            return Outcome.FAILED

    def _fail(self, entry: ScanEntry, failure: FileFailure) -> str:
        if failure.code in IN_FLUX and changed_since_walk(entry):
            return failure.code   # its row is left as it was: a done file stays done, its outputs kept
        state, outage = self.ctx.state, self.ctx.outage
        if failure.api_side and outage is not None:
            if outage.gives_back:   # the API is gone (or no verdict): no strike, the next run takes the file again
                forgive(state, entry.rel, failure.reason, why=outage.gives_back)
                return Outcome.DEFERRED
            rec = state.get_file(entry.rel)
            outage.file_failed(entry.rel, rec.failures if rec else 0, failure.reason)
        state.fail_file(entry.rel, failure.state, error_class=failure.error_class, error=failure.reason,
                        error_code=failure.code, run_id=self.ctx.run_id,
                        max_transient_runs=self.ctx.config.retries.max_transient_runs)
        return Outcome.REJECTED if failure.state == "rejected_input" else Outcome.FAILED

    async def _results_for_work(self, entry: ScanEntry, key: str) -> tuple[list[PageResult], dict]:
        """Page results for this content+settings, computed once per run for identical files."""
        ctx = self.ctx
        while (existing := ctx.in_run_works.get(key)) is not None:
            try:
                pages, prepared = await asyncio.shield(existing)
            except FileFailure as exc:
                if exc.code not in IN_FLUX:
                    raise
                continue   # the file read for this content changed or vanished under the run: read this one
            return [PageResult(p.index, p.text, p.structured, p.request_id, 0, reused=True,
                               text_source=p.text_source, facts=p.facts, placed=p.placed) for p in pages], prepared
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        ctx.in_run_works[key] = future
        try:
            result = await self._compute_work(entry, key)
        except BaseException as exc:
            ctx.in_run_works.pop(key, None)
            if not future.done():
                future.set_exception(exc if isinstance(exc, Exception) else StopSubmitting("cancelled"))
                future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        future.set_result(result)
        return result

    async def _compute_work(self, entry: ScanEntry, key: str) -> tuple[list[PageResult], dict]:
        ctx = self.ctx
        sibling = None if ctx.force else ctx.state.done_file_with_work(key, entry.rel)
        if sibling is not None:
            reused = _pages_from_outputs(ctx.config.output, sibling.rel)
            if reused is not None:
                return reused
        # Pages done or in flight from an earlier run (re-attach); --force ignores them.
        stored = {} if ctx.force else ctx.state.get_pages(key)
        if ctx.submissions_closed and not stored:
            raise StopSubmitting(ctx.submissions_closed)  # nothing to re-attach: skip the Pillow work
        source = await self._open(entry)
        ctx.files_opened += 1
        ctx.pages_found += source.page_count
        try:
            ctx.state.set_file(entry.rel, "prepared", run_id=ctx.run_id)
            results = await self._page_loop(entry, key, source, stored)
            info = source.info()
        finally:
            source.close()
        _raise_first_failure(results, source.page_count)
        pages: list[PageResult] = results  # type: ignore[assignment]
        info["pages"] = [p.facts for p in pages]
        return pages, info

    async def _open(self, entry: ScanEntry) -> PageSource:
        limits = await self.ctx.api_ready()
        async with self.ctx.prepare_slots:
            try:
                source = await self.ctx.read_pool.run(open_source, entry.path, limits, self.ctx.config.pdf)
            except RejectedInput as exc:
                raise unreadable(entry, exc.reason, exc.code) from None
            except MemoryError:
                raise FileFailure("failed_permanent", "permanent", "out of memory while decoding the image",
                                  "too_large") from None
        if changed_since_walk(entry):
            # Replaced (a re-export, a copy still under way) after the walk and the hash: the pages
            # read may be other bytes than the hash's, and their text would be stored under that
            # hash's work key, for every copy of the old content to reuse. Read next run instead.
            source.close()
            raise in_flux(entry, "after the walk found it")
        return source

    async def _page_loop(self, entry: ScanEntry, key: str, source: PageSource, stored: dict) -> list:
        """Every page's result or exception, in page order.

        Pages are made in order, one at a time, and at most ``window`` of them are held (made and
        not yet finished), so memory is bounded whatever the page count. A page done in an
        earlier run with its facts recorded is taken from the state store without being made.
        """
        ctx = self.ctx
        window = asyncio.Semaphore(ctx.config.concurrency.jobs_in_flight + ctx.config.concurrency.prepare_workers)
        outcomes: list[Any] = []   # PageResult | BaseException | Task, in page order
        try:
            for index in range(source.page_count):
                done = _done_page(stored.get(index), index)
                if done is not None:
                    outcomes.append(done)
                    continue
                await window.acquire()
                if ctx.submissions_closed or ctx.fatal:
                    window.release()
                    outcomes.append(StopSubmitting(ctx.submissions_closed or "fatal error"))
                    break
                try:
                    item = await self._make_page(source, index)
                except PageFailed as exc:
                    window.release()
                    outcomes.append(exc)
                    continue
                except BaseException:
                    window.release()
                    raise
                task = asyncio.create_task(self._page_item(entry, key, item, stored.get(index)))
                task.add_done_callback(lambda _t: window.release())
                outcomes.append(task)
            tasks = [o for o in outcomes if isinstance(o, asyncio.Task)]
            finished = iter(await asyncio.gather(*tasks, return_exceptions=True))
        except BaseException:
            for o in outcomes:
                if isinstance(o, asyncio.Task):
                    o.cancel()
            raise
        return [next(finished) if isinstance(o, asyncio.Task) else o for o in outcomes]

    async def _make_page(self, source: PageSource, index: int) -> PreparedPage | TextLayerPage:
        if not source.lazy:
            return source.page(index)
        async with self.ctx.prepare_slots:
            try:
                return await self.ctx.read_pool.run(source.page, index)
            except MemoryError:
                raise PageFailed(index, "page_render_failed", "out of memory while rendering the page") from None

    async def _page_item(self, entry: ScanEntry, key: str, item: PreparedPage | TextLayerPage,
                         stored: Any) -> PageResult:
        """One page's text: from the PDF's text layer (no API call), or through submit and await."""
        state = self.ctx.state
        if isinstance(item, TextLayerPage):
            facts = {"page_index": item.page_index, "source": item.source}
            state.page_text_layer(key, item.page_index, item.text, facts)
            self.ctx.page_read()
            return PageResult(item.page_index, item.text, None, None, 0, text_source="text_layer", facts=facts)
        result = await StripReader(self, entry, key, item).read(stored)  # whole, or in strips when too tall
        result.facts = {**item.to_json(), **(result.facts or {})}
        crashpoint("page_read")   # its text is stored, its facts not yet (placement may take a while)
        result.placed = await self._place(item.data, result, entry)  # the whole page's geometry, strips or not
        state.page_facts(key, item.page_index, result.facts)
        self.ctx.page_read()
        return result

    async def _place(self, data: bytes, result: PageResult, entry: ScanEntry) -> dict | None:
        """A text-only answer's words on the page's own lines, when ALTO/hOCR/PDF want boxes,
        read in the file's language (``overrides`` may set it per subtree)."""
        if self.ctx.placer is None or not needs_placement(self.ctx.config.outputs, result.text_source,
                                                           result.structured, result.text):
            return None
        language = file_config(self.ctx.config, entry.rel).api.language
        return await self.ctx.placer.place(data, plain_page_text(result), language)  # the .txt's words, no markup

    async def _place_missing(self, entry: ScanEntry, pages: list, limits: PrecheckLimits | None = None) -> None:
        """Pages without their placement (done in an earlier run, or a done file given ALTO
        later): made again from the source, no API call (``placing.place_missing``)."""
        if limits is None:
            opener = lambda: self._open(entry)  # noqa: E731 - the run's own limits
        else:
            opener = lambda: self.ctx.read_pool.run(open_source, entry.path, limits, self.ctx.config.pdf)  # noqa: E731
        await place_missing(pages, self.ctx.config.outputs if self.ctx.placer else (), opener,
                            self._make_page, lambda data, page: self._place(data, page, entry))

    # -- submit and await ---------------------------------------------------------------------

    async def _page(self, entry: ScanEntry, key: str, page: PreparedPage, stored: Any) -> PageResult:
        """One page through submit and await, holding one of the run's job slots."""
        slots = self.ctx.job_slots
        if slots is None:
            return await self._page_in_slot(entry, key, page, stored)
        async with slots:
            self.ctx.in_flight += 1
            try:
                result = await self._page_in_slot(entry, key, page, stored)
            finally:
                self.ctx.in_flight -= 1
            if result.job_seconds is not None and hasattr(slots, "on_success"):
                # The job's own time (request id to result), not the time in the slot: waiting
                # for the rate limiter is not the API slowing down and must not shrink the limit.
                slots.on_success(result.job_seconds, queued=result.queued)
            return result

    async def _api_answers(self) -> bool:
        """Whether the API answers a free call (``/balance``, after the client's retries): any
        answer, a 4xx too, says it is there; no answer or a 5xx says it is away."""
        try:
            await self.ctx.api.balance()
        except api_errors.DeapiError as exc:
            return not api_errors.api_failure(exc)
        return True

    async def _page_in_slot(self, entry: ScanEntry, key: str, page: PreparedPage, stored: Any) -> PageResult:
        ctx, state = self.ctx, self.ctx.state
        api_cfg = file_config(ctx.config, entry.rel).api   # overrides: e.g. this subtree's language
        reason: str | None = None
        earlier_unknown = False   # an earlier run's POST of this page ended unknown: admitted when sent again
        if stored is not None and stored.state == "done" and stored.result_text is not None:
            return PageResult(page.page_index, stored.result_text,
                              json.loads(stored.result_json) if stored.result_json else None,
                              stored.request_id, stored.submits, reused=True)
        if stored is not None and stored.state == "submitted" and stored.request_id:
            try:
                return await self._await(entry, key, page.page_index, stored.request_id, stored.submits,
                                         reattached=True)
            except api_errors.NotFoundError:
                reason = "the server no longer knew the request id on re-attach; resubmitted"
                state.page_forget_request(key, page.page_index, reason)
        elif stored is not None and stored.state == "submitting":
            # counted once, by the first run that meets it (its job on the day's spend); this run's
            # report and log admit it when it is sent again: a run that stops first (a cap, a
            # signal) sent nothing again (each such run counted it and said it sent it again)
            earlier_unknown = True
            reason = "an earlier submit's outcome is unknown (crash or lost response); resubmitted knowingly"
        elif stored is not None and stored.lost_job:
            reason = stored.resubmitted_reason   # an earlier run lost the job, then stopped before resending
        unknown_retry_used = api_resent = False
        counted = False   # this resubmission (``reason``) is in the run's report
        cost = await self._quote(page)
        if earlier_unknown:   # counted once (the day's spend), by the first run that meets it
            record = functools.partial(state.earlier_unknown, key, page.page_index, stored.submits)
            if ctx.budget is not None:
                ctx.budget.unknown_earlier(cost, record)
            else:
                record(None)

        def admit_resend() -> None:
            # A resubmission is the report's once a job may exist for it (an id came back, or
            # the outcome is unknown), in the run that may pay it: not when it is decided, as a
            # stop, a cap or a refused upload before its job leaves it for another run (which
            # pays it); an upload the API failed and that is sent again is the same one. So is
            # the possible duplicate of an upload an earlier run left unanswered.
            nonlocal counted, earlier_unknown
            if earlier_unknown:
                ctx.possible_duplicates += 1
                earlier_unknown = False
            if reason and not counted:
                ctx.resubmitted += 1
                ctx.resubmitted_pages.add((key, page.page_index))
                counted = True

        while True:
            if ctx.submissions_closed or ctx.fatal:
                raise StopSubmitting(ctx.submissions_closed or "fatal error")
            intent_written = False
            admitted = False

            def before_send(attempt: int, reason: str | None = reason) -> None:
                # Runs after the rate limiter let this upload go, right before its bytes leave:
                # only from here on may the API have seen it (a kill while waiting for the
                # limiter is not a possible duplicate). The budget admits the page here.
                nonlocal intent_written, admitted
                ctx.check_disk()   # room to record this page's request id, or submissions close here
                if ctx.submissions_closed or ctx.fatal:
                    if intent_written:
                        state.page_withdraw(key, page.page_index, "not sent: the run stopped submitting")
                    raise StopSubmitting(ctx.submissions_closed or "fatal error")
                if not admitted:
                    ctx.admit(cost)
                    admitted = True
                if not intent_written:
                    state.page_intent(key, page.page_index, page.sha256, reason)
                    state.set_file(entry.rel, "submitting", run_id=ctx.run_id)
                    intent_written = True
                    crashpoint("before_submit")

            try:
                request_id = await ctx.api.submit_ocr(
                    page.data, page.filename, page.content_type, model=api_cfg.model,
                    language=api_cfg.language, format=api_cfg.format,
                    return_result_in_response=api_cfg.return_result_in_response,
                    webhook_url=ctx.webhook_url, before_send=before_send)
            except api_errors.SubmitOutcomeUnknown as exc:
                crashpoint("outcome_unknown")   # tests: a kill mid-upload (the job made, its answer not recorded)
                if admitted and ctx.budget is not None:
                    ctx.budget.commit(cost)   # the job may exist and be charged
                admit_resend()
                state.page_outcome_unknown(key, page.page_index)
                ctx.possible_duplicates += 1
                ctx.resubmitted_pages.add((key, page.page_index))
                if unknown_retry_used:
                    raise FileFailure("failed_transient", "transient",
                                      f"submit outcome unknown twice ({exc.reason}); retried next run",
                                      api_side=True) from None
                unknown_retry_used = True
                reason, counted = f"submit outcome unknown ({exc.reason}); resubmitted knowingly", False
                if ctx.outage is not None and not ctx.outage.open and not await self._api_answers():
                    # A connection cut after the upload can be the API going away (a replica
                    # killed, a balancer with no replica left, which takes the upload and
                    # closes). Resent at once, the page met the same outage and failed "unknown
                    # twice" with a strike (2 files of 36 on a fleet chaos tour, both replicas
                    # killed for 10-40 s). So the API is asked something free first; when it does
                    # not answer, the knowing resend waits, as an upload the API failed does,
                    # for the API to answer another call (or outage_min_s).
                    await ctx.outage.next_answer(ctx.config.retries.outage_min_s)
                continue
            except BaseException as exc:
                if admitted and ctx.budget is not None:
                    ctx.budget.release(cost)
                if not isinstance(exc, api_errors.DeapiError):
                    raise
                if intent_written:  # answered (4xx/5xx/429) or never sent: no job was created
                    state.page_withdraw(key, page.page_index, exc.reason)
                if (not api_resent and api_errors.api_failure(exc) and ctx.outage is not None
                        and not ctx.outage.open):
                    # The API failed the upload after its retries (nothing paid): sent once more
                    # when it answers another call (or after outage_min_s), so an outage shorter
                    # than the breaker's strikes nobody; a page that fails again while the API
                    # answers the others takes its strike. A stop meanwhile: the loop's top; a
                    # stop that came while this upload was out: the same, the next run sends it
                    # (it failed once, and only the stop keeps it from its second sending). The
                    # breaker open: _fail forgives it, saying why.
                    if ctx.submissions_closed or ctx.fatal:
                        raise StopSubmitting(ctx.submissions_closed or "fatal error") from None
                    api_resent = True
                    await ctx.outage.next_answer(ctx.config.retries.outage_min_s)
                    continue
                raise self._classify(exc) from None
            if ctx.budget is not None:
                ctx.budget.commit(cost)
            admit_resend()
            state.page_submitted(key, page.page_index, request_id)
            state.set_file(entry.rel, "submitted", run_id=ctx.run_id)
            if ctx.outage is not None:
                ctx.outage.taken_size = (page.width, page.height)   # the breaker's test page is made so
            crashpoint("after_submit")
            stored_submits = (stored.submits if stored is not None else 0) + 1
            try:
                return await self._await(entry, key, page.page_index, request_id, stored_submits)
            except api_errors.NotFoundError:
                reason, counted = "the server lost the request id while the job ran; resubmitted", False
                state.page_forget_request(key, page.page_index, reason)
                if unknown_retry_used:
                    raise FileFailure("failed_transient", "transient",
                                      "the server lost the request id twice (resubmitted once); retried next run") from None
                unknown_retry_used = True

    async def _quote(self, page: PreparedPage) -> float | None:
        """The page's price quote (by its bucket, cached); None when it cannot be asked."""
        if self.ctx.pricing is None:
            return None
        try:
            return await self.ctx.pricing.quote(page.width, page.height)
        except (api_errors.AuthError, api_errors.InsufficientBalanceError, api_errors.SubmissionsShut) as exc:
            raise self._classify(exc) from None
        except api_errors.DeapiError:
            return None   # the budget decides whether an unknown price may be sent

    async def _await(self, entry: ScanEntry, key: str, index: int, request_id: str, submits: int,
                     reattached: bool = False) -> PageResult:
        """The job's result. A job this run submitted waits for its webhook (when on) before
        polling; a re-attached one, submitted by an earlier run, is polled at once: its push may
        have come while no run listened, and an embedded server (new each run) never knew it,
        so waiting ``webhook.wait_s`` for it would only delay the rerun."""
        ctx = self.ctx
        started = time.monotonic()
        try:
            status, pushed_failure = None, False
            if ctx.webhook_events is not None and not reattached:
                event = await ctx.webhook_events.wait(request_id, ctx.config.webhook.wait_s)
                if event is not None and event.event == "job.completed":
                    if event.result:
                        status = _InlineStatus(event.result)
                    elif event.result_url:
                        status = _InlineStatus(None, event.result_url)
                elif event is not None and event.event == "job.failed":
                    pushed_failure = True  # a poll, at once, confirms the failure (the webhook is a hint)
            job_s, waited = ctx.config.timeouts.job_s, time.monotonic()
            if status is None:
                status = await ctx.api.wait_for_job(request_id, job_s, confirm=pushed_failure)
            crashpoint("after_poll")
            text = await ctx.api.fetch_result(request_id, status, deadline_s=job_s - (time.monotonic() - waited))
        except api_errors.NotFoundError:
            raise
        except api_errors.JobFailedError as exc:
            ctx.state.page_failed(key, index, exc.code, exc.reason)
            raise self._classify(exc) from None
        except api_errors.DeapiError as exc:
            # Timeouts, expired links, transport errors: the request id stays recorded, so the
            # next run re-attaches to the job instead of paying for it again.
            if api_side(exc) and ctx.stopping():
                # the client held this paid job through the API's failures until the stop came:
                # parked as the grace would park it, no strike (a breaker's stop forgives it too)
                raise StopSubmitting(f"the run is stopping and the API did not answer job {request_id}: "
                                     f"{exc.reason}") from None
            raise self._classify(exc) from None
        structured = None
        if ctx.config.api.format == "json":
            try:
                structured = json.loads(text) if isinstance(text, str) else text
                if isinstance(structured, str):
                    # a JSON string: the text itself ("\"# Title\\n..\""; before, kept with its
                    # quotes and escapes), or a JSON document encoded twice
                    text = structured
                    structured = json.loads(text)
            except ValueError:
                structured = None
            if isinstance(structured, (dict, list)):
                found = answer_text(structured)
                if found is None and holds_nothing(structured):
                    found = ""     # {} or [] or {"pages": []}: a page with no text
                if found is not None:
                    text = found   # else the answer is kept as it came
            else:
                structured = None
        if text is None:
            text = ""
        ctx.state.page_done(key, index, text, structured)
        return PageResult(index, text, structured, request_id, submits, job_seconds=time.monotonic() - started,
                          queued=bool(getattr(status, "queued", False)))

    def _classify(self, exc: api_errors.DeapiError) -> BaseException:
        ctx = self.ctx
        if isinstance(exc, api_errors.SubmissionsShut):
            return StopSubmitting(exc.reason)
        if isinstance(exc, api_errors.DailyLimitError):
            ctx.close_submissions(f"daily submit limit reached: {exc.reason}")
            return StopSubmitting(exc.reason)
        if isinstance(exc, (api_errors.AuthError, api_errors.InsufficientBalanceError)):
            if ctx.fatal is None:
                ctx.fatal = exc
            ctx.close_submissions(exc.reason)
            return StopSubmitting(exc.reason)
        code = getattr(exc, "code", None) or type(exc).__name__
        if exc.failure_class == "permanent":
            return FileFailure("failed_permanent", "permanent", exc.reason, code)
        return FileFailure("failed_transient", "transient", exc.reason, code, api_side=api_side(exc))

    # -- write and record ---------------------------------------------------------------------

    async def _place_stored(self, entry: ScanEntry, document: dict, missing: list[str]) -> list[str]:
        """Before ALTO/hOCR/PDF/PAGE are written from a stored ``.json`` (regenerated or adopted):
        its text-only pages placed on the page made again from the source (no API call) and
        recorded in it; the outputs to write, with ``json`` when the record changed."""
        if not any(n in NEEDS_BOXES for n in missing):
            return missing
        pages = document_pages(document, PageResult)
        await self._place_missing(entry, pages, limits_for_regeneration(self.ctx.config.precheck))
        if record_placements(document, pages, self.ctx.config.outputs):
            return [*missing, "json"]   # the record now says where the words were placed
        return missing

    async def _regenerate(self, entry: ScanEntry, recorded: tuple[str, ...], missing: list[str]) -> bool:
        """Write the outputs a done file lacks from its stored ``.json`` (no API call)."""
        ctx = self.ctx
        document = await asyncio.to_thread(read_document, ctx.config.output, entry.rel)
        if document is None:
            return False
        missing = await self._place_stored(entry, document, missing)
        try:
            written = await ctx.write_outputs(entry.rel, missing, document, entry.path)
        except OutputError as exc:
            raise output_failure(entry, exc) from None
        ctx.state.set_file(entry.rel, "done", outputs=list(dict.fromkeys([*recorded, *written])))
        ctx.regenerated += 1
        return True

    async def _adopt(self, entry: ScanEntry, key: str, stat: dict, found: Adoption) -> str:
        """Take over outputs the state store does not know (it was lost): done, no API call;
        configured outputs missing beside the ``.json`` are rendered from it."""
        ctx = self.ctx
        written: list[str] = []
        if found.missing:
            missing = await self._place_stored(entry, found.document, list(found.missing))
            try:
                written = await ctx.write_outputs(entry.rel, missing, found.document, entry.path)
            except OutputError as exc:
                raise output_failure(entry, exc) from None
        ctx.state.set_file(entry.rel, "done", run_id=ctx.run_id, work_key=key,
                           outputs=list(dict.fromkeys([*found.present, *written])), **stat)
        return Outcome.ADOPTED

    async def _write(self, entry: ScanEntry, key: str, sha: str, prepared: dict, pages: list[PageResult]) -> None:
        ctx = self.ctx
        api = file_config(ctx.config, entry.rel).api
        pages = sorted(pages, key=lambda p: p.index)
        await self._place_missing(entry, pages)
        plain = {p.index: plain_page_text(p) for p in pages}  # Markdown answers -> plain (formats/markdown.py)
        text = PAGE_SEPARATOR.join(plain[p.index] for p in pages)
        document = {
            "source": {"path": entry.rel, "size": entry.size, "sha256": sha, "mtime_ns": entry.mtime_ns},
            "image": prepared,
            "settings": {"model": api.model, "language": api.language, "format": api.format,
                         "return_result_in_response": api.return_result_in_response,
                         "fingerprint": fingerprint_of(key)},
            "pages": [{"index": p.index, "request_id": p.request_id, "submits": p.submits, "reused": p.reused,
                       "text_source": p.text_source, "text": plain[p.index],
                       # judged on the plain text: an answer of only an <img> description has none either
                       **({"no_text": True} if not plain[p.index].strip() else {}),
                       **({"answer": p.text} if plain[p.index] != p.text else {}),
                       **({"source": p.facts["source"]} if p.facts and "source" in p.facts else {}),
                       **({"result": p.structured} if p.structured is not None else {}),
                       **({"placed": p.placed} if p.placed else {}),
                       **({"positions": False} if without_positions(ctx.config.outputs, p) else {})}
                      for p in pages],
            "text": text,
            "tool": {"name": "pipeline", "version": __version__},
            "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        crashpoint("before_write")
        try:
            outputs = await ctx.write_outputs(entry.rel, ctx.config.outputs, document, entry.path)
        except OutputError as exc:
            raise output_failure(entry, exc) from None
        crashpoint("after_write")
        ctx.state.set_file(entry.rel, "done", run_id=ctx.run_id, outputs=outputs, error=None,
                           error_class=None, error_code=None, failures=0)
        ctx.state.compact_work(key)  # the text now lives in the outputs; identical files reuse those


@dataclass
class _InlineStatus:
    """A terminal status built from a webhook hint, shaped like the client's JobStatus."""

    result: str | None
    result_url: str | None = None
    status: str = "done"
    error: str | None = None
    error_code: str | None = None
    progress: float = 100.0
    raw: dict = field(default_factory=dict)


def plain_page_text(page: PageResult) -> str:
    """The page's text for the ``.txt``: an answer from the API by the Markdown rule, a PDF's own
    text layer as it is (it is no model's Markdown)."""
    return page.text if page.text_source == "text_layer" else plain_text(page.text)


def _pages_from_outputs(output_root: Path, rel: str) -> tuple[list[PageResult], dict] | None:
    """Reuse a done sibling's results (identical content) from its .json output."""
    _, js = output_paths(output_root, rel)
    try:
        doc = json.loads(js.read_text(encoding="utf-8"))
        facts = doc["image"].get("pages") or [None] * len(doc["pages"])
        pages = [PageResult(p["index"], p.get("answer", p["text"]), p.get("result"), p.get("request_id"), 0, reused=True,
                            text_source=p.get("text_source", "ocr"), facts=f,
                            placed=p.get("placed"))
                 for p, f in zip(doc["pages"], facts)]
        return pages, doc["image"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _done_page(stored: Any, index: int) -> PageResult | None:
    """A page finished in an earlier run whose text and facts are stored: nothing to make or pay."""
    if stored is None or stored.state != "done" or stored.result_text is None:
        return None
    facts = stored.facts
    if facts is None:
        return None   # done before its facts were recorded: made again (not submitted) for them
    source = facts.get("source") or {}
    return PageResult(index, stored.result_text, json.loads(stored.result_json) if stored.result_json else None,
                      stored.request_id, stored.submits, reused=True,
                      text_source=source.get("text_source", "ocr"), facts=facts)


def _raise_first_failure(results: list, page_count: int) -> None:
    """Raise what matters most: a stop, then a failure the next run retries, then the rest.

    Pages that cannot be rendered make the file a rejected input (``page_render_failed``), but
    only after every other page ran: their results stay in the state store, paid once.
    """
    for r in results:
        if isinstance(r, (StopSubmitting, asyncio.CancelledError)):
            raise r
    failures = [r for r in results if isinstance(r, BaseException)]
    if not failures:
        return
    for r in failures:
        if isinstance(r, FileFailure) and r.state == "failed_transient":
            raise r
    for r in failures:
        if not isinstance(r, PageFailed):
            raise r
    bad = [r for r in failures if isinstance(r, PageFailed)]
    code = "page_render_failed" if any(r.code == "page_render_failed" for r in bad) else bad[0].code
    listed = "; ".join(f"page {r.page_index + 1}: {r.reason}" for r in bad[:5])
    more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
    raise FileFailure("rejected_input", "rejected_input",
                      f"{len(bad)} of {page_count} pages failed ({listed}{more}); the other pages were done "
                      "and are kept, so --retry-failed pays only for what is missing", code)
