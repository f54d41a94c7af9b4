"""The deAPI HTTP client: one aiohttp session, explicit limits and timeouts, retries by class.

What it promises:

* every response shape the public sources disagree on is accepted (``{"balance"}`` and
  ``{"data": {"balance"}}``, both 422 shapes, ``error``/``failed`` statuses, string progress);
* retries follow the failure's class (``retry.py``): 429 honours ``Retry-After``, 5xx and
  connection errors back off with jitter, other 4xx never retry; a submit whose connection
  dropped *after* it was sent raises ``SubmitOutcomeUnknown`` instead of being resent;
* the token goes only to ``base_url``: result links are fetched with a bare request that
  carries no ``Authorization`` header, wherever they point;
* calls go through the shared per-endpoint rate limiter, and the poller learns job times.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from . import errors as E
from .polling import PollLearner
from .ratelimit import DailyBudgetSpent, RateLimiter
from .retry import RetryPolicy, call_with_retries

log = logging.getLogger("pipeline.deapi")

TERMINAL_OK = {"done", "completed", "success", "succeeded"}
TERMINAL_FAIL = {"error", "failed", "cancelled", "canceled"}


@dataclass(frozen=True)
class ClientSettings:
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 120.0
    max_attempts: int = 5
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    max_retry_after_s: float = 300.0
    first_poll_s: float = 1.0
    poll_min_interval_s: float = 0.2
    poll_max_interval_s: float = 30.0
    poll_backoff: float = 1.5
    plan: str = "unlimited"
    submit_per_minute: int | None = None
    submit_per_day: int | None = None
    status_per_minute: int | None = None
    status_per_day: int | None = None
    connections: int = 64
    user_agent: str = "pipeline-ocr/0.1"


@dataclass(frozen=True)
class PixelLimits:
    min_width: int | None = None
    max_width: int | None = None
    min_height: int | None = None
    max_height: int | None = None


@dataclass(frozen=True)
class ModelInfo:
    slug: str
    name: str
    inference_types: tuple[str, ...]
    limits: PixelLimits | None


@dataclass(frozen=True)
class JobStatus:
    status: str
    progress: float | None = None
    result: str | None = None
    result_url: str | None = None
    error: str | None = None
    error_code: str | None = None
    raw: dict = field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_OK or self.status in TERMINAL_FAIL

    @property
    def ok(self) -> bool:
        return self.status in TERMINAL_OK


@dataclass
class ClientStats:
    submits: int = 0
    status_calls: int = 0
    downloads: int = 0
    retries: int = 0
    rate_limited: int = 0
    possible_duplicates: int = 0

    def snapshot(self) -> dict[str, int]:
        return dict(vars(self))


def _as_float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class DeapiClient:
    def __init__(self, base_url: str, token: str, settings: ClientSettings | None = None, *,
                 limiter: RateLimiter | None = None, on_overload: Any = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.settings = s = settings or ClientSettings()
        overrides = {}
        if s.submit_per_minute is not None or s.submit_per_day is not None:
            overrides["submit"] = (s.submit_per_minute, s.submit_per_day)
        if s.status_per_minute is not None or s.status_per_day is not None:
            overrides["status"] = (s.status_per_minute, s.status_per_day)
        self.limiter = limiter or RateLimiter.for_plan(s.plan, overrides)
        self.retry = RetryPolicy(max_attempts=s.max_attempts, initial=s.backoff_initial_s, maximum=s.backoff_max_s,
                                 max_retry_after=s.max_retry_after_s)
        self.poller = PollLearner(first=s.first_poll_s, minimum=s.poll_min_interval_s, maximum=s.poll_max_interval_s,
                                  backoff=s.poll_backoff)
        self.stats = ClientStats()
        self.on_overload = on_overload  # called on every 429 (the adaptive concurrency backs off)
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:  # never show the token
        return f"DeapiClient({self.base_url!r})"

    async def __aenter__(self) -> "DeapiClient":
        s = self.settings
        connector = aiohttp.TCPConnector(limit=s.connections, limit_per_host=s.connections, ttl_dns_cache=300)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=s.connect_timeout_s, sock_read=s.read_timeout_s)
        self._session = aiohttp.ClientSession(connector=connector, timeout=timeout,
                                              headers={"Accept": "application/json", "User-Agent": s.user_agent})
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- low level ----------------------------------------------------------------------------

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    async def _request(self, method: str, path: str, endpoint: str | None, *, data: Any = None,
                       params: dict | None = None, is_submit: bool = False) -> Any:
        assert self._session is not None, "use 'async with DeapiClient(...)'"
        url = self.base_url + path

        async def attempt() -> Any:
            if endpoint is not None:
                try:
                    await self.limiter.acquire(endpoint)
                except DailyBudgetSpent as exc:
                    raise E.DailyLimitError(f"{exc} (plan budget reached; the rest waits for the next run)",
                                            retry_after=0, limit_type="daily") from None
            body = data() if callable(data) else data
            sent = False
            try:
                async with self._session.request(method, url, data=body, params=params, headers=self._auth(),
                                                 allow_redirects=False) as resp:
                    sent = True
                    raw = await resp.read()
                    if endpoint is not None:
                        self.limiter.observe(endpoint, resp.headers)
                    return self._decode(resp, raw, endpoint)
            except (aiohttp.ClientConnectorError, aiohttp.ClientSSLError) as exc:
                raise E.TransportError(f"cannot connect to {self.base_url}: {exc.os_error if hasattr(exc, 'os_error') else exc}") from None
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, aiohttp.ClientPayloadError,
                    asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
                what = type(exc).__name__
                if is_submit:
                    self.stats.possible_duplicates += 1
                    raise E.SubmitOutcomeUnknown(
                        f"the connection ended after the upload was sent ({what}); the job may exist") from None
                raise E.TransportError(f"{method} {path} failed: {what}") from None

        def on_retry(exc: E.DeapiError) -> None:
            self.stats.retries += 1
            if isinstance(exc, E.RateLimitError):
                self.stats.rate_limited += 1
                if self.on_overload is not None:
                    self.on_overload()
                if endpoint is not None:
                    self.limiter.pause(endpoint, exc.retry_after)

        return await call_with_retries(attempt, self.retry, on_retry=on_retry)

    def _decode(self, resp: aiohttp.ClientResponse, raw: bytes, endpoint: str | None) -> Any:
        status = resp.status
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        message = (body.get("message") if isinstance(body, dict) else None) or resp.reason or ""
        if 200 <= status < 300:
            if body is None and raw:
                raise E.ServerError(f"HTTP {status} with a non-JSON body from {self.base_url}", status=status)
            return body
        if status == 429:
            retry_after = _retry_after(resp.headers.get("Retry-After"))
            kind = (resp.headers.get("X-RateLimit-Type") or "").lower() or None
            if kind == "daily" or retry_after > self.settings.max_retry_after_s:
                if endpoint is not None:
                    self.limiter.close_day(endpoint)
                raise E.DailyLimitError(f"the API's {'daily' if kind == 'daily' else 'long'} rate limit is reached "
                                        f"(Retry-After {retry_after:.0f}s); the rest waits for the next run",
                                        retry_after=retry_after, limit_type=kind)
            raise E.RateLimitError(f"rate limited (429 {message}); retrying after {retry_after:.0f}s",
                                   retry_after=retry_after, limit_type=kind)
        if status in (401, 403):
            raise E.AuthError(f"the API refused the token ({status} {message}): check the environment variable "
                              f"holding the deAPI token", status=status)
        if status == 422:
            errs = E.laravel_errors(body)
            if "balance" in errs or "balance" in message.lower():
                raise E.InsufficientBalanceError(f"the account balance is too low ({message}): top it up",
                                                 status=status)
            detail = "; ".join(f"{k}: {' '.join(v)}" for k, v in errs.items()) or message
            raise E.ValidationError(f"the API rejected the request (422): {detail}", errors=errs)
        if status == 404:
            raise E.NotFoundError(f"not found (404 {message})", status=404)
        if status >= 500:
            raise E.ServerError(f"the API answered {status} {message or resp.reason}".strip(), status=status)
        raise E.ValidationError(f"the API answered {status} {message}".strip(), status=status)

    # -- the API ------------------------------------------------------------------------------

    async def list_models(self, inference_type: str | None = "img2txt") -> list[ModelInfo]:
        out: list[ModelInfo] = []
        page = 1
        while page <= 50:
            params = {"per_page": "50", "page": str(page)}
            if inference_type:
                params["filter[inference_types]"] = inference_type
            body = await self._request("GET", "/api/v1/client/models", None, params=params)
            items = body.get("data") if isinstance(body, dict) else body
            if isinstance(items, dict) and "data" in items:  # {"data": {"data": [...]}} form
                items = items["data"]
            for m in items or []:
                types = m.get("inference_types") or []
                types = tuple(types.keys() if isinstance(types, dict) else types)
                if inference_type and inference_type not in types:
                    continue
                info = m.get("info") if isinstance(m.get("info"), dict) else {}
                lim = info.get("limits") if isinstance(info.get("limits"), dict) else None
                limits = PixelLimits(**{k: lim.get(k) for k in ("min_width", "max_width", "min_height", "max_height")}) if lim else None
                out.append(ModelInfo(slug=str(m.get("slug")), name=str(m.get("name", m.get("slug"))),
                                     inference_types=types, limits=limits))
            meta = body.get("meta") if isinstance(body, dict) else None
            if not meta or int(meta.get("current_page", 1)) >= int(meta.get("last_page", 1)):
                break
            page += 1
        return out

    async def balance(self) -> float:
        body = await self._request("GET", "/api/v1/client/balance", None)
        if isinstance(body, dict) and isinstance(body.get("data"), dict) and "balance" in body["data"]:
            return float(body["data"]["balance"])
        if isinstance(body, dict) and "balance" in body:
            return float(body["balance"])
        raise E.ServerError("the balance answer has no balance field")

    async def submit_ocr(self, data: bytes, filename: str, content_type: str, *, model: str,
                         language: str | None = None, format: str | None = "text",
                         return_result_in_response: bool = False, webhook_url: str | None = None) -> str:
        def form() -> aiohttp.FormData:  # a fresh body for every attempt
            f = aiohttp.FormData()
            f.add_field("image", data, filename=filename, content_type=content_type)
            f.add_field("model", model)
            if language:
                f.add_field("language", language)
            if format:
                f.add_field("format", format)
            f.add_field("return_result_in_response", "true" if return_result_in_response else "false")
            if webhook_url:
                f.add_field("webhook_url", webhook_url)
            return f

        self.stats.submits += 1
        body = await self._request("POST", "/api/v1/client/img2txt", "submit", data=form, is_submit=True)
        rid = (body.get("data") or {}).get("request_id") if isinstance(body, dict) else None
        if rid is None:
            raise E.ServerError(f"the submit answer has no request_id: {str(body)[:200]}")
        self.poller.submitted(str(rid))
        return str(rid)

    async def get_status(self, request_id: str) -> JobStatus:
        self.stats.status_calls += 1
        body = await self._request("GET", f"/api/v1/client/request-status/{request_id}", "status")
        data = body.get("data") if isinstance(body, dict) and isinstance(body.get("data"), dict) else body
        if not isinstance(data, dict):
            raise E.ServerError(f"the status answer is not an object: {str(body)[:200]}")
        status = str(data.get("status") or "pending").lower()
        result = data.get("result")
        if result is not None and not isinstance(result, str):
            result = json.dumps(result, ensure_ascii=False)
        return JobStatus(status=status, progress=_as_float(data.get("progress")), result=result,
                         result_url=data.get("result_url"), error=data.get("error") or data.get("error_message"),
                         error_code=data.get("error_code"), raw=data)

    async def wait_for_job(self, request_id: str, deadline_s: float) -> JobStatus:
        """Poll until the job is terminal; the first poll is timed from learnt job durations."""
        start = time.monotonic()
        submitted = self.poller.submitted_at(request_id) or start
        delay = self.poller.first_delay(elapsed=time.monotonic() - submitted)
        first, polls, last_miss_at = True, 0, None
        while True:
            remaining = deadline_s - (time.monotonic() - start)
            if remaining <= 0:
                raise E.JobTimeoutError(f"job {request_id} did not finish within {deadline_s:.0f}s; "
                                        f"its request id is kept and the next run polls it again")
            await asyncio.sleep(min(delay, remaining))
            st = await self.get_status(request_id)
            polls += 1
            if st.terminal:
                self.poller.finished(request_id, polls, last_miss_at)
                if not st.ok:
                    raise E.JobFailedError(f"the OCR job failed ({st.error_code or st.status}): "
                                           f"{st.error or 'no details given'}", code=st.error_code)
                return st
            last_miss_at = time.monotonic() - submitted
            delay = self.poller.second_delay() if first else self.poller.next_delay(delay)
            first = False

    async def fetch_result(self, request_id: str, status: Any) -> str:
        """The text: inline ``result``, else a download of ``result_url`` (no Authorization)."""
        if getattr(status, "result", None) is not None:
            return status.result
        url = getattr(status, "result_url", None)
        for attempt in range(3):
            if not url:
                status = await self.get_status(request_id)
                if status.result is not None:
                    return status.result
                url = status.result_url
                if not url:
                    raise E.ServerError(f"job {request_id} is done but has neither result nor result_url")
            text = await self._download(url)
            if text is not None:
                return text
            url = None  # expired: ask request-status for a fresh link
        raise E.ResultExpiredError(f"the result link of job {request_id} kept failing; the next run retries it")

    async def _download(self, url: str) -> str | None:
        assert self._session is not None
        if urlsplit(url).scheme not in ("http", "https"):
            raise E.ServerError(f"refusing a result link that is not http(s): {url[:80]}")
        self.stats.downloads += 1

        async def attempt() -> str | None:
            try:
                # skip_auto_headers + explicit headers: the session's defaults never carry the
                # token, and this request adds none, so no Authorization goes to this host.
                async with self._session.get(url, headers={"Accept": "application/json, text/plain, */*"},
                                             allow_redirects=True) as resp:
                    if resp.status in (401, 403, 404, 410):
                        return None
                    if resp.status >= 500:
                        raise E.ServerError(f"result download answered {resp.status}", status=resp.status)
                    if resp.status >= 400:
                        return None
                    return (await resp.read()).decode("utf-8", "replace")
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                raise E.TransportError(f"result download failed: {type(exc).__name__}") from None

        return await call_with_retries(attempt, self.retry, on_retry=lambda exc: None)


def _retry_after(value: str | None) -> float:
    if not value:
        return 1.0
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return 1.0
