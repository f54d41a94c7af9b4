"""``pipeline plan``: the dry run's counts (files and pages to send, skipped as done, duplicates,
rejects by reason, free text-layer pages, bytes), its JSON and text forms, ``--limit`` with its
scaling stated, the caps it would hit, its price requests (one per bucket, cached), and that it
submits nothing (the server's counters).
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

import pdfs
from conftest import TOKEN
from helpers import distinct_png, run_pipeline, save, text_page, write_config
from pipeline.config import load_config
from pipeline.exitcodes import ExitCode
from pipeline.run.plan import Planner, format_plan
from pipeline.run.pricing import bucket
from pipeline.run.state import StateStore


async def plan(cfg, **kw):
    os.environ["PIPELINE_TEST_TOKEN"] = TOKEN
    code, report, error = await Planner(load_config(cfg), **kw).plan()
    assert code == ExitCode.OK, error
    return report


def test_a_stopped_plan_says_so_and_exits_3_without_a_partial_plan(tmp_path):
    # Before, a Ctrl-C (or a stop: SIGTERM takes the same way out) ended `plan` with exit 3 and
    # not a word: nothing told the user whether the numbers were complete or what was sent.
    import subprocess
    import sys
    distinct_png(tmp_path / "in" / "a.png", seed=1, size=(300, 200))
    distinct_png(tmp_path / "in" / "b.png", seed=2, size=(300, 200))
    cfg = write_config(tmp_path, "embedded", api__embedded__engine="fast")
    proc = subprocess.run([sys.executable, "-m", "pipeline", "plan", str(cfg)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PIPELINE_CRASHPOINT": "plan_file:2:SIGINT"})
    assert proc.returncode == ExitCode.STOPPED_EARLY, proc.stderr
    assert "plan stopped by a signal; nothing was submitted" in proc.stderr
    assert "files in tree" not in proc.stdout and "Traceback" not in proc.stderr


def mixed_tree(tmp_path):
    inp = tmp_path / "in"
    distinct_png(inp / "a.png", seed=1, size=(300, 200))
    distinct_png(inp / "b.png", seed=2, size=(800, 600))
    (inp / "copies").mkdir()
    shutil.copy(inp / "a.png", inp / "copies" / "a-again.png")
    frames = [text_page(f"page {i}", size=(600, 300)) for i in range(3)]
    frames[0].save(inp / "report.tif", save_all=True, append_images=frames[1:], compression="tiff_deflate")
    (inp / "notes.png").write_text("this is not an image at all, only words")
    (inp / "empty.jpg").write_bytes(b"")
    pdfs.write(inp / "mixed.pdf", pdfs.build([("text", "A born-digital page with plenty of real text on it."),
                                              ("scan", "A scanned page")]))
    return inp


async def test_plan_counts_what_a_run_would_send_and_submits_nothing(tmp_path, server):
    mixed_tree(tmp_path)
    cfg = write_config(tmp_path, server.base_url)
    report = await plan(cfg)
    c = report["counted"]
    assert report["files_in_tree"] == 7 and report["sample"] is None
    assert c["files_to_send"] == 4                       # a, b, the TIFF, the PDF
    assert c["pages_to_send"] == 1 + 1 + 3 + 1           # the PDF's text page is free
    assert c["text_layer_pages"] == 1
    assert c["duplicates"] == 1 and c["duplicate_pages"] == 1
    assert c["rejected_files"] == {"not_an_image": 1, "empty_file": 1}
    assert c["files_skipped_done"] == 0 and c["pages_skipped_done"] == 0
    assert c["bytes_to_upload"] > 0
    assert sum(c["size_buckets"].values()) == 6
    # Priced once per bucket, by the server's own price: the estimate is the sum of bucket quotes.
    assert server.counters.price_calls == len(c["size_buckets"]) == report["price_requests"]
    assert report["estimated"] == {k: v for k, v in c.items() if k in report["estimated"]} | {
        "rejected_files": 2}
    assert c["estimated_cost"] == pytest.approx(sum(
        server.state.ledger.quote(*map(int, k.split("x"))) * n for k, n in c["size_buckets"].items()))
    # Nothing was submitted, no file state was written.
    assert server.counters.submits == 0 and server.counters.jobs_created == 0
    assert not (tmp_path / "out" / "a.png.txt").exists()
    state = StateStore(load_config(cfg).state_file)
    try:
        assert state.count_by_state() == {}               # no file state written by a plan
    finally:
        state.close()
    priced = server.counters.price_calls
    code, run_report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.FILES_FAILED                 # the two rejects
    assert server.counters.jobs_created == c["pages_to_send"]     # the plan was right
    assert server.counters.price_calls == priced         # the run priced from the plan's cache
    assert run_report["cost"]["quoted_cost"] == pytest.approx(c["estimated_cost"])


async def test_after_a_run_plan_counts_everything_as_done_and_asks_no_price_again(tmp_path, server):
    mixed_tree(tmp_path)
    cfg = write_config(tmp_path, server.base_url)
    await run_pipeline(cfg, TOKEN)
    priced = server.counters.price_calls
    report = await plan(cfg)
    c = report["counted"]
    assert c["pages_to_send"] == 0 and c["estimated_cost"] == 0
    assert c["files_skipped_done"] == 5                   # a, b, copy of a, TIFF, PDF
    assert c["pages_skipped_done"] == 1 + 1 + 1 + 3 + 2
    assert c["failed_earlier"] == 2                       # the rejects are not retried
    assert server.counters.price_calls == priced and report["price_requests"] == 0
    assert server.counters.submits == 6                   # the run's six pages, none more


async def test_plan_prices_from_the_cache_across_plans(tmp_path, server):
    for i, size in enumerate([(300, 200), (800, 600), (801, 601), (1600, 1200)]):
        distinct_png(tmp_path / "in" / f"f{i}.png", seed=i, size=size)
    cfg = write_config(tmp_path, server.base_url)
    first = await plan(cfg)
    assert first["price_requests"] == 3 == server.counters.price_calls
    second = await plan(cfg)
    assert second["price_requests"] == 0 and second["quote_cache_hits"] == 4
    assert server.counters.price_calls == 3
    assert second["estimated"]["estimated_cost"] == first["estimated"]["estimated_cost"]


async def test_limit_samples_the_first_files_and_scales_to_the_tree(tmp_path, server):
    for i in range(10):
        distinct_png(tmp_path / "in" / f"f{i:02d}.png", seed=i, size=(1000, 1000))
    report = await plan(write_config(tmp_path, server.base_url), limit=4)
    assert report["sample"] == {"files": 4, "of": 10, "scaled_by": 2.5}
    assert report["counted"]["pages_to_send"] == 4
    assert report["estimated"]["pages_to_send"] == 10 and report["estimated"]["files_to_send"] == 10
    price = server.state.ledger.quote(*bucket(1000, 1000))
    assert report["estimated"]["estimated_cost"] == pytest.approx(10 * price)
    assert "the first 4 of 10 files" in format_plan(report)
    assert server.counters.submits == 0


async def test_plan_names_the_caps_the_planned_work_would_hit(tmp_path, server):
    for i in range(5):
        distinct_png(tmp_path / "in" / f"f{i}.png", seed=i, size=(1000, 1000))
    price = server.state.ledger.quote(*bucket(1000, 1000))
    cfg = write_config(tmp_path, server.base_url, budget__max_pages_per_run=3,
                       budget__max_cost_per_run=round(10 * price, 6), budget__max_cost_per_day=round(4 * price, 6))
    report = await plan(cfg)
    hit = {c["cap"]: c for c in report["caps_hit"]}
    assert set(hit) == {"budget.max_pages_per_run", "budget.max_cost_per_day"}
    assert hit["budget.max_pages_per_run"]["planned"] == 5
    text = format_plan(report)
    assert "budget.max_pages_per_run = 3 would stop the run" in text
    assert report["balance_lasts"] is True


async def test_the_page_cap_the_plan_names_is_the_one_the_run_meets_when_pages_are_cut(tmp_path, server):
    """A page taller than ``api.max_input_height`` is sent as strips, each a job the run's budget
    admits against ``max_pages_per_run``. Before, the plan compared the cap with the pages (2)
    and said no cap would be hit, while the run stopped at it with no file done; and after that
    stop it priced every strip of the page begun in strips again, though the run sends only the
    strips not yet done."""
    from test_strips import lined_page

    for name in ("a.png", "b.png"):
        save(lined_page(words=name + " line {n} with words")[0], tmp_path / "in" / name)
    cfg = write_config(tmp_path, server.base_url, api__max_input_height=850)
    jobs = (await plan(cfg))["estimated"]["uploads_to_send"]
    assert jobs > 2 * 2                                   # both pages cut into several strips

    capped = write_config(tmp_path, server.base_url, api__max_input_height=850, budget__max_pages_per_run=jobs - 1)
    report = await plan(capped)
    assert report["estimated"]["pages_to_send"] == 2
    assert report["caps_hit"] == [{"cap": "budget.max_pages_per_run", "limit": jobs - 1, "planned": jobs}]
    assert f"{jobs} jobs in all" in format_plan(report)
    code, run_report, _ = await run_pipeline(capped, TOKEN)
    assert code == ExitCode.STOPPED_EARLY and run_report["cost"]["cap_reached"] == "budget.max_pages_per_run"
    assert server.counters.jobs_created == jobs - 1

    exact = write_config(tmp_path, server.base_url, api__max_input_height=850, budget__max_pages_per_run=jobs)
    left = await plan(exact)     # one page done, the other begun in strips: only its last strip is left
    assert left["caps_hit"] == [] and left["estimated"]["uploads_to_send"] == 1, left["estimated"]
    code, run_report, _ = await run_pipeline(exact, TOKEN)
    assert code == ExitCode.OK and server.counters.jobs_created == jobs     # nothing paid twice


def test_plan_command_prints_text_and_json(tmp_path, capsys):
    from pipeline.cli import main

    save(text_page("hello"), tmp_path / "in" / "one.png")
    save(text_page("there", size=(900, 300)), tmp_path / "in" / "two.png")
    cfg = write_config(tmp_path, "embedded", api__embedded__engine="fast")
    assert main(["plan", str(cfg)]) == 0
    text = capsys.readouterr().out
    assert "to send:              2 files, 2 pages" in text and "cost:                 free" in text
    assert main(["plan", str(cfg), "--json", "--limit", "1"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["sample"]["files"] == 1 and doc["estimated"]["pages_to_send"] == 2
    assert main(["plan", str(cfg), "--limit", "0"]) == ExitCode.CONFIG_ERROR
    assert not (tmp_path / "out" / "one.png.txt").exists()


async def test_a_job_left_by_an_earlier_run_is_collected_not_paid_again(tmp_path, server):
    from pipeline.server import FaultRule

    distinct_png(tmp_path / "in" / "slow.png", seed=1, size=(400, 300))
    distinct_png(tmp_path / "in" / "new.png", seed=2, size=(400, 300))
    server.faults.job_never_finish = FaultRule(count=1)
    cfg = write_config(tmp_path, server.base_url, timeouts__job_s=0.3, concurrency__jobs_in_flight=1)
    await run_pipeline(cfg, TOKEN)          # slow.png's job times out; its request id is kept
    assert server.counters.jobs_created == 2
    report = await plan(cfg)
    c = report["counted"]
    assert c["pages_reattached"] == 1 and c["pages_to_send"] == 0
    assert "jobs to collect:      1 pages" in format_plan(report)


async def test_a_setting_changed_and_changed_back_is_planned_as_the_run_sends_it(tmp_path, server):
    """Settings A, then B (``precheck.deskew: off``), then A again: the pages done under A had
    their answers dropped from the state store once their outputs were on disk
    (``StateStore.compact_work``), and B's outputs replaced A's, so the third run sends them
    again. The plan counted them "skipped as done" and said nothing was to be sent."""
    distinct_png(tmp_path / "in" / "a.png", seed=1, size=(400, 300))
    distinct_png(tmp_path / "in" / "b.png", seed=2, size=(400, 300))
    await run_pipeline(write_config(tmp_path, server.base_url), TOKEN)
    await run_pipeline(write_config(tmp_path, server.base_url, precheck__deskew="off"), TOKEN)
    cfg = write_config(tmp_path, server.base_url)
    before = server.counters.jobs_created
    c = (await plan(cfg))["counted"]
    code, _, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK
    sent = server.counters.jobs_created - before
    assert sent == 2, sent
    assert (c["files_to_send"], c["pages_to_send"], c["pages_skipped_done"]) == (2, sent, 0), c


async def test_a_capped_run_s_refused_and_unsent_strips_are_planned_and_sent_cut_to_the_limit_now(tmp_path):
    """A page cut at a limit the model does not take (``api.max_input_height`` 1100 over the
    server's 850 px) into two strips; a cap stops the run after the first strip was refused (the
    limit learned from it: 0.75 of its height, under 850), before its finer pieces or the second strip were sent. The next
    run cuts the refused strip finer, and now also the second, never sent and taller than the limit
    learned: before, it was sent as it was cut, to be refused (a job the caps count, for nothing),
    and the plan priced each of the two as one whole upload: 2 jobs planned where the run sent 5
    (a tour: capped runs on the hosted model planned 9 jobs, sent 16)."""
    from pipeline.server import EmbeddedServer, ServerConfig
    from test_recut import tall_page

    save(tall_page("Refused", 2000), tmp_path / "in" / "tall.png")
    async with EmbeddedServer(ServerConfig(engine="fast", tokens=(TOKEN,), max_input_height=850)) as srv:
        capped = write_config(tmp_path, srv.base_url, api__max_input_height=1100,
                              concurrency__jobs_in_flight=1, budget__max_pages_per_run=1)
        code, report, _ = await run_pipeline(capped, TOKEN)
        assert code == ExitCode.STOPPED_EARLY and report["api_calls"]["strips"]["refused_jobs"] == 1
        cfg = write_config(tmp_path, srv.base_url, api__max_input_height=1100, concurrency__jobs_in_flight=1)
        left = (await plan(cfg))["counted"]
        before = srv.counters.jobs_created
        code, report, _ = await run_pipeline(cfg, TOKEN)
        assert code == ExitCode.OK
        assert report["api_calls"]["strips"]["refused_jobs"] == 0      # the strip never sent was not sent too tall
        sent = srv.counters.jobs_created - before
        assert sent == report["cost"]["pages_submitted"] >= 4
        assert (left["uploads_to_send"], left["estimated_cost"]) == (sent, report["cost"]["quoted_cost"]), left


async def test_a_server_without_the_price_route_is_planned_with_its_cost_unknown(tmp_path, server):
    """Another deAPI-compatible server may have no price route (404), and the run sends its
    pages unpriced; ``plan`` stopped with exit 3 and not one count. Now it counts what the run
    would send, says the cost is unknown and why, and that a cost cap stops the run at once."""
    server.faults.no_price_route = True
    for i in range(3):
        distinct_png(tmp_path / "in" / f"p{i}.png", i, size=(300 + 60 * i, 200))
    cfg = write_config(tmp_path, server.base_url, budget__max_cost_per_run=1.0)
    report = await plan(cfg)                                   # before: exit 3 (STOPPED_EARLY), no report
    assert report["estimated"]["pages_to_send"] == 3 and report["uploads_unpriced"] == 3
    assert report["estimated"]["estimated_cost"] is None and report["balance_lasts"] is None
    assert [c["cap"] for c in report["caps_hit"]] == ["budget.max_cost_per_run"]
    text = format_plan(report)
    assert "estimated cost:       unknown: 3 uploads could not be priced" in text
    assert "would stop the run at its first unpriced page" in text
    assert server.counters.submits == 0
    from pipeline.run.audit import format_status, status_report
    cfg = write_config(tmp_path, server.base_url)                # no cost cap: the run sends them unpriced
    code, _, log = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK, log
    status = format_status(status_report(load_config(cfg)))
    assert "pages to send, cost unknown" in status, status      # the last plan, as status shows it
