"""Signed webhook deliveries with deAPI's retry schedule, and the webhook faults.

Events: ``job.processing`` (pending -> processing), ``job.completed`` (-> done),
``job.failed`` (-> error), with the documented payloads (``job_request_id``, ISO-8601
``timestamp`` ...). ``job.completed`` carries ``result_url`` always and, when the job was
submitted with ``return_result_in_response=true``, the text in ``result`` too (deAPI does not
document this for OCR; a receiver that wants the text without another call gets it this way).

Signature: ``X-DeAPI-Signature: sha256=HMAC_SHA256(secret, f"{timestamp}.{raw_body}")`` with
the timestamp sent in ``X-DeAPI-Timestamp`` (real Unix seconds, never the injected clock: the
receiver compares it with its own clock). A delivery that fails (non-2xx, 3xx — redirects are
not followed — a refused connection, or no answer within 10 s) is retried on the documented
schedule multiplied by ``webhook_time_scale``; every attempt of one delivery keeps its
``delivery_id`` and body, with a fresh timestamp and signature.

Standard Webhooks headers go with every attempt too: ``webhook-id`` (the delivery id, the same on
every attempt and from every fleet member, so a receiver drops repeats), ``webhook-timestamp``
and ``webhook-signature: v1,base64(HMAC_SHA256(secret, f"{id}.{timestamp}.{body}"))`` (the key
is the secret's UTF-8 bytes). A fleet delivers from the database outbox (``outbox.py``) with
the same schedule and headers; the faults below apply to the in-memory server only.

Faults: ``webhook_lose`` (never sent), ``webhook_delay`` (sent ``webhook_delay_s`` late),
``webhook_duplicate`` (delivered twice, same delivery id), ``webhook_reorder``
(``job.processing`` held back and sent after the job's final event).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import random
import time
import uuid
from datetime import datetime, timezone
from typing import Any

import aiohttp

from .counters import Counters
from .faults import FaultConfig
from .lifecycle import Job

log = logging.getLogger("pipeline.server.webhooks")

# Pause before each attempt: immediate, +1 m, +2 m, +5 m, +10 m, +30 m, +1 h, +3 h, +6 h, +12 h.
RETRY_SCHEDULE_S = (0, 60, 120, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600)
USER_AGENT = "DeAPI-Webhook/1.0"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def standard_signature(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """Standard Webhooks' ``webhook-signature`` value for one attempt."""
    mac = hmac.new(secret.encode(), f"{delivery_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signed_headers(secret: str, event: str, delivery_id: str, body: bytes) -> dict[str, str]:
    """The headers of one attempt: deAPI's signature and Standard Webhooks', both over ``body``."""
    ts = str(int(time.time()))
    return {"Content-Type": "application/json", "User-Agent": USER_AGENT,
            "X-DeAPI-Signature": sign(secret, ts, body), "X-DeAPI-Timestamp": ts,
            "X-DeAPI-Event": event, "X-DeAPI-Delivery-Id": delivery_id,
            "webhook-id": delivery_id, "webhook-timestamp": ts,
            "webhook-signature": standard_signature(secret, delivery_id, ts, body)}


async def post_once(session: aiohttp.ClientSession, secret: str, url: str, event: str, delivery_id: str,
                    body: bytes) -> str | None:
    """One attempt; ``None`` when the receiver answered 2xx, else what went wrong (redirects are not followed)."""
    try:
        async with session.post(url, data=body, headers=signed_headers(secret, event, delivery_id, body),
                                allow_redirects=False) as resp:
            return None if 200 <= resp.status < 300 else f"HTTP {resp.status}"
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        log.debug("webhook delivery to %s failed: %s", url, exc)
        return f"{type(exc).__name__}: {exc}"[:200]


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def outbox_delivery(job: Job, event: str, result_url: str | None = None) -> tuple[str, str] | None:
    """The (delivery id, body) a fleet member puts in the outbox for ``event``; None without a webhook."""
    if not job.webhook_url:
        return None
    payload = build_payload(job, event, result_url)
    return payload["delivery_id"], encode(payload).decode()


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_payload(job: Job, event: str, result_url: str | None = None) -> dict[str, Any]:
    now = time.time()
    data: dict[str, Any] = {"job_request_id": job.id, "job_type": "img2txt"}
    if event == "job.processing":
        data.update(status="processing", previous_status="pending", started_at=iso(now))
    elif event == "job.completed":
        data.update(status="done", previous_status="processing", completed_at=iso(now), result_url=result_url,
                    processing_time_ms=job.processing_ms())
        if job.inline:
            data["result"] = job.text
    elif event == "job.failed":
        data.update(status="error", previous_status="processing", failed_at=iso(now),
                    error_code=job.error_code, error_message=job.error)
    else:
        raise ValueError(f"unknown webhook event {event!r}")
    return {"event": event, "delivery_id": str(uuid.uuid4()), "timestamp": iso(now), "data": data}


class WebhookSender:
    def __init__(self, secret: str, time_scale: float, timeout_s: float, counters: Counters,
                 faults: FaultConfig, rng: random.Random) -> None:
        self.secret, self.time_scale, self.timeout_s = secret, time_scale, timeout_s
        self.counters, self.faults, self.rng = counters, faults, rng
        self.session: aiohttp.ClientSession | None = None
        self.tasks: set[asyncio.Task] = set()
        self._held: dict[str, dict[str, Any]] = {}  # reorder fault: job id -> held job.processing

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.session is not None:
            await self.session.close()
            self.session = None

    def send(self, job: Job, event: str, result_url: str | None = None) -> None:
        """Queue one event for ``job`` (no-op without a webhook URL); never blocks the job."""
        if not job.webhook_url or self.session is None:
            return
        f = self.faults
        payload = build_payload(job, event, result_url)
        held = self._held.pop(job.id, None) if event != "job.processing" else None
        if f.webhook_lose.fire(self.rng):
            return
        delay = f.webhook_delay_s if f.webhook_delay.fire(self.rng) else 0.0
        if event == "job.processing" and f.webhook_reorder.fire(self.rng):
            self._held[job.id] = payload  # delivered right after the final event
            return
        gate = asyncio.Event() if held is not None else None
        copies = 2 if f.webhook_duplicate.fire(self.rng) else 1
        finished = job.finished if event != "job.processing" else None
        for i in range(copies):
            self._spawn(self._deliver(job.webhook_url, payload, delay, after_first=gate if i == 0 else None,
                                      finished=finished))
        if held is not None:
            self._spawn(self._deliver(job.webhook_url, held, 0.0, wait_for=gate))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _deliver(self, url: str, payload: dict[str, Any], delay: float,
                       after_first: asyncio.Event | None = None, wait_for: asyncio.Event | None = None,
                       finished: float | None = None) -> None:
        """All attempts of one delivery. ``wait_for``/``after_first`` order a held (reordered) event
        strictly after the first attempt of the job's final event."""
        try:
            if wait_for is not None:
                await wait_for.wait()
            if delay:
                await asyncio.sleep(delay)
            body = encode(payload)
            for pause in RETRY_SCHEDULE_S:
                if pause:
                    await asyncio.sleep(pause * self.time_scale)
                ok = await self._attempt(url, payload, body)
                if ok and finished is not None:  # the client now knows the job ended (benchmarks)
                    self.counters.observe_told(payload["data"]["job_request_id"], finished, time.monotonic())
                if after_first is not None:
                    after_first.set()
                if ok:
                    return
            log.warning("webhook %s for job %s given up after %d attempts", payload["event"],
                        payload["data"]["job_request_id"], len(RETRY_SCHEDULE_S))
        finally:
            if after_first is not None:
                after_first.set()

    async def _attempt(self, url: str, payload: dict[str, Any], body: bytes) -> bool:
        self.counters.webhooks_sent += 1
        assert self.session is not None
        ok = await post_once(self.session, self.secret, url, payload["event"], payload["delivery_id"], body) is None
        if ok:
            self.counters.webhooks_delivered += 1
        else:
            self.counters.webhook_failures += 1
        return ok
