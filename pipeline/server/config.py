"""Server settings and the rate-limit profiles (plain dataclasses, every field defaulted).

The profiles mirror deAPI's plans (deapi-api.md §4.4): limits are per token and per endpoint,
a per-minute and a per-day window; ``/models`` and ``/balance`` are never limited.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Callable

from .faults import FaultConfig, FaultRule
from .hosted import HOSTED_MODELS, HostedSettings
from .size_limits import SizeLimits

Limit = tuple[int | None, int | None]   # (per minute, per day); None = unlimited

LIMITED_ENDPOINTS = ("submit", "status", "price")
ROLES = ("all", "api", "worker")   # all: API and engine in one process; api / worker: a fleet's halves

PROFILES: dict[str, dict[str, Limit]] = {
    "unlimited": {"submit": (None, None), "status": (None, None), "price": (None, None)},
    "basic": {"submit": (5, 50), "status": (50, 200), "price": (50, 200)},
    # "unified 300 RPM with unlimited daily requests"; status/price not listed separately: 300 too.
    "premium": {"submit": (300, None), "status": (300, None), "price": (300, None)},
    "custom": {"submit": (None, None), "status": (None, None), "price": (None, None)},
}


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 0
    tokens: tuple[str, ...] = ("dev-token",)
    engine: str = "rapidocr"
    engine_workers: int = 1
    truth_dir: str | None = None          # the ``truth`` engine: folder of texts by pixel digest (ocr/truth.py)
    truth_corrupt: float = 0.0            # ... share of characters it answers wrong, deterministically
    profile: str = "unlimited"
    # Custom numbers per endpoint ("submit", "status", "price"), applied over the profile.
    limits: dict[str, Limit] | None = None
    balance: float = 1_000_000.0          # starting balance per token (USD credits)
    price_per_megapixel: float = 0.002    # the quote and the charge: per uploaded megapixel
    min_price: float = 0.0001
    result_ttl_s: float = 24 * 3600       # how long a result_url stays valid
    webhook_secret: str = field(default_factory=lambda: secrets.token_hex(32))
    allow_http_webhooks: bool = False     # plain http webhooks, to loopback hosts only
    webhook_time_scale: float = 1.0       # multiplies the retry schedule (tests: 0.001)
    webhook_timeout_s: float = 10.0       # a receiver must answer within this
    faults: FaultConfig = field(default_factory=FaultConfig)
    admin: bool = False                   # /_admin/counters, /_admin/faults, /_admin/release
    seed: int = 0
    max_jobs_kept: int = 100_000          # finished jobs kept in memory (oldest dropped first)
    public_base_url: str | None = None    # scheme://host used in result_url; default: the request's
    clock: Callable[[], float] | None = None   # wall clock for limits and link expiry (tests inject)
    store_url: str | None = None          # postgresql://... : the shared fleet store; None: this process's memory
    role: str = "all"                     # all | api (routes only) | worker (claims jobs; /healthz, /metrics)
    lease_s: float = 30.0                 # fleet: a claimed job returns to the queue this long after its worker died
    worker_id: str | None = None          # fleet: this process's name in leases and /metrics (default host-pid-random)
    hosted: HostedSettings = field(default_factory=HostedSettings)   # the hosted-like model (hosted.py)
    migrate: bool = True                  # fleet: apply missing schema migrations at start-up (False: refuse to start)
    clock_offset_s: float = 0.0           # test only: this process's wall clock runs this far ahead (a skewed machine)
    # The hosted model's size limits as job errors (size_limits.py); None = any size.
    max_input_height: int | None = None   # taller uploads fail with INPUT_TOO_LARGE (hosted: ~850)
    max_answer_chars: int | None = None   # longer answers fail with CONTEXT_LENGTH_EXCEEDED
    model_limits: dict[str, tuple[int | None, int | None]] | None = None  # per model: (height, chars)

    def __post_init__(self) -> None:
        self.tokens = tuple(self.tokens)
        if not self.tokens or not all(isinstance(t, str) and t for t in self.tokens):
            raise ValueError("the server needs at least one non-empty bearer token")
        if self.profile not in PROFILES:
            raise ValueError(f"unknown profile {self.profile!r}; choose {', '.join(PROFILES)}")
        if self.role not in ROLES:
            raise ValueError(f"unknown role {self.role!r}; choose {', '.join(ROLES)}")
        if self.role != "all" and not self.store_url:
            raise ValueError(f"role {self.role!r} needs a shared store (store_url postgresql://...): "
                             "with the in-memory store one process must be API and worker both")
        if self.store_url and not self.store_url.startswith(("postgresql://", "postgres://")):
            raise ValueError("store_url must be a postgresql:// URL")
        if self.lease_s <= 0:
            raise ValueError("lease_s must be above 0")
        if self.engine_workers < 1:
            raise ValueError("engine_workers must be at least 1")
        for ep, (per_min, per_day) in (self.limits or {}).items():
            if ep not in LIMITED_ENDPOINTS:
                raise ValueError(f"limits: unknown endpoint {ep!r}; choose {', '.join(LIMITED_ENDPOINTS)}")
            for n in (per_min, per_day):
                if n is not None and (not isinstance(n, int) or n < 1):
                    raise ValueError(f"limits[{ep!r}]: a limit is a whole number >= 1 or None, not {n!r}")

    def size_limits(self) -> SizeLimits:
        """The hosted-like models refuse what the hosted one does (``hosted.max_input_height``, 850 px
        by default) unless the global limits or ``model_limits`` say otherwise; other models take
        the global limits (none by default)."""
        hosted = {m: (self.max_input_height or self.hosted.max_input_height,
                      self.max_answer_chars or self.hosted.max_answer_chars) for m in HOSTED_MODELS}
        return SizeLimits(self.max_input_height, self.max_answer_chars, hosted | dict(self.model_limits or {}))

    def endpoint_limits(self) -> dict[str, Limit]:
        base = dict(PROFILES[self.profile])
        base.update(self.limits or {})
        return base


__all__ = ["LIMITED_ENDPOINTS", "PROFILES", "ROLES", "FaultConfig", "FaultRule", "ServerConfig"]
