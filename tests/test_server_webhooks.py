"""Webhooks as a receiver sees them: the HMAC signature checked independently with ``hmac``, the
documented headers and payloads, retries on failure (3xx included) with a tiny time scale, and
the lose / duplicate / reorder / delay faults. Waits are on the receiver's events."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import aiohttp
import pytest

from pipeline.server import EmbeddedServer, FaultRule, ServerConfig
from test_server_support import SECRET, TOKEN, Receiver, png, submit, wait_done


@pytest.fixture
async def srv():
    async with EmbeddedServer(ServerConfig(engine="fast", tokens=(TOKEN,), allow_http_webhooks=True,
                                           webhook_secret=SECRET, webhook_time_scale=0.0001)) as s:
        yield s


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


def verify(headers: dict[str, str], raw: bytes) -> None:
    """What a receiver does, written out with the standard library only."""
    expected = "sha256=" + hmac.new(SECRET.encode(), headers["X-DeAPI-Timestamp"].encode() + b"." + raw,
                                    hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-DeAPI-Signature"], expected)
    assert abs(int(headers["X-DeAPI-Timestamp"]) - time.time()) < 300
    assert headers["User-Agent"] == "DeAPI-Webhook/1.0" and headers["Content-Type"] == "application/json"
    payload = json.loads(raw)
    assert payload["delivery_id"] == headers["X-DeAPI-Delivery-Id"] and payload["event"] == headers["X-DeAPI-Event"]
    assert payload["timestamp"].endswith("Z")


def payloads(rx: Receiver, event: str) -> list[dict]:
    return [json.loads(raw) for h, raw in rx.received if h["X-DeAPI-Event"] == event]


async def test_completed_job_sends_signed_processing_then_completed(http, srv):
    async with Receiver() as rx:
        _, body = await submit(http, srv.base_url, image=png(), return_result_in_response="true",
                               webhook_url=rx.url)
        rid = body["data"]["request_id"]
        await rx.wait(lambda got: len(got) == 2)
    for headers, raw in rx.received:
        verify(headers, raw)
    assert rx.events() == ["job.processing", "job.completed"]
    processing, = payloads(rx, "job.processing")
    assert processing["data"] == {"job_request_id": rid, "job_type": "img2txt", "status": "processing",
                                  "previous_status": "pending", "started_at": processing["data"]["started_at"]}
    completed, = payloads(rx, "job.completed")
    data = completed["data"]
    assert data["status"] == "done" and data["previous_status"] == "processing" and data["job_request_id"] == rid
    assert data["result"].startswith("FAST-OCR") and isinstance(data["processing_time_ms"], int)
    async with http.get(data["result_url"]) as r:  # the link in the webhook works without auth
        assert r.status == 200 and (await r.text()) == data["result"]


async def test_without_inline_the_completed_event_has_only_the_link(http, srv):
    async with Receiver() as rx:
        await submit(http, srv.base_url, image=png(), webhook_url=rx.url)
        await rx.wait(lambda got: len(got) == 2)
    data = payloads(rx, "job.completed")[0]["data"]
    assert "result" not in data and data["result_url"]


async def test_failed_job_sends_job_failed_with_code_and_message(http, srv):
    srv.faults.job_error = FaultRule(count=1)
    srv.faults.job_error_code = "WORKER_TIMEOUT"
    async with Receiver() as rx:
        await submit(http, srv.base_url, image=png(), webhook_url=rx.url)
        await rx.wait(lambda got: "job.failed" in [h["X-DeAPI-Event"] for h, _ in got])
    failed = payloads(rx, "job.failed")[0]
    verify(*next((h, raw) for h, raw in rx.received if h["X-DeAPI-Event"] == "job.failed"))
    assert failed["data"]["status"] == "error" and failed["data"]["error_code"] == "WORKER_TIMEOUT"
    assert failed["data"]["error_message"] and failed["data"]["failed_at"].endswith("Z")


@pytest.mark.parametrize("failure", [500, 302, 404])
async def test_failed_deliveries_are_retried_with_the_same_delivery_id(http, srv, failure):
    srv.faults.job_never_finish = FaultRule(count=1)  # hold the job: only job.processing goes out first
    async with Receiver(answers=[failure, failure]) as rx:  # its first two attempts fail
        await submit(http, srv.base_url, image=png(), webhook_url=rx.url)
        await rx.wait(lambda got: len(got) == 3)
        assert rx.events() == ["job.processing"] * 3
        assert len({h["X-DeAPI-Delivery-Id"] for h, _ in rx.received}) == 1  # one delivery, retried
        srv.release_stuck_jobs()
        await rx.wait(lambda got: len(got) == 4)
    assert rx.events()[-1] == "job.completed"
    for headers, raw in rx.received:
        verify(headers, raw)  # every attempt is signed afresh
    assert srv.counters.webhooks_sent == 4 and srv.counters.webhook_failures == 2
    assert srv.counters.webhooks_delivered == 2


async def test_a_receiver_that_never_accepts_gets_the_ten_scheduled_attempts(http):
    cfg = ServerConfig(engine="fast", tokens=(TOKEN,), allow_http_webhooks=True, webhook_secret=SECRET,
                       webhook_time_scale=0.000005)  # the 22 h 48 min schedule in about 0.4 s
    async with EmbeddedServer(cfg) as srv, Receiver(default=503) as rx:
        srv.faults.job_never_finish = FaultRule(count=1)  # only job.processing is ever sent
        await submit(http, srv.base_url, image=png(), webhook_url=rx.url)
        await rx.wait(lambda got: len(got) == 10)
        await wait_done_or_stuck(srv)
        assert srv.counters.webhook_failures == 10 and srv.counters.webhooks_sent == 10
    assert len({h["X-DeAPI-Delivery-Id"] for h, _ in rx.received}) == 1


async def wait_done_or_stuck(srv) -> None:
    """All delivery tasks finished (given up): nothing left in flight."""
    from test_server_support import wait_for
    await wait_for(lambda: not srv.state.webhooks.tasks)


async def test_lost_webhooks_are_never_sent_and_the_job_still_completes(http, srv):
    srv.faults.webhook_lose = FaultRule(count=2)
    async with Receiver() as rx:
        _, body = await submit(http, srv.base_url, image=png(), webhook_url=rx.url)
        assert (await wait_done(http, srv.base_url, body["data"]["request_id"]))["status"] == "done"
        await submit(http, srv.base_url, image=png(text="second"), webhook_url=rx.url)
        await rx.wait(lambda got: len(got) == 2)  # only the second job's events arrive
    assert {json.loads(raw)["data"]["job_request_id"] for _, raw in rx.received} != {body["data"]["request_id"]}


async def test_duplicated_webhooks_repeat_the_delivery_id(http, srv):
    srv.faults.webhook_duplicate = FaultRule(count=1)
    async with Receiver() as rx:
        await submit(http, srv.base_url, image=png(), webhook_url=rx.url)
        await rx.wait(lambda got: len(got) == 3)
    ids = [h["X-DeAPI-Delivery-Id"] for h, _ in rx.received if h["X-DeAPI-Event"] == "job.processing"]
    assert len(ids) == 2 and ids[0] == ids[1]


async def test_reordered_webhooks_deliver_completed_before_processing(http, srv):
    srv.faults.webhook_reorder = FaultRule(count=1)
    async with Receiver() as rx:
        await submit(http, srv.base_url, image=png(), webhook_url=rx.url)
        await rx.wait(lambda got: len(got) == 2)
    assert rx.events() == ["job.completed", "job.processing"]
    for headers, raw in rx.received:
        verify(headers, raw)


async def test_delayed_webhooks_still_arrive_signed(http, srv):
    srv.faults.webhook_delay = FaultRule(count=1)
    srv.faults.webhook_delay_s = 0.05
    async with Receiver() as rx:
        await submit(http, srv.base_url, image=png(), webhook_url=rx.url)
        await rx.wait(lambda got: len(got) == 2)
    assert sorted(rx.events()) == ["job.completed", "job.processing"]
    for headers, raw in rx.received:
        verify(headers, raw)


async def test_the_admin_job_record_says_when_a_client_was_told_by_webhook_or_by_status(http):
    # bench/hosted_strips.py computes an ideal client and the lateness of every job from it.
    cfg = ServerConfig(engine="fast", tokens=(TOKEN,), allow_http_webhooks=True, webhook_secret=SECRET,
                       webhook_time_scale=0.0001, admin=True)
    async with EmbeddedServer(cfg) as srv, Receiver() as rx:
        _, pushed = await submit(http, srv.base_url, image=png(), return_result_in_response="true",
                                 webhook_url=rx.url)
        await rx.wait(lambda got: "job.completed" in [h["X-DeAPI-Event"] for h, _ in got])
        _, polled = await submit(http, srv.base_url, image=png())
        await wait_done(http, srv.base_url, polled["data"]["request_id"])
        async with http.get(srv.base_url + "/_admin/jobs", headers={"Authorization": f"Bearer {TOKEN}"}) as r:
            rows = {j["id"]: j for j in (await r.json())["jobs"]}
    for body in (pushed, polled):
        job = rows[body["data"]["request_id"]]
        assert job["status"] == "done"
        assert job["created"] <= job["started"] <= job["finished"] <= job["told"]
    assert srv.counters.snapshot()["lateness_s"]["n"] == 2  # told once each, however often asked
