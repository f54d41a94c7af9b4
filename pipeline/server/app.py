"""The deAPI-compatible HTTP application: routes, auth, validation, jobs and fault injection.

It speaks the subset of deAPI v1 that the pipeline uses (see ``../shared/deapi-api.md``):
submit (``img2txt``), ``request-status``, ``models``, ``price-calculation``, ``balance``, a
signed expiring result download, and signed webhooks. Where public sources conflict, the
server picks the documented form. Each job is an asyncio task (pending -> processing ->
done | error); the OCR itself runs in the engine runner's workers, off the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import logging
import random
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from PIL import Image

from .config import ServerConfig
from .counters import Counters
from .engines.base import EngineError
from .engines.pool import EngineRunner
from .models import MODELS, find_model
from .ratelimit import RateLimiter
from .webhooks import WebhookSender

log = logging.getLogger("pipeline.server")

MAX_UPLOAD = 10 * 1024 * 1024
ACCEPTED_FORMATS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "BMP": "bmp", "WEBP": "webp", "MPO": "jpg"}
TRUE, FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off", ""}
LOOPBACK = {"127.0.0.1", "localhost", "::1"}

CONFIG = web.AppKey("config", ServerConfig)
TOKEN = web.RequestKey("token", str) if hasattr(web, "RequestKey") else "token"
STATE = web.AppKey("state", object)


def envelope(status: int, message: str) -> web.Response:
    return web.json_response({"data": None, "message": message, "errors": [], "statusCode": status}, status=status)


def validation_error(errors: dict[str, list[str]], status: int = 422) -> web.Response:
    first = next(iter(errors.values()))[0]
    return web.json_response({"message": first, "errors": errors}, status=status)


@dataclass
class Job:
    id: str
    token: str
    model: str
    language: str | None
    format: str
    inline: bool
    webhook_url: str | None
    image: bytes | None
    created: float
    status: str = "pending"
    progress: float = 0.0
    text: str | None = None
    error: str | None = None
    error_code: str | None = None
    lost: bool = False
    expire_link: bool = False
    done_at: float | None = None
    price: float = 0.0
    base_url: str = ""          # scheme://host the client used, for result links
    stuck: asyncio.Event = field(default_factory=asyncio.Event)


class ServerState:
    """Everything one running server holds: jobs, counters, limits, engine, webhook sender."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.faults = config.faults
        self.counters = Counters()
        self.clock = config.clock or time.time
        self.rng = random.Random(config.seed)
        self.limiter = RateLimiter(config.endpoint_limits(), self.clock)
        self.balance = {t: config.balance for t in config.tokens}
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.tasks: set[asyncio.Task] = set()
        self.engine = EngineRunner(config.engine, workers=config.engine_workers)
        self.link_secret = uuid.uuid4().bytes
        self.webhooks = WebhookSender(config, self.counters, self.faults, self.rng)

    def release_stuck_jobs(self) -> None:
        """Let every job held by ``job_never_finish`` go on to completion (tests, benchmarks)."""
        for job in self.jobs.values():
            job.stuck.set()

    # -- signed result links ------------------------------------------------------------------

    def sign(self, request_id: str, expires: int) -> str:
        return hmac.new(self.link_secret, f"{request_id}:{expires}".encode(), hashlib.sha256).hexdigest()[:32]

    def result_url(self, job: Job) -> str:
        expires = int(self.clock() - 1) if job.expire_link else int(self.clock() + self.config.result_ttl_s)
        base = self.config.public_base_url or job.base_url
        return f"{base}/results/{job.id}.{'json' if job.format == 'json' else 'txt'}?expires={expires}&sig={self.sign(job.id, expires)}"

    def remember(self, job: Job) -> None:
        self.jobs[job.id] = job
        while len(self.jobs) > self.config.max_jobs_kept:
            old_id, old = next(iter(self.jobs.items()))
            if old.status in ("done", "error"):
                self.jobs.pop(old_id)
            else:
                self.jobs.move_to_end(old_id)
                break

    # -- the job lifecycle --------------------------------------------------------------------

    async def run_job(self, job: Job) -> None:
        f = self.faults
        try:
            delay = f.latency + (self.rng.uniform(-f.latency_jitter, f.latency_jitter) if f.latency_jitter else 0.0)
            if delay > 0:
                await asyncio.sleep(delay)
            job.status, job.progress = "processing", 10.0
            self.webhooks.send(job, "job.processing")
            if f.job_never_finish.fire(self.rng):
                await job.stuck.wait()
            if f.job_error.fire(self.rng):
                self._fail(job, f.job_error_code, "injected failure")
                return
            try:
                page = await self.engine.recognize(job.image or b"", job.language)
            except EngineError as exc:
                self._fail(job, exc.code, str(exc))
                return
            job.text = json.dumps(page.to_json(), ensure_ascii=False) if job.format == "json" else page.text
            job.price = round(max(len(page.text), 1) / 1000 * self.config.price_per_1k_chars, 6)
            self.balance[job.token] = self.balance.get(job.token, 0.0) - job.price
            job.status, job.progress, job.done_at = "done", 100.0, self.clock()
            self.webhooks.send(job, "job.completed", self.result_url(job))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never let one job take the server down
            log.exception("job %s crashed", job.id)
            self._fail(job, "UNKNOWN_ERROR", f"internal error: {exc}")
        finally:
            job.image = None  # release the upload

    def _fail(self, job: Job, code: str, message: str) -> None:
        job.status, job.error_code, job.error, job.done_at = "error", code, message, self.clock()
        self.counters.jobs_failed += 1
        self.webhooks.send(job, "job.failed")


def _state(request: web.Request) -> ServerState:
    return request.app[STATE]  # type: ignore[return-value]


def _token(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    if not auth.lower().startswith("bearer "):
        return None
    token = auth[7:].strip()
    return token if token in _state(request).config.tokens else None


@web.middleware
async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
    """Auth on API routes, and a JSON envelope for anything unexpected (never an HTML trace)."""
    if request.path.startswith("/api/"):
        token = _token(request)
        if token is None:
            _state(request).counters.auth_failures += 1
            return envelope(401, "Unauthorized user.")
        request[TOKEN] = token
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json":
            return envelope(exc.status, exc.reason or "error")
        raise
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except Exception:
        log.exception("unhandled error on %s", request.path)
        return envelope(500, "Internal server error")


def _limit(request: web.Request, endpoint: str) -> web.Response | dict[str, str]:
    """Real limits first, then injected 429s/5xx; returns headers to add when allowed."""
    st = _state(request)
    f = st.faults
    verdict = st.limiter.check(request[TOKEN], endpoint)
    if not verdict.allowed:
        st.counters.rate_limited += 1
        return web.json_response({"message": "Too Many Attempts."}, status=429, headers=verdict.headers)
    if endpoint in f.endpoints and f.http_429.fire(st.rng):
        st.counters.rate_limited += 1
        kind = "daily" if f.http_429_daily else "minute"
        return web.json_response({"message": "Too Many Attempts."}, status=429, headers={
            "Retry-After": str(f.retry_after), "X-RateLimit-Type": kind,
            "X-RateLimit-Limit": "0", "X-RateLimit-Remaining": "0",
            "X-RateLimit-Daily-Limit": "0", "X-RateLimit-Daily-Remaining": "0" if kind == "daily" else "1"})
    if endpoint in f.endpoints and f.http_5xx.fire(st.rng):
        st.counters.server_errors += 1
        status = st.rng.choice((500, 502, 503))
        return web.Response(status=status, content_type="text/html",
                            text=f"<html><body><h1>{status} Bad Gateway</h1><p>nginx</p></body></html>")
    return verdict.headers


async def _drop(request: web.Request) -> web.Response:
    """Close the connection without answering (the client sees a dropped connection)."""
    _state(request).counters.dropped += 1
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=204)  # never reaches the client: the transport is gone


# -- routes ---------------------------------------------------------------------------------

async def submit(request: web.Request) -> web.StreamResponse:
    st = _state(request)
    st.counters.submits += 1
    limited = _limit(request, "submit")
    if isinstance(limited, web.Response):
        return limited
    if not request.content_type.startswith("multipart/"):
        st.counters.validation_errors += 1
        return validation_error({"image": ["The image field is required."], "model": ["The model field is required."]})
    fields_: dict[str, str] = {}
    image: bytes | None = None
    too_big = False
    try:
        reader = await request.multipart()
        async for part in reader:
            if part.name == "image" and part.filename is not None:
                buf = bytearray()
                while chunk := await part.read_chunk(1 << 16):
                    buf += chunk
                    if len(buf) > MAX_UPLOAD:
                        too_big = True
                        break
                image = bytes(buf)
                if too_big:
                    break
            elif part.name:
                value = await part.text()
                fields_[part.name] = value[:4096]
    except (ValueError, AssertionError, UnicodeDecodeError) as exc:
        st.counters.validation_errors += 1
        return validation_error({"image": [f"The request body is not valid multipart data ({exc})."]})
    errors = _validate(st, fields_, image, too_big)
    if errors:
        st.counters.validation_errors += 1
        return validation_error(errors)
    estimate = _estimate(st, image or b"")
    if st.balance.get(request[TOKEN], 0.0) < estimate:
        return validation_error({"balance": ["Not enough balance."]})
    if st.faults.drop_before_create.fire(st.rng):
        return await _drop(request)
    job = Job(id=str(uuid.uuid4()), token=request[TOKEN], model=fields_["model"],
              language=fields_.get("language") or None, format=fields_.get("format") or "text",
              inline=(fields_.get("return_result_in_response", "").strip().lower() in TRUE),
              webhook_url=fields_.get("webhook_url") or None, image=image, created=st.clock(),
              base_url=f"{request.scheme}://{request.host}")
    job.lost = st.faults.lose_request_id.fire(st.rng)
    job.expire_link = st.faults.expire_result_link.fire(st.rng)
    st.counters.jobs_created += 1
    st.counters.submits_by_hash[hashlib.sha256(image or b"").hexdigest()] += 1
    st.counters.upload_sizes.append(len(image or b""))
    st.remember(job)
    task = asyncio.create_task(st.run_job(job))
    st.tasks.add(task)
    task.add_done_callback(st.tasks.discard)
    if st.faults.drop_after_create.fire(st.rng):
        return await _drop(request)
    return web.json_response({"data": {"request_id": job.id}}, headers=limited)


def _validate(st: ServerState, f: dict[str, str], image: bytes | None, too_big: bool) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if too_big:
        errors["image"] = ["The image must not be greater than 10240 kilobytes."]
    elif image is None:
        errors["image"] = ["The image field is required."]
    elif not image:
        errors["image"] = ["The image field must be a file."]
    else:
        try:
            with Image.open(io.BytesIO(image)) as im:
                fmt, (w, h) = im.format, im.size
        except Exception:
            fmt, w, h = None, 0, 0
        if fmt not in ACCEPTED_FORMATS:
            errors["image"] = ["The image field must be a file of type: jpg, jpeg, png, gif, bmp, webp."]
        else:
            model = find_model(f.get("model", ""))
            lim = (model or {}).get("info", {}).get("limits") if model else None
            if lim and not (lim["min_width"] <= w <= lim["max_width"] and lim["min_height"] <= h <= lim["max_height"]):
                errors["image"] = [f"The image dimensions must be between {lim['min_width']}x{lim['min_height']} "
                                   f"and {lim['max_width']}x{lim['max_height']} pixels (got {w}x{h})."]
    model_slug = f.get("model", "")
    if not model_slug:
        errors["model"] = ["The model field is required."]
    else:
        model = find_model(model_slug)
        if model is None:
            errors["model"] = ["The selected model does not exist."]
        elif "img2txt" not in model["inference_types"]:
            errors["model"] = ["The selected model does not support Image To Text."]
    if f.get("format") not in (None, "", "text", "json"):
        errors["format"] = ["The selected format is invalid."]
    inline = f.get("return_result_in_response")
    if inline is not None and inline.strip().lower() not in TRUE | FALSE:
        errors["return_result_in_response"] = ["The return result in response field must be true or false."]
    url = f.get("webhook_url")
    if url:
        problem = _webhook_url_problem(st, url)
        if problem:
            errors["webhook_url"] = [problem]
    return errors


def _webhook_url_problem(st: ServerState, url: str) -> str | None:
    if len(url) > 2048:
        return "The webhook url must not be greater than 2048 characters."
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and st.config.allow_http_webhooks and parts.hostname in LOOPBACK:
        return None
    return "The webhook url must be a valid HTTPS URL. HTTP URLs will be rejected."


def _estimate(st: ServerState, image: bytes) -> float:
    try:
        with Image.open(io.BytesIO(image)) as im:
            w, h = im.size
    except Exception:
        w = h = 0
    return round(w * h / 1e6 * st.config.price_per_megapixel, 6)


async def status(request: web.Request) -> web.Response:
    st = _state(request)
    st.counters.status_polls += 1
    limited = _limit(request, "status")
    if isinstance(limited, web.Response):
        return limited
    job = st.jobs.get(request.match_info["request_id"])
    if job is None or job.lost or job.token != request[TOKEN]:
        return envelope(404, "Request not found.")
    data: dict[str, Any] = {"status": job.status, "progress": job.progress, "preview": None,
                            "results_alt_formats": None, "result": None, "result_url": None,
                            "error": job.error, "error_code": job.error_code}
    if job.status == "done":
        data["result_url"] = st.result_url(job)
        job.expire_link = False  # an expired link is expired once: the next poll gets a fresh one
        if job.inline:
            data["result"] = job.text
    return web.json_response({"data": data}, headers=limited)


async def download(request: web.Request) -> web.Response:
    st = _state(request)
    st.counters.downloads += 1
    if "Authorization" in request.headers:
        st.counters.downloads_with_auth += 1
    name = request.match_info["name"]
    request_id = name.rsplit(".", 1)[0]
    try:
        expires = int(request.query.get("expires", ""))
    except ValueError:
        expires = -1
    sig = request.query.get("sig", "")
    if expires < 0 or not hmac.compare_digest(sig, st.sign(request_id, expires)):
        return web.Response(status=403, content_type="application/xml",
                            text="<Error><Code>SignatureDoesNotMatch</Code></Error>")
    if expires < st.clock():
        return web.Response(status=403, content_type="application/xml",
                            text="<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>")
    job = st.jobs.get(request_id)
    if job is None or job.status != "done" or job.text is None:
        return web.Response(status=404, content_type="application/xml", text="<Error><Code>NoSuchKey</Code></Error>")
    ctype = "application/json" if job.format == "json" else "text/plain"
    return web.Response(text=job.text, content_type=ctype, charset="utf-8")


async def models(request: web.Request) -> web.Response:
    st = _state(request)
    st.counters.models_calls += 1
    wanted = request.query.get("filter[inference_types]")
    items = MODELS
    if wanted:
        kinds = {k.strip() for k in wanted.split(",") if k.strip()}
        items = [m for m in MODELS if kinds & set(m["inference_types"])]
    try:
        per_page = max(1, min(int(request.query.get("per_page", 15)), 100))
        page = max(1, int(request.query.get("page", 1)))
    except ValueError:
        return validation_error({"per_page": ["The per page must be an integer."]})
    last = max(1, -(-len(items) // per_page))
    chunk = items[(page - 1) * per_page: page * per_page]
    base = f"{request.scheme}://{request.host}{request.path}"

    def link(p: int | None) -> str | None:
        return None if p is None else f"{base}?page={p}&per_page={per_page}"

    return web.json_response({
        "data": chunk,
        "links": {"first": link(1), "last": link(last), "prev": link(page - 1 if page > 1 else None),
                  "next": link(page + 1 if page < last else None)},
        "meta": {"current_page": page, "last_page": last, "per_page": per_page, "total": len(items),
                 "from": (page - 1) * per_page + 1 if chunk else None, "to": (page - 1) * per_page + len(chunk)},
    })


async def price(request: web.Request) -> web.Response:
    st = _state(request)
    st.counters.price_calls += 1
    limited = _limit(request, "price")
    if isinstance(limited, web.Response):
        return limited
    data: dict[str, Any] = {}
    image: bytes | None = None
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            return validation_error({"body": ["The body must be valid JSON."]})
        data = body if isinstance(body, dict) else {}
    else:
        form = await request.post()
        for k, v in form.items():
            if k == "image" and hasattr(v, "file"):
                image = v.file.read(MAX_UPLOAD + 1)
            else:
                data[k] = v
    model = find_model(str(data.get("model", "")))
    if model is None:
        return validation_error({"model": ["The selected model does not exist." if data.get("model")
                                           else "The model field is required."]})
    if image is not None:
        est = _estimate(st, image)
        if est == 0:
            return validation_error({"image": ["The image field must be a file."]})
        return web.json_response({"data": {"price": est}}, headers=limited)
    try:
        w, h = int(data["width"]), int(data["height"])
    except (KeyError, TypeError, ValueError):
        return validation_error({"image": ["The image field must be a file."]})
    return web.json_response({"data": {"price": round(w * h / 1e6 * st.config.price_per_megapixel, 6)}},
                             headers=limited)


async def balance(request: web.Request) -> web.Response:
    st = _state(request)
    st.counters.balance_calls += 1
    return web.json_response({"data": {"balance": round(st.balance.get(request[TOKEN], 0.0), 6)}})


async def admin_counters(request: web.Request) -> web.Response:
    return web.json_response(_state(request).counters.snapshot())


async def admin_faults(request: web.Request) -> web.Response:
    st = _state(request)
    try:
        st.faults.update(await request.json())
    except (ValueError, TypeError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response(st.faults.snapshot())


async def admin_release(request: web.Request) -> web.Response:
    _state(request).release_stuck_jobs()
    return web.json_response({"released": True})


def create_app(config: ServerConfig) -> web.Application:
    app = web.Application(middlewares=[guard], client_max_size=MAX_UPLOAD + 1024 * 1024)
    state = ServerState(config)
    app[CONFIG] = config
    app[STATE] = state
    v1 = "/api/v1/client"
    app.router.add_post(f"{v1}/img2txt", submit)
    app.router.add_get(f"{v1}/request-status/{{request_id}}", status)
    app.router.add_get(f"{v1}/models", models)
    app.router.add_post(f"{v1}/img2txt/price-calculation", price)
    app.router.add_get(f"{v1}/balance", balance)
    app.router.add_post("/api/v2/images/ocr", submit)
    app.router.add_get("/api/v2/jobs/{request_id}", status)
    app.router.add_get("/api/v2/models", models)
    app.router.add_get("/api/v2/account/balance", balance)
    app.router.add_get("/results/{name}", download)
    if config.admin:
        app.router.add_get("/_admin/counters", admin_counters)
        app.router.add_post("/_admin/faults", admin_faults)
        app.router.add_post("/_admin/release", admin_release)

    async def on_startup(app: web.Application) -> None:
        await state.engine.start()
        await state.webhooks.start()

    async def on_cleanup(app: web.Application) -> None:
        for task in list(state.tasks):
            task.cancel()
        await asyncio.gather(*state.tasks, return_exceptions=True)
        await state.webhooks.close()
        await state.engine.close()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app
