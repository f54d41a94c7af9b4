"""Budget caps and the balance: each cap stops submitting (exit 3, the cap named in the report)
and the next run continues; the day is a calendar day in the configured time zone (an injected
clock crosses midnight); the balance is checked before the first submit and spent down page by
page, so a run never submits into "Not enough balance." answers (exit 5).

The real runner against the project's own server over loopback (fast engine); the server's
counters say what was submitted.
"""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from conftest import TOKEN
from helpers import distinct_png, run_pipeline, write_config
from pipeline.run.budget import Budget, CapReached
from pipeline.config import BudgetConfig
from pipeline.exitcodes import ExitCode
from pipeline.run.pricing import bucket
from pipeline.server import EmbeddedServer, FaultRule, ServerConfig
from pipeline.run.state import StateStore

SIZE = (1000, 1000)   # bucket 1024x1024: 0.002097 a page at the server's 0.002 per megapixel


def tree(tmp_path, n, size=SIZE, start=0):
    for i in range(start, start + n):
        distinct_png(tmp_path / "in" / f"p{i:02d}.png", seed=i, size=size)


def page_price(server, size=SIZE) -> float:
    return server.state.ledger.quote(*bucket(*size))


def ts(text: str, zone: str = "UTC") -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


async def test_max_pages_per_run_stops_with_the_cap_named_and_the_next_run_continues(tmp_path, server):
    tree(tmp_path, 5)
    cfg = write_config(tmp_path, server.base_url, budget__max_pages_per_run=2, concurrency__jobs_in_flight=1)
    code, report, out = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.STOPPED_EARLY
    assert "budget.max_pages_per_run" in report["stop_reason"]
    assert "pipeline: stopped early: budget.max_pages_per_run" in out   # what a cron mail shows
    assert report["cost"]["cap_reached"] == "budget.max_pages_per_run"
    assert server.counters.jobs_created == 2 and report["cost"]["pages_submitted"] == 2
    assert report["this_run"]["done"] == 2
    code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.STOPPED_EARLY and server.counters.jobs_created == 4
    code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK and report["cost"]["cap_reached"] is None
    assert server.counters.jobs_created == 5
    assert sorted(server.counters.submits_by_hash.values()) == [1] * 5   # every page paid once


async def test_max_cost_per_run_admits_what_fits_and_resumes(tmp_path, server):
    tree(tmp_path, 4)
    price = page_price(server)
    cfg = write_config(tmp_path, server.base_url, budget__max_cost_per_run=round(2.5 * price, 6))
    code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.STOPPED_EARLY and "budget.max_cost_per_run" in report["stop_reason"]
    assert server.counters.jobs_created == 2
    assert report["cost"]["quoted_cost"] == pytest.approx(2 * price)
    code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK and server.counters.jobs_created == 4


async def test_max_cost_per_day_counts_across_runs_until_the_day_changes(tmp_path, server):
    tree(tmp_path, 5)
    price = page_price(server)
    cfg = write_config(tmp_path, server.base_url, budget__max_cost_per_day=round(2.5 * price, 6),
                       budget__time_zone="Europe/Berlin", concurrency__jobs_in_flight=1)
    evening = ts("2026-12-02T23:50:00", "Europe/Berlin")
    code, report, _ = await run_pipeline(cfg, TOKEN, now=lambda: evening)
    assert code == ExitCode.STOPPED_EARLY and server.counters.jobs_created == 2
    assert report["cost"]["day"] == {"date": "2026-12-02", "time_zone": "Europe/Berlin", "pages_submitted": 2,
                                     "quoted_cost": pytest.approx(2 * price)}
    # Same day, a new run: the day's spend is in the state store, so nothing more is sent.
    code, report, _ = await run_pipeline(cfg, TOKEN, now=lambda: evening + 300)
    assert code == ExitCode.STOPPED_EARLY and server.counters.jobs_created == 2
    assert report["cost"]["cap_reached"] == "budget.max_cost_per_day"
    # 23:10 UTC is already the next day in Berlin: the count starts again.
    next_day = ts("2026-12-02T23:10:00", "UTC") + 3600
    code, report, _ = await run_pipeline(cfg, TOKEN, now=lambda: next_day)
    assert server.counters.jobs_created == 4 and report["cost"]["day"]["date"] == "2026-12-03"


def test_the_day_is_the_calendar_day_in_the_configured_zone(tmp_path):
    state = StateStore(tmp_path / "s.sqlite")
    try:
        moment = ts("2026-12-02T23:30:00", "UTC")
        assert Budget(BudgetConfig(), state, 1, now=lambda: moment).day() == "2026-12-02"
        assert Budget(BudgetConfig(time_zone="Europe/Berlin"), state, 1, now=lambda: moment).day() == "2026-12-03"
        assert Budget(BudgetConfig(time_zone="America/New_York"), state, 1, now=lambda: moment).day() == "2026-12-02"
    finally:
        state.close()


def test_a_page_of_unknown_price_is_refused_only_under_a_cost_cap(tmp_path):
    state = StateStore(tmp_path / "s.sqlite")
    try:
        Budget(BudgetConfig(max_pages_per_run=5), state, 1).admit(None)
        with pytest.raises(CapReached, match="price could not be asked"):
            Budget(BudgetConfig(max_cost_per_day=1.0), state, 1).admit(None)
        b = Budget(BudgetConfig(max_cost_per_run=1.0), state, 1)
        b.admit(0.6)
        b.release(0.6)                  # no job was created: nothing spent, nothing reserved
        b.admit(0.6)
        b.commit(0.6)
        with pytest.raises(CapReached):
            b.admit(0.6)
        assert state.spend_on_day(b.day()) == (1, pytest.approx(0.6))
    finally:
        state.close()


def test_a_bad_time_zone_is_a_config_error_naming_the_key(tmp_path):
    from pipeline.config import ConfigError, load_config

    cfg = write_config(tmp_path, "http://127.0.0.1:1", budget__time_zone="Mars/Olympus")
    with pytest.raises(ConfigError, match="budget.time_zone"):
        load_config(cfg)
    cfg = write_config(tmp_path, "http://127.0.0.1:1", budget__max_cost_per_run=-1)
    with pytest.raises(ConfigError, match="budget.max_cost_per_run"):
        load_config(cfg)


async def test_caps_from_the_command_line_override_the_config(tmp_path):
    from pipeline.cli import _overrides, _parser
    from pipeline.config import load_config

    cfg = write_config(tmp_path, "http://127.0.0.1:1", budget__max_pages_per_run=100)
    args = _parser().parse_args(["run", str(cfg), "--max-pages", "3", "--max-cost", "1.5",
                                 "--max-cost-per-day", "4"])
    b = load_config(cfg, _overrides(args)).budget
    assert (b.max_pages_per_run, b.max_cost_per_run, b.max_cost_per_day) == (3, 1.5, 4.0)


def test_a_bad_cap_on_the_command_line_is_named_by_its_flag(tmp_path, capsys):
    from pipeline.cli import main

    cfg = write_config(tmp_path, "http://127.0.0.1:1")
    assert main(["plan", str(cfg), "--max-cost", "-1"]) == ExitCode.CONFIG_ERROR
    assert "config error: --max-cost (budget.max_cost_per_run): must be at least 0" in capsys.readouterr().err


async def test_a_balance_running_out_stops_submissions_before_the_api_refuses(tmp_path):
    async with EmbeddedServer(ServerConfig(engine="fast", tokens=(TOKEN,), profile="unlimited",
                                           balance=0.0075)) as srv:
        tree(tmp_path, 6)
        price = page_price(srv)
        assert 3 * price < 0.0075 < 4 * price
        code, report, out = await run_pipeline(write_config(tmp_path, srv.base_url), TOKEN)
        assert code == ExitCode.AUTH_OR_BALANCE
        assert "balance" in out
        assert srv.counters.jobs_created == 3
        assert srv.counters.validation_errors == 0      # never a submit into "Not enough balance."
        assert report["cost"]["balance_at_start"] == pytest.approx(0.0075)
        assert report["this_run"]["done"] == 3
        assert "balance" in (report["stop_reason"] or "")   # the report says why, as the log does


async def test_a_balance_the_api_refuses_mid_run_stops_every_later_submit(tmp_path):
    # The balance route fails (so the client cannot spend it down): the API's own "Not enough
    # balance." answer must end the submissions at once, with exit 5.
    async with EmbeddedServer(ServerConfig(engine="fast", tokens=(TOKEN,), profile="unlimited",
                                           balance=0.0052)) as srv:   # 2.5 pages
        srv.faults.endpoints = ("balance",)
        srv.faults.http_5xx = FaultRule(rate=1.0)
        tree(tmp_path, 6)
        cfg = write_config(tmp_path, srv.base_url, concurrency__jobs_in_flight=1)
        code, report, out = await run_pipeline(cfg, TOKEN)
        assert code == ExitCode.AUTH_OR_BALANCE and "balance" in out
        assert srv.counters.jobs_created == 2
        assert srv.counters.validation_errors == 1       # the one refusal that told us, no more
        assert report["cost"]["balance_at_start"] is None
        assert report["this_run"]["done"] == 2
        assert "balance" in (report["stop_reason"] or "").lower()


async def test_a_short_balance_warns_or_refuses_to_start(tmp_path):
    from pipeline.run.plan import Planner
    from pipeline.config import load_config

    async with EmbeddedServer(ServerConfig(engine="fast", tokens=(TOKEN,), profile="unlimited",
                                           balance=0.005)) as srv:
        tree(tmp_path, 4)
        cfg = write_config(tmp_path, srv.base_url, budget__refuse_short_balance=True)
        import os
        os.environ["PIPELINE_TEST_TOKEN"] = TOKEN
        code, plan, _ = await Planner(load_config(cfg)).plan()
        assert plan["balance_lasts"] is False and plan["estimated"]["estimated_cost"] > 0.005
        code, report, out = await run_pipeline(cfg, TOKEN)
        assert code == ExitCode.AUTH_OR_BALANCE and "will not last" in out
        assert srv.counters.submits == 0
        # Without the refusal it warns and runs until the balance is spent (exit 5, no 422).
        cfg = write_config(tmp_path, srv.base_url)
        code, report, out = await run_pipeline(cfg, TOKEN)
        assert "warning" in out and "will not last" in out
        assert code == ExitCode.AUTH_OR_BALANCE and srv.counters.jobs_created == 2
        assert srv.counters.validation_errors == 0


async def test_status_shows_pages_and_cost_per_run_and_per_day(tmp_path, server):
    from pipeline.run.audit import format_status, status_report
    from pipeline.config import load_config

    tree(tmp_path, 3)
    cfg = write_config(tmp_path, server.base_url, budget__max_pages_per_run=2)
    await run_pipeline(cfg, TOKEN)
    await run_pipeline(cfg, TOKEN)
    report = status_report(load_config(cfg))
    price = page_price(server)
    runs = sorted(report["cost"]["by_run"], key=lambda r: r["run_id"])
    assert [(r["pages"], r["cost"]) for r in runs] == [(2, pytest.approx(2 * price)), (1, pytest.approx(price))]
    (day,) = report["cost"]["by_day"]
    assert day["pages"] == 3 and day["cost"] == pytest.approx(3 * price)
    text = format_status(report)
    assert "spent by day" in text and "3 pages" in text and "#1 2 pages" in text


def test_the_planned_cost_is_what_is_left_of_the_last_plan(tmp_path):
    state = StateStore(tmp_path / "s.sqlite")
    try:
        assert state.last_plan_cost() is None
        state.set_last_plan({"estimated_cost": 1.0, "pages_to_send": 10, "at": "x", "at_ts": 1000.0})
        state.record_spend(1, "2026-12-02", 1, 0.25, at=999.0)     # before the plan: already counted in it
        state.record_spend(2, "2026-12-02", 1, 0.3, at=1001.0)     # after it: part of the plan, spent
        assert state.last_plan_cost() == pytest.approx(0.7)
    finally:
        state.close()


async def test_a_page_whose_upload_a_kill_left_unanswered_counts_on_the_day(tmp_path, server):
    """The run is killed between an upload and its answer (the job made and charged, its request
    id never recorded: ``drop_after_create`` and the ``outcome_unknown`` crash point stand in for a
    kill -9 mid-POST). The next run meets the page and sends it again, knowingly. Before, the first
    job was in no ledger: the day's spend was a page short of what the server had charged, and
    the day's cap counted from there."""
    from test_crash_safety import run_cli

    tree(tmp_path, 4)
    price = page_price(server)
    server.faults.drop_after_create = FaultRule(count=1)
    cfg = write_config(tmp_path, server.base_url, budget__max_cost_per_day=round(3.5 * price, 6),
                       concurrency__jobs_in_flight=1)
    code, out = await run_cli("run", str(cfg), crashpoint="outcome_unknown:1")
    assert code == -9 and server.counters.jobs_created == 1, out

    def day_spend() -> tuple[int, float]:
        state = StateStore(tmp_path / "out" / ".pipeline" / "state.sqlite")
        try:
            return state.spend_on_day(Budget(BudgetConfig(), state, None).day())
        finally:
            state.close()

    code, out = await run_cli("run", str(cfg))
    assert code == ExitCode.STOPPED_EARLY and "budget.max_cost_per_day" in out, out
    jobs = server.counters.jobs_created
    assert jobs in (3, 4) and day_spend() == (jobs, pytest.approx(jobs * price))   # the server's truth
    code, out = await run_cli("run", str(cfg), "--max-cost-per-day", str(round(10 * price, 6)))
    assert code == ExitCode.OK and server.counters.jobs_created == 5, out
    assert sorted(server.counters.submits_by_hash.values()) == [1, 1, 1, 2]   # one page paid twice, admitted
    assert day_spend() == (5, pytest.approx(5 * price))


async def test_an_unknown_upload_is_admitted_once_by_the_run_that_sends_it_again(tmp_path, server):
    """A kill mid-upload leaves one page's outcome unknown (the job made and charged). Two runs
    then stop at a cap before sending that page again; the third sends it. Before, each of the
    three runs counted the same unknown outcome (the page's ``unknown_outcomes`` 3 of 2 submits,
    ``status`` listing it so) and the two that sent nothing logged that they had sent it again, and
    counted it among their resubmitted pages. Now the run that sends it again admits it, once."""
    from test_crash_safety import run_cli

    tree(tmp_path, 2)
    server.faults.drop_after_create = FaultRule(count=1)
    cfg = write_config(tmp_path, server.base_url, concurrency__jobs_in_flight=1)
    code, out = await run_cli("run", str(cfg), crashpoint="outcome_unknown:1")
    assert code == -9 and server.counters.jobs_created == 1, out
    report_file = tmp_path / "out" / ".pipeline" / "run-report.json"
    for _ in range(2):
        code, out = await run_cli("run", str(cfg), "--max-cost", "0.000001")
        report = json.loads(report_file.read_text())
        assert code == ExitCode.STOPPED_EARLY and server.counters.jobs_created == 1, out
        assert (report["possible_duplicate_submits"], report["resubmitted_pages"]) == (0, 0), report
        assert "were sent again" not in out
    code, out = await run_cli("run", str(cfg))
    report = json.loads(report_file.read_text())
    assert code == ExitCode.OK and server.counters.jobs_created == 3, out
    assert sorted(server.counters.submits_by_hash.values()) == [1, 2]
    assert (report["possible_duplicate_submits"], report["resubmitted_pages"]) == (1, 1)
    assert [(d["unknown_outcomes"], d["submits"]) for d in report["possible_duplicates"]] == [(1, 2)]
    assert "1 submits had an unknown outcome" in out
