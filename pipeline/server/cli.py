"""``python -m pipeline serve``: the options, their checks, and the blocking server loop.

``pipeline/cli.py`` (the lead's) builds the ``serve`` sub-parser with ``add_serve_arguments``
and runs ``serve_from_args``; everything about the server's command line lives here.
Tokens and the webhook secret may come from the environment so they stay out of ``ps``
output and shell history; neither is ever printed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable

from pipeline.exitcodes import ExitCode

from .config import LIMITED_ENDPOINTS, PROFILES, ROLES, ServerConfig
from pipeline.ocr import ENGINE_NAMES
from .faults import FaultConfig, parse_fault_option
from .hosted import HostedSettings
from .store import StoreUnavailable

TOKEN_ENV = "DEAPI_API_KEY"
SECRET_ENV = "DEAPI_WEBHOOK_SECRET"
STORE_ENV = "PIPELINE_STORE"


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="listen port (default 8000; 0 = any free port)")
    p.add_argument("--engine", choices=ENGINE_NAMES, default="rapidocr",
                   help="OCR engine: rapidocr (default, real), tesseract (lighter), fast (instant fake for tests), "
                        "truth (answers registered texts without boxes: --truth-dir)")
    p.add_argument("--engine-workers", type=int, default=1, help="OCR worker processes (default 1)")
    p.add_argument("--truth-dir", default=None, metavar="DIR",
                   help="truth engine: folder of texts named by pixel digest (pipeline/ocr/truth.py)")
    p.add_argument("--truth-corrupt", type=float, default=0.0, metavar="SHARE",
                   help="truth engine: share of characters answered wrong, deterministically (default 0)")
    p.add_argument("--token", action="append", default=[], metavar="TOKEN",
                   help=f"accepted bearer token (repeatable; default: ${TOKEN_ENV})")
    p.add_argument("--profile", choices=list(PROFILES), default="unlimited",
                   help="rate-limit plan: unlimited (default), basic, premium, custom (with --limit-*)")
    for ep in LIMITED_ENDPOINTS:
        p.add_argument(f"--limit-{ep}-per-min", type=int, metavar="N", help=f"{ep} requests per minute per token")
        p.add_argument(f"--limit-{ep}-per-day", type=int, metavar="N", help=f"{ep} requests per UTC day per token")
    p.add_argument("--balance", type=float, default=1_000_000.0, help="starting balance per token (USD credits)")
    p.add_argument("--latency", type=float, default=0.0, help="seconds each job stays pending (default 0)")
    p.add_argument("--latency-jitter", type=float, default=0.0, help="± uniform jitter on --latency (seconds)")
    p.add_argument("--hosted-job-s", type=float, nargs=2, default=(5.0, 20.0), metavar=("LO", "HI"),
                   help="model Nanonets_Ocr_S_Hosted (answers like the hosted model): each job takes "
                        "uniform(LO, HI) seconds (default 5 20)")
    p.add_argument("--result-ttl", type=float, default=86_400.0, help="seconds a result_url stays valid (default 1 day)")
    p.add_argument("--webhook-secret", help=f"HMAC secret for webhook signatures (default: ${SECRET_ENV}, else random)")
    p.add_argument("--allow-http-webhooks", action="store_true",
                   help="accept plain http:// webhook URLs, to loopback hosts only")
    p.add_argument("--webhook-time-scale", type=float, default=1.0,
                   help="multiplies the webhook retry schedule (0.001 turns hours into seconds)")
    p.add_argument("--fault", action="append", default=[], metavar="NAME=COUNT[:RATE]",
                   help="inject a fault: the next COUNT events, then each with probability RATE "
                        "(e.g. http_5xx=3, job_error=0:0.1); settings too: retry_after=5, endpoints=submit,status "
                        "(repeatable)")
    p.add_argument("--fault-engine-slots", type=int, default=0, metavar="N",
                   help="queueing fault: jobs share N engine slots, first come first served (default 0 = off)")
    p.add_argument("--fault-engine-seconds", type=float, default=0.0, metavar="S",
                   help="queueing fault: seconds each job holds its slot, 'processing' with progress (default 0)")
    p.add_argument("--max-input-height", type=int, metavar="PX",
                   help="uploads taller than PX fail with the job error INPUT_TOO_LARGE, as the hosted model's (~850)")
    p.add_argument("--max-answer-chars", type=int, metavar="N",
                   help="answers longer than N characters fail with the job error CONTEXT_LENGTH_EXCEEDED")
    p.add_argument("--model-limit", action="append", default=[], metavar="MODEL=PX[:N]",
                   help="per model: the height (px) and answer length (characters) it takes, over the two above")
    p.add_argument("--seed", type=int, default=0, help="seed of the fault-injection dice (default 0)")
    p.add_argument("--store", metavar="URL",
                   help=f"postgresql://user:pass@host/db: keep jobs, balances and limits in PostgreSQL so replicas "
                        f"and workers share them (default: ${STORE_ENV}, else this process's memory)")
    p.add_argument("--role", choices=ROLES, default="all",
                   help="all (default: API and engine), api (the deAPI routes, no engine), worker (claims jobs "
                        "and reads them; serves only /healthz, /livez, /readyz, /metrics); api and worker need --store")
    p.add_argument("--lease", type=float, default=30.0, metavar="S",
                   help="fleet: seconds before a dead worker's job goes back to the queue (default 30)")
    p.add_argument("--worker-id", help="fleet: this process's name in leases and metrics (default host-pid-random)")
    p.add_argument("--no-migrate", action="store_true",
                   help="fleet: never change the schema; refuse to start if migrations are missing "
                        "(run --migrate-only first, e.g. the Kubernetes Job; the member's user then needs no DDL)")
    p.add_argument("--migrate-only", action="store_true",
                   help="fleet: apply the schema migrations to --store and exit 0 (no token needed)")
    p.add_argument("--clock-offset", type=float, default=0.0, metavar="S",
                   help="test only: run this process's clock S seconds ahead (a skewed machine); default 0")
    p.add_argument("--admin", action="store_true",
                   help="enable GET /_admin/counters, GET|POST /_admin/faults, POST /_admin/release")


# Options read by one kind of fleet member only: given to the other they would change nothing, without
# a word (a --max-input-height on the API replicas, where uploads arrive, refused no page).
READ_BY = {
    "worker": ("hosted_job_s", "max_input_height", "model_limit", "max_answer_chars", "truth_dir", "truth_corrupt",
               "fault_engine_slots", "fault_engine_seconds"),
    "api": ("profile", *(f"limit_{ep}_per_{w}" for ep in LIMITED_ENDPOINTS for w in ("min", "day"))),
}
WHY = {"worker": "the workers read the pages: give {} to every worker",
       "api": "the API replicas count the rate limits: give {} to every API replica"}


def check_role_options(args: argparse.Namespace) -> None:
    """A fleet member given options only the other kind reads: ``ValueError`` naming them and where they go."""
    other = {"api": "worker", "worker": "api"}.get(args.role)
    if other is None:
        return
    p = argparse.ArgumentParser()
    add_serve_arguments(p)
    defaults = vars(p.parse_args([]))
    given = [f"--{name.replace('_', '-')}" for name in READ_BY[other] if getattr(args, name) != defaults[name]]
    if given:
        one = len(given) == 1
        raise ValueError(f"{', '.join(given)} {'does' if one else 'do'} nothing on --role {args.role}: "
                         + WHY[other].format("it" if one else "them"))


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """A checked ``ServerConfig``; ``ValueError`` with a message naming the option otherwise."""
    tokens = tuple(t for t in args.token if t.strip())
    if not tokens and os.environ.get(TOKEN_ENV, "").strip():
        tokens = (os.environ[TOKEN_ENV].strip(),)
    if not tokens:
        raise ValueError(f"no API token: give --token TOKEN (repeatable) or set {TOKEN_ENV}; "
                         "the server requires Bearer auth on every API route")
    for name in ("engine_workers",):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
    for name in ("latency", "latency_jitter", "result_ttl", "webhook_time_scale", "balance",
                 "fault_engine_slots", "fault_engine_seconds"):
        if getattr(args, name) < 0:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 0")
    if args.lease <= 0:
        raise ValueError("--lease must be above 0")
    store = args.store or os.environ.get(STORE_ENV, "").strip() or None
    if store and not store.startswith(("postgresql://", "postgres://")):
        raise ValueError("--store must be a postgresql:// URL")
    if args.role != "all" and not store:
        raise ValueError(f"--role {args.role} needs --store postgresql://... (or ${STORE_ENV}): "
                         "with the in-memory store one process must be API and worker both")
    check_role_options(args)
    if not 0 <= args.port <= 65535:
        raise ValueError("--port must be between 0 and 65535")
    for name in ("max_input_height", "max_answer_chars"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1 (every job would fail)")
    if args.engine == "truth" and not (args.truth_dir and os.path.isdir(args.truth_dir)):
        raise ValueError("--engine truth needs --truth-dir DIR, an existing folder of registered texts"
                         + (f" ({args.truth_dir} is not one)" if args.truth_dir else ""))
    if not 0 <= args.truth_corrupt <= 1:
        raise ValueError("--truth-corrupt must be a share between 0 and 1")
    faults = FaultConfig(latency=args.latency, latency_jitter=args.latency_jitter,
                         engine_slots=args.fault_engine_slots, engine_seconds=args.fault_engine_seconds)
    for spec in args.fault:
        try:
            faults.update(parse_fault_option(spec))
        except ValueError as exc:
            raise ValueError(f"--fault {spec!r}: {exc}") from None
    limits = {}
    for ep in LIMITED_ENDPOINTS:
        per_min, per_day = getattr(args, f"limit_{ep}_per_min"), getattr(args, f"limit_{ep}_per_day")
        for n, opt in ((per_min, "min"), (per_day, "day")):
            if n is not None and n < 1:
                raise ValueError(f"--limit-{ep}-per-{opt} must be at least 1")
        if per_min is not None or per_day is not None:
            limits[ep] = (per_min, per_day)
    if limits and args.profile != "custom":
        raise ValueError("--limit-* options set a custom plan: add --profile custom")
    try:
        hosted = HostedSettings(job_s=tuple(args.hosted_job_s))
    except ValueError:
        raise ValueError("--hosted-job-s LO HI: need 0 <= LO <= HI") from None
    model_limits = dict(parse_model_limit(spec) for spec in args.model_limit)
    secret = args.webhook_secret or os.environ.get(SECRET_ENV) or None
    extra = {"webhook_secret": secret} if secret else {}
    return ServerConfig(host=args.host, port=args.port, tokens=tokens, engine=args.engine,
                        engine_workers=args.engine_workers, profile=args.profile, limits=limits or None,
                        balance=args.balance, result_ttl_s=args.result_ttl,
                        allow_http_webhooks=args.allow_http_webhooks, webhook_time_scale=args.webhook_time_scale,
                        faults=faults, admin=args.admin, seed=args.seed, store_url=store, role=args.role,
                        lease_s=args.lease, worker_id=args.worker_id, hosted=hosted, migrate=not args.no_migrate,
                        clock_offset_s=args.clock_offset,
                        truth_dir=args.truth_dir, truth_corrupt=args.truth_corrupt, max_input_height=args.max_input_height,
                        max_answer_chars=args.max_answer_chars, model_limits=model_limits or None, **extra)


async def run_server(config: ServerConfig, stop: asyncio.Event | None = None) -> None:
    """Serve until ``stop`` is set (or SIGINT/SIGTERM when none is given)."""
    from .embedded import EmbeddedServer

    hurry = asyncio.Event()      # a second signal: stop draining, leave now
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: (hurry if stop.is_set() else stop).set())
    srv = EmbeddedServer(config)
    if not await started_unless_stopped(srv, stop):
        print("serve: stopped by a signal while starting (the store not reached yet); nothing was served",
              file=sys.stderr, flush=True)
        return
    try:
        where = f", store {srv.state.store.kind}, role {config.role}" if config.store_url else ""
        # rules that will fire, and the faults that are a switch (poison_red, no_price_route): an
        # operator must see from the banner that the server answers wrong on purpose
        active = [name for name, v in srv.faults.snapshot().items()
                  if (isinstance(v, dict) and (v["count"] or v["rate"])) or v is True]
        if srv.faults.engine_slots:
            active.append(f"engine_slots={srv.faults.engine_slots}x{srv.faults.engine_seconds:g}s")
        engine = f"engine {config.engine} x{config.engine_workers}"
        what = {"api": ("deAPI-compatible API replica", "no engine: the fleet's workers read the pages"),
                "worker": ("fleet worker", f"/healthz, /livez, /readyz and /metrics only, not the API; {engine}")
                }.get(config.role, ("deAPI-compatible server", engine))
        print(f"{what[0]} on {srv.base_url} ({what[1]}, "
              f"profile {config.profile}, {len(config.tokens)} token(s), admin {'on' if config.admin else 'off'}"
              f"{where}{', faults: ' + ', '.join(active) if active else ''})", file=sys.stderr, flush=True)
        await stop.wait()
        if srv.state.worker is not None:   # SIGTERM: finish the jobs in hand, take no new one
            print(f"draining: {len(srv.state.worker.in_hand)} job(s) in hand", file=sys.stderr, flush=True)
        await drain_unless_hurried(srv.state, hurry)
    finally:
        await srv.stop()


async def done_unless(work: Awaitable, event: asyncio.Event, before_cancel: Callable[[], None] = lambda: None) -> bool:
    """Await ``work`` unless ``event`` is set first: True when it ended (its error raised),
    False when the event came first (``before_cancel`` is called, then it is cancelled)."""
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(event.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if task.done():
        task.result()
        return True
    before_cancel()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return False


async def started_unless_stopped(srv, stop: asyncio.Event) -> bool:
    """Start ``srv`` unless ``stop`` comes first. Why: the start waits up to 30 s for a
    PostgreSQL store that is not up yet, and a SIGTERM then (systemd's stop, a pod deleted) was
    held until that wait ended, and the process then exited 6 for a stop it had been asked for.
    Starting errors (the store unreachable, the port busy) are raised as before."""
    return await done_unless(srv.start(), stop)


async def drain_unless_hurried(state, hurry: asyncio.Event) -> None:
    """Drain (the pages in hand finished and saved, due webhooks sent), unless a second signal
    comes first: a drain waits for the database to save a page, so during an outage it would
    never end, and a stop must always end. Pages left in hand go back to the queue after the lease."""
    def say() -> None:   # before the drain is cancelled: the count of jobs it still held
        in_hand = len(state.worker.in_hand) if state.worker is not None else 0
        print(f"serve: second signal: stopping now; {in_hand} job(s) in hand go back to the queue after the lease",
              file=sys.stderr, flush=True)

    await done_unless(state.drain(), hurry, say)


async def migrate_only(store_url: str) -> list[int]:
    """``serve --migrate-only``: bring the database's schema up to date; returns the versions applied."""
    from .store_pg import PgStore

    store = PgStore(store_url, (), 0.0, {}, time.time)
    await store.open()          # opening applies them
    await store.close()
    return store.migrations_applied


def migrate_from_args(args: argparse.Namespace) -> int:
    store = args.store or os.environ.get(STORE_ENV, "").strip()
    if not store.startswith(("postgresql://", "postgres://")):
        print(f"serve: --migrate-only needs --store postgresql://... (or ${STORE_ENV})", file=sys.stderr)
        return int(ExitCode.CONFIG_ERROR)
    try:
        applied = asyncio.run(migrate_only(store))
    except StoreUnavailable as exc:
        print(f"serve: {exc}", file=sys.stderr)
        return int(ExitCode.API_UNREACHABLE)
    print(f"serve: schema up to date ({'applied ' + ', '.join(map(str, applied)) if applied else 'nothing to apply'})",
          file=sys.stderr)
    return int(ExitCode.OK)


def parse_model_limit(spec: str) -> tuple[str, tuple[int | None, int | None]]:
    """``MODEL=PX[:N]`` from ``--model-limit``: a model's height and answer-length limits."""
    model, sep, value = spec.partition("=")
    height, _, chars = value.partition(":")
    try:
        limits = (int(height) if height.strip() else None, int(chars) if chars.strip() else None)
    except ValueError:
        limits = None
    if not sep or not model.strip() or limits is None or any(v is not None and v < 1 for v in limits):
        raise ValueError(f"--model-limit {spec!r}: expected MODEL=PX[:N] such as Nanonets_Ocr_S_F16=850:4000")
    return model.strip(), limits


def serve_from_args(args: argparse.Namespace) -> int:
    """Run ``python -m pipeline serve``; returns an exit code (``ExitCode``)."""
    if getattr(args, "migrate_only", False):
        return migrate_from_args(args)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"serve: {exc}", file=sys.stderr)
        return int(ExitCode.CONFIG_ERROR)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(run_server(config))
    except OSError as exc:  # address in use, permission denied, unknown host
        print(f"serve: cannot listen on {config.host}:{config.port}: {exc.strerror or exc}", file=sys.stderr)
        return int(ExitCode.CONFIG_ERROR)
    except StoreUnavailable as exc:
        print(f"serve: {exc}", file=sys.stderr)
        return int(ExitCode.API_UNREACHABLE)
    except KeyboardInterrupt:
        pass
    return int(ExitCode.OK)
