"""An API that goes away mid-run stops the run with exit 6 and no file's strike (run/outage.py);
a brief blip of 5xx does not, and a file the API refuses while others succeed still counts. A
paid job's polls outlast the API's failures, and an upload it failed is sent once more when it
answers again (deapi/client.py ``_holds``, run/process.py)."""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
import sys
from dataclasses import dataclass

import pytest

from conftest import TOKEN
from helpers import distinct_png, run_pipeline, write_config
from pipeline.exitcodes import ExitCode
from pipeline.config import load_config
from pipeline.run.audit import format_status, status_report
from pipeline.run.outage import NOT_COUNTED, NOT_DECIDED, OutageBreaker
from pipeline.run.runner import Runner
from pipeline.run.state import FAILED_STATES, StateStore
from pipeline.server import EmbeddedServer, ServerConfig
from pipeline.server.faults import FAULT_ENDPOINTS, FaultRule
from pipeline.deapi import errors as E


@dataclass
class Script(FaultRule):
    """The server's 5xx fault scripted by event order: "." lets an event through, "x" answers it
    with a 5xx; past the script's end every event passes (or fails, with ``then_fail``)."""

    script: str = ""
    then_fail: bool = False

    def fire(self, rng) -> bool:
        if not self.script:
            return self.then_fail
        step, self.script = self.script[0], self.script[1:]
        return step == "x"


def tree(tmp_path, n: int) -> list[str]:
    names = [f"box{i // 10}/p{i:02d}.png" for i in range(n)]
    for i, rel in enumerate(names):
        distinct_png(tmp_path / "in" / rel, i, (120, 80))
    return names


def fail_uploads(server) -> None:
    """Every upload answered 5xx (the other calls answered)."""
    server.faults.endpoints = ("submit",)
    server.faults.http_5xx = FaultRule(rate=1.0)


def start_runner(cfg) -> tuple[Runner, asyncio.Task]:
    """The real Runner in this loop, for a test that stops it (``_on_signal``) at a known step."""
    os.environ["PIPELINE_TEST_TOKEN"] = TOKEN
    runner = Runner(load_config(cfg), stream=io.StringIO())
    return runner, asyncio.create_task(runner.run())


def file_rows(tmp_path):
    store = StateStore(tmp_path / "out" / ".pipeline" / "state.sqlite")
    try:
        return list(store.iter_files())
    finally:
        store.close()


@pytest.mark.parametrize("gateway", ["everything", "uploads"])
async def test_an_api_gone_mid_run_exits_6_counts_no_file_failed_and_the_rerun_pays_once(tmp_path, server, gateway):
    names = tree(tmp_path, 40)
    # a gateway in front of the API starts answering 5xx to everything (or to every upload) after
    # the first few calls
    server.faults.endpoints = FAULT_ENDPOINTS if gateway == "everything" else ("submit",)
    server.faults.http_5xx = Script(script="." * 8, then_fail=True)
    # 8 in a row: 4 jobs in flight, each refused upload sent once more, so some file fails before
    # the breaker opens (a resend meets the outage too) and its "failed:" line is taken back
    cfg = write_config(tmp_path, server.base_url, retries__max_attempts=1, retries__outage_failures=8,
                       retries__outage_min_s=0, retries__max_transient_runs=1)
    code, report, out = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.API_UNREACHABLE, out
    assert "went away mid-run" in report["stop_reason"] and "went away mid-run" in out
    # bounded: the streak that opened the breaker, plus calls already under way (4 jobs in flight);
    # a streak of failed uploads first sends a test page (refused as well here), and while it is
    # out each slot may still fail an upload and its one resend
    outage = report["api_calls"]["outage"]
    assert outage["probes_taken"] == 0
    # (a test page only when every failure of the streak was an upload's: always with uploads
    # alone failing, by chance when everything fails)
    assert outage["probes"] == 1 if gateway == "uploads" else outage["probes"] <= 1
    assert server.counters.server_errors <= 8 + 4 + outage["probes"] * (1 + 2 * 4)
    rows = file_rows(tmp_path)
    assert not [r.rel for r in rows if r.state in FAILED_STATES]   # max_transient_runs=1: would be quarantined
    assert all(r.failures == 0 for r in rows)
    done = {r.rel for r in rows if r.state == "done"}
    assert len(names) - len(done) >= 30 and len(done) <= server.counters.jobs_created   # most wait
    # jobs made but not fetched before the outage keep their request ids for the rerun to re-attach
    assert report["this_run"].get("failed", 0) == 0
    logged_failed = [line.split(": ")[2] for line in out.splitlines() if line.startswith("pipeline: failed: ")]
    forgiven = [r.rel for r in rows if r.error and r.error.startswith(NOT_COUNTED)]
    status = format_status(status_report(load_config(cfg)))
    assert "  stopped early: the API went away mid-run" in status, status
    # a cron user is told which "failed:" lines are taken back, and status says so
    if logged_failed or gateway == "uploads":
        taken_back = out.split("not counted as failed (nor quarantined): they wait for the next run: ")[1]
        assert logged_failed and sorted(taken_back.split("\n")[0].split(", ")) == sorted(logged_failed), out
        assert f"not counted as failed: {len(forgiven)} files failed on the API while it was away" in status, status
    if gateway == "everything":
        # the jobs in flight were paid: their polls failing was the API's doing, not the files',
        # so they were asked again until the breaker stopped the run and parked, never failed
        # (before, each was logged "failed:" and struck, then taken back when the breaker opened);
        # a file that failed is one whose upload the gateway refused (nothing paid)
        parked = {r.rel for r in rows if r.state == "submitted"}
        assert parked and len(parked) == server.counters.jobs_created - len(done), (parked, out)
        assert not parked & set(logged_failed), out

    server.faults.http_5xx = FaultRule()   # the API is back
    code, report, out = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK, out
    assert {r.rel for r in file_rows(tmp_path) if r.state == "done"} == set(names)
    assert server.counters.jobs_created == len(names)          # the server's job record: none paid twice
    assert sorted(server.counters.submits_by_hash.values()) == [1] * len(names)


@pytest.mark.parametrize("endpoint, calls", [("status", "status calls"), ("download", "result downloads")])
async def test_a_status_route_or_result_storage_gone_while_uploads_are_taken_is_an_outage(tmp_path, server,
                                                                                        endpoint, calls):
    # Before the streak was kept per endpoint, every new file's accepted submit ended the status
    # calls' streak: all 40 files were paid, failed on their polls and took a strike (36 quarantined).
    # Result downloads (the links' storage) were not seen at all: 20 of 20 files failed, exit 1.
    names = tree(tmp_path, 40)
    server.faults.endpoints = (endpoint,)
    server.faults.http_5xx = FaultRule(rate=1.0)
    cfg = write_config(tmp_path, server.base_url, api__return_result_in_response=False, retries__max_attempts=1,
                       retries__outage_failures=4, retries__outage_min_s=0, retries__max_transient_runs=1)
    code, report, out = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.API_UNREACHABLE, out
    # the endpoint's own streak, or the one over all calls when a burst of its failures came first
    assert re.search(rf"\d+ ({calls}|calls) in a row failed", report["stop_reason"]), report["stop_reason"]
    rows = file_rows(tmp_path)
    assert not [r.rel for r in rows if r.state in FAILED_STATES] and all(r.failures == 0 for r in rows)
    assert report["this_run"] == {"deferred": len(names)}
    assert server.counters.jobs_created <= 4 + 4   # the streak, plus uploads already under way
    # every file here was paid: its calls were held until the breaker stopped the run, none was
    # logged failed (before the hold, each was, and taken back when the breaker opened)
    assert "pipeline: failed:" not in out and report["api_calls"]["held_calls"] >= 1, out


@pytest.mark.parametrize("endpoint", ["status", "download"])
async def test_a_paid_job_rides_out_api_failures_longer_than_the_retries_and_short_of_an_outage(tmp_path, server,
                                                                                              endpoint):
    # A fleet's database restarting (every call a 503 for a minute) outlasts one call's retries but
    # not the breaker. Before, the first status call (or result download) that ran out of retries
    # failed its file, with a strike, although its job was paid and done: exit 1, the text left
    # for the next run.
    names = tree(tmp_path, 6)
    server.faults.endpoints = (endpoint,)
    server.faults.http_5xx = Script(script="x" * 8)   # the next 8 such calls fail, then the API is back
    cfg = write_config(tmp_path, server.base_url, api__return_result_in_response=endpoint == "status",
                       retries__max_attempts=2, retries__outage_failures=10, retries__outage_min_s=0,
                       concurrency__jobs_in_flight=2, concurrency__adaptive=False)
    code, report, out = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK, out
    assert server.counters.server_errors == 8 and report["api_calls"]["held_calls"] >= 3   # calls out of retries
    assert report["api_calls"]["outage"]["outage"] is None
    rows = file_rows(tmp_path)
    assert {r.rel for r in rows if r.state == "done"} == set(names) and all(r.failures == 0 for r in rows)
    assert server.counters.jobs_created == len(names)              # the server's record: each paid once
    assert sorted(server.counters.submits_by_hash.values()) == [1] * len(names)


@dataclass
class SignalAt(FaultRule):
    """Every matching call fails; the ``at``-th also brings the run a SIGTERM (its handler's call)."""

    at: int = 1
    runner: Runner | None = None

    def fire(self, rng) -> bool:
        self.at -= 1
        if self.at == 0:
            self.runner._on_signal(signal.SIGTERM)
        return True


async def test_a_stop_while_the_api_fails_held_jobs_parks_them_at_once_unstruck(tmp_path, server):
    tree(tmp_path, 8)
    server.faults.endpoints = ("status",)
    # no breaker, a job deadline and a grace far beyond the test's: only the stop can end the hold
    cfg = write_config(tmp_path, server.base_url, retries__max_attempts=2, retries__outage_failures=0,
                       timeouts__job_s=3000, shutdown_grace_s=3000, concurrency__jobs_in_flight=4,
                       concurrency__adaptive=False)
    os.environ["PIPELINE_TEST_TOKEN"] = TOKEN
    runner = Runner(load_config(cfg), stream=io.StringIO())
    # 12 failed attempts among at most 4 jobs: some job's poll has run out of its 2 attempts and been held
    server.faults.http_5xx = SignalAt(at=12, runner=runner)
    code = await asyncio.wait_for(runner.run(), 60)
    out = runner.stream.getvalue()
    assert code == ExitCode.STOPPED_EARLY and runner.report["stop_reason"] == "signal SIGTERM", out
    # before, each job's first failed poll failed its file, with a strike, long before the stop
    assert "failed" not in runner.report["this_run"] and runner.report["api_calls"]["held_calls"] >= 1, out
    rows = file_rows(tmp_path)
    assert not [r for r in rows if r.state in FAILED_STATES] and all(r.failures == 0 for r in rows)
    parked = [r for r in rows if r.state == "submitted"]   # request ids kept: the next run re-attaches
    assert len(parked) == server.counters.jobs_created == 4


async def test_an_upload_the_api_fails_past_its_retries_is_sent_once_more_when_the_api_answers(tmp_path, server):
    # Before, the file failed with a strike: a fleet's database restart failed every upload it
    # met (3 of 8 files on a tour, the jobs' polls held), though no job was made and nothing paid.
    names = tree(tmp_path, 6)
    server.faults.endpoints = ("submit",)
    server.faults.http_5xx = Script(script="x" * 4)   # both first uploads run out of their 2 tries
    cfg = write_config(tmp_path, server.base_url, retries__max_attempts=2, retries__outage_failures=10,
                       retries__outage_min_s=0.5, concurrency__jobs_in_flight=2, concurrency__adaptive=False)
    code, report, out = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK, out
    assert server.counters.server_errors == 4 and report["api_calls"]["outage"]["longest_failure_streak"] == 2
    rows = file_rows(tmp_path)
    assert {r.rel for r in rows if r.state == "done"} == set(names) and all(r.failures == 0 for r in rows)
    assert server.counters.jobs_created == len(names)   # a 5xx answer made no job: paid once


@dataclass
class ApiAway(FaultRule):
    """The API going away at the second upload (the connection closed after the upload, as a
    balancer with no replica left does) until another call comes: as ``drop_before_create`` it
    cuts the uploads while away; as ``http_5xx`` (on status and balance calls) it fails none and
    is back from the first such call after the cut."""

    away: list = None
    cuts: int = 0

    def fire(self, rng) -> bool:
        return False


class Cut(ApiAway):
    def fire(self, rng) -> bool:
        self.cuts += 1
        if self.cuts == 2:     # the first upload is taken; the API goes away at the second
            self.away.append(True)
        return bool(self.away)


class Back(ApiAway):
    def fire(self, rng) -> bool:
        self.away.clear()
        return False


async def test_an_upload_cut_off_by_an_api_going_away_is_resent_when_it_answers_not_struck(tmp_path, server):
    # Found on a fleet chaos tour: both replicas killed for 10-40 s, a balancer taking uploads and
    # closing; the knowing resend after an unknown outcome went at once, met the same outage and
    # the file failed "submit outcome unknown twice" with a strike (exit 1).
    names = tree(tmp_path, 2)
    away: list = []
    server.faults.drop_before_create = Cut(away=away)
    server.faults.endpoints = ("status", "balance")
    server.faults.http_5xx = Back(away=away)
    server.faults.latency = 1.5   # the first file's job is still polled when the second upload is cut
    cfg = write_config(tmp_path, server.base_url, retries__outage_min_s=60, concurrency__jobs_in_flight=2,
                       concurrency__adaptive=False, polling__first_poll_s=0.3, polling__min_interval_s=0.3,
                       polling__max_interval_s=0.5)
    code, report, out = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK, out
    assert server.faults.drop_before_create.cuts == 3      # two first uploads (one cut), the resend
    assert server.counters.jobs_created == len(names)    # the cut upload made no job: paid once
    assert all(r.state == "done" and r.failures == 0 for r in file_rows(tmp_path))
    assert [d["rel"] for d in report["possible_duplicates"]] == [d["rel"] for d in report["resubmissions"]]
    assert len(report["possible_duplicates"]) == 1        # said, though nothing was paid twice


def red_marked_png(path, seed: int):
    """A page the server's ``poison_red`` fault chokes on (500 to every upload of it)."""
    distinct_png(path, seed, (120, 80))
    from PIL import Image, ImageDraw
    with Image.open(path) as im:
        im = im.convert("RGB")
    ImageDraw.Draw(im).rectangle((0, 0, 30, 30), fill=(255, 0, 0))
    im.save(path)


@pytest.mark.parametrize("api", ["up", "gone"])
async def test_a_block_of_pages_the_api_chokes_on_is_told_from_an_outage_by_a_test_page(tmp_path, server, api):
    # 12 pages the API answers 500 to, first in walk order, fill every job slot: every upload
    # fails and nothing else is answered. Before, that was taken for an outage every time (exit 6,
    # the pages forgiven), so a nightly run stopped at the same place each night and never
    # reached the 8 good pages after them. A test page now tells the two apart.
    bad = [f"a_bad/p{i:02d}.png" for i in range(12)]
    good = [f"b_good/p{i:02d}.png" for i in range(8)]
    for i, rel in enumerate(bad):
        red_marked_png(tmp_path / "in" / rel, i)
    for i, rel in enumerate(good):
        distinct_png(tmp_path / "in" / rel, 100 + i, (120, 80))
    server.faults.poison_red = True
    server.faults.endpoints = ("submit",)
    if api == "gone":   # ... and an API whose uploads all fail once the bad pages are met
        server.faults.http_5xx = Script(script="." * 0, then_fail=True)
    cfg = write_config(tmp_path, server.base_url, retries__max_attempts=1, retries__outage_failures=4,
                       retries__outage_min_s=0, retries__max_transient_runs=1, concurrency__jobs_in_flight=4,
                       concurrency__adaptive=False)
    code, report, out = await run_pipeline(cfg, TOKEN)
    outage = report["api_calls"]["outage"]
    rows = {r.rel: r for r in file_rows(tmp_path)}
    if api == "gone":   # the test page failed too: an outage, as before, and nobody struck
        assert code == ExitCode.API_UNREACHABLE, out
        assert outage["probes"] == 1 and outage["probes_taken"] == 0, outage
        assert server.counters.jobs_created == 0
        assert all(r.failures == 0 and r.state not in FAILED_STATES for r in rows.values()), out
        return
    assert code == ExitCode.FILES_FAILED, out
    assert outage["outage"] is None and outage["probes_taken"] == outage["probes"] >= 1, outage
    assert {rel for rel, r in rows.items() if r.state == "done"} == set(good)
    failed = {rel for rel, r in rows.items() if r.state in FAILED_STATES}
    assert failed == set(bad), out
    assert all("500" in rows[rel].error for rel in bad), [rows[rel].error for rel in bad]
    # the good pages once each (each done needs a job), plus the test pages the API took (paid,
    # never polled)
    assert server.counters.jobs_created == len(good) + outage["probes_taken"]
    assert "the pages whose uploads failed are the API's to refuse" in out   # the log says why they count


async def test_a_budget_that_cannot_pay_the_test_page_stops_the_run_as_a_cap_not_an_outage(tmp_path, server):
    # Three uploads the API refuses (500, each counted as spent: the job may exist) meet the
    # breaker's count, and the test page (1240x800, no page taken yet) costs more than
    # budget.max_cost_per_run has left, though small pages would still fit. Before, a test page
    # the budget would not pay for opened the breaker: exit 6, "the API went away", for a spent
    # budget. Now the cap stops the run's uploads as it would at a page: exit 3, the cap named,
    # the streak's files given back unstruck.
    for i in range(6):
        red_marked_png(tmp_path / "in" / f"a_bad/p{i:02d}.png", i)
    server.faults.poison_red = True
    server.faults.endpoints = ("submit",)
    small = server.state.ledger.quote(120, 80)
    assert server.state.ledger.quote(1240, 800) > 2 * small
    cfg = write_config(tmp_path, server.base_url, retries__max_attempts=1, retries__outage_failures=3,
                       retries__outage_min_s=0, retries__max_transient_runs=1, concurrency__jobs_in_flight=3,
                       concurrency__adaptive=False, budget__max_cost_per_run=round(5 * small, 6))
    code, report, out = await run_pipeline(cfg, TOKEN)
    outage = report["api_calls"]["outage"]
    assert code == ExitCode.STOPPED_EARLY, out
    assert report["cost"]["cap_reached"] == "budget.max_cost_per_run", report["cost"]
    assert outage["outage"] is None and outage["probes"] == 1 and outage["probes_taken"] == 0, outage
    assert "went away" not in out, out
    rows = file_rows(tmp_path)
    assert all(r.failures == 0 and r.state not in FAILED_STATES for r in rows), [(r.rel, r.state, r.error) for r in rows]
    assert server.counters.jobs_created == 0


async def test_a_stop_ends_the_wait_of_an_upload_to_be_sent_again(tmp_path, server):
    tree(tmp_path, 6)
    fail_uploads(server)
    # no breaker, and a wait for the API's answer far beyond the test's: only the stop ends it
    cfg = write_config(tmp_path, server.base_url, retries__max_attempts=2, retries__outage_failures=0,
                       retries__outage_min_s=3000, shutdown_grace_s=3000, concurrency__jobs_in_flight=1,
                       concurrency__adaptive=False)
    runner, run = start_runner(cfg)
    while runner._ctx is None or runner._ctx.outage._next is None:   # the first upload waits to be resent
        assert not run.done(), runner.stream.getvalue()
        await asyncio.sleep(0.01)
    runner._on_signal(signal.SIGTERM)
    code = await asyncio.wait_for(run, 60)
    out = runner.stream.getvalue()
    assert code == ExitCode.STOPPED_EARLY and runner.report["this_run"] == {"deferred": 6}, out
    assert all(r.failures == 0 and r.state not in FAILED_STATES for r in file_rows(tmp_path))
    assert server.counters.jobs_created == 0 and server.counters.server_errors == 2


async def test_an_upload_the_api_fails_after_a_ctrl_c_waits_for_the_next_run_unstruck(tmp_path, server):
    # A Ctrl-C lands while an upload is out (the crash point: right before its bytes leave) and
    # the API fails it (a 5xx after its retries). Before, that upload's file took a strike at
    # once (failed_transient, quarantined with max_transient_runs 1), though it had failed only
    # once and a stop is what kept it from being sent once more; an upload that the stop caught
    # waiting to be resent was parked unstruck. Found by Ctrl-Cs through a terminal during a
    # block of pages the API chokes on. Now both wait for the next run, no strike.
    tree(tmp_path, 1)
    fail_uploads(server)
    cfg = write_config(tmp_path, server.base_url, retries__max_attempts=1, retries__max_transient_runs=1)
    env = dict(os.environ, PIPELINE_TEST_TOKEN=TOKEN, PIPELINE_CRASHPOINT="before_submit:1:SIGINT")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "pipeline", "run", str(cfg), env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    out = err.decode()
    assert proc.returncode == ExitCode.STOPPED_EARLY, out
    assert server.counters.submits == 1 and server.counters.server_errors == 1   # it was sent, and failed
    rows = file_rows(tmp_path)
    assert [(r.failures, r.state in FAILED_STATES) for r in rows] == [(0, False)], [(r.state, r.error) for r in rows]
    assert "stopping (signal SIGINT)" in out and "failed:" not in out, out


async def test_a_stop_while_the_test_page_is_out_strikes_none_of_the_streaks_files(tmp_path, server):
    # Every upload fails (503, Retry-After 1: each try of the test page waits a second). A file
    # fails twice in a streak that meets the breaker's count and window, and the test page goes
    # out; a Ctrl-C comes while it is out, so there is no verdict. Before, the files failed in
    # that streak kept their strikes (quarantined with max_transient_runs 1), though without
    # the test page the breaker would have opened and given them back, and a stop that keeps
    # the test page from its answer says nothing about them. Found by a Ctrl-C during an
    # outage: exit 3, a file quarantined. Now they wait for the next run, the stop's exit kept.
    tree(tmp_path, 2)
    fail_uploads(server)
    server.faults.retry_after_5xx = 1
    cfg = write_config(tmp_path, server.base_url, retries__max_attempts=2, retries__outage_failures=3,
                       retries__outage_min_s=0, retries__max_transient_runs=1, concurrency__jobs_in_flight=2,
                       concurrency__adaptive=False)
    runner, run = start_runner(cfg)
    struck: set[str] = set()
    while not struck or runner._ctx.outage._probing is None:   # the test page out, a file struck
        assert not run.done(), (run.result(), struck, runner.stream.getvalue())
        await asyncio.sleep(0.01)
        if runner._ctx is not None:
            struck = {r.rel for r in file_rows(tmp_path) if r.failures}
    runner._on_signal(signal.SIGINT)
    code = await asyncio.wait_for(run, 60)
    out = runner.stream.getvalue()
    assert code == ExitCode.STOPPED_EARLY and "went away" not in out, out
    assert runner.report["api_calls"]["outage"]["probes"] == 1, runner.report["api_calls"]["outage"]
    rows = file_rows(tmp_path)
    assert [(r.failures, r.state in FAILED_STATES) for r in rows] == [(0, False)] * 2, out
    assert all(r.error.startswith(NOT_DECIDED) for r in rows if r.rel in struck), [r.error for r in rows]
    assert "not counted as failed (nor quarantined)" in out, out
    assert runner.report["this_run"] == {"deferred": 2}, out
    assert server.counters.jobs_created == 0


async def test_an_api_failing_from_the_start_is_unreachable_not_gone_mid_run(tmp_path, server):
    # Before: with outage_failures 1 the start-up check's one failure opened the breaker, and the
    # log and report said "the API went away mid-run" of an API the run never reached.
    tree(tmp_path, 3)
    server.faults.endpoints = ("models",)
    server.faults.http_5xx = FaultRule(rate=1.0)
    cfg = write_config(tmp_path, server.base_url, retries__max_attempts=1, retries__outage_failures=1,
                       retries__outage_min_s=0)
    code, report, out = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.API_UNREACHABLE and "cannot be reached" in out, out
    assert "went away mid-run" not in out and report["api_calls"]["outage"]["outage"] is None


@dataclass
class StopServer(FaultRule):
    """Not a fault of its own: at its ``at``-th event the server shuts down (its port closed:
    connections refused or cut), as a server process that dies mid-run; counted by the server."""

    at: int = 1
    server: EmbeddedServer | None = None
    stopped: asyncio.Task | None = None

    def fire(self, rng) -> bool:
        self.at -= 1
        if self.at == 0:
            self.stopped = asyncio.get_running_loop().create_task(self.server.stop())
        return False


async def test_a_server_that_stops_mid_run_is_an_outage_not_failed_files(tmp_path):
    names = tree(tmp_path, 40)
    async with EmbeddedServer(ServerConfig(engine="fast", tokens=(TOKEN,), profile="unlimited")) as srv:
        srv.faults.endpoints = ("submit",)
        srv.faults.http_5xx = rule = StopServer(at=6, server=srv)
        cfg = write_config(tmp_path, srv.base_url, retries__max_attempts=2, retries__outage_failures=4,
                           retries__outage_min_s=0, retries__max_transient_runs=1,
                           concurrency__jobs_in_flight=2, concurrency__adaptive=False)
        code, report, out = await run_pipeline(cfg, TOKEN)
        await rule.stopped
    assert code == ExitCode.API_UNREACHABLE, out
    assert "went away mid-run" in report["stop_reason"] and "cannot reach the API" in report["stop_reason"]
    rows = file_rows(tmp_path)
    assert not [r.rel for r in rows if r.state in FAILED_STATES] and all(r.failures == 0 for r in rows)
    assert len(names) - len([r for r in rows if r.state == "done"]) >= 30


async def test_blips_of_5xx_between_answers_do_not_trip_and_their_files_count_as_today(tmp_path, server):
    tree(tmp_path, 20)
    # two blips of 3 failed submits each, with answers in between: 6 failures, never 4 in a row
    server.faults.endpoints = ("submit",)
    server.faults.http_5xx = Script(script="..." + "xxx" + "....." + "xxx")
    cfg = write_config(tmp_path, server.base_url, retries__max_attempts=1, retries__outage_failures=4,
                       retries__outage_min_s=0, concurrency__jobs_in_flight=1, concurrency__adaptive=False)
    code, report, out = await run_pipeline(cfg, TOKEN)
    assert server.counters.server_errors == 6
    assert code == ExitCode.FILES_FAILED, out                  # the files refused while others succeeded
    assert report["api_calls"]["outage"]["outage"] is None and report["stop_reason"] is None
    assert report["api_calls"]["outage"]["longest_failure_streak"] == 3
    # each refused upload is sent once more (nothing was paid): in each blip the first file's
    # second upload meets the blip too and fails, with its strike (before the resend: 6 failed);
    # the second file's is answered
    assert report["this_run"] == {"done": 18, "failed": 2}
    failed = [r for r in file_rows(tmp_path) if r.state in FAILED_STATES]
    assert len(failed) == 2 and all(r.state == "failed_transient" and r.failures == 1 for r in failed)


def test_the_breaker_wants_both_the_count_and_the_time_window():
    now = [0.0]
    trips = []
    b = OutageBreaker(3, 60.0, on_trip=lambda reason, suspects: trips.append((reason, suspects)),
                      clock=lambda: now[0])
    down = E.TransportError("cannot reach the API")
    for _ in range(5):                         # never reached yet: the start-up check's to say, not a trip
        b.observe(down)
    assert b.streak == 0 and not b.open
    b.observe(None, "models")                  # the start-up check answered
    for _ in range(5):                         # many failures in a few seconds: not yet an outage
        b.observe(down)
        now[0] += 1.0
    b.file_failed("a.png", 2, "cannot reach the API")
    assert not b.open and not trips
    b.observe(E.ValidationError("bad", {}, status=422))   # an answer, even a refusal: the API is there
    assert b.streak == 0
    b.observe(down)
    b.file_failed("b.png", 0, "cannot reach the API")
    b.observe(E.SubmissionsShut("not sent: the run is stopping"))   # decided on our side: neutral
    now[0] += 61.0
    b.observe(down)
    b.observe(down)
    assert b.open and len(trips) == 1
    assert [(s.rel, s.failures) for s in trips[0][1]] == [("b.png", 0)]   # a.png's failure stands


def test_an_endpoint_failing_while_others_answer_trips_on_its_own_streak_but_a_price_route_does_not():
    trips = []
    b = OutageBreaker(3, 0.0, on_trip=lambda reason, suspects: trips.append((reason, suspects)))
    gone = E.ServerError("the API answered 502", status=502)
    for i in range(5):                        # the price route is gone; a quote is only not known
        b.observe(gone, "price")
        b.observe(None, "submit")
    assert not b.open
    for i in range(3):                        # each new upload is taken; its polls all fail
        b.observe(None, "submit")
        b.observe(gone, "status")
        if not b.open:                        # after it opens, the run forgives a failure at once
            b.file_failed(f"p{i}.png", 1, "the API answered 502")
    assert b.open and "3 status calls in a row failed" in trips[0][0]
    assert [(s.rel, s.failures) for s in trips[0][1]] == [("p0.png", 1), ("p1.png", 1)]


@pytest.mark.parametrize("verdict", ["taken", "refused", "not sent"])
async def test_a_streak_of_failed_uploads_asks_a_test_page_before_the_breaker_opens(verdict):
    now = [0.0]
    trips = []
    down = E.ServerError("the API answered 502", status=502)
    sent = asyncio.Event()

    async def test_page() -> bool | None:   # as RunProbe: its upload's outcome goes through observe
        await sent.wait()
        if verdict == "not sent":   # the run began to stop while it waited
            return None
        b.observe(None if verdict == "taken" else down, "submit")
        return verdict == "taken"

    given_back = []
    b = OutageBreaker(3, 60.0, on_trip=lambda reason, suspects: trips.append(suspects),
                      on_undecided=lambda suspects: given_back.append([s.rel for s in suspects]),
                      clock=lambda: now[0], probe=test_page)
    b.observe(None, "models")
    for _ in range(4):
        b.observe(down, "submit")
        now[0] += 30.0
    b.file_failed("a.png", 0, "502")
    assert b.probes == 1 and not b.open       # the count and the window are met: the test page first
    b.observe(down, "submit")                 # more failed uploads while it is out decide nothing
    assert b.probes == 1 and not b.open
    waiting = asyncio.create_task(b.next_answer(0))   # an upload to be sent once more waits for its verdict
    await asyncio.sleep(0)
    assert not waiting.done()
    sent.set()
    await asyncio.wait_for(waiting, 5)
    if verdict == "refused":                  # the API is gone: open, and a.png's strike given back
        assert b.open and [[s.rel for s in t] for t in trips] == [["a.png"]] and b.gives_back == NOT_COUNTED
        return
    if verdict == "not sent":                 # nothing learnt: the stop under way decides, not an outage,
        assert not b.open and not trips and b.probes_taken == 0
        assert given_back == [["a.png"]] and b.gives_back == NOT_DECIDED   # and strikes nobody
        b.observe(down, "submit")             # an upload already out fails after it: still the stop's
        assert not b.open and not trips
        b.observe(down, "status")             # ... but polls failing too are the API gone
        assert b.open and trips == [[]]
        return
    assert not given_back and b.gives_back is None
    assert not b.open and b.streak == 0 and b.probes_taken == 1
    now[0] += 59.0                            # within outage_min_s of it, a failed upload waits for nothing
    await asyncio.wait_for(b.next_answer(1000), 5)
    for _ in range(4):                        # a new streak of failed uploads: a test page of its own
        b.observe(down, "submit")
        now[0] += 30.0
    assert b.probes == 2
    b.close()


@pytest.mark.parametrize("stopping", [False, True])
async def test_a_run_whose_files_are_through_waits_for_the_test_pages_verdict_unless_it_stops(stopping):
    # A block of refused pages at the end of the tree: the last uploads fail while the test page
    # is out and the files are through before its verdict. Closing then (no verdict) gave the
    # block back every night, never struck; the run now waits for the verdict, unless it stops.
    down = E.ServerError("the API answered 502", status=502)
    answer = asyncio.Event()

    async def test_page() -> bool:
        await answer.wait()
        b.observe(None, "submit")
        return True

    given_back = []
    b = OutageBreaker(3, 0.0, on_undecided=lambda suspects: given_back.append([s.rel for s in suspects]),
                      probe=test_page)
    b.observe(None, "models")
    for _ in range(3):
        b.observe(down, "submit")
    b.file_failed("last.png", 0, "502")
    assert b.probes == 1
    settled = asyncio.create_task(b.settle(lambda: stopping))
    await asyncio.sleep(0.05)
    assert settled.done() == stopping          # a stop does not wait for it
    answer.set()
    await asyncio.wait_for(settled, 5)
    if stopping:                               # no verdict: last.png is given back, as for a Ctrl-C
        assert given_back == [["last.png"]] and b.probes_taken == 0
    else:                                      # taken: the API is there, and last.png's strike stands
        assert given_back == [] and b.probes_taken == 1 and not b.undecided
