"""``python -m pipeline serve``: options and the blocking server loop."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from .config import PROFILES, FaultConfig, FaultRule, ServerConfig
from .engines import ENGINE_NAMES


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--engine", choices=ENGINE_NAMES, default="rapidocr")
    p.add_argument("--engine-workers", type=int, default=1, help="OCR worker processes")
    p.add_argument("--token", action="append", default=[],
                   help="accepted bearer token (repeatable; default: $DEAPI_API_KEY)")
    p.add_argument("--profile", choices=[*PROFILES, "custom"], default="unlimited", help="rate-limit plan")
    for ep in ("submit", "status", "price"):
        p.add_argument(f"--limit-{ep}-per-min", type=int, help=f"custom {ep} requests per minute")
        p.add_argument(f"--limit-{ep}-per-day", type=int, help=f"custom {ep} requests per day")
    p.add_argument("--balance", type=float, default=100.0, help="starting balance per token (USD)")
    p.add_argument("--latency", type=float, default=0.0, help="seconds each job waits before processing")
    p.add_argument("--latency-jitter", type=float, default=0.0)
    p.add_argument("--result-ttl", type=float, default=86400, help="seconds a result link stays valid")
    p.add_argument("--webhook-secret", help="HMAC secret for webhooks (default: $DEAPI_WEBHOOK_SECRET)")
    p.add_argument("--allow-http-webhooks", action="store_true", help="accept http:// webhook URLs to loopback")
    p.add_argument("--webhook-time-scale", type=float, default=1.0, help="multiplies the webhook retry schedule")
    p.add_argument("--fault", action="append", default=[], metavar="NAME=COUNT[:RATE]",
                   help="fault injection, e.g. http_5xx=3 or job_error=0:0.1 (repeatable)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--admin", action="store_true", help="enable /_admin/counters and /_admin/faults")


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    tokens = tuple(args.token) or ((os.environ["DEAPI_API_KEY"],) if os.environ.get("DEAPI_API_KEY") else ())
    if not tokens:
        raise SystemExit("serve: give at least one --token (or set DEAPI_API_KEY): the server requires Bearer auth")
    faults = FaultConfig(latency=args.latency, latency_jitter=args.latency_jitter)
    for spec in args.fault:
        name, _, value = spec.partition("=")
        count, _, rate = value.partition(":")
        try:
            faults.update({name: {"count": int(count or 0), "rate": float(rate or 0)}})
        except (ValueError, TypeError) as exc:
            raise SystemExit(f"serve: bad --fault {spec!r}: {exc}")
    limits = {}
    for ep in ("submit", "status", "price"):
        pm, pd = getattr(args, f"limit_{ep}_per_min"), getattr(args, f"limit_{ep}_per_day")
        if pm is not None or pd is not None:
            limits[ep] = (pm, pd)
    secret = args.webhook_secret or os.environ.get("DEAPI_WEBHOOK_SECRET")
    extra = {"webhook_secret": secret} if secret else {}
    return ServerConfig(host=args.host, port=args.port, tokens=tokens, engine=args.engine,
                        engine_workers=args.engine_workers, profile=args.profile, limits=limits or None,
                        balance=args.balance, result_ttl_s=args.result_ttl,
                        allow_http_webhooks=args.allow_http_webhooks, webhook_time_scale=args.webhook_time_scale,
                        faults=faults, admin=args.admin, seed=args.seed, **extra)


def serve_from_args(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return 2
    from .embedded import EmbeddedServer

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with EmbeddedServer(config) as srv:
            print(f"deAPI-compatible server on {srv.base_url} (engine {config.engine}, profile {config.profile})",
                  file=sys.stderr, flush=True)
            await stop.wait()

    asyncio.run(main())
    return 0
