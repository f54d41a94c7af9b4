"""An independent deAPI look-alike with faults, written from ``../shared/deapi-api.md`` alone.

Why: the project's own server (``pipeline/server``) was written by the people who wrote the
client, so the two may share assumptions the real service does not. This one was written
without reading that server, and wherever the description allows more than one reading (or
marks a conflict or an open question) it takes the reading that server does not obviously use:
statuses ``queued``/``running``/``failed``, ``progress`` as a decimal string, ``result`` null
with only a ``result_url`` on another loopback host with a signed query string, a JSON result
as a JSON-encoded string, unknown extra fields, PHP ``[]`` for empty objects, a Laravel
paginator whose OCR model sits on page 2, the top-level ``{"balance"}`` shape, 422s as a list
of ``{field, messages}``, webhook timestamps as numbers, and "Request not found." for a while
right after a submit. Faults are switched on through :class:`Faults`.

Every request to either host is recorded (:attr:`LookAlike.log`) so a test can prove the token
never reached the result host. Submits are counted per image hash (:attr:`LookAlike.submits`),
the judge of "paid once".
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import ClientSession, ClientTimeout, web
from PIL import Image

MODEL = "Nanonets_Ocr_S_F16"
LIMITS = {"min_width": 128, "max_width": 4096, "min_height": 127, "max_height": 4096}
BOOLS = {"true": True, "1": True, "false": False, "0": False}
RESULT_SECRET = b"look-alike storage signing key"


@dataclass
class Faults:
    """Switchable faults; counters ("the next N ...") count down as they fire."""
    submit_429: int = 0                 # the next N submits answer 429 (minute limit)
    status_429: int = 0                 # the next N status polls answer 429
    retry_after: str | None = "1"       # None: 429s carry no Retry-After header
    daily_429: bool = False             # 429s are the daily limit (X-RateLimit-Type: daily)
    burst_5xx: int = 0                  # the next N API requests answer 502 with an HTML body
    slow_s: float = 0.0                 # every API answer waits this long
    drop_submits: int = 0               # the next N submits create the job, then cut the connection
    drop_polls: int = 0                 # the next N status polls cut the connection
    gateway_after_create: int = 0       # the next N submits create the job, then the gateway says 504
    pending_s: float = 0.0              # jobs stay queued this long
    run_s: float = 0.05                 # then run this long
    fail_jobs: int = 0                  # the next N jobs end failed
    fail_message: str | None = None     # their ``error`` (None: no message at all)
    tall_limit: int | None = None       # a job for an image taller than this fails INPUT_TOO_LARGE
    result_404_once: bool = False       # every result link answers 404 the first time
    balance_error: bool = False         # /balance answers 500
    not_found_polls: int = 0            # every job answers 404 to its first N polls
    text_file_as_json: bool = False     # a format=text result file is a JSON-encoded string
    reject_submits: int = 0             # the next N submits answer 422 (the errors page's list form)
    linkless_done_polls: int = 0        # a done job shows neither result nor result_url to its first N polls


def text_for(image: bytes) -> str:
    """The 'OCR' of an image: derived from its bytes, so a test knows what each file must get."""
    with Image.open(io.BytesIO(image)) as im:
        w, h = im.size
    digest = hashlib.sha256(image).hexdigest()[:12]
    return f"LOOKALIKE {digest}\nGrüße: {w}×{h} px"


@dataclass
class Job:
    id: str
    sha: str
    image: bytes
    width: int
    height: int
    fmt: str
    inline: bool
    webhook_url: str | None
    created: float
    fail: str | None = None             # None: done; "" failed without message; else the message
    not_found_left: int = 0
    downloads: int = 0
    linkless_left: int | None = None

    def status(self, faults: Faults, now: float) -> str:
        age = now - self.created
        if age < faults.pending_s:
            return "queued"
        if age < faults.pending_s + faults.run_s:
            return "running"
        return "done" if self.fail is None else "failed"


@dataclass
class Hit:
    host: str
    method: str
    path: str
    headers: dict[str, str]


class LookAlike:
    """``async with LookAlike(token) as la:`` -> ``la.base_url``; faults in ``la.faults``."""

    def __init__(self, token: str, webhook_secret: str | None = None) -> None:
        self.token = token
        self.webhook_secret = webhook_secret
        self.faults = Faults()
        self.jobs: dict[str, Job] = {}
        self.submits: dict[str, int] = {}           # image sha256 -> submits that made a job
        self.status_polls = 0
        self.log: list[Hit] = []
        self.webhooks_sent = 0
        self._tasks: set[asyncio.Task] = set()
        self._runners: list[web.AppRunner] = []
        self.base_url = self.result_base = ""

    # -- plumbing -------------------------------------------------------------------------
    async def __aenter__(self) -> "LookAlike":
        api = web.Application(middlewares=[self._record, self._api_gate], client_max_size=32 * 2**20)
        api.router.add_post("/api/v1/client/img2txt", self._submit)
        api.router.add_post("/api/v1/client/img2txt/price-calculation", self._price)
        api.router.add_get("/api/v1/client/request-status/{rid}", self._status)
        api.router.add_get("/api/v1/client/models", self._models)
        api.router.add_get("/api/v1/client/balance", self._balance)
        store = web.Application(middlewares=[self._record])
        store.router.add_get("/results/{rid}/{name}", self._download)
        self.base_url = await self._start(api, "127.0.0.1")
        self.result_base = await self._start(store, "127.0.0.2")    # another host, as storage is
        self._hooks = ClientSession(timeout=ClientTimeout(total=10))
        return self

    async def __aexit__(self, *exc: Any) -> None:
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._hooks.close()
        for r in self._runners:
            await r.cleanup()

    async def _start(self, app: web.Application, host: str) -> str:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, 0)
        await site.start()
        self._runners.append(runner)
        port = site._server.sockets[0].getsockname()[1]
        return f"http://{host}:{port}"

    def hits(self, host_prefix: str) -> list[Hit]:
        return [h for h in self.log if h.host.startswith(host_prefix.split("//")[-1])]

    @web.middleware
    async def _record(self, request: web.Request, handler):
        self.log.append(Hit(request.host, request.method, request.path, dict(request.headers)))
        return await handler(request)

    @web.middleware
    async def _api_gate(self, request: web.Request, handler):
        """Laravel's order: Accept (else an HTML redirect), auth, throttle, then the route."""
        if self.faults.slow_s:
            await asyncio.sleep(self.faults.slow_s)
        if "application/json" not in request.headers.get("Accept", ""):
            return web.Response(status=302, headers={"Location": "/login"}, content_type="text/html",
                                text="<html><body>Redirecting to /login</body></html>")
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"message": "Unauthenticated."}, status=401)
        if self.faults.burst_5xx > 0:
            self.faults.burst_5xx -= 1
            return web.Response(status=502, content_type="text/html",
                                text="<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>")
        return await handler(request)

    def _throttle(self, kind: str) -> web.Response | None:
        f = self.faults
        if getattr(f, kind) <= 0:
            return None
        setattr(f, kind, getattr(f, kind) - 1)
        headers = {"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "0",
                   "X-RateLimit-Daily-Limit": "100000", "X-RateLimit-Daily-Remaining": "0" if f.daily_429 else "5000",
                   "X-RateLimit-Type": "daily" if f.daily_429 else "minute"}
        if f.retry_after is not None:
            headers["Retry-After"] = "86400" if f.daily_429 else f.retry_after
        return web.json_response({"message": "Too Many Attempts."}, status=429, headers=headers)

    @staticmethod
    def _not_found() -> web.Response:
        return web.json_response({"data": None, "message": "Request not found.", "errors": [], "statusCode": 404},
                                 status=404)

    @staticmethod
    def _invalid(fieldname: str, message: str) -> web.Response:
        """The errors page's list form of a 422 (the SDK reads the Laravel object form)."""
        return web.json_response({"data": None, "message": "Validation failed",
                                  "errors": [{"field": fieldname, "messages": [message]}], "statusCode": 422},
                                 status=422)

    @staticmethod
    async def _cut(request: web.Request) -> web.Response:
        """End the connection without an answer."""
        request.transport.abort()
        return web.Response(status=204)     # written nowhere: the transport is gone

    # -- routes ---------------------------------------------------------------------------
    async def _submit(self, request: web.Request) -> web.Response:
        if (r := self._throttle("submit_429")) is not None:
            return r
        form = await request.post()
        if self.faults.reject_submits > 0:
            self.faults.reject_submits -= 1
            return self._invalid("image", "The image must be at least 128 pixels wide.")
        image = form.get("image")
        if not isinstance(image, web.FileField):
            return self._invalid("image", "The image field must be a file.")
        data = image.file.read()
        if form.get("model") != MODEL:
            return self._invalid("model", "The selected model does not exist.")
        fmt = str(form.get("format") or "text")
        if fmt not in ("text", "json"):
            return self._invalid("format", "The selected format is invalid.")
        inline_raw = str(form.get("return_result_in_response") or "false").lower()
        if inline_raw not in BOOLS:
            return self._invalid("return_result_in_response", "The return result in response field must be true or false.")
        hook = form.get("webhook_url")
        if hook is not None and (not str(hook).startswith(("https://", "http://127.")) or len(str(hook)) > 2048):
            return self._invalid("webhook_url", "The webhook url field must be a valid URL.")
        if len(data) > 10 * 2**20:
            return self._invalid("image", "The image field must not be greater than 10240 kilobytes.")
        try:
            with Image.open(io.BytesIO(data)) as im:
                w, h, kind = im.width, im.height, im.format
        except Exception:
            return self._invalid("image", "The image field must be an image.")
        if kind not in ("JPEG", "PNG", "GIF", "BMP", "WEBP"):
            return self._invalid("image", "The image field must be a file of type: jpg, jpeg, png, gif, bmp, webp.")
        f = self.faults
        fail = None
        if f.tall_limit is not None and h > f.tall_limit:
            fail = "INPUT_TOO_LARGE"
        elif f.fail_jobs > 0:
            f.fail_jobs -= 1
            fail = f.fail_message or ""
        sha = hashlib.sha256(data).hexdigest()
        job = Job(str(uuid.uuid4()), sha, data, w, h, fmt, BOOLS[inline_raw], str(hook) if hook else None,
                  time.monotonic(), fail, f.not_found_polls)
        self.jobs[job.id] = job
        self.submits[sha] = self.submits.get(sha, 0) + 1
        if job.webhook_url:
            self._spawn(self._push(job))
        if f.drop_submits > 0:
            f.drop_submits -= 1
            return await self._cut(request)
        if f.gateway_after_create > 0:      # the app was slow; the proxy in front gave up on it
            f.gateway_after_create -= 1
            return web.Response(status=504, content_type="text/html",
                                text="<html><head><title>504 Gateway Time-out</title></head><body>nginx</body></html>")
        return web.json_response({"data": {"request_id": job.id}})

    async def _price(self, request: web.Request) -> web.Response:
        if request.content_type == "application/json":
            form: Any = await request.json()
        else:
            form = await request.post()
        image = form.get("image")
        if isinstance(image, web.FileField):
            with Image.open(image.file) as im:
                w, h = im.size
        else:
            try:
                w, h = int(form.get("width")), int(form.get("height"))
            except (TypeError, ValueError):
                return self._invalid("image", "The image field must be a file.")
        return web.json_response({"data": {"price": round(0.0005 + w * h * 2e-10, 6)}})

    def _result_url(self, job: Job) -> str:
        name = f"{job.id}.{'json' if job.fmt == 'json' else 'txt'}"
        expires = str(int(time.time()) + 3600)
        sig = hmac.new(RESULT_SECRET, f"{name}:{expires}".encode(), hashlib.sha256).hexdigest()
        return f"{self.result_base}/results/{job.id}/{name}?X-Amz-Expires={expires}&X-Amz-Signature={sig}"

    def _result_body(self, job: Job) -> str:
        text = text_for(job.image)
        if job.fmt != "json":
            return text
        lines = text.split("\n")
        return json.dumps({"pages": [{"text": text, "lines": [{"text": t} for t in lines]}], "extra": {}})

    async def _status(self, request: web.Request) -> web.Response:
        if (r := self._throttle("status_429")) is not None:
            return r
        if self.faults.drop_polls > 0:
            self.faults.drop_polls -= 1
            return await self._cut(request)
        job = self.jobs.get(request.match_info["rid"])
        if job is None:
            return self._not_found()
        self.status_polls += 1
        if job.not_found_left > 0:                      # a read replica that has not seen it yet
            job.not_found_left -= 1
            return self._not_found()
        status = job.status(self.faults, time.monotonic())
        data: dict[str, Any] = {
            "status": status, "preview": None, "result_url": None, "results_alt_formats": [],
            "result": None, "progress": {"queued": "0.00", "running": "45.50"}.get(status, "100.00"),
            "cost_credits": 0.0012, "queue_position": 3 if status == "queued" else None,
        }
        if status == "done" and job.linkless_left is None:
            job.linkless_left = self.faults.linkless_done_polls
        if status == "done" and job.linkless_left:       # the result not yet in storage
            job.linkless_left -= 1
        elif status == "done":
            data["result_url"] = self._result_url(job)
            if job.inline:
                data["result"] = self._result_body(job)   # format=json: a JSON-encoded string
        elif status == "failed" and job.fail:
            data["error"] = job.fail
        return web.json_response({"data": data})

    async def _download(self, request: web.Request) -> web.Response:
        job = self.jobs.get(request.match_info["rid"])
        name = request.match_info["name"]
        expires = request.query.get("X-Amz-Expires", "0")
        sig = hmac.new(RESULT_SECRET, f"{name}:{expires}".encode(), hashlib.sha256).hexdigest()
        if job is None or not hmac.compare_digest(sig, request.query.get("X-Amz-Signature", "")) \
                or int(expires) < time.time():
            return web.Response(status=403, content_type="application/xml", text="<Error><Code>AccessDenied</Code></Error>")
        job.downloads += 1
        if self.faults.result_404_once and job.downloads == 1:
            return web.Response(status=404, content_type="application/xml", text="<Error><Code>NoSuchKey</Code></Error>")
        body = self._result_body(job)
        if job.fmt == "json":
            ctype = "application/json"
        elif self.faults.text_file_as_json:
            ctype, body = "application/json", json.dumps(body)
        else:   # storage's default type and no charset: the bytes are UTF-8, nothing says so
            ctype = "binary/octet-stream"
        return web.Response(body=body.encode(), headers={"Content-Type": ctype})

    async def _models(self, request: web.Request) -> web.Response:
        others = [{"name": f"Model {i}", "slug": f"Other_Model_{i}", "inference_types": {"txt2img": {}},
                   "info": [], "loras": None, "languages": None} for i in range(20)]
        ocr = {"name": "Nanonets OCR S F16", "slug": MODEL, "inference_types": {"img2txt": {"enabled": True}},
               "info": {"limits": dict(LIMITS)}, "loras": None, "languages": None}
        models = others + [ocr]                           # the OCR model lands on page 2
        wanted = request.query.get("filter[inference_types]")
        if wanted:
            models = [m for m in models if set(wanted.split(",")) & set(m["inference_types"])]
        per_page = max(1, min(int(request.query.get("per_page", 15)), 100))
        page = max(1, int(request.query.get("page", 1)))
        last = max(1, -(-len(models) // per_page))
        chunk = models[(page - 1) * per_page: page * per_page]
        url = f"{self.base_url}/api/v1/client/models"
        return web.json_response({
            "data": chunk,
            "links": {"first": f"{url}?page=1", "last": f"{url}?page={last}",
                      "prev": f"{url}?page={page - 1}" if page > 1 else None,
                      "next": f"{url}?page={page + 1}" if page < last else None},
            "meta": {"current_page": page, "from": (page - 1) * per_page + 1 if chunk else None,
                     "last_page": last, "links": [], "path": url, "per_page": per_page,
                     "to": (page - 1) * per_page + len(chunk) if chunk else None, "total": len(models)},
        })

    async def _balance(self, request: web.Request) -> web.Response:
        if self.faults.balance_error:
            return web.json_response({"data": None, "message": "Internal server error", "errors": [],
                                      "statusCode": 500}, status=500)
        return web.json_response({"balance": 19.72})

    # -- webhooks -------------------------------------------------------------------------
    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _push(self, job: Job) -> None:
        f = self.faults
        await asyncio.sleep(f.pending_s)
        await self._deliver(job, "job.processing", {"status": "processing", "previous_status": "pending"})
        await asyncio.sleep(f.run_s)
        if job.fail is None:
            await self._deliver(job, "job.completed", {
                "status": "done", "previous_status": "processing", "result_url": self._result_url(job),
                "processing_time_ms": int(f.run_s * 1000), "completed_at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z")})
        else:
            await self._deliver(job, "job.failed", {
                "status": "error", "previous_status": "processing",
                "error_code": job.fail.split(":")[0] if job.fail else "UNKNOWN_ERROR",
                "error_message": job.fail or None, "failed_at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z")})

    async def _deliver(self, job: Job, event: str, data: dict[str, Any]) -> None:
        delivery = str(uuid.uuid4())
        body = json.dumps({"event": event, "delivery_id": delivery, "timestamp": int(time.time()),
                           "data": {"job_request_id": job.id, "job_type": "img2txt", **data}}).encode()
        ts = str(int(time.time()))
        sig = hmac.new((self.webhook_secret or "").encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json", "User-Agent": "DeAPI-Webhook/1.0",
                   "X-DeAPI-Signature": f"sha256={sig}", "X-DeAPI-Timestamp": ts,
                   "X-DeAPI-Event": event, "X-DeAPI-Delivery-Id": delivery}
        try:
            async with self._hooks.post(job.webhook_url, data=body, headers=headers, allow_redirects=False) as r:
                await r.read()
            self.webhooks_sent += 1
        except Exception:                                # a lost delivery: polling is the truth
            pass
