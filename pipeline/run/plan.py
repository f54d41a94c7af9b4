"""``pipeline plan``: a dry run. Everything ``run`` would do before the first submit, nothing after.

Why a run that does not submit rather than a separate estimator: the figures must be the ones
the night will really meet. So ``plan`` walks the tree with the run's scan (same globs, same
"still being written"), asks ``FileProcessor.decide`` what each file needs (the function
``run`` uses: what is done counts as skipped, adoption plugs in there for both), and opens
every file to send with the run's page sources (same rejections, same PDF text-layer pages,
same uploads and byte counts). Each page to send is priced by its upload size through
``pipeline.run.pricing`` (one price call per size bucket, cached in the state store). It takes no
lock, writes no file state, and submits nothing; it writes the quote cache and its own
summary (``last_plan``, which ``run`` checks the balance against).

``--limit N`` prepares only the first N files of the walk, counts the rest of the tree (a walk
without opening files), and scales the sample's figures by total/N, saying so.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
import time
from collections import Counter
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, TextIO

from pipeline.run.client_setup import client_settings_from_config
from pipeline.run.crashpoints import crashpoint
from pipeline.config import Config
from pipeline.deapi import DeapiClient
from pipeline.deapi import errors as api_errors
from pipeline.exitcodes import ExitCode
from pipeline.inputs.pages import PageFailed, TextLayerPage, open_source
from pipeline.inputs.prepare import RejectedInput
from pipeline.run.pricing import BUCKET_ERROR, bucket, price_book
from pipeline.run.strips import current_limit, strip_sizes, uploads_left
from pipeline.run.context import RunContext
from pipeline.run.process import FileProcessor, Verdict
from pipeline.inputs.scan import ScanEntry, ScanProblem
from pipeline.run.state import StateStore
from pipeline.run.diskfloor import DiskFloor
from pipeline.run.writable import PathNotWritable, check_writable


@dataclass
class PlanCounts:
    files_seen: int = 0
    files_to_send: int = 0
    pages_to_send: int = 0
    bytes_to_upload: int = 0
    estimated_cost: float = 0.0
    uploads_unpriced: int = 0           # uploads no quote could be had for: the API has no price route
    price_unknown: str | None = None    # why (the API's 404), when so
    files_skipped_done: int = 0
    pages_skipped_done: int = 0
    outputs_to_regenerate: int = 0      # done files missing an output the config asks for (free)
    adopted: int = 0                    # unknown to the state store, outputs on disk adopted (free)
    adoption_refused: int = 0           # outputs on disk not adoptable (damaged, foreign, other settings)
    duplicates: int = 0                 # files whose content is already done or planned (paid once)
    duplicate_pages: int = 0
    text_layer_pages: int = 0           # PDF pages with real text: free
    pages_reattached: int = 0           # submitted by an earlier run (request id kept): collected, free
    failed_earlier: int = 0             # not retried without --retry-failed
    rejected: Counter = field(default_factory=Counter)          # file rejects by code
    rejected_pages: Counter = field(default_factory=Counter)    # single pages that cannot be made
    still_being_written: int = 0
    scan_problems: Counter = field(default_factory=Counter)
    left_out: Counter = field(default_factory=Counter)         # images include passes by, by suffix
    buckets: Counter = field(default_factory=Counter)            # "WxH" -> uploads (pages and strips)
    strips_to_send: int = 0             # uploads of pages too tall for the model, cut (run/strips.py)
    uploads_to_send: int = 0            # jobs: a page whole, or each of its strips (what the caps count)


class Planner:
    def __init__(self, config: Config, *, limit: int | None = None, force: bool = False,
                 retry_failed: bool = False, now: Any = time.time) -> None:
        self.config, self.limit, self.force, self.retry_failed, self.now = config, limit, force, retry_failed, now
        self.counts = PlanCounts()

    async def plan(self) -> tuple[ExitCode, dict[str, Any] | None, str | None]:
        """(exit code, the plan as a dict, an error message)."""
        from pipeline.run.budget import Budget
        from pipeline.run.runner import Runner, StartupError
        from pipeline.run.tree import walk

        runner = Runner(self.config, stream=io.StringIO())
        try:
            check_writable(self.config)
        except PathNotWritable as exc:
            return ExitCode.CONFIG_ERROR, None, f"config error: {exc}"
        # a run under the min_free_mb floor would not start: the plan says so (it still plans)
        disk_short = DiskFloor(self.config).check()
        state = StateStore(self.config.state_file)
        try:
            async with AsyncExitStack() as stack:
                try:
                    base_url, token, _ = await runner.open_api_endpoint(stack, engine="fast")
                    api = await stack.enter_async_context(
                        DeapiClient(base_url, token, client_settings_from_config(self.config)))
                    limits = await runner.startup_checks(api)
                    balance = runner.balance   # read by the start-up checks
                except StartupError as exc:
                    return exc.code, None, str(exc)
                pricing = price_book(self.config, state, api)

                async def ready():
                    return limits

                ctx = RunContext(config=self.config, state=state, api=api, api_ready=ready, run_id=0,
                                 force=self.force, retry_failed=self.retry_failed)
                processor = FileProcessor(ctx)
                seen_keys: set[str] = set()
                try:
                    total_files = await self._walk(walk(self.config, left_out=self.counts.left_out), processor, limits, pricing, seen_keys)
                except api_errors.DeapiError as exc:
                    return _api_exit(exc), None, exc.reason
                budget = Budget(self.config.budget, state, None, now=self.now)
                report = self._report(total_files, balance, budget, pricing)
                report["balance_unknown"] = None if balance is not None or report["free"] else runner.balance_problem
                report["free_space_short"] = disk_short
                state.set_last_plan({"estimated_cost": report["estimated"]["estimated_cost"],
                                     "pages_to_send": report["estimated"]["pages_to_send"],
                                     "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.now())),
                                     "at_ts": self.now()})
                return ExitCode.OK, report, None
        finally:
            state.close()

    async def _walk(self, entries: Any, processor: FileProcessor, limits: Any, pricing: Any,
                    seen_keys: set[str]) -> int:
        """Every entry of the walk: counted, and (up to ``limit``) planned, ``prepare_workers``
        files at once as the run prepares them. Returns the number of files in the tree."""
        slots = asyncio.Semaphore(self.config.concurrency.prepare_workers)
        tasks: set[asyncio.Task] = set()
        total_files = 0

        errors: list[Exception] = []

        async def one(entry: ScanEntry) -> None:
            # A task ends (and leaves ``tasks``) before the final gather can see it: its error is
            # kept here, or the plan would print counts that silently lack the file.
            try:
                await self._file(processor, entry, limits, pricing, seen_keys)
            except Exception as exc:   # noqa: BLE001 - re-raised after the walk
                errors.append(exc)
            finally:
                slots.release()

        try:
            for item in entries:
                if isinstance(item, ScanProblem):
                    if item.code == "still_being_written":
                        self.counts.still_being_written += 1
                    else:
                        self.counts.scan_problems[item.code] += 1
                    continue
                total_files += 1
                if self.limit is not None and self.counts.files_seen >= self.limit:
                    continue   # the rest of the tree is only counted
                self.counts.files_seen += 1
                crashpoint("plan_file")   # tests: a Ctrl-C or a stop landing mid-plan
                await slots.acquire()
                task = asyncio.create_task(one(item))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            for result in await asyncio.gather(*list(tasks), return_exceptions=True):
                if isinstance(result, BaseException):
                    raise result
            if errors:
                raise errors[0]
        finally:
            for task in tasks:
                task.cancel()
        return total_files

    async def _file(self, processor: FileProcessor, entry: ScanEntry, limits: Any, pricing: Any,
                    seen_keys: set[str]) -> None:
        c, state = self.counts, processor.ctx.state
        d = await processor.decide(entry)
        if d.verdict == Verdict.FAILED:
            c.rejected[d.failure.code or "unreadable"] += 1
            return
        if d.verdict in (Verdict.SKIP, Verdict.REGENERATE):
            c.files_skipped_done += 1
            c.pages_skipped_done += max(1, len(state.get_pages(d.key)))
            c.outputs_to_regenerate += d.verdict == Verdict.REGENERATE
            return
        if d.verdict == Verdict.STILL_FAILED:
            c.failed_earlier += 1
            return
        if d.verdict == Verdict.ADOPT:       # the run takes these outputs over: done, free
            c.adopted += 1
            c.files_skipped_done += 1
            c.pages_skipped_done += d.adoption.pages
            c.outputs_to_regenerate += bool(d.adoption.missing)
            return
        c.adoption_refused += d.refusal is not None
        duplicate = d.key in seen_keys or (not self.force and state.done_file_with_work(d.key, entry.rel) is not None)
        seen_keys.add(d.key)   # at once: an identical file planned meanwhile is a duplicate
        stored = {} if self.force else state.get_pages(d.key)
        try:
            source = await asyncio.to_thread(open_source, entry.path, limits, self.config.pdf)
        except RejectedInput as exc:
            c.rejected[exc.code] += 1
            return
        try:
            if duplicate:
                c.duplicates += 1
                c.duplicate_pages += source.page_count
                return
            sent = 0
            for index in range(source.page_count):
                done = stored.get(index)
                if done is not None and done.state == "done" and done.result_text is not None:
                    # as the run (``process._done_page``): a done page whose answer was dropped
                    # once its outputs were written (``StateStore.compact_work``) and whose file
                    # is redone now (settings changed and changed back) is sent again
                    c.pages_skipped_done += 1
                    continue
                if done is not None and done.state == "submitted" and done.request_id:
                    c.pages_reattached += 1      # a job from an earlier run: collected, not paid again
                    continue
                try:
                    page = await asyncio.to_thread(source.page, index) if source.lazy else source.page(index)
                except PageFailed as exc:
                    c.rejected_pages[exc.code] += 1
                    continue
                if isinstance(page, TextLayerPage):
                    c.text_layer_pages += 1
                    continue
                # a page taller than the model's limit is sent as strips (run/strips.py): price each
                # strip still to send (a page begun in strips resumes with its cut: its done strips
                # are not paid again, its submitted ones are collected; --force cuts afresh)
                limit = current_limit(self.config, state, limits.max_height)
                if self.force:
                    uploads, collect = await asyncio.to_thread(strip_sizes, page, limit), 0
                else:
                    uploads, collect = await asyncio.to_thread(uploads_left, state, d.key, page, limit)
                c.pages_reattached += collect
                if not uploads:
                    continue
                sent += 1
                c.pages_to_send += 1
                c.bytes_to_upload += len(page.data)
                c.strips_to_send += len(uploads) if len(uploads) > 1 else 0
                c.uploads_to_send += len(uploads)
                for width, height in uploads:
                    try:
                        price = await pricing.quote(width, height)   # (not `+= await`: other files add meanwhile)
                    except api_errors.NotFoundError as exc:
                        # no price route (another deAPI-compatible server): the run sends pages
                        # unpriced, so the plan still counts them; it stopped with exit 3 and no count
                        c.uploads_unpriced += 1
                        c.price_unknown = exc.reason
                        price = 0.0
                    c.estimated_cost += price
                    w, h = bucket(width, height)
                    c.buckets[f"{w}x{h}"] += 1
            c.files_to_send += sent > 0
        finally:
            source.close()

    def _report(self, total_files: int, balance: float | None, budget: Any, pricing: Any) -> dict[str, Any]:
        c = self.counts
        sample = {k: (sum(v.values()) if isinstance(v, Counter) else v) for k, v in
                  (("files_to_send", c.files_to_send), ("pages_to_send", c.pages_to_send),
                   ("uploads_to_send", c.uploads_to_send),
                   ("bytes_to_upload", c.bytes_to_upload), ("estimated_cost", round(c.estimated_cost, 6)),
                   ("files_skipped_done", c.files_skipped_done), ("pages_skipped_done", c.pages_skipped_done),
                   ("duplicates", c.duplicates), ("text_layer_pages", c.text_layer_pages),
                   ("rejected_files", c.rejected))}
        sampled = c.files_seen < total_files
        factor = total_files / c.files_seen if sampled and c.files_seen else 1.0
        estimated = {k: (round(v * factor, 6) if k == "estimated_cost" else int(round(v * factor)))
                     for k, v in sample.items()}
        free = self.config.embedded   # the embedded server runs offline: no account, nothing is charged
        if free:
            estimated["estimated_cost"] = 0.0
            balance = None
        elif c.uploads_unpriced:   # a sum without their prices would read as the whole cost
            estimated["estimated_cost"] = None
        cost = estimated["estimated_cost"]
        today_pages, today_cost = budget.state.spend_on_day(budget.day())
        caps = []
        b = self.config.budget
        # the run's budget admits each job: a page cut into strips takes one of the cap per strip
        if b.max_pages_per_run is not None and estimated["uploads_to_send"] > b.max_pages_per_run:
            caps.append({"cap": "budget.max_pages_per_run", "limit": b.max_pages_per_run,
                         "planned": estimated["uploads_to_send"]})
        if cost is None:   # unpriced pages stop a run with a cost cap at the first (budget.Budget.admit)
            caps += [{"cap": key, "limit": limit, "planned": None} for key, limit in
                     (("budget.max_cost_per_run", b.max_cost_per_run), ("budget.max_cost_per_day", b.max_cost_per_day))
                     if limit is not None]
        if b.max_cost_per_run is not None and cost is not None and cost > b.max_cost_per_run:
            caps.append({"cap": "budget.max_cost_per_run", "limit": b.max_cost_per_run, "planned": cost})
        if b.max_cost_per_day is not None and cost is not None and today_cost + cost > b.max_cost_per_day:
            caps.append({"cap": "budget.max_cost_per_day", "limit": b.max_cost_per_day,
                         "planned": round(today_cost + cost, 6), "spent_today": round(today_cost, 6)})
        return {
            "files_in_tree": total_files,
            "sample": {"files": c.files_seen, "of": total_files, "scaled_by": round(factor, 4)} if sampled else None,
            "counted": {**sample, "rejected_files": dict(c.rejected), "rejected_pages": dict(c.rejected_pages),
                        "duplicate_pages": c.duplicate_pages, "outputs_to_regenerate": c.outputs_to_regenerate,
                        "adopted": c.adopted, "adoption_refused": c.adoption_refused,
                        "pages_reattached": c.pages_reattached, "strips_to_send": c.strips_to_send,
                        "failed_earlier": c.failed_earlier, "still_being_written": c.still_being_written,
                        "scan_problems": dict(c.scan_problems), "size_buckets": dict(c.buckets),
                        "left_out_images": dict(sorted(c.left_out.items()))},
            "estimated": estimated,
            "estimate_error_max": round(BUCKET_ERROR, 4),
            "free": free,
            "currency": None if free else "USD",
            "price_requests": pricing.requests,
            "quote_cache_hits": pricing.cache_hits,
            "today": {"date": budget.day(), "time_zone": b.time_zone, "pages_submitted": today_pages,
                      "quoted_cost": round(today_cost, 6)},
            "caps_hit": caps,
            "balance": balance,
            "balance_lasts": None if balance is None or cost is None else balance >= cost,
            "uploads_unpriced": c.uploads_unpriced,
            "price_unknown": c.price_unknown,
        }


def _api_exit(exc: api_errors.DeapiError) -> ExitCode:
    if isinstance(exc, (api_errors.AuthError, api_errors.InsufficientBalanceError)):
        return ExitCode.AUTH_OR_BALANCE
    if isinstance(exc, (api_errors.TransportError, api_errors.ServerError)):
        return ExitCode.API_UNREACHABLE
    return ExitCode.STOPPED_EARLY  # a rate limit on the price calls: plan again later


def format_plan(report: dict[str, Any]) -> str:
    """The plan for people: what will be sent, what is skipped and why, what it costs."""
    c, e = report["counted"], report["estimated"]
    lines = []
    if report["sample"]:
        s = report["sample"]
        lines.append(f"sample: the first {s['files']} of {s['of']} files; figures marked ~ are scaled by "
                     f"{s['scaled_by']:g} to the whole tree")
    mark = "~" if report["sample"] else ""
    lines += [
        f"files in tree:        {report['files_in_tree']}",
        f"to send:              {mark}{e['files_to_send']} files, {mark}{e['pages_to_send']} pages, "
        f"{mark}{_size(e['bytes_to_upload'])} to upload",
        f"skipped as done:      {mark}{e['files_skipped_done']} files, {mark}{e['pages_skipped_done']} pages"
        + (f" ({c['outputs_to_regenerate']} get missing outputs, free)" if c["outputs_to_regenerate"] else "")
        + (f"; {c['adopted']} of them adopted from outputs on disk" if c["adopted"] else ""),
        f"duplicates:           {mark}{e['duplicates']} files (same content, paid once)",
        f"text-layer pages:     {mark}{e['text_layer_pages']} (free)",
        f"rejected:             {sum(c['rejected_files'].values())} files"
        + ("".join(f"; {k} {v}" for k, v in sorted(c["rejected_files"].items())))
        + (f"; pages that cannot be made: {sum(c['rejected_pages'].values())}" if c["rejected_pages"] else ""),
    ]
    if c.get("strips_to_send"):
        lines.append(f"strips:               {c['strips_to_send']} uploads for pages taller than the model's limit "
                     f"(cut at line gaps; each strip priced, each a job: {mark}{e['uploads_to_send']} jobs in all, "
                     "as budget.max_pages_per_run counts them)")
    if c["pages_reattached"]:
        lines.append(f"jobs to collect:      {c['pages_reattached']} pages submitted by an earlier run (not paid again)")
    if c["adoption_refused"]:
        lines.append(f"not adopted:          {c['adoption_refused']} files have outputs on disk that cannot be "
                     "taken over (damaged, foreign or other settings): counted to send")
    if c["failed_earlier"]:
        lines.append(f"failed earlier:       {c['failed_earlier']} files (not retried without --retry-failed)")
    if c["still_being_written"] or c["scan_problems"]:
        lines.append(f"left out:             {c['still_being_written']} still being written, "
                     f"{sum(c['scan_problems'].values())} scan problems")
    from pipeline.run.tree import left_out_line

    if (left_out := left_out_line(Counter(c["left_out_images"]))) is not None:
        lines.append(f"not included:         {left_out}")
    if report.get("free_space_short"):
        lines.append(f"free space:           {report['free_space_short']}: a run would not start (exit 2) "
                     "until there is more room or a lower min_free_mb")
    if report.get("free"):
        return "\n".join(lines + [FREE_LINE] + _caps_lines(report))
    if e["estimated_cost"] is None:
        lines.append(f"estimated cost:       unknown: {report['uploads_unpriced']} uploads could not be priced "
                     f"({report['price_unknown']}); the run sends them unpriced when no cost cap is set, "
                     "and stops at the first when one is")
    else:
        lines.append(f"estimated cost:       {mark}{e['estimated_cost']:.4f} {report['currency']} "
                     f"(size buckets, each page within {report['estimate_error_max']:.2%}; "
                     f"{report['price_requests']} price requests, {report['quote_cache_hits']} from the cache)")
    t = report["today"]
    lines.append(f"spent today:          {t['quoted_cost']:.4f} {report['currency']}, {t['pages_submitted']} pages "
                 f"({t['date']}, {t['time_zone']})")
    lines += _caps_lines(report)
    if report["balance"] is not None:
        lasts = "lasts" if report["balance_lasts"] else "DOES NOT last"
        lines.append(f"balance:              {report['balance']:.4f} {report['currency']}: {lasts} for this plan")
    elif report.get("balance_unknown"):
        lines.append(f"balance:              unknown: {report['balance_unknown']}; not checked against this plan")
    return "\n".join(lines)


FREE_LINE = "cost:                 free: the embedded server reads the pages on this machine (no account, nothing is charged)"


def _caps_lines(report: dict[str, Any]) -> list[str]:
    lines = [f"cap:                  {cap['cap']} = {cap['limit']:g} would stop the run "
             + (f"(planned {cap['planned']:g})" if cap["planned"] is not None else "at its first unpriced page")
             for cap in report["caps_hit"]]
    return lines or ["caps:                 none would be hit"]


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"  # pragma: no cover


async def run_plan(config: Config, *, limit: int | None, as_json: bool, force: bool, retry_failed: bool,
                   stream: TextIO) -> int:
    code, report, error = await Planner(config, limit=limit, force=force, retry_failed=retry_failed).plan()
    if report is None:
        print(f"pipeline: {error}", file=sys.stderr)
        return int(code)
    print(json.dumps(report, indent=2) if as_json else format_plan(report), file=stream)
    return int(code)
