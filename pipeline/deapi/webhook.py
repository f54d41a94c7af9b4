"""Webhook mode: receive deAPI's job events, verify them, and hand them to the runner as hints.

deAPI can push ``job.processing`` / ``job.completed`` / ``job.failed`` to a URL we give it
(``webhook_url`` on submit). That saves status polls, which matter on the Basic plan (200
status calls per day). This module is the receiving end:

* :func:`verify_signature` checks ``X-DeAPI-Signature`` (HMAC-SHA256 over
  ``X-DeAPI-Timestamp + "." + raw_body``) and the 300 s freshness window, over the raw bytes
  *before* any JSON parsing, so nothing unauthenticated is ever interpreted.
* :class:`WebhookReceiver` is a small aiohttp app: it caps the body size, verifies, parses,
  drops replayed deliveries (deAPI retries up to 10 times, so duplicates are normal), answers
  ``200`` at once (deAPI wants a 2xx within 10 s) and only then runs ``on_event`` in a
  background task. A failing ``on_event`` is logged and never takes the receiver down.
* :class:`JobEvents` is the board the runner waits on: ``await events.wait(request_id, t)``
  returns the terminal event as soon as it arrives (or if it arrived before anyone waited),
  or ``None`` after ``t`` seconds.

The webhook is a *hint*, never the truth: deliveries get lost, delayed, reordered and
duplicated, and a receiver behind a misconfigured proxy sees nothing at all. The runner
therefore treats ``None`` from :meth:`JobEvents.wait` as "go and poll ``request-status``".
Only verified deliveries ever reach :class:`JobEvents`, so what a ``job.completed`` carries
(inline text or a ``result_url``) was signed by deAPI; a ``job.failed`` is worth confirming
by polling before a file is marked failed.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import inspect
import json
import logging
import math
import os
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-DeAPI-Signature"
TIMESTAMP_HEADER = "X-DeAPI-Timestamp"
EVENT_HEADER = "X-DeAPI-Event"
DELIVERY_ID_HEADER = "X-DeAPI-Delivery-Id"

EVENT_PROCESSING = "job.processing"
EVENT_COMPLETED = "job.completed"
EVENT_FAILED = "job.failed"
KNOWN_EVENTS = frozenset({EVENT_PROCESSING, EVENT_COMPLETED, EVENT_FAILED})
TERMINAL_EVENTS = frozenset({EVENT_COMPLETED, EVENT_FAILED})

DEFAULT_TOLERANCE_S = 300
DEFAULT_MAX_BODY_BYTES = 1024 * 1024

# Status each event implies when the body leaves ``data.status`` out.
_STATUS_FOR_EVENT = {EVENT_PROCESSING: "processing", EVENT_COMPLETED: "done", EVENT_FAILED: "error"}
_SIGNATURE_RE = re.compile(r"sha256=([0-9a-fA-F]{64})")
_TIMESTAMP_RE = re.compile(r"[0-9]{1,20}")


class WebhookRejected(Exception):
    """A delivery we refuse; ``status`` is the HTTP answer, ``reason`` says why in plain words.

    ``kind`` groups rejections for the receiver's counters: ``signature`` (missing or wrong
    signature/timestamp headers), ``stale`` (authentic but outside the time window),
    ``malformed`` (bad JSON or missing fields) and ``too_large``.
    """

    def __init__(self, status: int, reason: str, *, kind: str = "malformed") -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason
        self.kind = kind


class WebhookIgnored(Exception):
    """A verified delivery of an event type we do not use: acknowledged (200) and dropped.

    Refusing it would make deAPI retry it ten times, and ten failed deliveries in a row switch
    webhooks off for the whole account: a new event type must never do that.
    """


class WebhookConfigError(ValueError):
    """Webhook mode cannot start as configured (e.g. the secret's env var is unset)."""


def _secret_bytes(secret: str | bytes) -> bytes:
    key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if not key:
        # An empty HMAC key would make every signature forgeable: refuse loudly, not silently.
        raise WebhookConfigError("webhook secret is empty; set it from deAPI's webhook settings")
    return key


def compute_signature(secret: str | bytes, timestamp: str, raw_body: bytes) -> str:
    """The ``X-DeAPI-Signature`` value deAPI sends for this timestamp and body.

    Exposed for senders (the project's own server) and for documentation; the receiver's
    tests sign independently with :mod:`hmac` so they check the protocol, not this function.
    """
    mac = hmac.new(_secret_bytes(secret), timestamp.encode("ascii") + b"." + raw_body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def secret_from_env(var: str, environ: Mapping[str, str] | None = None) -> str:
    """Read the webhook secret from environment variable ``var`` (secrets never live in config files)."""
    env = os.environ if environ is None else environ
    value = env.get(var, "").strip()
    if not value:
        raise WebhookConfigError(
            f"webhook mode is enabled but environment variable {var} is empty or unset; "
            f"export it with the webhook secret from your deAPI settings"
        )
    return value


def verify_signature(
    secret: str | bytes,
    timestamp: str | None,
    raw_body: bytes,
    signature_header: str | None,
    *,
    now: float | None = None,
    tolerance_s: float | None = DEFAULT_TOLERANCE_S,
) -> None:
    """Raise :class:`WebhookRejected` (401) unless this delivery is authentic and fresh.

    The MAC is checked before the time window, so a "stale" verdict is only ever given to a
    message deAPI really signed (a genuine replay or a skewed clock), which makes the counters
    and logs tell those cases apart from forgeries. ``tolerance_s`` of ``0`` or ``None``
    disables the freshness check (as in deAPI's SDK); the comparison is ``|now - ts| > tol``.
    """
    key = _secret_bytes(secret)
    missing = [name for name, value in ((SIGNATURE_HEADER, signature_header), (TIMESTAMP_HEADER, timestamp))
               if not value]
    if missing:
        raise WebhookRejected(401, f"missing header(s): {', '.join(missing)}", kind="signature")
    assert signature_header is not None and timestamp is not None
    match = _SIGNATURE_RE.fullmatch(signature_header.strip())
    if match is None:
        raise WebhookRejected(401, f"malformed {SIGNATURE_HEADER}: expected 'sha256=<64 hex digits>'",
                              kind="signature")
    if _TIMESTAMP_RE.fullmatch(timestamp) is None:
        raise WebhookRejected(401, f"malformed {TIMESTAMP_HEADER}: expected integer Unix seconds",
                              kind="signature")
    expected = hmac.new(key, timestamp.encode("ascii") + b"." + raw_body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, match.group(1).lower()):
        raise WebhookRejected(401, "signature mismatch (is the webhook secret the one deAPI uses?)",
                              kind="signature")
    if tolerance_s:
        current = time.time() if now is None else now
        skew = current - int(timestamp)
        if skew > tolerance_s:
            raise WebhookRejected(401, f"timestamp is {skew:.0f} s old (limit {tolerance_s:g} s): replay or "
                                       f"a slow clock", kind="stale")
        if -skew > tolerance_s:
            hint = " (milliseconds instead of seconds?)" if len(timestamp) >= 13 else ""
            raise WebhookRejected(401, f"timestamp is {-skew:.0f} s in the future (limit {tolerance_s:g} s)"
                                       f"{hint}", kind="stale")


@dataclass(frozen=True)
class WebhookEvent:
    """One verified deAPI job event, normalised from the documented payload.

    ``request_id`` comes from ``data.job_request_id`` (``data.request_id`` also accepted);
    ``result`` is the inline text if deAPI included it (undocumented for OCR, so usually
    ``None``: fetch through the client). ``sent_at`` is the body's ``timestamp`` as Unix
    seconds (ISO string or number accepted), ``received_at`` our clock on arrival.
    """

    delivery_id: str
    event: str
    request_id: str
    status: str
    result_url: str | None
    result: str | None
    error_code: str | None
    error_message: str | None
    received_at: float
    raw: dict = field(repr=False, compare=False)
    sent_at: float | None = None

    @property
    def terminal(self) -> bool:
        """True for ``job.completed`` / ``job.failed``: the job will not change any more."""
        return self.event in TERMINAL_EVENTS


def _opt_str(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def _parse_body_timestamp(value: Any) -> float | None:
    """ISO-8601 string (documented) or number (seen in deAPI's n8n notes); ``None`` if neither."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        seconds = float(value)
        if not math.isfinite(seconds):
            return None
        return seconds / 1000.0 if seconds > 1e11 else seconds   # milliseconds, judging by size
    if isinstance(value, str):
        text = value.strip()
        try:
            return _parse_body_timestamp(float(text))
        except ValueError:
            pass
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def parse_event(
    raw_body: bytes,
    *,
    header_event: str | None = None,
    header_delivery_id: str | None = None,
    received_at: float | None = None,
) -> WebhookEvent:
    """Turn a verified body into a :class:`WebhookEvent`, or raise :class:`WebhookRejected` (400)."""
    try:
        body = json.loads(raw_body)
    except (ValueError, RecursionError) as exc:
        raise WebhookRejected(400, f"body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise WebhookRejected(400, "body must be a JSON object")
    event = body.get("event")
    if not isinstance(event, str) or not event:
        event = header_event or None
        if event is None:
            raise WebhookRejected(400, "missing 'event' in body")
    if event not in KNOWN_EVENTS:
        raise WebhookIgnored(f"event {event!r} is not one this pipeline uses ({', '.join(sorted(KNOWN_EVENTS))})")
    if header_event and header_event != event:
        raise WebhookRejected(400, f"{EVENT_HEADER} {header_event!r} does not match body event {event!r}")
    data = body.get("data")
    if not isinstance(data, dict):
        raise WebhookRejected(400, "missing or non-object 'data' in body")
    request_id = data.get("job_request_id", data.get("request_id"))
    if isinstance(request_id, bool) or not isinstance(request_id, (str, int)) or str(request_id).strip() == "":
        raise WebhookRejected(400, "missing 'data.job_request_id' in body")
    delivery_id = _opt_str(body.get("delivery_id")) or _opt_str(header_delivery_id)
    if delivery_id is None:
        # No id anywhere: the signed body itself is the best identity a retry can share.
        delivery_id = "sha256:" + hashlib.sha256(raw_body).hexdigest()
    result = data.get("result")
    if result is not None and not isinstance(result, str):
        result = json.dumps(result, ensure_ascii=False)   # format=json may arrive as an object
    status = _opt_str(data.get("status")) or _STATUS_FOR_EVENT[event]
    return WebhookEvent(
        delivery_id=delivery_id,
        event=event,
        request_id=str(request_id).strip(),
        status=status,
        result_url=_opt_str(data.get("result_url")),
        result=result,
        error_code=_opt_str(data.get("error_code")),
        error_message=_opt_str(data.get("error_message")) or _opt_str(data.get("error")),
        received_at=time.time() if received_at is None else received_at,
        raw=body,
        sent_at=_parse_body_timestamp(body.get("timestamp")),
    )


@dataclass
class ReceiverCounters:
    """What the receiver has seen; ``received`` counts every POST that reached the handler."""

    received: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected_signature: int = 0
    rejected_stale: int = 0
    rejected_malformed: int = 0
    rejected_too_large: int = 0
    ignored: int = 0          # verified, but an event type we do not use (answered 200)
    handler_errors: int = 0

    def snapshot(self) -> dict[str, int]:
        return asdict(self)


OnEvent = Callable[[WebhookEvent], "Awaitable[None] | None"]


class WebhookReceiver:
    """HTTP endpoint for deAPI webhooks (an aiohttp app on ``host:port``, route ``path``, and the
    routes ``also``: the path of ``webhook.public_url``, for a proxy that forwards it unchanged).

    In production it listens on loopback behind a TLS reverse proxy (deAPI only calls HTTPS
    URLs); :attr:`url` is the local address actually bound, for tests and for the embedded
    server, which may call plain-HTTP loopback URLs.
    """

    def __init__(
        self,
        secret: str | bytes,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = "/deapi/webhook",
        also: tuple[str, ...] = (),
        tolerance_s: float | None = DEFAULT_TOLERANCE_S,
        clock: Callable[[], float] = time.time,
        on_event: OnEvent | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_delivery_ids: int = 100_000,
        drain_timeout_s: float = 5.0,
    ) -> None:
        self._secret = _secret_bytes(secret)
        for p in (path, *also):
            if not p.startswith("/"):
                raise WebhookConfigError(f"webhook path must start with '/': {p!r}")
        self.host = host
        self._requested_port = port
        self.path = path
        self.tolerance_s = tolerance_s
        self._clock = clock
        self._on_event = on_event
        self.max_body_bytes = max_body_bytes
        self._max_delivery_ids = max_delivery_ids
        self._drain_timeout_s = drain_timeout_s
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self.counters = ReceiverCounters()
        # client_max_size backs up our own cap; +1 so our check (and its 413 text) wins.
        self.app = web.Application(client_max_size=max_body_bytes + 1)
        self.paths = tuple(dict.fromkeys((path, *also)))   # the default route, and public_url's path
        for p in self.paths:
            self.app.router.add_post(p, self._handle)

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("webhook receiver already started")
        runner = web.AppRunner(self.app, shutdown_timeout=self._drain_timeout_s)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self._requested_port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        log.info("webhook receiver listening on %s", self.url)

    async def stop(self) -> None:
        """Stop listening, then let running ``on_event`` tasks finish (bounded), cancel the rest."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=self._drain_timeout_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

    async def __aenter__(self) -> WebhookReceiver:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def drain(self) -> None:
        """Wait until every ``on_event`` call scheduled so far has finished."""
        while self._tasks:
            await asyncio.gather(*set(self._tasks), return_exceptions=True)

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("webhook receiver is not started")
        return self._port

    @property
    def url(self) -> str:
        """``http://host:port/path`` as bound; wildcard hosts are given as their loopback form."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}{self.path}"

    # -- request handling -----------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.Response:
        self.counters.received += 1
        try:
            raw_body = await self._read_capped(request)
            verify_signature(self._secret, request.headers.get(TIMESTAMP_HEADER), raw_body,
                             request.headers.get(SIGNATURE_HEADER), now=self._clock(),
                             tolerance_s=self.tolerance_s)
            header_delivery_id = request.headers.get(DELIVERY_ID_HEADER) or None
            event = parse_event(raw_body, header_event=request.headers.get(EVENT_HEADER) or None,
                                header_delivery_id=header_delivery_id, received_at=self._clock())
        except WebhookRejected as rej:
            self._count_rejection(rej)
            log.warning("webhook from %s rejected (%d): %s", request.remote, rej.status, rej.reason)
            return web.json_response({"error": rej.reason}, status=rej.status)
        except WebhookIgnored as ign:
            self.counters.ignored += 1
            log.info("webhook ignored: %s", ign)
            return web.json_response({"ok": True, "ignored": str(ign)})

        ids = {event.delivery_id}
        if header_delivery_id:
            if header_delivery_id != event.delivery_id:
                # Unsigned header vs signed body: dedupe on both, but do not refuse (a refusal
                # makes deAPI retry and counts towards its circuit breaker).
                log.warning("webhook delivery id differs: header %s, body %s", header_delivery_id,
                            event.delivery_id)
            ids.add(header_delivery_id)
        if any(i in self._seen for i in ids):
            self.counters.duplicates += 1
            log.debug("duplicate webhook delivery %s (%s for %s) ignored", event.delivery_id, event.event,
                      event.request_id)
            return web.json_response({"ok": True, "duplicate": True})
        self._remember(ids)
        self.counters.accepted += 1
        if self._on_event is not None:
            task = asyncio.get_running_loop().create_task(self._run_on_event(event))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return web.json_response({"ok": True})

    async def _read_capped(self, request: web.Request) -> bytes:
        """Read the body but never more than ``max_body_bytes`` (+1 to detect overflow)."""
        cap = self.max_body_bytes
        too_large = WebhookRejected(413, f"body larger than {cap} bytes", kind="too_large")
        if request.content_length is not None and request.content_length > cap:
            raise too_large
        body = bytearray()
        while True:
            chunk = await request.content.read(min(65536, cap + 1 - len(body)))
            if not chunk:
                return bytes(body)
            body += chunk
            if len(body) > cap:
                raise too_large

    def _count_rejection(self, rej: WebhookRejected) -> None:
        attr = {"signature": "rejected_signature", "stale": "rejected_stale",
                "too_large": "rejected_too_large"}.get(rej.kind, "rejected_malformed")
        setattr(self.counters, attr, getattr(self.counters, attr) + 1)

    def _remember(self, ids: set[str]) -> None:
        for delivery_id in ids:
            self._seen[delivery_id] = None
        while len(self._seen) > self._max_delivery_ids:
            self._seen.popitem(last=False)

    async def _run_on_event(self, event: WebhookEvent) -> None:
        assert self._on_event is not None
        try:
            outcome = self._on_event(event)
            if inspect.isawaitable(outcome):
                await outcome
        except asyncio.CancelledError:
            raise
        except Exception:
            self.counters.handler_errors += 1
            log.exception("webhook on_event failed for %s %s (delivery %s); receiver keeps running",
                          event.event, event.request_id, event.delivery_id)


class JobEvents:
    """Latest webhook event per request id, with waiters for the terminal one.

    A terminal event is sticky: a late or reordered ``job.processing`` never replaces it, and
    a second, conflicting terminal event is logged and ignored. Events nobody waits on yet
    (the webhook can beat the runner's ``wait`` call) are kept for ``keep_s`` seconds and at
    most ``max_events`` request ids, oldest first out, so memory stays bounded.
    """

    def __init__(self, *, max_events: int = 10_000, keep_s: float = 1800.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._max_events = max_events
        self._keep_s = keep_s
        self._clock = clock
        self._events: OrderedDict[str, tuple[float, WebhookEvent]] = OrderedDict()
        self._waiters: dict[str, set[asyncio.Future[WebhookEvent]]] = {}

    def deliver(self, event: WebhookEvent) -> None:
        """Record ``event`` and wake whoever waits for its request id if it is terminal."""
        self._prune()
        rid = event.request_id
        stored = self._events.get(rid)
        if stored is not None and stored[1].terminal:
            if event.terminal and event.event != stored[1].event:
                log.warning("conflicting terminal webhook for %s: kept %s, ignored %s", rid,
                            stored[1].event, event.event)
            else:
                log.debug("webhook %s for %s after %s ignored", event.event, rid, stored[1].event)
            return
        self._events[rid] = (self._clock(), event)
        self._events.move_to_end(rid)
        while len(self._events) > self._max_events:
            self._events.popitem(last=False)
        waiters = self._waiters.get(rid)
        if not waiters:
            log.debug("webhook %s for request id %s with no waiter; kept up to %.0f s", event.event, rid,
                      self._keep_s)
        elif event.terminal:
            for fut in waiters:
                if not fut.done():
                    fut.set_result(event)

    def latest(self, request_id: str) -> WebhookEvent | None:
        """The newest (or the terminal) event seen for ``request_id``, if still kept."""
        self._prune()
        stored = self._events.get(request_id)
        return stored[1] if stored else None

    def forget(self, request_id: str) -> None:
        """Drop what is kept for ``request_id`` (the runner is done with it)."""
        self._events.pop(request_id, None)

    async def wait(self, request_id: str, timeout: float | None) -> WebhookEvent | None:
        """Terminal event for ``request_id``, or ``None`` after ``timeout`` s (then: poll)."""
        current = self.latest(request_id)
        if current is not None and current.terminal:
            return current
        if timeout is not None and timeout <= 0:
            return None
        fut: asyncio.Future[WebhookEvent] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(request_id, set()).add(fut)
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            return None
        finally:
            waiters = self._waiters.get(request_id)
            if waiters is not None:
                waiters.discard(fut)
                if not waiters:
                    del self._waiters[request_id]

    def __len__(self) -> int:
        return len(self._events)

    def _prune(self) -> None:
        if not self._keep_s or math.isinf(self._keep_s):
            return
        horizon = self._clock() - self._keep_s
        while self._events:
            rid, (stored_at, _) = next(iter(self._events.items()))
            if stored_at >= horizon:
                break
            del self._events[rid]
