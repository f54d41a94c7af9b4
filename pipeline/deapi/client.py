"""The deAPI HTTP client: one aiohttp session, explicit limits and timeouts, retries by class.

What it promises:

* every response shape the public sources disagree on is accepted (deapi-api.md; read by
  ``bodies.py``), non-JSON (HTML) error pages and both 422 shapes included;
* retries follow the failure's class (``retry.py``): 429 honours ``Retry-After`` (so does a
  5xx that sends one: a 503 in maintenance), 5xx and connection errors back off with jitter,
  other 4xx never retry;
* a submit is resent only when the failure proves the API never saw it (no connection, or
  the request headers were never written - found out with an aiohttp trace hook); if the
  connection drops or times out *after* the request went out, or a gateway answers 504,
  ``SubmitOutcomeUnknown`` is raised instead and counted in ``stats.possible_duplicates``;
* a 404 on a job this client just submitted and never saw a status for is asked again for
  ``not_found_grace_s`` (the status side may lag the submit) before it means "lost";
* a status poll or result download of an accepted job (paid) that fails on the API side after
  its retries (a 5xx, nothing answered) is asked again later, while the job's deadline lasts and
  ``hold()`` says the run is not stopping (``_holds``), instead of failing the job's file;
* the token goes only to ``base_url``: it is added per request (never a session default),
  API calls do not follow redirects, result links are fetched with explicit headers and no
  ``Authorization``, cookies are never stored, and the token is kept in a wrapper whose repr
  is hidden and scrubbed from every message the API echoes back;
* calls go through the shared per-endpoint rate limiter (``ratelimit.py``); a 429 pauses that
  endpoint for every worker; the poller (``polling.py``) learns typical job times.

aiohttp exceptions never leave this module: each becomes one of ``errors.py``'s classes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, replace
from typing import Any, Awaitable, Callable
from urllib.parse import urlsplit

import aiohttp
from aiohttp import BytesPayload

from . import errors as E
from .bodies import (QUEUED, JobStatus, ModelInfo, as_float, html_title, parse_balance, parse_models_page,
                     parse_retry_after, parse_status, unwrap_json_string)
from .multipart import MultipartForm
from .polling import PollPlanner, budget_from_limits
from .ratelimit import DailyBudgetSpent, EndpointShut, RateLimiter
from .retry import RetryPolicy, call_with_retries

# A submit answered 504 Gateway Timeout: the proxy in front gave up waiting on the API, which
# may well have made (and charged) the job meanwhile, so the answer proves nothing. (A 502 is
# mostly an API that was down or restarting, the request never taken: retried as other 5xx.)
GATEWAY_GAVE_UP = frozenset({504})
LIMITER_BURST = 2   # requests a rate-limited endpoint may send back to back (see DeapiClient)

log = logging.getLogger("pipeline.deapi")

API = "/api/v1/client"


@dataclass(frozen=True)
class ClientSettings:
    connect_timeout_s: float = 10.0        # TCP connect (+TLS)
    read_timeout_s: float = 120.0          # between two reads of a response
    total_timeout_s: float | None = 600.0  # one HTTP request end to end (a 10 MB upload on a slow link)
    max_attempts: int = 5                  # per call, for 5xx and transport failures
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    max_retry_after_s: float = 300.0       # a longer Retry-After stops submitting for this run
    max_rate_limit_waits: int = 10         # 429s tolerated for one call
    first_poll_s: float = 1.0              # the poll learner's prior
    poll_min_interval_s: float = 0.2
    poll_max_interval_s: float = 30.0
    poll_backoff: float = 1.5
    status_calls_per_job: float | None = None  # poll budget a job; None: from the plan's limits (else 4)
    poll_gap_share: float | None = 0.25        # no poll gap over this share of the job's time (polling.py) ...
    poll_gap_floor_s: float = 1.0              # ... or over this many seconds, whichever is longer
    plan: str = "unlimited"                # unlimited | basic | premium | custom
    submit_per_minute: int | None = None
    submit_per_day: int | None = None
    status_per_minute: int | None = None
    status_per_day: int | None = None
    connections: int = 64                  # TCPConnector limit (and per host)
    link_refreshes: int = 2                # fresh result links asked for when one expired
    not_found_grace_s: float = 30.0        # a 404 this soon after our own submit is asked again
    max_result_bytes: int = 64 * 1024 * 1024
    user_agent: str = "pipeline-ocr/0.1"
    token_source: str = "the DEAPI_API_KEY environment variable"  # named in AuthError messages


@dataclass
class ClientStats:
    """HTTP requests this client sent (every attempt whose request left counts, retries too:
    that is what quotas count; a refused connection does not)."""

    submits: int = 0
    status_calls: int = 0
    downloads: int = 0
    other_calls: int = 0          # models, balance, price
    retries: int = 0
    rate_limited: int = 0         # 429 answers received
    possible_duplicates: int = 0  # submits whose outcome is unknown
    link_refreshes: int = 0       # status re-polls for a fresh result link
    not_found_waits: int = 0      # 404s on a job just submitted, asked again (not yet visible)
    held_calls: int = 0           # calls about an accepted job that failed on the API side, asked again later

    def snapshot(self) -> dict[str, int]:
        return dict(vars(self))


class _Secret:
    """Holds the token; prints as a placeholder, so a repr, a log line or a traceback's locals
    never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<token hidden>"

    __str__ = __repr__


class DeapiClient:
    def __init__(self, base_url: str, token: str, settings: ClientSettings | None = None, *,
                 limiter: RateLimiter | None = None, on_overload: Callable[[], None] | None = None,
                 on_outcome: Callable[[E.DeapiError | None, str | None], None] | None = None,
                 hold: Callable[[], bool] | None = None) -> None:
        if not isinstance(token, str) or not token.strip():
            raise ValueError("the deAPI token is empty: set it in the environment variable named by api.token_env")
        if any(c in token.strip() for c in "\r\n\t "):
            raise ValueError("the deAPI token contains whitespace or a line break: copy it again without them")
        split = urlsplit(base_url)
        if split.scheme not in ("http", "https") or not split.netloc:
            raise ValueError(f"api.base_url must look like https://api.deapi.ai, not {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._token = _Secret(token.strip())
        self.settings = s = settings or ClientSettings()
        overrides = {}
        if s.submit_per_minute is not None or s.submit_per_day is not None:
            overrides["submit"] = (s.submit_per_minute, s.submit_per_day)
        if s.status_per_minute is not None or s.status_per_day is not None:
            overrides["status"] = (s.status_per_minute, s.status_per_day)
        # A burst of 2: one token of credit, so a submit the event loop wakes a few ms late does
        # not lose those ms for good (at 5 a second, 10 ms late each time is 5 % of the rate);
        # the limiter's sliding 60 s window still never lets more than the limit through.
        self.limiter = limiter or RateLimiter.for_plan(s.plan, overrides, burst=LIMITER_BURST)
        self.retry = RetryPolicy(max_attempts=s.max_attempts, initial=s.backoff_initial_s, maximum=s.backoff_max_s,
                                 max_retry_after=s.max_retry_after_s, max_rate_limit_waits=s.max_rate_limit_waits)
        submit_limits, status_limits = self.limiter.limits("submit"), self.limiter.limits("status")
        # The gap bound gives way only to a real budget: the plan's status limits or the user's.
        # Without one, the planner spends what a naive poller (one every poll_gap_floor_s) would.
        limited = bool(s.status_calls_per_job) or any(st and sb for st, sb in zip(status_limits, submit_limits))
        budget = (s.status_calls_per_job or budget_from_limits(submit_limits, status_limits)) if limited else None
        self.poller = PollPlanner(first=s.first_poll_s, minimum=s.poll_min_interval_s, maximum=s.poll_max_interval_s,
                                  backoff=s.poll_backoff, budget=budget, gap_share=s.poll_gap_share,
                                  gap_floor=s.poll_gap_floor_s, widen=limited)
        self.stats = ClientStats()
        self._unseen: dict[str, float] = {}  # request id -> when its upload left, until a status is seen
        self.on_overload = on_overload  # called on every minute-limit 429 of a submit (adaptive concurrency)
        # Told each API call's final outcome (None: answered; else the error, after the retries):
        # the run's outage breaker (pipeline/run/outage.py) tells an API gone from a file refused.
        self.on_outcome = on_outcome
        # Asked when a call about an accepted job failed on the API side: False (the run is
        # stopping) raises it as before; None holds until the job's deadline (see _holds).
        self.hold = hold
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"DeapiClient({self.base_url!r})"

    async def __aenter__(self) -> "DeapiClient":
        s = self.settings
        connector = aiohttp.TCPConnector(limit=s.connections, limit_per_host=s.connections, ttl_dns_cache=300)
        timeout = aiohttp.ClientTimeout(total=s.total_timeout_s, sock_connect=s.connect_timeout_s,
                                        sock_read=s.read_timeout_s)
        trace = aiohttp.TraceConfig()
        trace.on_request_headers_sent.append(_mark_sent)
        # No Authorization among the defaults: it is added to API requests only (see _headers).
        self._session = aiohttp.ClientSession(connector=connector, timeout=timeout, trace_configs=[trace],
                                              cookie_jar=aiohttp.DummyCookieJar(),
                                              headers={"User-Agent": s.user_agent})
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- low level ----------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token.reveal()}", "Accept": "application/json"}

    def _scrub(self, text: str) -> str:
        token = self._token.reveal()
        return text.replace(token, "<token hidden>") if token and text else text

    def _count_retry(self, exc: E.DeapiError) -> None:
        self.stats.retries += 1

    def _pause_everyone(self, endpoint: str, exc: E.RateLimitError | E.ServerError) -> None:
        """A 429 (or a 5xx with Retry-After: an API in maintenance): every worker waits out
        ``Retry-After`` in the shared limiter (capped), so the retry of this call waits nothing
        more for it itself."""
        self.limiter.pause(endpoint, min(exc.retry_after, self.settings.max_retry_after_s))
        exc.waited_in_limiter = True

    def _count(self, endpoint: str | None) -> None:
        if endpoint == "submit":
            self.stats.submits += 1
        elif endpoint == "status":
            self.stats.status_calls += 1
        else:
            self.stats.other_calls += 1

    async def _request(self, method: str, path: str, endpoint: str | None, *, data: Any = None,
                       params: dict | None = None, is_submit: bool = False, subject: str | None = None,
                       before_send: Callable[[int], None] | None = None,
                       sent_at: dict[str, float] | None = None, rank: Callable[[], float] | None = None) -> Any:
        """One API call with retries; ``data`` may be a callable making a fresh body per attempt.

        ``before_send(attempt)`` runs after the rate limiter let the attempt go and right before
        its bytes leave (attempt 1, 2, ...): the caller writes its submit intent there, so that
        waiting in the limiter never counts as "may have reached the API", and may raise to
        abandon the call (a stop came while it waited)."""
        if self._session is None:
            raise RuntimeError("use 'async with DeapiClient(...) as api:' before calling the API")
        url = self.base_url + path
        attempts = 0

        async def attempt() -> Any:
            nonlocal attempts
            if endpoint is not None:
                try:
                    await self.limiter.acquire(endpoint, rank=rank)
                except DailyBudgetSpent as exc:
                    raise E.DailyLimitError(f"{exc}: the plan's daily budget is reached, the rest waits for the "
                                            f"next run", retry_after=0, limit_type="daily", status=None) from None
                except EndpointShut as exc:
                    raise E.SubmissionsShut(f"not sent: {exc.reason}") from None
            attempts += 1
            if before_send is not None:
                before_send(attempts)
            if sent_at is not None:
                sent_at["t"] = time.monotonic()  # a job never starts before its upload leaves
            body = data() if callable(data) else data
            sent: dict[str, bool] = {"sent": False}
            try:
                async with self._session.request(method, url, data=body, params=params, headers=self._headers(),
                                                 allow_redirects=False, trace_request_ctx=sent) as resp:
                    raw = await resp.read()
                    if endpoint is not None:
                        self.limiter.observe(endpoint, resp.headers)
                    if is_submit and resp.status in GATEWAY_GAVE_UP:
                        self.stats.possible_duplicates += 1
                        raise E.SubmitOutcomeUnknown(
                            f"a gateway in front of {self.base_url} timed out ({resp.status}) after the upload was "
                            f"sent: the API behind it may have made the job, so it is not resent automatically")
                    return self._decode(resp, raw, endpoint, subject)
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                if isinstance(exc, aiohttp.ClientResponseError):
                    exc_text = f"{type(exc).__name__} {exc.status}"  # never its request_info (headers)
                else:
                    exc_text = type(exc).__name__ + (f" ({exc.os_error.strerror})" if isinstance(
                        exc, aiohttp.ClientConnectorError) and exc.os_error.strerror else "")
                if is_submit and sent["sent"]:
                    self.stats.possible_duplicates += 1
                    raise E.SubmitOutcomeUnknown(
                        f"the connection to {self.base_url} ended after the upload was sent ({exc_text}); the job "
                        f"may exist and be charged, so it is not resent automatically") from None
                if not sent["sent"]:
                    raise E.TransportError(f"cannot reach the API at {self.base_url} ({exc_text}): check the "
                                           f"network and api.base_url") from None
                raise E.TransportError(f"{method} {path} to {self.base_url} failed ({exc_text})") from None
            finally:
                if sent["sent"]:
                    self._count(endpoint)

        return await self._told(endpoint, call_with_retries(attempt, self.retry, on_retry=self._count_retry))

    async def _told(self, endpoint: str | None, call: Awaitable[Any]) -> Any:
        """``call``'s final outcome (after its retries) told to ``on_outcome``, then returned or raised."""
        try:
            body = await call
        except E.DeapiError as exc:
            if self.on_outcome is not None:
                self.on_outcome(exc, endpoint)
            raise
        if self.on_outcome is not None:
            self.on_outcome(None, endpoint)
        return body

    def _decode(self, resp: aiohttp.ClientResponse, raw: bytes, endpoint: str | None, subject: str | None) -> Any:
        status = resp.status
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        message = body.get("message") if isinstance(body, dict) and isinstance(body.get("message"), str) else None
        if message is None and raw and body is None:
            message = html_title(raw)
        message = self._scrub((message or resp.reason or "").strip())[:300]
        if 200 <= status < 300:
            if body is None:
                kind = resp.headers.get("Content-Type", "no content type")
                raise E.ServerError(f"the API answered {status} with a body that is not JSON ({kind}) from "
                                    f"{self.base_url}", status=status)
            return body
        if status == 429:
            self.stats.rate_limited += 1
            retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            kind = (resp.headers.get("X-RateLimit-Type") or "").strip().lower() or None
            if kind == "daily" or retry_after > self.settings.max_retry_after_s:
                # Sleeping for hours inside a run helps nobody: close the endpoint for this run.
                if endpoint is not None:
                    self.limiter.close_day(endpoint)
                what = "daily rate limit" if kind == "daily" else \
                    f"rate limit, with a Retry-After over max_retry_after_s ({self.settings.max_retry_after_s:g}s),"
                raise E.DailyLimitError(
                    f"the API's {what} for {endpoint or 'this endpoint'} is reached (429, Retry-After "
                    f"{retry_after:.0f}s); files not yet sent wait for the next run (or a bigger plan)",
                    retry_after=retry_after, limit_type=kind or "long")
            if self.on_overload is not None and endpoint == "submit":
                self.on_overload()  # status 429s slow polling (the limiter), never the job window
            exc = E.RateLimitError(f"the API rate-limited {endpoint or 'this call'} (429 {message}); waiting "
                                   f"{retry_after:.0f}s as Retry-After asks", retry_after=retry_after,
                                   limit_type=kind)
            if endpoint is not None:
                self._pause_everyone(endpoint, exc)
            raise exc
        if status == 401:
            raise E.AuthError(f"the API rejected the token ({status} {message}): check "
                              f"{self.settings.token_source}", status=status)
        if status == 403:
            raise E.AuthError(f"the API refused this token access ({status} {message}): the account may be "
                              f"suspended or lack permission; check it at deapi.ai and "
                              f"{self.settings.token_source}", status=status)
        if status in (402, 422):
            errs = E.laravel_errors(body)
            if "balance" in errs or "balance" in message.lower() or status == 402:
                raise E.InsufficientBalanceError(
                    f"the account balance is too low ({status} {message}): top it up at deapi.ai; files not yet "
                    f"submitted are left for the next run", status=status)
            raise E.ValidationError(message or "Validation failed", errs, status=status)
        if status == 404:
            what = subject or f"{resp.method} {urlsplit(str(resp.url)).path}"
            raise E.NotFoundError(f"{what}: the API does not know it (404 {message})", status=404)
        if 300 <= status < 400:
            raise E.DeapiError(f"the API answered a redirect ({status} to {resp.headers.get('Location', '?')}); "
                               f"redirects are not followed with the token: check api.base_url (https?)",
                               status=status, failure_class="fatal")
        if status >= 500:
            shape = "an HTML page" if raw and body is None else "an error"
            header = resp.headers.get("Retry-After")
            if header is None:
                raise E.ServerError(f"the API answered {status} ({shape}: {message or 'no message'}); retried with "
                                    f"backoff", status=status)
            # An API in maintenance (Laravel's ``artisan down``) answers 503 with Retry-After: the
            # whole endpoint is down, so everyone waits it out, as after a 429 (capped likewise).
            wait = min(parse_retry_after(header), self.settings.max_retry_after_s)
            exc = E.ServerError(f"the API answered {status} ({shape}: {message or 'no message'}); retried after "
                                f"{wait:.0f}s as Retry-After asks", status=status, retry_after=wait)
            if endpoint is not None:
                self._pause_everyone(endpoint, exc)
            raise exc
        raise E.ValidationError(message or f"HTTP {status}", E.laravel_errors(body), status=status)

    # -- the API ------------------------------------------------------------------------------

    async def list_models(self, inference_type: str | None = "img2txt", *, per_page: int = 50,
                          max_pages: int = 20) -> list[ModelInfo]:
        """Every model (of ``inference_type``), walking the paginator (``meta`` or ``links``)."""
        out: list[ModelInfo] = []
        for page in range(1, max_pages + 1):
            params = {"per_page": str(per_page), "limit": str(per_page), "page": str(page)}
            if inference_type:
                params["filter[inference_types]"] = inference_type
            body = await self._request("GET", f"{API}/models", None, params=params, subject="the models list")
            models, more = parse_models_page(body, page)
            out.extend(m for m in models if not inference_type or inference_type in m.inference_types)
            if not models or not more:
                break
        return out

    async def balance(self) -> float:
        body = await self._request("GET", f"{API}/balance", None, subject="the balance")
        return parse_balance(body)

    async def price(self, *, model: str, width: int | None = None, height: int | None = None,
                    data: bytes | None = None, filename: str = "image.png", content_type: str = "image/png",
                    language: str | None = None, format: str | None = None) -> float:
        """The price quote (USD) for one OCR job: by ``width``/``height`` or by the image itself."""
        if data is None and (width is None or height is None):
            raise ValueError("price() needs either data or both width and height")

        def form() -> BytesPayload:
            f = MultipartForm()
            if data is not None:
                f.add_field("image", data, filename=filename, content_type=content_type)
            else:
                f.add_field("width", str(int(width)))
                f.add_field("height", str(int(height)))
            f.add_field("model", model)
            if language:
                f.add_field("language", language)
            if format:
                f.add_field("format", format)
            return f.payload()

        body = await self._request("POST", f"{API}/img2txt/price-calculation", "price", data=form,
                                   subject=f"the price of model {model!r}")
        data_ = body.get("data") if isinstance(body, dict) else None
        value = as_float((data_ if isinstance(data_, dict) else body or {}).get("price"))
        if value is None:
            raise E.ServerError(f"the price answer has no price: {str(body)[:200]}")
        return value

    async def submit_ocr(self, data: bytes, filename: str, content_type: str, *, model: str,
                         language: str | None = None, format: str | None = "text",
                         return_result_in_response: bool = False, webhook_url: str | None = None,
                         before_send: Callable[[int], None] | None = None) -> str:
        """Upload one image; the job's ``request_id``. Raises ``SubmitOutcomeUnknown`` when the
        upload left and the answer was lost (the job may exist: never resent here).
        ``before_send``: see ``_request``."""

        def form() -> BytesPayload:  # a fresh body for every attempt
            f = MultipartForm()
            f.add_field("image", data, filename=filename, content_type=content_type)
            f.add_field("model", model)
            if language:
                f.add_field("language", language)
            if format:
                f.add_field("format", format)
            f.add_field("return_result_in_response", "true" if return_result_in_response else "false")
            if webhook_url:
                f.add_field("webhook_url", webhook_url)
            return f.payload()

        sent_at: dict[str, float] = {}
        body = await self._request("POST", f"{API}/img2txt", "submit", data=form, is_submit=True,
                                   subject=f"model {model!r}", before_send=before_send, sent_at=sent_at)
        data_ = body.get("data") if isinstance(body, dict) else None
        rid = data_.get("request_id") if isinstance(data_, dict) else None
        if rid is None and isinstance(body, dict):
            rid = body.get("request_id")
        if rid is None or not str(rid).strip():
            # The API answered 2xx, so a job may exist, but without its id nobody can poll it.
            self.stats.possible_duplicates += 1
            raise E.SubmitOutcomeUnknown(f"the submit answer has no request_id: {str(body)[:200]}")
        # Job times are counted from the moment the upload left, not from when its answer
        # arrived: a slow answer must not make jobs look faster than they are.
        self.poller.submitted(str(rid), at=sent_at.get("t"))
        self._note_unseen(str(rid), sent_at.get("t", time.monotonic()))
        return str(rid)

    async def get_status(self, request_id: str, rank: Callable[[], float] | None = None) -> JobStatus:
        """``rank``: where this call queues in the status limiter (``RateLimiter.acquire``)."""
        while True:
            try:
                body = await self._request("GET", f"{API}/request-status/{request_id}", "status",
                                           subject=f"request id {request_id}", rank=rank)
            except E.NotFoundError:
                wait = self._not_yet_visible(request_id)
                if wait is None:
                    raise
                self.stats.not_found_waits += 1
                await asyncio.sleep(wait)
                continue
            self._unseen.pop(request_id, None)
            return parse_status(body)

    def _note_unseen(self, request_id: str, sent: float) -> None:
        """Remember a job this client just created until a status answer shows it (ids past
        the grace are dropped oldest first, so webhook runs that never poll keep none)."""
        unseen, grace = self._unseen, self.settings.not_found_grace_s
        now = time.monotonic()
        while unseen:
            oldest = next(iter(unseen))
            if unseen[oldest] + grace > now:
                break
            del unseen[oldest]
        if grace > 0:
            unseen[request_id] = sent

    def _not_yet_visible(self, request_id: str) -> float | None:
        """How long to wait before asking again about a job that answered 404, or None when
        the 404 means the job is gone.

        Why: the API answered our submit with this id, so the job exists; a "Request not
        found." before any status was ever seen is the status side not having caught up yet
        (a read replica, a queue not yet written), not a lost job. Treating it as lost would
        pay for the page again at once. So within ``not_found_grace_s`` of the upload it is
        asked again, each wait as long as the time since the upload (a few calls in all); a
        404 after a status was seen, past the grace, or for an id an earlier run submitted,
        is a lost job as before."""
        sent = self._unseen.get(request_id)
        if sent is None:
            return None
        now = time.monotonic()
        left = sent + self.settings.not_found_grace_s - now
        if left <= 0:
            del self._unseen[request_id]
            return None
        return min(left, max(self.settings.poll_min_interval_s, now - sent))

    async def wait_for_job(self, request_id: str, deadline_s: float, confirm: bool = False) -> JobStatus:
        """Poll until the job is terminal (``done``), at most ``deadline_s`` from now.

        The poll times come from the planner (``polling.py``): planned from recent jobs, one
        probe now and then, early when a job submitted after this one was seen done. With
        ``confirm`` (a verified push said the job failed) the first poll goes at once: the plan
        says when a job is likely done, and this one is said to be; waiting for the plan cost each
        refused upload the learned first poll (42 s on a tour, learned from jobs an outage had
        held, for a refusal the server made in milliseconds). A poll the
        API fails (after its retries) is, while ``_holds`` allows, a poll that said nothing: the
        next one comes when a "not yet" would have brought it. Raises ``JobFailedError`` for a
        failed job, ``JobTimeoutError`` at the deadline (the job may still finish: the caller
        keeps its id), ``NotFoundError`` if the id is unknown."""
        poller = self.poller
        start = time.monotonic()
        if poller.submitted_at(request_id) is None:  # re-attached from an earlier run
            poller.submitted(request_id)
        submitted = poller.submitted_at(request_id) or start
        schedule = poller.schedule_for(request_id)
        version = poller.plan_version
        step, polls, last_miss, last_poll, gap = 0, 0, 0.0, 0.0, self.settings.poll_min_interval_s
        queued, unanswered = False, 0
        while True:
            now = time.monotonic()
            remaining = deadline_s - (now - start)
            if remaining <= 0:
                poller.forget(request_id)
                failed = f", {unanswered} more the API failed" if unanswered else ""
                raise E.JobTimeoutError(f"job {request_id} did not finish within {deadline_s:g}s ({polls} status "
                                        f"calls answered{failed}); its request id is kept, so the next run polls "
                                        f"it again")
            elapsed = now - submitted
            while step < len(schedule) and schedule[step] <= elapsed:
                step += 1  # planned times already past (a re-attach, a slow answer)
            planned = step < len(schedule) and not (confirm and not (polls or unanswered))
            if confirm and not (polls or unanswered):
                target = elapsed   # the push's word is checked now, not when the plan would ask
            elif planned:
                target = schedule[step]
                step += 1
            else:
                target = max(poller.after_plan(last_poll, gap), elapsed)
            if polls or unanswered:
                target = max(target, last_poll + self.settings.poll_min_interval_s)
            gap, last_poll = target - last_poll, target
            hinted = await poller.sleep(request_id, min(target - elapsed, remaining))
            sent = time.monotonic()
            try:
                st = await self.get_status(request_id, rank=lambda: poller.done_chance(request_id))
            except E.NotFoundError:
                poller.forget(request_id)
                raise
            except (E.ServerError, E.TransportError) as exc:
                if not self._holds(exc, request_id, deadline_s - (time.monotonic() - start)):
                    raise
                # Said nothing of the job's time: the planner learns nothing from it, and the
                # next poll is planned from now, as after a "not yet" (past the deadline, the
                # loop's top ends the wait in JobTimeoutError).
                unanswered += 1
                last_poll = max(last_poll, time.monotonic() - submitted)
                if hinted and planned:
                    step -= 1
                continue
            seen = (sent + time.monotonic()) / 2 - submitted  # when the server looked, about
            # The poll that happened, not the one planned: an order hint wakes a poll early, and
            # the next gap (bounded by a share of the time, polling.py) counts from the real one.
            last_poll = seen if hinted else max(last_poll, seen)
            polls += 1
            if hinted:
                poller.hint_result(st.terminal)
                if planned and not st.terminal:
                    step -= 1  # woken early: the planned poll it stood for is still to come
            if st.terminal:
                if st.ok:
                    poller.finished(request_id, last_miss, seen, polls)
                else:  # a failed job's time (a refusal is instant) says nothing of a page's
                    poller.forget(request_id)
                if not st.ok:
                    raise E.JobFailedError(st.error_code, st.error or (None if st.status in ("error", "failed")
                                                                       else f"status {st.status}"),
                                           request_id=request_id)
                return replace(st, queued=queued)
            last_miss = seen
            poller.missed(request_id, seen)
            queued = queued or st.status in QUEUED
            poller.plan()  # replanned since this job's schedule was made? it takes the new plan
            if poller.plan_version != version:
                schedule, step, version = poller.reschedule(last_poll), 0, poller.plan_version

    def _holds(self, exc: E.DeapiError, request_id: str, left_s: float) -> bool:
        """Whether a call about an accepted job that failed on the API side after its retries is
        made again later instead of raised: while the run is not stopping (``hold``) and, for the
        caller to check, the job's deadline lasts (``left_s``; past it a poll ends in
        ``JobTimeoutError``, as for a job that never finishes).

        Why: the job is paid and may well be done; failing its file for a status route that was
        down for a minute (a fleet's database restarting, every call a 503 meanwhile) outlasted
        the retries (15-30 s), struck the file and left the result for the next run. The
        failure was still told to ``on_outcome`` (the run's outage breaker counts it), so an
        API that is really gone still stops the run."""
        if not E.api_failure(exc) or (self.hold is not None and not self.hold()):
            return False
        if left_s > 0:
            self.stats.held_calls += 1
            log.info("deAPI: job %s not answered (%s); asked again later, %.0fs of its deadline left",
                     request_id, exc.reason, left_s)
        return True

    async def _held(self, call: Callable[[], Awaitable[Any]], request_id: str, until: float | None) -> Any:
        """``call()``, made again ``poll_max_interval_s`` after each API-side failure that
        ``_holds`` lets wait, up to ``until`` (a ``time.monotonic()``; None: never held)."""
        while True:
            try:
                return await call()
            except (E.ServerError, E.TransportError) as exc:
                left = -1.0 if until is None else until - time.monotonic()
                if left <= 0 or not self._holds(exc, request_id, left):
                    raise
                await asyncio.sleep(min(left, self.settings.poll_max_interval_s))

    async def fetch_result(self, request_id: str, status: Any, deadline_s: float | None = None) -> str:
        """The job's text: inline ``result``, else a download of ``result_url`` (no token sent).

        An expired link (401/403/404/410), or a done job with no link yet, is replaced by a fresh
        one from ``request-status``, at most ``settings.link_refreshes`` times, each after a
        backoff pause (1 s, 2 s by default): right after "done" the result may not have reached
        storage yet, and asking again at once would only see the same. Then
        ``ResultExpiredError`` (or ``ServerError`` when no link ever came). A status call or a
        download the API fails is made again for up to ``deadline_s`` (what is left of the job's
        deadline; None: not at all), as ``_holds`` allows."""
        if getattr(status, "result", None) is not None:
            return status.result
        url = getattr(status, "result_url", None)
        s = self.settings
        until = None if deadline_s is None else time.monotonic() + deadline_s
        for refresh in range(s.link_refreshes + 1):
            if refresh or not url:
                if refresh:
                    self.stats.link_refreshes += 1
                    await asyncio.sleep(min(s.backoff_max_s, s.backoff_initial_s * 2 ** (refresh - 1)))
                status = await self._held(lambda: self.get_status(request_id), request_id, until)
                if status.result is not None:
                    return status.result
                url = status.result_url
                if not url:
                    continue   # done before its result reached storage: ask again
            text = await self._held(lambda u=url: self._download(u), request_id, until)
            if text is not None:
                return text
        if not url:
            raise E.ServerError(f"job {request_id} is {status.status} but has neither result nor result_url "
                                f"({s.link_refreshes + 1} status calls); its request id is kept and the next run "
                                f"asks again")
        raise E.ResultExpiredError(f"the result link of job {request_id} kept failing after "
                                   f"{self.settings.link_refreshes} fresh links; its request id is kept and the "
                                   f"next run fetches it again")

    async def _download(self, url: str) -> str | None:
        """GET a result link with explicit headers and no token; ``None`` when the link is dead."""
        if self._session is None:
            raise RuntimeError("use 'async with DeapiClient(...) as api:' before calling the API")
        if urlsplit(url).scheme not in ("http", "https"):
            raise E.ServerError(f"refusing a result link that is not http(s): {url[:80]}")
        limit = self.settings.max_result_bytes

        async def attempt() -> str | None:
            await self.limiter.acquire("download")
            sent: dict[str, bool] = {"sent": False}
            try:
                # Explicit headers and no Authorization: the link is signed, and may point at
                # another host (storage), which must never see the token.
                async with self._session.get(url, headers={"Accept": "text/plain, application/json, */*"},
                                             allow_redirects=True, max_redirects=5,
                                             trace_request_ctx=sent) as resp:
                    if resp.status in (401, 403, 404, 410):
                        return None
                    if resp.status == 429:
                        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                        self.stats.rate_limited += 1
                        exc = E.RateLimitError(f"the result download was rate-limited (429); waiting "
                                               f"{retry_after:.0f}s", retry_after=retry_after, limit_type=None)
                        self._pause_everyone("download", exc)
                        raise exc
                    if resp.status >= 500:
                        raise E.ServerError(f"the result download answered {resp.status}", status=resp.status)
                    if resp.status >= 300:
                        return None
                    if resp.content_length is not None and resp.content_length > limit:
                        raise E.ServerError(f"the result is {resp.content_length} bytes, over the {limit}-byte cap")
                    raw = bytearray()
                    async for chunk in resp.content.iter_chunked(1 << 16):
                        raw += chunk
                        if len(raw) > limit:
                            raise E.ServerError(f"the result is over the {limit}-byte cap")
                    try:
                        text = bytes(raw).decode(resp.charset or "utf-8", "replace")
                    except LookupError:  # a charset Python does not know
                        text = bytes(raw).decode("utf-8", "replace")
                    return unwrap_json_string(text, resp.content_type)
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                raise E.TransportError(f"the result download failed ({type(exc).__name__})") from None
            finally:
                if sent["sent"]:
                    self.stats.downloads += 1

        # told too: result storage gone fails every file as surely as the API's routes (run.outage)
        return await self._told("download", call_with_retries(attempt, self.retry, on_retry=self._count_retry))


async def _mark_sent(session: aiohttp.ClientSession, ctx: Any, params: Any) -> None:
    """Trace hook: the request's headers were written, so the server may have acted on it."""
    holder = getattr(ctx, "trace_request_ctx", None)
    if isinstance(holder, dict):
        holder["sent"] = True
