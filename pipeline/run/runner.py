"""The bounded worker pool that wires the stages together for one run.

A lazy scan feeds a bounded queue (millions of files never sit in memory); a fixed set of
worker tasks take files from it and hand each to ``process.FileProcessor``; a shared job-slot
limiter keeps ``jobs_in_flight`` OCR jobs submitted at once. The runner also owns the run's
lifecycle: the lock, start-up checks, the embedded server, signals and deadline, the summary
and the exit code. It only wires: decisions about a file live in ``process``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import sys
import time
from contextlib import AsyncExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, TextIO
from urllib.parse import urlsplit

from pipeline import __version__
from pipeline.run.placing import Placer
from pipeline.run.budget import Budget
from pipeline.run.cronlog import file_line, set_run_id, start_line
from pipeline.config import Config, ConfigError, token_from_env
from pipeline.run.crashpoints import crashpoint
from pipeline.run.diskfloor import EVERY_S, DiskFloor, free_bytes, short_at_start, short_mid_run
from pipeline.deapi import DeapiClient
from pipeline.deapi import errors as api_errors
from pipeline.run.client_setup import client_settings_from_config, job_slots_from_config
from pipeline.run.folder_mets import write_folder_mets
from pipeline.exitcodes import ExitCode
from pipeline.ocr.languages import LanguageError, check_language
from pipeline.run.lock import LockHeld, RunLock
from pipeline.run.outage import NOT_COUNTED, NOT_DECIDED, OutageBreaker, Suspect, forgive
from pipeline.run.probe import RunProbe
from pipeline.inputs.prepare import PrecheckLimits
from pipeline.run.pricing import price_book
from pipeline.run.reading import ReadPool
from pipeline.run.context import Outcome, RunContext, StopSubmitting
from pipeline.run.process import FileProcessor
from pipeline.run.report import PageCount, Progress, RunStats, progress_line, write_run_report, young_line
from pipeline.inputs.feed import ScanFeed, TreeCount
from pipeline.inputs.scan import ScanEntry, ScanProblem
from pipeline.run.state import FAILED_STATES, StateStore
from pipeline.run.tree import in_tree, left_out_line, walk
from pipeline.run.writable import PathNotWritable, cannot_write, cannot_write_advice, check_writable

log = logging.getLogger("pipeline")

WEBHOOK_AUDIT_DAYS = 7   # webhook deliveries kept in the state store (webhook_events) this long

IN_FLUX_WHY = {   # files that moved under the run: not failed, but a cron log says which and why
    Outcome.VANISHED: "moved, renamed or deleted while the run read it; not failed: the next run looks again",
    Outcome.CHANGED: "written to while the run read it (replaced, or still being copied); not failed: the next "
                     "run reads it again",
}


NAMED_SUSPECTS = 20   # files named in the log line that takes back their failures (the rest counted)


class StartupError(Exception):
    def __init__(self, code: ExitCode, message: str) -> None:
        super().__init__(message)
        self.code = code


#: the share of ``shutdown_grace_s`` a stop keeps for its own wrap-up (parking the jobs in flight,
#: the run report, closing the pools and the embedded server), and at most this many seconds
WRAP_UP_SHARE, WRAP_UP_MAX_S = 0.1, 1.0


def in_flight_grace(grace_s: float) -> float:
    """How long jobs in flight may still run after a stop: the grace less the stop's wrap-up, so
    that the process has exited when ``shutdown_grace_s`` is over (a supervisor's kill timer,
    systemd's ``TimeoutStopSec``, a person counting). With the whole grace given to the jobs, a
    stop with 5 s of grace exited after 5.05-5.4 s (``bench.control --only stop``)."""
    return max(0.0, grace_s - min(WRAP_UP_MAX_S, WRAP_UP_SHARE * grace_s))


class Runner:
    def __init__(self, config: Config, *, force: bool = False, retry_failed: bool = False,
                 stream: TextIO | None = None, now: Callable[[], float] = time.time,
                 config_path: str | None = None, free_space: Callable[[Path], int] = free_bytes,
                 free_space_every_s: float = EVERY_S) -> None:
        self.config = config
        self.config_path = config_path     # for the start line
        self.run_id: int | None = None
        self.now = now                      # the budget's clock (its calendar day); tests inject it
        self.force = force
        self.retry_failed = retry_failed
        self.stream = stream or sys.stderr
        self.stats = RunStats()
        self.stop_reason: str | None = None
        self.balance: float | None = None   # the account balance the start-up checks read
        self.balance_problem: str | None = None  # why the balance could not be read (plan and run say it)
        self._stop_event = asyncio.Event()
        self._now_event = asyncio.Event()   # a second signal: cancel in-flight work at once
        self._signals = 0
        self._signal_times: list[float] = []   # when each signal came (monotonic), before its callback ran
        self._stop_at: float | None = None      # when the stop came: the grace is counted from here
        self._feed: ScanFeed | None = None
        self._ctx: RunContext | None = None
        self.report: dict[str, Any] | None = None
        self.exit_said: ExitCode | None = None   # the exit code the last line said (pipeline.cli keeps to it)
        self._embedded_webhook_secret = ""
        self._startup_error: StartupError | None = None
        self._tree_member: Callable[[str], bool] | None = None
        self._token: str | None = None
        self.write_problem: str | None = None   # a full disk met mid-run (exit 2)
        self.input_gone: str | None = None   # the input folder went away mid-walk: the tree was not all seen (exit 3)
        # the min_free_mb floor's reading of the free space, and how long one is trusted (tests inject both)
        self._free_space, self._free_space_every_s = free_space, free_space_every_s
        self._disk_floor: DiskFloor | None = None
        self.outage: str | None = None          # the API went away mid-run (exit 6; run.outage)

    def say(self, message: str) -> None:
        print(message, file=self.stream, flush=True)

    def _stop_flag(self) -> bool:
        return self._stop_event.is_set()

    # -- lifecycle ----------------------------------------------------------------------------

    async def run(self) -> ExitCode:
        # The run's signal handlers come first: until they are set, asyncio.run's own SIGINT
        # handler cancels the main task, and a Ctrl-C during the checks below ended the run with
        # no report and its row in the state store never closed.
        installed = self._install_signals()
        try:
            crashpoint("run_begins")
            return await self._checked_run()
        finally:
            loop = asyncio.get_running_loop()
            for sig in installed:
                loop.remove_signal_handler(sig)
            crashpoint("run_handlers_removed")   # tests: a Ctrl-C after the run said its exit code

    async def _checked_run(self) -> ExitCode:
        # Everything that can be wrong with the settings is found before anything is created
        # on disk (output folder, state, lock).
        if not self.config.embedded:
            try:
                self._token = token_from_env(self.config)
            except ConfigError as exc:
                self.say(f"pipeline: config error: {exc}")
                return ExitCode.CONFIG_ERROR
        try:
            check_writable(self.config)
        except PathNotWritable as exc:
            self.say(f"pipeline: config error: {exc}")
            return ExitCode.CONFIG_ERROR
        self._disk_floor = DiskFloor(self.config, free=self._free_space, every_s=self._free_space_every_s)
        short = self._disk_floor.check()
        if short is not None:   # nothing it submitted could be sure to be recorded
            self._say_exit(ExitCode.CONFIG_ERROR, before=f"{short_at_start(short)}; ")
            return ExitCode.CONFIG_ERROR
        self._quiet_asyncio()
        lock = RunLock(self.config.state_file.with_name(self.config.state_file.name + ".lock"))
        try:
            lock.acquire()
        except LockHeld as exc:
            self.say(f"pipeline: {exc}")
            return ExitCode.LOCKED
        try:
            return await self._run_locked()
        except Exception as exc:
            why = cannot_write(exc, self.config)
            if why is None:
                raise
            self._say_cannot_write(why)   # even the report could not be written
            return ExitCode.CONFIG_ERROR
        finally:
            lock.release()

    async def _run_locked(self) -> ExitCode:
        state = StateStore(self.config.state_file)
        self.run_id = run_id = state.start_run()
        set_run_id(self.stream, run_id)
        self.say(f"pipeline: {start_line(self.config, self.config_path, __version__)}")
        ctx: RunContext | None = None
        server = None
        exit_code = ExitCode.INTERNAL_ERROR
        try:
            crashpoint("run_start")
            async with AsyncExitStack() as stack:
                base_url, token, server = await self.open_api_endpoint(stack)
                slots = job_slots_from_config(self.config)
                r = self.config.retries
                outage = OutageBreaker(r.outage_failures, r.outage_min_s,
                                       on_trip=lambda reason, suspects: self._api_gone(reason, suspects, state),
                                       on_undecided=lambda suspects: self._give_back(
                                           suspects, state, NOT_DECIDED, "before the run stopped with its test page unanswered"))
                api = await stack.enter_async_context(
                    DeapiClient(base_url, token, client_settings_from_config(self.config),
                                on_overload=getattr(slots, "on_overload", None), on_outcome=outage.observe,
                                hold=lambda: self._ctx is None or not self._ctx.stopping()))
                placer = Placer(self.config.geometry.workers, self.config.geometry.method)
                stack.callback(lambda: placer.close(stopped=self.stop_reason is not None))
                read_pool = ReadPool(self.config.concurrency.prepare_workers)
                stack.callback(read_pool.close)   # a source still being opened is not waited for
                self._ctx = ctx = RunContext(
                    config=self.config, state=state, api=api, api_ready=self._once(api), run_id=run_id,
                    force=self.force, retry_failed=self.retry_failed, job_slots=slots,
                    prepare_slots=asyncio.Semaphore(self.config.concurrency.prepare_workers),
                    read_pool=read_pool,
                    stop_flag=self._stop_flag, pricing=price_book(self.config, state, api),
                    budget=Budget(self.config.budget, state, run_id, now=self.now), placer=placer,
                    check_disk=lambda: self._check_disk(ctx), outage=outage)
                outage.probe = RunProbe(ctx, self.say)   # a test page before a streak of failed uploads stops the run
                stack.callback(outage.close)
                if self.stop_reason is not None:  # a signal came while the endpoint was starting
                    ctx.close_submissions(self.stop_reason)
                if self.config.webhook.enabled or self.config.embedded:
                    await self._start_webhooks(stack, ctx)
                await self._work(ctx)
                self._check_input_mounted(state)
                # a test page still out is waited for, unless the run is stopping: then it has no
                # verdict, and its streak's files are given back
                await outage.settle(ctx.stopping)
                if self._startup_error is not None:
                    raise self._startup_error
                await write_folder_mets(ctx)
                exit_code = self._exit_code(ctx, state)
                self._finish(state, run_id, exit_code, ctx, server)
                if server is not None and self.stop_reason is not None:
                    # A stop: a page still in OCR is one whose job was parked, and its answer dies
                    # with this in-process server (the next run sends the page again), so the
                    # engine's workers are killed at once. Before, they were given 1 s, which the
                    # stop's wrap-up (a tenth of the grace) does not hold: a stop with 5 s of grace
                    # ended 5.4-5.8 s after it, over 1 s after its last line.
                    server.state.engine.close_timeout_s = 0.0
        except StartupError as exc:
            self.say(f"pipeline: {exc}")
            exit_code = exc.code
            self._finish(state, run_id, exit_code, ctx, server)
        except Exception:
            # A bug: the report still says what was done (exit 70), then the CLI writes the
            # traceback to the crash log.
            try:
                self._finish(state, run_id, ExitCode.INTERNAL_ERROR, ctx, server)
            except Exception:  # noqa: BLE001 - the original error is the one to report
                pass
            raise
        finally:
            state.close()
        return exit_code

    async def open_api_endpoint(self, stack: AsyncExitStack, engine: str | None = None) -> tuple[str, str, Any]:
        """The API's base URL and token; in embedded mode the server, started here (``engine``
        overrides the configured one: ``plan`` reads no page, so it starts the fast engine)."""
        if not self.config.embedded:
            try:
                token = self._token or token_from_env(self.config)
            except ConfigError as exc:
                raise StartupError(ExitCode.CONFIG_ERROR, str(exc)) from None
            return self.config.api.base_url.rstrip("/"), token, None
        from pipeline.server import EmbeddedServer, ServerConfig

        token = secrets.token_urlsafe(24)  # lives only in this process: never written anywhere
        self._embedded_webhook_secret = secrets.token_hex(32)
        emb = self.config.api.embedded
        languages = [("api.language", self.config.api.language)] + [
            (f"overrides[{i}].{key}", value) for i, o in enumerate(self.config.overrides)
            for key, value in o.settings if key == "api.language"]
        for key, language in languages:
            try:  # exit 2 naming the key, before any engine loads
                check_language(emb.engine, language)
            except LanguageError as exc:
                raise StartupError(ExitCode.CONFIG_ERROR, f"{key}: {exc}") from None
        server = await stack.enter_async_context(EmbeddedServer(ServerConfig(
            engine=engine or emb.engine, engine_workers=emb.workers, tokens=(token,), profile="unlimited",
            allow_http_webhooks=True, webhook_secret=self._embedded_webhook_secret,
            max_input_height=emb.max_input_height, max_answer_chars=emb.max_answer_chars)))
        return server.base_url, token, server

    def _once(self, api: DeapiClient):
        """Start-up checks run lazily, once, before the first file that needs the API.

        A rerun over an unchanged tree therefore makes zero API calls, and a bad token or an
        unreachable API still stops the run before any image is sent.
        """
        task: asyncio.Task | None = None

        async def ready() -> PrecheckLimits:
            nonlocal task
            if task is None:
                task = asyncio.create_task(self.startup_checks(api))
            try:
                return await asyncio.shield(task)
            except StartupError as exc:
                self._startup_error = exc
                self._stop_event.set()
                raise StopSubmitting(str(exc)) from None

        return ready

    async def startup_checks(self, api: DeapiClient) -> PrecheckLimits:
        """The model exists and reads images; its pixel limits shape the pre-check."""
        model = self.config.api.model
        try:
            models = await api.list_models("img2txt")
        except api_errors.AuthError as exc:
            raise StartupError(ExitCode.AUTH_OR_BALANCE, exc.reason) from None
        except api_errors.TransportError as exc:   # its reason names the URL and what to check
            raise StartupError(ExitCode.API_UNREACHABLE, exc.reason) from None
        except api_errors.ServerError as exc:
            raise StartupError(ExitCode.API_UNREACHABLE,
                               f"the API at {self.config.api.base_url} cannot be reached: {exc.reason}") from None
        except api_errors.DeapiError as exc:  # 404, a redirect, another 4xx: not deAPI's routes at this URL
            raise StartupError(ExitCode.CONFIG_ERROR,
                               f"api.base_url: {self.config.api.base_url} does not answer deAPI's routes "
                               f"({exc.reason}); it must be the API's root (a fleet's load balancer or API "
                               "replica, not a worker's port)") from None
        match = next((m for m in models if m.slug == model), None)
        if match is None:
            names = ", ".join(sorted(m.slug for m in models)) or "none"
            raise StartupError(ExitCode.CONFIG_ERROR,
                               f"api.model: {model!r} is not an img2txt model on this API (available: {names})")
        try:
            balance = await api.balance()
        except api_errors.AuthError as exc:
            raise StartupError(ExitCode.AUTH_OR_BALANCE, exc.reason) from None
        except api_errors.DeapiError as exc:
            balance = None  # the balance route is informative only: said, never fatal
            self.balance_problem = exc.reason
        self.balance = balance
        if balance is not None and balance <= 0:
            raise StartupError(ExitCode.AUTH_OR_BALANCE, f"the account balance is {balance}: top it up first")
        self._check_balance(balance)
        p = self.config.precheck
        limits = PrecheckLimits(max_upload_bytes=p.max_upload_bytes, max_source_pixels=p.max_source_pixels,
                                jpeg_quality=p.jpeg_quality, rotate_pages=p.rotate_pages, deskew=p.deskew)
        if match.limits is not None:
            ml = match.limits
            limits = replace(limits, **{k: getattr(ml, k) for k in ("min_width", "max_width", "min_height",
                                                                      "max_height") if getattr(ml, k, None)})
        return limits

    def _check_balance(self, balance: float | None) -> None:
        """Before the first submit: will the balance last the planned cost of this run?

        The planned cost is what is left of the latest ``plan``'s estimate (less what was spent
        since), capped by the run's cost caps; either alone when only one is known. Short: a
        warning, or exit 5 with ``budget.refuse_short_balance``. The budget then spends the balance down, page by
        page, and stops submitting (exit 5) before a page it would not cover."""
        budget = self._ctx.budget if self._ctx is not None else None
        if budget is None:
            return
        budget.set_balance(balance)
        planned = [x for x in (self._ctx.state.last_plan_cost(), budget.planned_limit()) if x is not None]
        if balance is None and self.balance_problem and self.config.budget.refuse_short_balance:
            self.say(f"pipeline: warning: the account balance could not be read ({self.balance_problem}); "
                     "budget.refuse_short_balance cannot check it this run")
        if balance is None or not planned or min(planned) <= balance:
            return
        message = (f"the account balance ({balance:.4f}) will not last this run's planned cost "
                   f"({min(planned):.4f}, from the last plan and the caps)")
        if self.config.budget.refuse_short_balance:
            raise StartupError(ExitCode.AUTH_OR_BALANCE, message + "; not started (budget.refuse_short_balance)")
        self.say(f"pipeline: warning: {message}; submissions stop when it is spent")

    async def _start_webhooks(self, stack: AsyncExitStack, ctx: RunContext) -> None:
        from pipeline.deapi.push_watch import PushWatch
        from pipeline.deapi.webhook import JobEvents, WebhookReceiver

        wh = self.config.webhook
        # The embedded server signs with a secret made for this run; a real account's secret
        # comes from the environment. In embedded mode the server lives in this process, so
        # its webhooks on loopback tell the client the moment each job ends: no guessing when
        # to poll (polling stays the fallback and the truth).
        secret = self._embedded_webhook_secret if self.config.embedded else os.environ.get(wh.secret_env, "")
        if not secret:
            raise StartupError(ExitCode.CONFIG_ERROR,
                               f"webhook.secret_env: the environment variable {wh.secret_env} is empty or unset; "
                               "export the webhook secret from your deAPI settings there (or set "
                               "webhook.enabled: false to poll instead)")
        events = JobEvents()
        embedded_only = self.config.embedded and not wh.enabled
        if not embedded_only:   # an audit of the last week's deliveries, not of every night's
            ctx.state.forget_webhooks(time.time() - WEBHOOK_AUDIT_DAYS * 86400)

        async def on_event(event: Any) -> None:
            if not embedded_only:   # the embedded server's pushes on loopback are no one's to audit
                try:
                    ctx.state.record_webhook(event.delivery_id, event.request_id, event.event)
                except Exception:  # noqa: BLE001 - the record is an audit; the waiting job still hears
                    log.debug("webhook delivery %s not recorded", event.delivery_id, exc_info=True)
            events.deliver(event)
        # the public URL's own path is served too: a proxy that forwards it unchanged reaches us
        public_path = urlsplit(wh.public_url or "").path
        also = (public_path,) if public_path.startswith("/") and not embedded_only else ()
        receiver = WebhookReceiver(secret, host="127.0.0.1" if embedded_only else wh.listen_host,
                                   port=0 if embedded_only else wh.listen_port, also=also, on_event=on_event)
        await stack.enter_async_context(receiver)
        ctx.webhook_url = receiver.url if embedded_only else wh.public_url
        ctx.webhook_events = PushWatch(events, receiver, ctx.webhook_url, lambda m: self.say(f"pipeline: {m}"))

    # -- the pool -----------------------------------------------------------------------------

    def _walk(self):
        return walk(self.config, left_out=self.stats.left_out)

    async def _work(self, ctx: RunContext) -> None:
        """Workers pull files from the scan feed until it ends or a stop is requested.

        The stop is bounded in every phase: the feed never blocks anyone (``feed.py``); workers
        still busy get ``shutdown_grace_s``, then are cancelled ("parked": their request ids are
        in the state store, the next run re-attaches); a second signal cancels at once.
        """
        cfg = self.config
        processor = FileProcessor(ctx)
        c = cfg.concurrency
        # More workers than job slots, so that slots stay full while some workers hash,
        # prepare or write (the slots, not the workers, bound what is in flight at the API).
        jobs = getattr(ctx.job_slots, "maximum", None) or c.jobs_in_flight
        n_workers = jobs + max(4, jobs // 2) + c.prepare_workers
        self._feed = feed = ScanFeed(self._walk, capacity=max(64, 2 * n_workers)).start()
        counter = None
        if cfg.progress != "off":
            counter = TreeCount(lambda: walk(cfg), lambda item: isinstance(item, ScanEntry)).start()
        progress = Progress(cfg.progress, cfg.log_interval_s, self.stream,
                            total=(lambda: counter.total) if counter else None,
                            pages=lambda: PageCount(ctx.files_opened, ctx.pages_found, ctx.pages_read))
        ctx.on_page = lambda: progress.update(self.stats, ctx.in_flight, file_done=False)
        loop = asyncio.get_running_loop()
        deadline = loop.call_later(cfg.max_runtime_s, self.request_stop, "max_runtime_s reached",
                                   ctx) if cfg.max_runtime_s else None
        workers = [asyncio.create_task(self._worker(feed, processor, ctx, progress), name=f"worker-{i}")
                   for i in range(n_workers)]
        all_done = asyncio.ensure_future(asyncio.wait(workers))
        stop_wait = asyncio.ensure_future(self._stop_event.wait())
        now_wait = asyncio.ensure_future(self._now_event.wait())
        try:
            await asyncio.wait([all_done, stop_wait], return_when=asyncio.FIRST_COMPLETED)
            if not all_done.done():  # a stop (request_stop closed the feed): in-flight jobs get the grace
                since = time.monotonic() - (self._stop_at or time.monotonic())
                wait_s = max(0.0, in_flight_grace(cfg.shutdown_grace_s) - since)
                await asyncio.wait([all_done, now_wait], timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
                if not all_done.done():
                    if not self._now_event.is_set():
                        self.say(f"pipeline: in-flight jobs still running after {round(wait_s, 1):g}s of the "
                                 f"{cfg.shutdown_grace_s:g}s grace; parking them (request ids kept for the next run)")
                    for task in workers:
                        task.cancel()
                    await asyncio.wait(workers)
        finally:
            for fut in (stop_wait, now_wait, all_done):
                fut.cancel()
            self._defer_unstarted(feed)
            if counter is not None:
                counter.close()
            if deadline:
                deadline.cancel()
            progress.close()
        if feed.error is not None:
            raise feed.error
        for task in workers:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()

    def _defer_unstarted(self, feed: ScanFeed) -> None:
        """Files found but not yet taken by a worker wait for the next run."""
        for item in feed.close():
            if isinstance(item, ScanEntry):
                self.stats.seen += 1
                self.stats.add(Outcome.DEFERRED)

    async def _worker(self, feed: ScanFeed, processor: FileProcessor, ctx: RunContext,
                      progress: Progress) -> None:
        while not ctx.stopping():
            item = await feed.get()
            if item is None:
                return
            if isinstance(item, ScanProblem):
                if item.code == "still_being_written":
                    self.stats.add(Outcome.DEFERRED)
                    self.stats.add_young(item.rel)
                else:
                    if item.code == "input_gone":
                        self.input_gone = item.reason
                    self.stats.scan_problems.append({"path": item.rel, "code": item.code, "reason": item.reason})
                    self.say(f"pipeline: {file_line(item.rel, 'scan problem', item.code, item.reason)}")
                continue
            self.stats.seen += 1
            if ctx.stopping():  # taken just as the stop came: it waits for the next run
                self.stats.add(Outcome.DEFERRED)
                return
            try:
                outcome = await processor.process(item)
            except asyncio.CancelledError:  # parked after the grace: the next run re-attaches it
                self.stats.add(Outcome.DEFERRED)
                raise
            except Exception as exc:  # a bug while handling one file: record it, keep the run going
                why = cannot_write(exc, self.config)
                if why is None:
                    outcome = processor.internal_failure(item, self._log_internal_error(item.rel))
                else:  # a full disk, a denied folder: neither this file's fault nor a bug; the run stops, the file waits
                    self._cannot_write(why, ctx)
                    outcome = Outcome.DEFERRED
            self.stats.add(outcome)
            if outcome in (Outcome.FAILED, Outcome.REJECTED):
                self._say_file(ctx, item.rel, outcome)
            elif outcome in IN_FLUX_WHY:
                self.say(f"pipeline: {file_line(item.rel, outcome, None, IN_FLUX_WHY[outcome])}")
            progress.update(self.stats, ctx.in_flight)

    def _say_file(self, ctx: RunContext, rel: str, outcome: str) -> None:
        """A rejected or failed file, named with its reason (a cron log must not only count them)."""
        rec = ctx.state.get_file(rel)
        self.say(f"pipeline: {file_line(rel, outcome, rec.error_code if rec else None, rec.error if rec else None)}")

    def _log_internal_error(self, rel: str) -> str:
        from pipeline.crashlog import write_traceback

        path = write_traceback(self.config.control_dir, f"while processing {rel!r}:")
        return f"internal error; traceback in {path}" if path else "internal error (the traceback could not be written)"

    def _cannot_write(self, why: str, ctx: RunContext, advice: Callable[[str], str] = cannot_write_advice) -> None:
        """The disk of the outputs or the state is full (or read-only): every later file would
        be paid for and then not written, so the run stops as for a signal and exits 2."""
        if self.write_problem is None:
            self.write_problem = why
            self.request_stop(advice(why), ctx)

    def _check_disk(self, ctx: RunContext) -> None:
        """Before each upload: under the ``min_free_mb`` floor the run stops as for a full disk,
        while the request ids of the pages in flight can still be recorded (``diskfloor``)."""
        short = self._disk_floor.check() if self._disk_floor is not None else None
        if short is not None:
            self._cannot_write(short, ctx, short_mid_run)

    def _check_input_mounted(self, state: StateStore) -> None:
        """An input folder found empty on another file system than the last night it held files
        is a share not mounted (an empty mount point), not a tree with nothing to do: the run
        said "0 done ... exit 0" and a nightly job looked fine while it read nothing, night after
        night. It is ``input_gone`` (exit 3, the reason said). An input emptied on its own file
        system (scans moved out once read, an inbox) stays exit 0. The device is noted at the end
        of every walk that found anything."""
        if self.stop_reason is not None or self.input_gone is not None:
            return   # the walk may not have ended; a stop says its own reason
        try:
            device = os.stat(self.config.input).st_dev
        except OSError:
            return   # gone: the walk said so (input_gone)
        if self.stats.seen or self.stats.scan_problems or self.stats.young or self.stats.left_out:
            state.set_input_device(device)
            return
        before = state.input_device()
        if before is None or before == device:
            return
        reason = (f"the input folder {self.config.input} is empty and on another file system than on the "
                  "last run that found files in it: is a share not mounted (an empty mount point)? "
                  "Nothing was read; run again once it is back")
        self.input_gone = reason
        self.stats.scan_problems.append({"path": ".", "code": "input_gone", "reason": reason})
        self.say(f"pipeline: {file_line('.', 'scan problem', 'input_gone', reason)}")

    def _api_gone(self, reason: str, suspects: list[Suspect], state: StateStore) -> None:
        """The API went away mid-run (``run.outage``): the run stops as for a signal and exits 6.
        The files that failed on it since its last answer take back their strike: they were
        counted failed in this run's tally, and now wait for the next run instead."""
        self.outage = reason
        self._give_back(suspects, state, NOT_COUNTED, "since its last answer")
        self.request_stop(reason, self._ctx)

    def _give_back(self, suspects: list[Suspect], state: StateStore, why: str, when: str) -> None:
        """``suspects`` take back their strike (``run.outage``; ``why``: the words their error
        starts with), and the run's tally and log say so."""
        for s in suspects:
            forgive(state, s.rel, s.reason, s.failures, why=why)
        if suspects:
            self.stats.outcomes[Outcome.FAILED] -= len(suspects)
            self.stats.outcomes[Outcome.DEFERRED] += len(suspects)
            if not self.stats.outcomes[Outcome.FAILED]:
                del self.stats.outcomes[Outcome.FAILED]   # the report's this_run lists no "failed: 0"
            # named: their "failed: ... (quarantined ...)" lines above are taken back, and a cron mail
            # with real failures too must say which
            names = ", ".join(s.rel for s in suspects[:NAMED_SUSPECTS])
            more = f" and {len(suspects) - NAMED_SUSPECTS} more" if len(suspects) > NAMED_SUSPECTS else ""
            self.say(f"pipeline: {len(suspects)} files that failed on the API {when} are not "
                     f"counted as failed (nor quarantined): they wait for the next run: {names}{more}")

    def _say_cannot_write(self, why: str) -> None:
        self._say_exit(ExitCode.CONFIG_ERROR, before=f"{cannot_write_advice(why)}; ")

    def _say_exit(self, code: ExitCode, before: str = "", after: str = "") -> None:
        """The run's last line, which says its exit code, and the code kept (``exit_said``): a
        signal after this line no longer changes what the process exits with (``pipeline.cli``)."""
        self.say(f"pipeline: {before}exit {int(code)} ({code.name}){after}")
        self.exit_said = code

    def request_stop(self, reason: str, ctx: RunContext | None, at: float | None = None) -> None:
        """``at``: when the stop came (monotonic; default now), from which the grace is counted."""
        if self._stop_at is None:
            self._stop_at = time.monotonic() if at is None else at
        if self.stop_reason is None:
            self.stop_reason = reason
            self.say(f"pipeline: stopping ({reason}): no new files; in-flight jobs may finish "
                     f"(up to {self.config.shutdown_grace_s:g}s)")
        if ctx is not None:
            ctx.close_submissions(reason)
            limiter = getattr(ctx.api, "limiter", None)
            if limiter is not None:  # uploads waiting for the rate limiter leave now, unsent
                limiter.shut("submit", f"the run is stopping ({reason})")
        if self._feed is not None:
            self._defer_unstarted(self._feed)
        self._stop_event.set()

    def _on_signal(self, sig: signal.Signals) -> None:
        self._signals += 1
        if self._signals == 1:
            at = self._signal_times[0] if self._signal_times else None
            self.request_stop(f"signal {signal.Signals(sig).name}", self._ctx, at)
            return
        if not self._now_event.is_set():
            self.say("pipeline: second signal: stopping now (state is consistent; in-flight jobs are parked)")
        self._now_event.set()
        self._stop_event.set()

    def _note_signal(self, signum: int, frame: object) -> None:
        self._signal_times.append(time.monotonic())

    def _install_signals(self) -> list[signal.Signals]:
        loop = asyncio.get_running_loop()
        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
                # asyncio runs ``_on_signal`` when the loop next gets control, which can be a
                # second or more after the signal while a step holds the loop (importing a module
                # on a loaded machine); the grace counted from there ended the stop after it.
                # Its Python-level handler (a no-op; the wake-up goes through the wakeup fd, set
                # apart from it) is replaced by one that notes when the signal came.
                signal.signal(sig, self._note_signal)
                installed.append(sig)
            except (NotImplementedError, RuntimeError):  # not the main thread (tests): no handlers
                pass
        return installed

    def _quiet_asyncio(self) -> None:
        """Asyncio's own complaints (a callback's stray exception, "never retrieved") go to the
        debug log, not to stderr: cron mails stderr, and these are not actionable for a user."""
        def handler(loop: asyncio.AbstractEventLoop, context: dict) -> None:
            log.debug("asyncio: %s", context.get("message"), exc_info=context.get("exception"))

        asyncio.get_running_loop().set_exception_handler(handler)

    # -- the end ------------------------------------------------------------------------------

    def _in_tree(self) -> Callable[[str], bool]:
        """The run's one ``in_tree`` question, asked at its end by the exit code and the report:
        each failed path is looked at once, not once for each."""
        if self._tree_member is None:
            self._tree_member = in_tree(self.config)
        return self._tree_member

    def _exit_code(self, ctx: RunContext, state: StateStore) -> ExitCode:
        if ctx.fatal is not None:
            reason = str(getattr(ctx.fatal, "reason", ctx.fatal))
            if self.stop_reason is None:   # the report says why, and the log's "stopped early:" line
                self.stop_reason = reason
            else:
                self.say(f"pipeline: {reason}")
            return ExitCode.AUTH_OR_BALANCE
        if self.write_problem is not None:   # its stop reason says what to do
            return ExitCode.CONFIG_ERROR
        if self.outage is not None:   # the API went away mid-run: work is left, retry later
            return ExitCode.API_UNREACHABLE
        if ctx.submissions_closed and self.stop_reason is None:
            self.stop_reason = ctx.submissions_closed
        if self.input_gone is not None and self.stop_reason is None:
            # the walk ended early and took it in silence: not "every file done", but work left
            self.stop_reason = self.input_gone
        # work left: files deferred, and files that changed under this run (a copy still under way)
        if self.stop_reason is not None or self.stats.outcomes[Outcome.DEFERRED] or self.stats.outcomes[Outcome.CHANGED]:
            return ExitCode.STOPPED_EARLY
        member = self._in_tree()   # a failed file since deleted or renamed is no failure of the tree
        if self.stats.scan_problems or any(member(rec.rel) for rec in state.iter_files(FAILED_STATES)):
            return ExitCode.FILES_FAILED
        return ExitCode.OK

    def _finish(self, state: StateStore, run_id: int, exit_code: ExitCode, ctx: RunContext | None,
                server: Any) -> None:
        api_stats: dict[str, Any] = {}
        if ctx is not None and hasattr(ctx.api, "stats"):
            stats = ctx.api.stats
            api_stats = stats.snapshot() if hasattr(stats, "snapshot") else dict(vars(stats))
            poller = getattr(ctx.api, "poller", None)
            if poller is not None:
                api_stats["polling"] = poller.snapshot()
            slots = ctx.job_slots
            api_stats["jobs_in_flight"] = {
                "limit": getattr(slots, "limit", getattr(slots, "maximum", None)),
                "maximum": getattr(slots, "maximum", None), "decreases": getattr(slots, "decreases", 0),
                "adaptive": hasattr(slots, "on_success")}
        if ctx is not None:
            if ctx.outage is not None:
                api_stats["outage"] = ctx.outage.snapshot()   # an API gone mid-run, the longest failure streak
            api_stats["strips"] = ctx.strips.snapshot()   # pages cut for the model's height limit
            if ctx.webhook_events is not None:
                api_stats["webhooks"] = ctx.webhook_events.snapshot()   # pushes received, waits that came back empty
        counters = server.counters.snapshot() if server is not None else None
        self.stats.regenerated = ctx.regenerated if ctx else 0
        self.stats.pages_read = ctx.pages_read if ctx else 0
        self.report = write_run_report(
            self.config.control_dir, run_id=run_id, exit_code=exit_code, stats=self.stats, state=state,
            stop_reason=self.stop_reason, api_stats=api_stats,
            possible_duplicates=ctx.possible_duplicates if ctx else 0,
            resubmitted=ctx.resubmitted if ctx else 0, server_counters=counters,
            adoption_refused=ctx.adoption_refused if ctx else None,
            cost=_cost_report(ctx), output_notes=ctx.output_notes if ctx else None,
            in_tree=self._in_tree(), resubmitted_pages=ctx.resubmitted_pages if ctx else ())
        # the stop reason too: ``status`` says why the last run stopped (an outage's exit 6, a cap's 3)
        state.finish_run(run_id, int(exit_code), {"outcomes": dict(self.stats.outcomes), "stop_reason": self.stop_reason})
        self.say(f"pipeline: {progress_line(self.stats)}")
        if self.stop_reason is not None:  # a cron mail says why the run stopped, not only that it did
            self.say(f"pipeline: stopped early: {self.stop_reason}")
        if ctx is not None and ctx.possible_duplicates:   # money: said in the log, not only in the report
            self.say(f"pipeline: {ctx.possible_duplicates} submits had an unknown outcome (an earlier run ended between "
                     "an upload and recording its request id: killed, crashed or its disk full; or the connection was "
                     "lost or a gateway timed out after the upload) and were sent again: those pages may be paid "
                     "twice; see possible_duplicates in the report")
        if ctx is not None and ctx.adoption_refused:
            self.say(f"pipeline: {len(ctx.adoption_refused)} files had outputs on disk that were not taken over "
                     "(damaged, foreign or other settings; processed again; see adoption_refused in the report)")
        if (left_out := left_out_line(self.stats.left_out)) is not None:
            self.say(f"pipeline: {left_out}")
        if self.stats.young:
            self.say(f"pipeline: {young_line(self.stats, self.config.min_file_age_s)}")
        if ctx is not None and ctx.output_notes:
            self.say(f"pipeline: {len(ctx.output_notes)} outputs were written in a lesser form than configured "
                     "(e.g. a plain PDF where PDF/A could not be; see output_notes in the report)")
        self._say_exit(exit_code, after=f"; results in {self.config.output}; "
                                        f"report {self.config.control_dir / 'run-report.json'}")


def _cost_report(ctx: RunContext | None) -> dict[str, Any] | None:
    """The run report's ``cost``: pages submitted, their quoted cost, this run and this day."""
    if ctx is None or ctx.budget is None:
        return None
    out = ctx.budget.snapshot()
    plan = ctx.state.last_plan()
    out["last_plan"] = plan   # the estimate made before: its cost and pages left, and when
    if ctx.pricing is not None:
        out.update(ctx.pricing.snapshot())
    return out
