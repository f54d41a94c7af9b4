"""Webhook mode end to end: the server pushes signed events, the runner treats them as hints.

The project's server sends real signed webhooks to the runner's receiver over loopback; its
fault injection loses, delays, duplicates and reorders deliveries. Polling stays the truth.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from conftest import TOKEN
from helpers import distinct_png, read_result, run_pipeline, write_config
from pipeline.exitcodes import ExitCode
from pipeline.server import EmbeddedServer, FaultRule, ServerConfig

SECRET = "webhook-secret-for-tests-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def wh_server():
    async with EmbeddedServer(ServerConfig(engine="fast", tokens=(TOKEN,), profile="unlimited",
                                           allow_http_webhooks=True, webhook_secret=SECRET,
                                           webhook_time_scale=0.001)) as srv:
        yield srv


def webhook_config(tmp_path, srv, wait_s: float = 5.0, path: str = "/deapi/webhook", **kw):
    port = free_port()
    import os
    os.environ["PIPELINE_TEST_WEBHOOK_SECRET"] = SECRET
    return write_config(tmp_path, srv.base_url, webhook__enabled=True, webhook__listen_port=port,
                        webhook__public_url=f"http://127.0.0.1:{port}{path}",
                        webhook__secret_env="PIPELINE_TEST_WEBHOOK_SECRET", webhook__wait_s=wait_s, **kw)


def make(tmp_path, n):
    names = [f"w{i}.png" for i in range(n)]
    for i, name in enumerate(names):
        distinct_png(tmp_path / "in" / name, seed=300 + i)
    return names


async def test_fault_free_webhook_run_costs_one_submit_and_no_polls(tmp_path, wh_server):
    names = make(tmp_path, 5)
    code, report, _ = await run_pipeline(webhook_config(tmp_path, wh_server), TOKEN)
    assert code == ExitCode.OK
    assert wh_server.counters.submits == 5 and wh_server.counters.status_polls == 0
    assert wh_server.counters.webhooks_sent >= 5
    for name in names:
        assert read_result(tmp_path, name)[0].startswith("FAST-OCR")


async def test_a_missing_secret_is_exit_2_saying_where_the_secret_comes_from(tmp_path, wh_server, monkeypatch):
    make(tmp_path, 1)
    cfg = webhook_config(tmp_path, wh_server)
    monkeypatch.setenv("PIPELINE_TEST_WEBHOOK_SECRET", "")
    code, _, out = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.CONFIG_ERROR and wh_server.counters.submits == 0
    assert "PIPELINE_TEST_WEBHOOK_SECRET is empty or unset" in out
    assert "secret from your deAPI settings" in out and "webhook.enabled: false" in out, out


async def test_lost_webhooks_fall_back_to_polling(tmp_path, wh_server):
    names = make(tmp_path, 3)
    wh_server.faults.webhook_lose = FaultRule(rate=1.0)
    code, _, _ = await run_pipeline(webhook_config(tmp_path, wh_server, wait_s=0.2), TOKEN)
    assert code == ExitCode.OK
    assert wh_server.counters.status_polls >= 3 and wh_server.counters.jobs_created == 3
    assert all(read_result(tmp_path, n)[0].startswith("FAST-OCR") for n in names)


@pytest.mark.parametrize("endpoint", ["status", "download"])
async def test_fallback_polls_and_pushed_links_outlast_api_failures_past_the_retries(tmp_path, wh_server, endpoint):
    # the polls after lost pushes, or the download of a pushed result_url, fail for 6 calls (3 calls'
    # 2 tries): before, each such file failed with a strike though its job was paid and done
    names = make(tmp_path, 3)
    if endpoint == "status":
        wh_server.faults.webhook_lose = FaultRule(rate=1.0)
    wh_server.faults.endpoints = (endpoint,)
    wh_server.faults.http_5xx = FaultRule(count=6)
    cfg = webhook_config(tmp_path, wh_server, wait_s=0.2, retries__max_attempts=2,
                         api__return_result_in_response=endpoint == "status", concurrency__jobs_in_flight=1,
                         concurrency__adaptive=False)
    code, report, out = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK, out
    assert wh_server.counters.server_errors == 6 and report["api_calls"]["held_calls"] == 3
    assert wh_server.counters.jobs_created == 3
    assert all(read_result(tmp_path, n)[0].startswith("FAST-OCR") for n in names)


@pytest.mark.parametrize("fault", ["webhook_duplicate", "webhook_reorder", "webhook_delay"])
async def test_duplicated_reordered_and_late_webhooks_change_nothing(tmp_path, wh_server, fault):
    names = make(tmp_path, 4)
    setattr(wh_server.faults, fault, FaultRule(rate=1.0))
    code, _, _ = await run_pipeline(webhook_config(tmp_path, wh_server, wait_s=1.0), TOKEN)
    assert code == ExitCode.OK
    assert wh_server.counters.jobs_created == 4
    assert sorted(wh_server.counters.submits_by_hash.values()) == [1] * 4
    assert all(read_result(tmp_path, n)[0].startswith("FAST-OCR") for n in names)


async def test_the_public_urls_own_path_is_served(tmp_path, wh_server):
    """A proxy that forwards ``public_url``'s path unchanged reaches the receiver: pushes
    arrive, no job is polled (before, only /deapi/webhook was served: every delivery got a 404
    and every job waited ``wait_s`` for nothing)."""
    make(tmp_path, 3)
    code, report, _ = await run_pipeline(webhook_config(tmp_path, wh_server, path="/hooks/ocr-jobs"), TOKEN)
    assert code == ExitCode.OK
    assert wh_server.counters.status_polls == 0
    assert report["api_calls"]["webhooks"]["receiver"]["accepted"] >= 3


async def test_pushes_that_never_arrive_are_reported_and_the_run_stops_waiting_for_them(tmp_path, wh_server):
    """Every delivery lost (a proxy, a firewall): after 3 waits come back empty with nothing
    accepted, the run says so once, naming public_url and the receiver, and polls the other
    jobs without waiting (before: each of them waited wait_s, silently)."""
    from pipeline.deapi.push_watch import MISSES_BEFORE_POLLING

    names = make(tmp_path, 7)
    wh_server.faults.webhook_lose = FaultRule(rate=1.0)
    cfg = webhook_config(tmp_path, wh_server, wait_s=0.5, path="/hook", concurrency__jobs_in_flight=1,
                         concurrency__adaptive=False)
    code, report, out = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK
    assert all(read_result(tmp_path, n)[0].startswith("FAST-OCR") for n in names)
    hooks = report["api_calls"]["webhooks"]
    assert hooks["stopped_waiting"] is True
    assert hooks["waits_timed_out"] == MISSES_BEFORE_POLLING < len(names)   # one job at a time: the rest never waited
    assert hooks["receiver"]["accepted"] == 0
    warnings = [ln for ln in out.splitlines() if "no webhook push arrived" in ln]
    assert len(warnings) == 1 and "/hook" in warnings[0] and "webhook.public_url" in warnings[0]


async def test_waiting_resumes_once_a_push_is_accepted_after_all():
    """Jobs that all outlast wait_s look like pushes that never arrive; when a delivery is
    accepted later, the run waits for pushes again (one warning each way)."""
    from pipeline.deapi.push_watch import MISSES_BEFORE_POLLING, PushWatch
    from pipeline.deapi.webhook import JobEvents, WebhookReceiver

    said: list[str] = []
    async with WebhookReceiver(SECRET, port=0) as receiver:
        watch = PushWatch(JobEvents(), receiver, "https://hooks.example.org/deapi/webhook", said.append)
        for n in range(MISSES_BEFORE_POLLING):
            assert await watch.wait(f"job-{n}", 0.01) is None
        assert watch.polling_only and len(said) == 1 and "nothing reached it" in said[0]
        receiver.counters.received = receiver.counters.accepted = 1      # the first job's push, late
        assert await watch.wait("job-late", 0.01) is None
        assert not watch.polling_only and watch.snapshot()["stopped_waiting"] is False
        assert len(said) == 2 and "after all" in said[1]


async def test_a_job_an_earlier_run_left_is_polled_at_once_not_awaited_as_a_push(tmp_path, wh_server):
    """The push for a job an earlier run submitted came while no run listened (and an embedded
    server, new each run, never knew the job at all): the rerun polls it at once. Before, every
    re-attached page first waited ``webhook.wait_s`` (120 s by default) for a push that could not
    come: a Ctrl-C'd run of the hosted-like model took 174 s to rerun 3 pages. Here the wait is an
    hour, so before the fix the rerun hangs and the guard below fails it."""
    names = make(tmp_path, 2)
    wh_server.faults.job_never_finish = FaultRule(count=1000)
    code, _, log = await run_pipeline(webhook_config(tmp_path, wh_server, wait_s=0.1, timeouts__job_s=0.3), TOKEN)
    assert code == ExitCode.FILES_FAILED, log            # past the job deadline: request ids kept
    assert wh_server.counters.jobs_created == 2
    wh_server.faults.job_never_finish = FaultRule()
    wh_server.release_stuck_jobs()   # they finish now; their pushes go to a receiver that is gone

    cfg = webhook_config(tmp_path, wh_server, wait_s=3600)   # a new receiver, on another port
    code, report, log = await asyncio.wait_for(run_pipeline(cfg, TOKEN), 60)
    assert code == ExitCode.OK, log
    assert wh_server.counters.jobs_created == 2          # re-attached, not paid again
    assert all(read_result(tmp_path, n)[0].startswith("FAST-OCR") for n in names)


async def test_a_pushed_job_failed_is_confirmed_at_once_not_at_the_planned_first_poll(tmp_path):
    """A refusal pushed as ``job.failed`` is confirmed by one poll at once. Found by the
    chaosfleet2 tour (webhook mode, a fleet's database stopped 37 s): the planner had learnt a
    42 s first poll from jobs the outage held, and each of the hosted-like model's refusals of a
    tall page (three rounds of cutting finer) waited for it, though the server had refused in
    milliseconds: 184 s for a run of 30. Here the first poll is planned at 30 s and the run may
    last 6 s: waiting for the plan, the run stopped with the page unread (exit 3); at once, it
    is read in about a second."""
    from helpers import save
    from test_strips import lined_page

    save(lined_page(size=(800, 1400), pitch=60, size_pt=28)[0], tmp_path / "in" / "tall.png")
    async with EmbeddedServer(ServerConfig(engine="fast", tokens=(TOKEN,), profile="unlimited", max_input_height=850,
                                           allow_http_webhooks=True, webhook_secret=SECRET,
                                           webhook_time_scale=0.001)) as srv:
        cfg = webhook_config(tmp_path, srv, polling__first_poll_s=30.0, max_runtime_s=6,
                             shutdown_grace_s=1)
        code, report, out = await run_pipeline(cfg, TOKEN)
    strips = report["api_calls"]["strips"]
    assert code == ExitCode.OK, out
    assert strips["refused_jobs"] == 2 and strips["pages_cut"] == 1   # 1400 px, then a 1050 px strip
    assert srv.counters.status_polls == 2   # each refusal's confirmation; the strips' answers came pushed
    assert read_result(tmp_path, "tall.png")[0].startswith("FAST-OCR")
