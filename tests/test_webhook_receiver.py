"""Webhook receiver: real HTTP over loopback, signed the way deAPI documents it.

Signatures are computed here with :mod:`hmac` directly (the protocol, independent of the code
under test). Time is an injected clock, so stale/future cases need no sleeping.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import uuid
from datetime import datetime, timezone

import aiohttp
import pytest

from pipeline.deapi.webhook import (
    JobEvents,
    WebhookConfigError,
    WebhookEvent,
    WebhookReceiver,
    WebhookRejected,
    compute_signature,
    parse_event,
    secret_from_env,
    verify_signature,
)

SECRET = "whsec-test-3f9a"
NOW = 1_705_315_800  # the docs' example X-DeAPI-Timestamp


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """deAPI's scheme: HMAC-SHA256(secret, timestamp + "." + raw_body), hex, 'sha256=' prefix."""
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class Clock:
    """Injected wall clock the test moves by hand."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def payload(event: str, request_id: str, *, delivery_id: str | None = None, **data_extra) -> dict:
    status = {"job.processing": "processing", "job.completed": "done", "job.failed": "error"}[event]
    data = {"job_request_id": request_id, "status": status, "previous_status": "pending",
            "job_type": "img2txt"}
    if event == "job.completed":
        data.update(result_url=f"https://results.example/{request_id}.txt", processing_time_ms=4500)
    if event == "job.failed":
        data.update(error_code="WORKER_TIMEOUT", error_message="Worker failed to respond within the allowed time")
    data.update(data_extra)
    return {"event": event, "delivery_id": delivery_id or str(uuid.uuid4()),
            "timestamp": "2024-01-15T10:30:45.000Z", "data": data}


async def post(session: aiohttp.ClientSession, rx: WebhookReceiver, body: dict | bytes, *,
               timestamp: int | str | None = NOW, secret: str = SECRET, event: str | None = None,
               delivery_id: str | None = None, signature: str | None = None,
               drop: tuple[str, ...] = ()) -> tuple[int, dict]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    ts = str(timestamp)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "DeAPI-Webhook/1.0",
        "X-DeAPI-Timestamp": ts,
        "X-DeAPI-Signature": signature or sign(secret, ts, raw),
    }
    if isinstance(body, dict):
        headers["X-DeAPI-Event"] = event or body.get("event", "")
        headers["X-DeAPI-Delivery-Id"] = delivery_id or body.get("delivery_id", "")
    for name in drop:
        headers.pop(name, None)
    async with session.post(rx.url, data=raw, headers=headers) as resp:
        return resp.status, await resp.json()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def events() -> JobEvents:
    return JobEvents()


@pytest.fixture
async def rx(clock: Clock, events: JobEvents):
    async with WebhookReceiver(SECRET, clock=clock, on_event=events.deliver) as receiver:
        yield receiver


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s


# -- happy path -------------------------------------------------------------------------------

async def test_valid_delivery_wakes_a_waiting_runner(rx, events, session):
    waiter = asyncio.create_task(events.wait("req-1", timeout=30))
    body = payload("job.completed", "req-1")
    status, answer = await post(session, rx, body)
    assert (status, answer) == (200, {"ok": True})
    event = await waiter
    assert isinstance(event, WebhookEvent)
    assert event.event == "job.completed" and event.terminal
    assert event.request_id == "req-1"
    assert event.status == "done"
    assert event.delivery_id == body["delivery_id"]
    assert event.result_url == "https://results.example/req-1.txt"
    assert event.received_at == NOW
    assert event.sent_at == datetime(2024, 1, 15, 10, 30, 45, tzinfo=timezone.utc).timestamp()
    assert rx.counters.snapshot()["accepted"] == 1


async def test_event_that_arrives_before_wait_is_kept_for_the_waiter(rx, events, session):
    body = payload("job.failed", "req-early")
    assert (await post(session, rx, body))[0] == 200
    await rx.drain()
    event = await events.wait("req-early", timeout=30)
    assert event is not None and event.event == "job.failed"
    assert (event.error_code, event.status) == ("WORKER_TIMEOUT", "error")
    assert event.error_message.startswith("Worker failed")


async def test_request_id_alias_numeric_body_timestamp_and_inline_result(rx, events, session):
    body = payload("job.completed", "ignored")
    body["data"].pop("job_request_id")
    body["data"]["request_id"] = "req-alias"
    body["data"]["result"] = "Hello\nworld"
    body["timestamp"] = 1_705_315_845
    assert (await post(session, rx, body))[0] == 200
    event = await events.wait("req-alias", timeout=30)
    assert event is not None
    assert event.result == "Hello\nworld"
    assert event.sent_at == 1_705_315_845.0


async def test_async_on_event_is_awaited(clock, session):
    seen: list[WebhookEvent] = []

    async def on_event(ev: WebhookEvent) -> None:
        await asyncio.sleep(0)   # yields once: proves the coroutine is driven to completion
        seen.append(ev)

    async with WebhookReceiver(SECRET, clock=clock, on_event=on_event) as receiver:
        assert (await post(session, receiver, payload("job.processing", "req-a")))[0] == 200
        await receiver.drain()
    assert [e.request_id for e in seen] == ["req-a"]
    assert seen[0].status == "processing" and not seen[0].terminal


# -- signature and freshness ------------------------------------------------------------------

async def test_forged_signature_is_401_and_not_delivered(rx, events, session):
    body = payload("job.completed", "req-forged")
    status, answer = await post(session, rx, body, signature="sha256=" + "0" * 64)
    assert status == 401 and "mismatch" in answer["error"]
    status, _ = await post(session, rx, body, secret="not-the-secret")
    assert status == 401
    await rx.drain()
    assert events.latest("req-forged") is None
    assert rx.counters.rejected_signature == 2 and rx.counters.accepted == 0


async def test_body_changed_after_signing_is_401(rx, session):
    raw = json.dumps(payload("job.completed", "req-t")).encode()
    good = sign(SECRET, str(NOW), raw)
    tampered = raw.replace(b"req-t", b"req-x")
    status, _ = await post(session, rx, tampered, signature=good)
    assert status == 401


@pytest.mark.parametrize("missing", [("X-DeAPI-Signature",), ("X-DeAPI-Timestamp",),
                                     ("X-DeAPI-Signature", "X-DeAPI-Timestamp")])
async def test_missing_headers_are_401(rx, session, missing):
    status, answer = await post(session, rx, payload("job.completed", "req-m"), drop=missing)
    assert status == 401
    for name in missing:
        assert name in answer["error"]
    assert rx.counters.rejected_signature == 1


async def test_stale_timestamp_is_401_using_the_injected_clock(rx, clock, events, session):
    body = payload("job.completed", "req-stale")
    clock.now = NOW + 301
    status, answer = await post(session, rx, body, timestamp=NOW)
    assert status == 401 and "old" in answer["error"]
    assert rx.counters.rejected_stale == 1
    # Exactly at the limit is still fresh (the rule is |now - ts| > 300).
    clock.now = NOW + 300
    assert (await post(session, rx, body, timestamp=NOW))[0] == 200
    assert (await events.wait("req-stale", timeout=30)) is not None


async def test_future_timestamp_is_401(rx, session):
    status, answer = await post(session, rx, payload("job.completed", "req-f"), timestamp=NOW + 301)
    assert status == 401 and "future" in answer["error"]
    status, answer = await post(session, rx, payload("job.completed", "req-f"), timestamp=NOW * 1000)
    assert status == 401 and "milliseconds" in answer["error"]
    assert rx.counters.rejected_stale == 2


async def test_rejected_forgery_does_not_poison_dedupe(rx, events, session):
    body = payload("job.completed", "req-p")
    assert (await post(session, rx, body, secret="attacker"))[0] == 401
    assert (await post(session, rx, body))[0] == 200
    assert (await events.wait("req-p", timeout=30)) is not None


# -- malformed bodies -------------------------------------------------------------------------

async def test_malformed_json_is_400(rx, session):
    status, answer = await post(session, rx, b'{"event": "job.completed", "data": ')
    assert status == 400 and "JSON" in answer["error"]
    assert rx.counters.rejected_malformed == 1


@pytest.mark.parametrize("mutate, fragment", [
    (lambda b: b.pop("data"), "data"),
    (lambda b: b["data"].pop("job_request_id"), "job_request_id"),
])
async def test_missing_fields_are_400(rx, session, mutate, fragment):
    body = payload("job.completed", "req-bad")
    mutate(body)
    status, answer = await post(session, rx, body)
    assert status == 400 and fragment in answer["error"]


async def test_a_verified_unknown_event_type_is_acknowledged_and_dropped(rx, events, session):
    """A refusal would be retried and count towards deAPI's account-wide circuit breaker."""
    body = payload("job.completed", "req-new-kind")
    body["event"] = "job.exploded"
    status, answer = await post(session, rx, body, event="job.exploded")
    assert status == 200 and "job.exploded" in answer["ignored"]
    assert rx.counters.ignored == 1 and rx.counters.accepted == 0
    assert await events.wait("req-new-kind", 0.05) is None


async def test_non_object_body_is_400(rx, session):
    status, answer = await post(session, rx, b'["job.completed"]')
    assert status == 400 and "object" in answer["error"]


async def test_header_and_body_event_mismatch_is_400(rx, events, session):
    body = payload("job.processing", "req-mm")
    status, answer = await post(session, rx, body, event="job.completed")
    assert status == 400 and "does not match" in answer["error"]
    await rx.drain()
    assert events.latest("req-mm") is None


async def test_oversize_body_is_413_and_receiver_keeps_working(clock, events, session):
    async with WebhookReceiver(SECRET, clock=clock, on_event=events.deliver, max_body_bytes=1024) as receiver:
        body = payload("job.completed", "req-big", result="x" * 4096)
        status, answer = await post(session, receiver, body)
        assert status == 413 and "1024" in answer["error"]

        async def chunks():   # no Content-Length: the cap must hold while streaming too
            for _ in range(8):
                yield b" " * 512

        headers = {"X-DeAPI-Timestamp": str(NOW), "X-DeAPI-Signature": "sha256=" + "0" * 64}
        async with session.post(receiver.url, data=chunks(), headers=headers) as resp:
            assert resp.status == 413
        assert receiver.counters.rejected_too_large == 2
        assert (await post(session, receiver, payload("job.completed", "req-small")))[0] == 200
        assert (await events.wait("req-small", timeout=30)) is not None


# -- dedupe, ordering, robustness -------------------------------------------------------------

async def test_duplicate_delivery_is_200_but_delivered_once(clock, session):
    seen: list[WebhookEvent] = []
    async with WebhookReceiver(SECRET, clock=clock, on_event=seen.append) as receiver:
        body = payload("job.completed", "req-dup")
        assert await post(session, receiver, body) == (200, {"ok": True})
        clock.now += 60                        # deAPI's retry one minute later: new timestamp, re-signed
        assert await post(session, receiver, body, timestamp=int(clock.now)) == (200, {"ok": True, "duplicate": True})
        # Same delivery id only in the (unsigned) header, different body id: still a duplicate.
        other = payload("job.completed", "req-dup")
        assert (await post(session, receiver, other, delivery_id=body["delivery_id"]))[1].get("duplicate")
        await receiver.drain()
    assert [e.delivery_id for e in seen] == [body["delivery_id"]]
    snap = receiver.counters.snapshot()
    assert (snap["received"], snap["accepted"], snap["duplicates"]) == (3, 1, 2)


async def test_dedupe_memory_is_bounded(clock, session):
    seen: list[WebhookEvent] = []
    async with WebhookReceiver(SECRET, clock=clock, on_event=seen.append, max_delivery_ids=2) as receiver:
        first = payload("job.processing", "r1", delivery_id="d1")
        for b in (first, payload("job.processing", "r2", delivery_id="d2"),
                  payload("job.processing", "r3", delivery_id="d3")):
            assert (await post(session, receiver, b))[0] == 200
        # d1 was forgotten to keep memory bounded, so its replay is accepted again.
        assert await post(session, receiver, first) == (200, {"ok": True})
        await receiver.drain()
    assert [e.delivery_id for e in seen] == ["d1", "d2", "d3", "d1"]


async def test_processing_after_completed_keeps_the_terminal_event(rx, events, session):
    assert (await post(session, rx, payload("job.completed", "req-o")))[0] == 200
    assert (await post(session, rx, payload("job.processing", "req-o")))[0] == 200
    await rx.drain()
    assert rx.counters.accepted == 2
    kept = events.latest("req-o")
    assert kept is not None and kept.event == "job.completed"
    assert (await events.wait("req-o", timeout=30)).event == "job.completed"


async def test_on_event_raising_does_not_break_later_deliveries(clock, events, session, caplog):
    calls = 0

    def flaky(ev: WebhookEvent) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("runner hiccup")
        events.deliver(ev)

    async with WebhookReceiver(SECRET, clock=clock, on_event=flaky) as receiver:
        assert (await post(session, receiver, payload("job.completed", "req-1")))[0] == 200
        await receiver.drain()
        assert receiver.counters.handler_errors == 1
        assert (await post(session, receiver, payload("job.completed", "req-2")))[0] == 200
        assert (await events.wait("req-2", timeout=30)).request_id == "req-2"
    assert "runner hiccup" in caplog.text


# -- JobEvents on its own ---------------------------------------------------------------------

def make_event(event: str, request_id: str, delivery_id: str = "d") -> WebhookEvent:
    raw = json.dumps(payload(event, request_id, delivery_id=delivery_id)).encode()
    return parse_event(raw, received_at=NOW)


async def test_wait_times_out_with_none():
    events = JobEvents()
    events.deliver(make_event("job.processing", "req-slow"))   # non-terminal does not end the wait
    assert await events.wait("req-slow", timeout=0.05) is None
    assert await events.wait("req-slow", timeout=0) is None


async def test_failed_then_processing_and_conflicting_terminal_keep_the_first_terminal():
    events = JobEvents()
    events.deliver(make_event("job.failed", "r", "d1"))
    events.deliver(make_event("job.processing", "r", "d2"))
    events.deliver(make_event("job.completed", "r", "d3"))
    assert events.latest("r").event == "job.failed"
    assert (await events.wait("r", timeout=1)).delivery_id == "d1"


async def test_job_events_are_bounded_by_count_and_age():
    now = [0.0]
    events = JobEvents(max_events=2, keep_s=100, clock=lambda: now[0])
    for rid in ("a", "b", "c"):
        events.deliver(make_event("job.completed", rid))
    assert events.latest("a") is None and len(events) == 2
    now[0] = 101.0
    assert events.latest("b") is None and events.latest("c") is None
    events.deliver(make_event("job.completed", "d"))
    events.forget("d")
    assert len(events) == 0


# -- verify_signature / helpers directly ------------------------------------------------------

def test_verify_accepts_uppercase_hex_and_rejects_malformed_headers():
    raw = b'{"x":1}'
    good = sign(SECRET, str(NOW), raw)
    verify_signature(SECRET, str(NOW), raw, good, now=NOW)
    verify_signature(SECRET.encode(), str(NOW), raw, "sha256=" + good[7:].upper(), now=NOW)
    for bad in (good[7:], "sha1=" + good[7:], good[:-1], good + "0", "sha256=" + "g" * 64):
        with pytest.raises(WebhookRejected) as err:
            verify_signature(SECRET, str(NOW), raw, bad, now=NOW)
        assert err.value.status == 401 and "malformed" in err.value.reason
    for ts in ("1705315800.5", "abc", "-5", " "):
        with pytest.raises(WebhookRejected) as err:
            verify_signature(SECRET, ts, raw, sign(SECRET, ts, raw), now=NOW)
        assert err.value.status == 401


def test_tolerance_zero_or_none_disables_the_window_but_not_the_mac():
    raw = b"{}"
    old = str(NOW - 86_400)
    verify_signature(SECRET, old, raw, sign(SECRET, old, raw), now=NOW, tolerance_s=0)
    verify_signature(SECRET, old, raw, sign(SECRET, old, raw), now=NOW, tolerance_s=None)
    with pytest.raises(WebhookRejected):
        verify_signature(SECRET, old, raw, sign("other", old, raw), now=NOW, tolerance_s=None)


def test_compute_signature_matches_the_protocol_and_empty_secret_is_refused():
    assert compute_signature(SECRET, "17", b"abc") == sign(SECRET, "17", b"abc")
    with pytest.raises(WebhookConfigError):
        WebhookReceiver("")
    with pytest.raises(WebhookConfigError, match="DEAPI_WEBHOOK_SECRET"):
        secret_from_env("DEAPI_WEBHOOK_SECRET", environ={})
    assert secret_from_env("S", environ={"S": " abc \n"}) == "abc"
