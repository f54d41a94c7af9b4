"""Server settings, rate-limit profiles and fault-injection switches (all plain dataclasses).

``FaultConfig`` is live and mutable on purpose: tests and benchmarks flip faults while the
server runs (``srv.faults.http_5xx = FaultRule(count=2)``) or over ``POST /_admin/faults``.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass, field, fields
from typing import Any, Callable

# (per minute, per day) per endpoint; None = unlimited. From deapi-api.md §4.4.
PROFILES: dict[str, dict[str, tuple[int | None, int | None]]] = {
    "unlimited": {"submit": (None, None), "status": (None, None), "price": (None, None)},
    "basic": {"submit": (5, 50), "status": (50, 200), "price": (50, 200)},
    "premium": {"submit": (300, None), "status": (300, None), "price": (300, None)},
}


@dataclass
class FaultRule:
    """The next ``count`` matching events get the fault, then each with probability ``rate``."""

    count: int = 0
    rate: float = 0.0

    def fire(self, rng: random.Random) -> bool:
        if self.count > 0:
            self.count -= 1
            return True
        return self.rate > 0 and rng.random() < self.rate


@dataclass
class FaultConfig:
    latency: float = 0.0                 # seconds a job waits before processing
    latency_jitter: float = 0.0          # +/- uniform jitter on latency
    http_429: FaultRule = field(default_factory=FaultRule)
    http_429_daily: bool = False         # injected 429s say X-RateLimit-Type: daily
    retry_after: int = 1
    endpoints: tuple[str, ...] = ("submit", "status", "download")  # where 429/5xx faults apply
    http_5xx: FaultRule = field(default_factory=FaultRule)
    drop_before_create: FaultRule = field(default_factory=FaultRule)
    drop_after_create: FaultRule = field(default_factory=FaultRule)
    job_error: FaultRule = field(default_factory=FaultRule)
    job_error_code: str = "PROCESSING_ERROR"
    job_never_finish: FaultRule = field(default_factory=FaultRule)
    lose_request_id: FaultRule = field(default_factory=FaultRule)
    expire_result_link: FaultRule = field(default_factory=FaultRule)
    webhook_lose: FaultRule = field(default_factory=FaultRule)
    webhook_delay: FaultRule = field(default_factory=FaultRule)
    webhook_delay_s: float = 0.3
    webhook_duplicate: FaultRule = field(default_factory=FaultRule)
    webhook_reorder: FaultRule = field(default_factory=FaultRule)

    def update(self, data: dict[str, Any]) -> None:
        """Apply a JSON document: rules as ``{"count": n, "rate": p}`` or ``n``."""
        names = {f.name: f for f in fields(self)}
        for key, value in data.items():
            if key not in names:
                raise ValueError(f"unknown fault {key!r}")
            current = getattr(self, key)
            if isinstance(current, FaultRule):
                value = FaultRule(**value) if isinstance(value, dict) else FaultRule(count=int(value))
            elif isinstance(current, tuple):
                value = tuple(value)
            setattr(self, key, value)

    def snapshot(self) -> dict[str, Any]:
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = {"count": v.count, "rate": v.rate} if isinstance(v, FaultRule) else v
        return out


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 0
    tokens: tuple[str, ...] = ("dev-token",)
    engine: str = "rapidocr"
    engine_workers: int = 1
    profile: str = "unlimited"
    limits: dict[str, tuple[int | None, int | None]] | None = None   # overrides per endpoint (custom)
    balance: float = 100.0
    price_per_1k_chars: float = 0.00928
    price_per_megapixel: float = 0.002
    result_ttl_s: float = 24 * 3600
    webhook_secret: str = field(default_factory=lambda: secrets.token_hex(32))
    allow_http_webhooks: bool = False
    webhook_time_scale: float = 1.0
    faults: FaultConfig = field(default_factory=FaultConfig)
    admin: bool = True
    seed: int = 0
    max_jobs_kept: int = 100_000
    public_base_url: str | None = None    # host used in result_url; default: the request's host
    clock: Callable[[], float] | None = None

    def endpoint_limits(self) -> dict[str, tuple[int | None, int | None]]:
        if self.profile not in PROFILES and self.profile != "custom":
            raise ValueError(f"unknown profile {self.profile!r}; choose unlimited, basic, premium or custom")
        base = dict(PROFILES.get(self.profile, PROFILES["unlimited"]))
        base.update(self.limits or {})
        return base
