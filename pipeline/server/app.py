"""The deAPI-compatible HTTP application: routes, bearer auth, rate limits and fault gates.

It speaks the subset of deAPI v1 the pipeline uses (``../shared/deapi-api.md``): ``img2txt``,
``request-status``, ``models``, ``img2txt/price-calculation``, ``balance``, plus a signed,
expiring result download and signed webhooks; v2 paths are aliases of the same handlers.
Where public sources conflict the server answers the documented form. Every answer is JSON
with its content type, except the injected 5xx (HTML, as a gateway sends) and the result
download (the text itself); an unexpected exception becomes the 500 envelope, never a trace.

The handlers stay thin: body rules live in ``validation``, the job lifecycle in ``jobs``,
windows in ``ratelimit``, fault switches in ``faults``, deliveries in ``webhooks``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from typing import Awaitable, Callable

from aiohttp import web

from .config import ServerConfig
from .counters import Counters
from pipeline.ocr.pool import EngineRunner
from .faults import FaultConfig, red_marked
from .jobs import JobRunner, JobStore, decide_faults, status_body
from .lifecycle import DONE, Job, JobEvents
from .ledger import Ledger
from .links import ResultLinks
from .models import MAX_PER_PAGE, filter_models, paginate
from .metrics import CONTENT_TYPE, health_body, render
from .outbox import OutboxDispatcher
from .probes import OUTAGE_RETRY_AFTER_S, add_probe_routes, store_unavailable
from .ratelimit import RateLimiter
from .responses import envelope, gateway_error, not_enough_balance, too_many, validation_error
from .store import Store
from .store_memory import MemoryStore
from .validation import MAX_UPLOAD, BodyError, read_form, validate_price, validate_submit
from .webhooks import WebhookSender
from .worker import FleetWorker, new_worker_id, sweep_forever

log = logging.getLogger("pipeline.server")

V1 = "/api/v1/client"
AUTHED_PREFIXES = ("/api/", "/_admin/")


class ServerState:
    """Everything one running server holds: store, counters, engine, webhooks, and (fleet) a worker."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.faults: FaultConfig = config.faults
        self.counters = Counters()
        self.clock: Callable[[], float] = config.clock or offset_clock(config.clock_offset_s)
        self.rng = random.Random(config.seed)
        self.limiter = RateLimiter(config.endpoint_limits(), self.clock)
        self.ledger = Ledger(config.tokens, config.balance, config.price_per_megapixel, config.min_price)
        self.links = ResultLinks(config.result_ttl_s, self.clock)
        self.worker_id = config.worker_id or new_worker_id()
        self.store: Store = (open_shared_store(config, self.clock) if config.store_url
                             else MemoryStore(JobStore(config.max_jobs_kept), self.ledger, self.limiter))
        self.engine = EngineRunner(config.engine, workers=config.engine_workers, options=(
            {"folder": config.truth_dir, "corrupt": config.truth_corrupt} if config.engine == "truth" else None))
        self.webhooks = WebhookSender(config.webhook_secret, config.webhook_time_scale, config.webhook_timeout_s,
                                      self.counters, self.faults, self.rng)
        self.events = JobEvents()
        self.outbox: OutboxDispatcher | None = None
        if self.store.shared:   # a fleet delivers from the database outbox, whichever member is up
            self.outbox = OutboxDispatcher(store=self.store, member=self.worker_id, secret=config.webhook_secret,
                                           time_scale=config.webhook_time_scale,
                                           timeout_s=config.webhook_timeout_s, counters=self.counters)
        else:
            self.events.subscribe(self.webhooks.send)
        self.jobs = JobRunner(engine=self.engine, store=getattr(self.store, "jobs", JobStore(1)),
                              counters=self.counters, faults=self.faults, rng=self.rng, ledger=self.ledger,
                              links=self.links, events=self.events, public_base_url=config.public_base_url,
                              hosted=config.hosted, limits=config.size_limits())
        self.worker: FleetWorker | None = None
        if self.store.shared and config.role in ("worker", "all"):
            self.worker = FleetWorker(store=self.store, engine=self.engine, faults=self.faults, events=self.events,
                                      links=self.links, counters=self.counters, lease_s=config.lease_s,
                                      worker_id=self.worker_id, concurrency=config.engine_workers,
                                      public_base_url=config.public_base_url, hosted=config.hosted, limits=config.size_limits())
        self._sweeper: asyncio.Task | None = None
        self.draining = False
        self._export_until = 0.0   # fleet: one member at a time exports the fleet gauges, until then

    @property
    def exporting(self) -> bool:
        return not self.store.shared or time.monotonic() < self._export_until

    @property
    def alive(self) -> bool:
        """The loops this process lives for are running (liveness; the database may be down)."""
        tasks_ok = self._sweeper is None or not self._sweeper.done()
        return (tasks_ok and (self.worker is None or self.worker.alive)
                and (self.outbox is None or self.draining or self.outbox.alive))

    def _set_exporting(self, until: float) -> None:
        self._export_until = until

    @property
    def runs_engine(self) -> bool:
        return self.config.role in ("worker", "all")

    def release_stuck_jobs(self) -> int:
        return self.jobs.release_stuck()

    def result_url(self, job: Job, base_url: str | None = None) -> str:
        return self.jobs.result_url(job, base_url)

    async def start(self) -> None:
        await self.store.open()
        secret = await self.store.link_secret()
        if secret:
            self.links.use_secret(secret)
        if self.runs_engine:
            await self.engine.start()
        await self.webhooks.start()
        if self.store.shared:
            self._sweeper = asyncio.create_task(sweep_forever(
                self.store, worker_id=self.worker_id, role=self.config.role, lease_s=self.config.lease_s,
                result_ttl_s=self.config.result_ttl_s, exporting=self._set_exporting,
                alive=lambda: self.worker is None or self.worker.alive), name="store-sweeper")
        if self.outbox is not None:
            self.outbox.start()
        if self.worker is not None:
            self.worker.start()

    async def drain(self) -> None:
        """SIGTERM: not ready any more; a worker finishes the jobs in hand and takes no new one;
        the webhook events that are due are sent before the process goes."""
        self.draining = True
        if self.worker is not None:
            await self.worker.drain()
        if self.outbox is not None:
            sent = await self.outbox.drain()
            if sent:
                log.warning("drain: %d webhook event(s) delivered before exit", sent)

    async def close(self) -> None:
        if self.worker is not None:
            await self.worker.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            try:
                await self.store.resign_exporter(self.worker_id)
                if self.worker is not None:
                    await self.store.forget_worker(self.worker_id)
            except Exception as exc:  # the database is away: the leases run out on their own
                log.warning("could not sign off from the store: %s", exc)
        if self.outbox is not None:
            await self.outbox.stop()
        await self.jobs.close()
        await self.webhooks.close()
        await self.engine.close()
        await self.store.close()

    def slot_gate(self):
        return self.worker.slots if self.worker is not None else self.jobs.slots


def open_shared_store(config: ServerConfig, clock: Callable[[], float]) -> Store:
    """The PostgreSQL store (imported only when asked for: the memory path needs no driver)."""
    from .store_pg import PgStore

    return PgStore(config.store_url or "", config.tokens, config.balance, config.endpoint_limits(), clock,
                   auto_migrate=config.migrate)


def offset_clock(offset_s: float) -> Callable[[], float]:
    """This process's wall clock, shifted by the test-only ``clock_offset_s`` (a skewed machine)."""
    if not offset_s:
        return time.time
    return lambda: time.time() + offset_s


STATE = web.AppKey("state", ServerState)
TOKEN = web.RequestKey("token", str) if hasattr(web, "RequestKey") else "token"


def _state(request: web.Request) -> ServerState:
    return request.app[STATE]


def _bearer(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or token not in _state(request).config.tokens:
        return None
    return token


@web.middleware
async def guard(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                ) -> web.StreamResponse:
    """Route errors and auth as JSON envelopes; a bad body is a 422; a bug is a 500 envelope."""
    st = _state(request)
    route_error = request.match_info.http_exception
    if route_error is not None:
        message = "Not found." if route_error.status == 404 else route_error.reason
        headers = {"Allow": route_error.headers["Allow"]} if "Allow" in route_error.headers else None
        return envelope(route_error.status, message, headers)
    if request.path.startswith(AUTHED_PREFIXES):
        token = _bearer(request)
        if token is None:
            st.counters.auth_failures += 1
            return envelope(401, "Unauthorized user.")
        request[TOKEN] = token
    try:
        response = await handler(request)
    except BodyError as exc:
        response = validation_error(exc.errors)
    except web.HTTPException as exc:
        if exc.content_type == "application/json":
            raise
        response = envelope(exc.status, exc.reason or "Error.")
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception as exc:
        if st.store.is_outage(exc):   # the database is away: the client's transient case, not a 500
            return store_unavailable(exc)
        log.exception("unhandled error on %s %s", request.method, request.path)
        st.counters.internal_errors += 1
        response = envelope(500, "Internal server error")
    if response.status == 422:
        st.counters.validation_errors += 1
    return response


async def _gate(request: web.Request, endpoint: str) -> web.Response | dict[str, str]:
    """The plan's limits, then injected 429 and 5xx; the rate-limit headers when let through."""
    st = _state(request)
    f = st.faults
    verdict = await st.store.rate_check(request.get(TOKEN, ""), endpoint)
    if not verdict.allowed:
        st.counters.rate_limited += 1
        return too_many(verdict.headers)
    if endpoint in f.endpoints and f.http_429.fire(st.rng):
        st.counters.rate_limited += 1
        kind = "daily" if f.http_429_daily else "minute"
        return too_many({"Retry-After": str(f.retry_after), "X-RateLimit-Type": kind,
                         "X-RateLimit-Limit": verdict.headers.get("X-RateLimit-Limit", "0"),
                         "X-RateLimit-Remaining": "0" if kind == "minute" else "1",
                         "X-RateLimit-Daily-Limit": verdict.headers.get("X-RateLimit-Daily-Limit", "0"),
                         "X-RateLimit-Daily-Remaining": "0" if kind == "daily" else "1"})
    if endpoint in f.endpoints and f.http_5xx.fire(st.rng):
        st.counters.server_errors += 1
        if f.retry_after_5xx:   # a Laravel app in maintenance mode: 503 with Retry-After
            return gateway_error(503, {"Retry-After": str(f.retry_after_5xx)})
        return gateway_error(st.rng.choice((500, 502, 503)))
    return verdict.headers


async def _drop(request: web.Request) -> web.Response:
    """Close the connection without an answer: the client sees it reset or cut short."""
    _state(request).counters.dropped += 1
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=204)  # never reaches the client: the transport is gone


# -- API routes -------------------------------------------------------------------------------

async def submit(request: web.Request) -> web.StreamResponse:
    st = _state(request)
    st.counters.submits += 1
    gate = await _gate(request, "submit")
    if isinstance(gate, web.Response):
        return gate
    form = await read_form(request, MAX_UPLOAD)
    sub, errors = validate_submit(form, st.config.allow_http_webhooks, st.config.engine)
    if sub is None:
        return validation_error(errors)
    if st.faults.poison_red and red_marked(sub.image):   # a page the API chokes on, every time
        st.counters.server_errors += 1
        return gateway_error(500)
    token = request[TOKEN]
    price = st.ledger.quote(sub.width, sub.height)
    if await st.store.balance(token) + 1e-12 < price:
        return not_enough_balance()
    if st.faults.drop_before_create.fire(st.rng):
        return await _drop(request)
    job = Job(id=str(uuid.uuid4()), token=token, model=sub.model, language=sub.language, format=sub.format,
              inline=sub.inline, webhook_url=sub.webhook_url, image=sub.image, price=price,
              base_url=str(request.url.origin()))
    if st.store.shared:   # a fleet: charged and queued in one transaction, a worker claims it
        decide_faults(job, st.faults, st.rng)
        if not await st.store.add_charged(job):   # another replica spent the balance meanwhile
            return not_enough_balance()
    elif await st.store.charge(token, price):
        st.jobs.create(job)
    else:
        return not_enough_balance()
    st.counters.jobs_created += 1
    st.counters.note_upload(sub.image)
    if st.faults.drop_after_create.fire(st.rng):
        return await _drop(request)
    return web.json_response({"data": {"request_id": job.id}}, headers=gate)


async def status(request: web.Request) -> web.Response:
    st = _state(request)
    st.counters.status_polls += 1
    gate = await _gate(request, "status")
    if isinstance(gate, web.Response):
        return gate
    job = await st.store.load(request.match_info["request_id"])
    if job is None or job.lost or job.token != request[TOKEN]:
        return envelope(404, "Request not found.", gate)
    st.counters.observe_status(job, time.monotonic())
    expired_once = job.expire_link and job.status == DONE
    body = status_body(job, lambda j: st.result_url(j, str(request.url.origin())))   # the replica asked, not the submit's
    if expired_once:
        await st.store.link_expired_once(job.id)
    return web.json_response({"data": body}, headers=gate)


async def models(request: web.Request) -> web.Response:
    st = _state(request)
    st.counters.models_calls += 1
    gate = await _gate(request, "models")
    if isinstance(gate, web.Response):
        return gate
    q = request.query
    errors: dict[str, list[str]] = {}
    per_page = _int_param(q.get("per_page", q.get("limit")), 15, "per_page", errors)
    page = _int_param(q.get("page"), 1, "page", errors)
    if errors:
        return validation_error(errors)
    wanted = q.get("filter[inference_types]")
    extra = {"filter[inference_types]": wanted} if wanted else {}
    base = f"{request.url.origin()}{request.path}"
    return web.json_response(paginate(filter_models(wanted, st.config.engine), page, min(per_page, MAX_PER_PAGE), base, extra))


def _int_param(raw: str | None, default: int, name: str, errors: dict[str, list[str]]) -> int:
    if raw is None or raw == "":
        return default
    if not raw.strip().isdigit() or int(raw) < 1:
        errors[name] = [f"The {name.replace('_', ' ')} must be an integer of at least 1."]
        return default
    return int(raw)


async def price(request: web.Request) -> web.Response:
    st = _state(request)
    st.counters.price_calls += 1
    if st.faults.no_price_route:
        return web.json_response({"message": "Not Found."}, status=404)
    gate = await _gate(request, "price")
    if isinstance(gate, web.Response):
        return gate
    form = await read_form(request, MAX_UPLOAD)
    size, errors = validate_price(form)
    if size is None:
        return validation_error(errors)
    return web.json_response({"data": {"price": st.ledger.quote(*size)}}, headers=gate)


async def balance(request: web.Request) -> web.Response:
    st = _state(request)
    st.counters.balance_calls += 1
    gate = await _gate(request, "balance")
    if isinstance(gate, web.Response):
        return gate
    return web.json_response({"data": {"balance": await st.store.balance(request[TOKEN])}})


# -- result download (no Authorization: it stands in for a storage bucket) --------------------

async def download(request: web.Request) -> web.Response:
    st = _state(request)
    st.counters.downloads += 1
    if "Authorization" in request.headers:
        st.counters.downloads_with_auth += 1
    gate = await _gate(request, "download")
    if isinstance(gate, web.Response):
        return gate
    request_id, _, ext = request.match_info["name"].rpartition(".")
    problem = st.links.check(request_id, request.query.get("expires", ""), request.query.get("sig", ""))
    if problem == "expired":
        return envelope(403, "This result link has expired. Poll request-status for a fresh result_url.")
    if problem:
        return envelope(403, "This result link is invalid (bad or missing signature).")
    job = await st.store.load(request_id)
    if job is None or job.status != "done" or job.text is None:
        return envelope(404, "Result not found.")
    if job.format == "json":
        return web.Response(text=job.text, content_type="application/json", charset="utf-8")
    return web.Response(text=job.text, content_type="text/plain", charset="utf-8")


# -- health and metrics (no Authorization: probes and scrapers carry no token) ---------------

async def healthz(request: web.Request) -> web.Response:
    st = _state(request)
    try:
        stats = await st.store.stats()
    except Exception as exc:  # the database is away: leave the load balancer's rotation
        log.warning("healthz: store unreachable: %s", exc)
        return web.json_response({"status": "unavailable", "store": st.store.kind, "error": type(exc).__name__},
                                 status=503, headers={"Retry-After": str(OUTAGE_RETRY_AFTER_S)})
    body = health_body(stats, st.store.kind, st.config.role, st.worker_id)
    if not st.alive:
        body["status"] = "dead"
    return web.json_response(body, status=200 if st.alive else 503)


async def metrics(request: web.Request) -> web.Response:
    st = _state(request)
    try:
        stats = await st.store.stats()
    except Exception as exc:  # still a scrape: this process's counters and pipeline_store_up 0 (metrics.py)
        log.warning("metrics: store unreachable: %s", exc)
        stats = None
    return web.Response(body=render(stats, st.counters, st.config.role, fleet=st.exporting).encode(),
                        headers={"Content-Type": CONTENT_TYPE})


# -- admin (only with admin=True; bearer token required like the API) -------------------------

async def admin_counters(request: web.Request) -> web.Response:
    st = _state(request)
    snap = st.counters.snapshot()
    snap["jobs_in_memory"] = len(st.jobs.store)
    gate = st.slot_gate()
    snap["engine_slots_busy"] = gate.busy          # queueing fault: jobs holding a slot
    snap["engine_slots_waiting"] = gate.waiting    # queueing fault: the queue depth
    return web.json_response(snap)


async def admin_jobs(request: web.Request) -> web.Response:
    """Every job the in-memory store still holds: when it was created, started and finished and
    when a client was first told it ended (status answer or webhook), on the server's monotonic
    clock, in creation order. The benchmarks compute an ideal client's makespan from it."""
    st = _state(request)
    told = st.counters.told
    rows = [{"id": j.id, "status": j.status, "created": j.created, "started": j.started, "finished": j.finished,
             "told": told.get(j.id)} for j in (st.jobs.store if not st.store.shared else ())]
    return web.json_response({"now": time.monotonic(), "jobs": rows})


async def admin_get_faults(request: web.Request) -> web.Response:
    return web.json_response(_state(request).faults.snapshot())


async def admin_set_faults(request: web.Request) -> web.Response:
    st = _state(request)
    try:
        st.faults.update(await request.json())
    except ValueError as exc:  # bad JSON or a bad fault document: nothing was changed
        return web.json_response({"message": f"faults not changed: {exc}"}, status=400)
    return web.json_response(st.faults.snapshot())


async def admin_release(request: web.Request) -> web.Response:
    return web.json_response({"released": _state(request).release_stuck_jobs()})


def create_app(config: ServerConfig) -> web.Application:
    """The aiohttp application for ``config``; the engine starts with the app, not before."""
    app = web.Application(middlewares=[guard], client_max_size=MAX_UPLOAD + 1024 * 1024)
    state = ServerState(config)
    app[STATE] = state
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    add_probe_routes(app, lambda: app[STATE])
    if config.role == "worker":   # a worker serves only its health; the API replicas take requests
        _lifecycle(app, state)
        return app
    for prefix, paths in ((V1, ("/img2txt", "/request-status/{request_id}", "/models",
                                "/img2txt/price-calculation", "/balance")),
                          ("/api/v2", ("/images/ocr", "/jobs/{request_id}", "/models",
                                       "/images/ocr/price", "/account/balance"))):
        submit_p, status_p, models_p, price_p, balance_p = paths
        app.router.add_post(prefix + submit_p, submit)
        app.router.add_get(prefix + status_p, status)
        app.router.add_get(prefix + models_p, models)
        app.router.add_post(prefix + price_p, price)
        app.router.add_get(prefix + balance_p, balance)
    app.router.add_get("/results/{name}", download)
    if config.admin:
        app.router.add_get("/_admin/counters", admin_counters)
        app.router.add_get("/_admin/jobs", admin_jobs)
        app.router.add_get("/_admin/faults", admin_get_faults)
        app.router.add_post("/_admin/faults", admin_set_faults)
        app.router.add_post("/_admin/release", admin_release)

    _lifecycle(app, state)
    return app


def _lifecycle(app: web.Application, state: ServerState) -> None:
    async def on_startup(app: web.Application) -> None:
        await state.start()

    async def on_cleanup(app: web.Application) -> None:
        await state.close()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)


__all__ = ["STATE", "ServerState", "create_app"]
