"""Signed webhook deliveries with deAPI's retry schedule, and their fault injection.

Signature: ``X-DeAPI-Signature: sha256=HMAC_SHA256(secret, f"{timestamp}.{raw_body}")``. A
delivery that fails (non-2xx, 3xx, timeout after 10 s) is retried on the documented schedule,
multiplied by ``webhook_time_scale`` so tests run it in milliseconds.
"""

from __future__ import annotations

import asyncio
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

log = logging.getLogger("pipeline.server.webhooks")

RETRY_SCHEDULE_S = (0, 60, 120, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class WebhookSender:
    def __init__(self, config: Any, counters: Any, faults: Any, rng: random.Random) -> None:
        self.config, self.counters, self.faults, self.rng = config, counters, faults, rng
        self.session: aiohttp.ClientSession | None = None
        self.tasks: set[asyncio.Task] = set()
        self._held: dict[str, list] = {}  # reorder fault: processing events held back per job

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.session is not None:
            await self.session.close()

    def payload(self, job: Any, event: str, result_url: str | None = None) -> dict[str, Any]:
        now = time.time()
        data: dict[str, Any] = {"job_request_id": job.id, "job_type": "img2txt"}
        if event == "job.processing":
            data.update(status="processing", previous_status="pending", started_at=_iso(now))
        elif event == "job.completed":
            data.update(status="done", previous_status="processing", completed_at=_iso(now),
                        processing_time_ms=int((now - job.created) * 1000), result_url=result_url)
            if job.inline:
                data["result"] = job.text
        else:
            data.update(status="error", previous_status="processing", failed_at=_iso(now),
                        error_code=job.error_code, error_message=job.error)
        return {"event": event, "delivery_id": str(uuid.uuid4()), "timestamp": _iso(now), "data": data}

    def send(self, job: Any, event: str, result_url: str | None = None) -> None:
        if not job.webhook_url or self.session is None:
            return
        f = self.faults
        if f.webhook_lose.fire(self.rng):
            return
        payload = self.payload(job, event, result_url)
        delay = f.webhook_delay_s if f.webhook_delay.fire(self.rng) else 0.0
        if event == "job.processing" and f.webhook_reorder.fire(self.rng):
            self._held[job.id] = [payload]  # sent after the terminal event
            return
        copies = 2 if f.webhook_duplicate.fire(self.rng) else 1
        for _ in range(copies):
            self._spawn(job.webhook_url, payload, delay)
        held = self._held.pop(job.id, None) if event != "job.processing" else None
        for late in held or ():
            self._spawn(job.webhook_url, late, delay + 0.01)

    def _spawn(self, url: str, payload: dict[str, Any], delay: float) -> None:
        task = asyncio.create_task(self._deliver(url, payload, delay))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _deliver(self, url: str, payload: dict[str, Any], delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        body = json.dumps(payload, separators=(",", ":")).encode()
        for attempt, wait in enumerate(RETRY_SCHEDULE_S):
            if wait:
                await asyncio.sleep(wait * self.config.webhook_time_scale)
            ts = str(int(time.time()))
            headers = {"Content-Type": "application/json", "User-Agent": "DeAPI-Webhook/1.0",
                       "X-DeAPI-Signature": sign(self.config.webhook_secret, ts, body), "X-DeAPI-Timestamp": ts,
                       "X-DeAPI-Event": payload["event"], "X-DeAPI-Delivery-Id": payload["delivery_id"]}
            try:
                assert self.session is not None
                async with self.session.post(url, data=body, headers=headers, allow_redirects=False) as resp:
                    self.counters.webhooks_sent += 1
                    if 200 <= resp.status < 300:
                        return
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                self.counters.webhooks_sent += 1
                log.debug("webhook delivery to %s failed: %s", url, exc)
            self.counters.webhook_failures += 1
        log.warning("webhook %s for %s given up after %d attempts", payload["event"],
                    payload["data"]["job_request_id"], len(RETRY_SCHEDULE_S))
