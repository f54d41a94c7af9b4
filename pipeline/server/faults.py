"""Fault injection switches and their seeded decisions.

Why a live, mutable object: tests and benchmarks flip faults while the server runs
(``srv.faults.http_5xx = FaultRule(count=2)``), over ``POST /_admin/faults`` (JSON) or with
``--fault NAME=COUNT[:RATE]`` on the command line. Every yes/no decision goes through
``FaultRule.fire`` with the server's one seeded ``random.Random``, so a run with the same seed
and the same order of events injects the same faults.

Job faults (error, never finish, lost id, expired link) are decided when the job is created,
not when its task happens to run, so concurrent jobs do not make the decisions depend on the
scheduler's timing.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass, field, fields
from typing import Any

from PIL import Image, ImageChops

# Where injected 429/5xx may apply (``FaultConfig.endpoints``).
FAULT_ENDPOINTS = ("submit", "status", "price", "download", "models", "balance")


@dataclass
class FaultRule:
    """The next ``count`` matching events get the fault, then each one with probability ``rate``."""

    count: int = 0
    rate: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 0:
            raise ValueError(f"fault count must be a whole number >= 0, not {self.count!r}")
        if isinstance(self.rate, bool) or not isinstance(self.rate, (int, float)) or not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"fault rate must be a number between 0 and 1, not {self.rate!r}")
        self.rate = float(self.rate)

    def fire(self, rng: random.Random) -> bool:
        """Decide one event: consume a counted fault first, else roll the seeded dice."""
        if self.count > 0:
            self.count -= 1
            return True
        return self.rate > 0.0 and rng.random() < self.rate

    @property
    def active(self) -> bool:
        return self.count > 0 or self.rate > 0.0

    @classmethod
    def parse(cls, value: Any) -> "FaultRule":
        """Accept ``{"count": n, "rate": p}``, a bare count ``n``, or the CLI form ``"n[:p]"``."""
        if isinstance(value, FaultRule):
            return FaultRule(value.count, value.rate)
        if isinstance(value, dict):
            unknown = set(value) - {"count", "rate"}
            if unknown:
                raise ValueError(f"a fault rule takes only 'count' and 'rate', not {sorted(unknown)}")
            return cls(count=value.get("count", 0), rate=value.get("rate", 0.0))
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(count=value)
        if isinstance(value, str):
            count, _, rate = value.strip().partition(":")
            try:
                n, p = int(count or 0), float(rate or 0.0)
            except ValueError:
                raise ValueError(f"expected COUNT[:RATE] such as 3 or 0:0.1, not {value!r}") from None
            return cls(count=n, rate=p)
        raise ValueError(f"a fault rule is {{'count': n, 'rate': p}}, n or 'n:p', not {value!r}")


@dataclass
class FaultConfig:
    """Every fault the server can inject; all off by default."""

    latency: float = 0.0                 # seconds a job stays pending before processing
    latency_jitter: float = 0.0          # +/- uniform jitter on latency (never below 0)
    latency_sigma: float = 0.0           # > 0: latency is the median of a log-normal with this sigma
    http_429: FaultRule = field(default_factory=FaultRule)       # injected "Too Many Attempts."
    http_429_daily: bool = False         # injected 429s say X-RateLimit-Type: daily
    retry_after: int = 1                 # Retry-After of injected 429s (seconds)
    endpoints: tuple[str, ...] = ("submit", "status")  # where http_429 / http_5xx apply
    http_5xx: FaultRule = field(default_factory=FaultRule)       # 500/502/503 with an HTML body
    retry_after_5xx: int = 0             # > 0: injected 5xx are 503s with this Retry-After (maintenance)
    poison_red: bool = False             # an upload marked red (>= 1 % of pixels pure red) answers 500, every time
    drop_before_create: FaultRule = field(default_factory=FaultRule)  # submit: close, no job
    drop_after_create: FaultRule = field(default_factory=FaultRule)   # submit: job made, answer lost
    job_error: FaultRule = field(default_factory=FaultRule)      # job ends in status "error"
    job_error_code: str = "PROCESSING_ERROR"
    job_never_finish: FaultRule = field(default_factory=FaultRule)  # stays "processing" until released
    lose_request_id: FaultRule = field(default_factory=FaultRule)   # status answers 404 for the id
    expire_result_link: FaultRule = field(default_factory=FaultRule)  # first result_url is already expired
    webhook_lose: FaultRule = field(default_factory=FaultRule)      # an event is never sent
    webhook_delay: FaultRule = field(default_factory=FaultRule)     # an event is sent late
    webhook_delay_s: float = 0.3
    webhook_duplicate: FaultRule = field(default_factory=FaultRule)  # an event is delivered twice
    webhook_reorder: FaultRule = field(default_factory=FaultRule)    # job.processing after the final event
    no_price_route: bool = False         # the price route answers 404, as a server that cannot quote
    worker_kill_after_save: FaultRule = field(default_factory=FaultRule)  # fleet worker: SIGKILL itself right after a result is saved
    worker_loop_exit: FaultRule = field(default_factory=FaultRule)  # fleet worker: a claim loop ends (a bug's effect)
    engine_slots: int = 0                # queueing: N engine slots (0 = off), granted first come first served
    engine_seconds: float = 0.0          # queueing: seconds each job holds its slot (processing, progress moving)

    def update(self, data: Any) -> None:
        """Apply a JSON document (all-or-nothing): rules as ``{"count": n, "rate": p}``, ``n`` or ``"n:p"``."""
        if not isinstance(data, dict):
            raise ValueError("faults must be a JSON object such as {\"http_5xx\": {\"count\": 2}}")
        names = {f.name for f in fields(self)}
        staged: dict[str, Any] = {}
        for key, value in data.items():
            if key not in names:
                raise ValueError(f"unknown fault {key!r}; known: {', '.join(sorted(names))}")
            staged[key] = self._coerce(key, getattr(self, key), value)
        for key, value in staged.items():
            setattr(self, key, value)

    @staticmethod
    def _coerce(key: str, current: Any, value: Any) -> Any:
        if isinstance(current, FaultRule):
            return FaultRule.parse(value)
        if isinstance(current, bool):
            if isinstance(value, bool):
                return value
            if str(value).strip().lower() in ("1", "true", "yes", "on"):
                return True
            if str(value).strip().lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"{key} must be true or false, not {value!r}")
        if isinstance(current, tuple):
            items = value.split(",") if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else None
            if items is None:
                raise ValueError(f"{key} must be a list such as [\"submit\", \"status\"], not {value!r}")
            items = [str(i).strip() for i in items if str(i).strip()]
            bad = [i for i in items if i not in FAULT_ENDPOINTS]
            if bad:
                raise ValueError(f"{key}: unknown endpoint(s) {bad}; choose from {', '.join(FAULT_ENDPOINTS)}")
            return tuple(items)
        if isinstance(current, str):
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{key} must be a non-empty string, not {value!r}")
            return value.strip()
        # numbers: latency, jitter, retry_after(_5xx), webhook_delay_s, engine_slots, engine_seconds
        try:
            number = type(current)(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None or number < 0:
            raise ValueError(f"{key} must be a number >= 0, not {value!r}")
        return number

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = ({"count": v.count, "rate": v.rate} if isinstance(v, FaultRule)
                           else list(v) if isinstance(v, tuple) else v)
        return out


def red_marked(image: bytes) -> bool:
    """The ``poison_red`` fault's mark: at least 1 % of the image's pixels pure red (R >= 200,
    G and B <= 60), a mark that survives the client's turn, levelling and re-encoding, so a
    test can name the pages the API chokes on from inside the image, whatever the client
    calls them."""
    try:
        with Image.open(io.BytesIO(image)) as im:
            im.thumbnail((200, 200))
            r, g, b = im.convert("RGB").split()
        high = r.point(lambda v: 255 if v >= 200 else 0)

        def low(band: Image.Image) -> Image.Image:
            return band.point(lambda v: 255 if v <= 60 else 0)

        marked = ImageChops.multiply(ImageChops.multiply(high, low(g)), low(b))   # 255 where all three hold
        return marked.histogram()[255] * 100 >= marked.width * marked.height
    except Exception:   # unreadable: validation already answered; not this fault's page
        return False


def parse_fault_option(spec: str) -> dict[str, Any]:
    """``NAME=VALUE`` from ``--fault`` into an ``update`` document (VALUE is ``COUNT[:RATE]`` for rules)."""
    name, sep, value = spec.partition("=")
    if not sep or not name.strip():
        raise ValueError(f"expected NAME=COUNT[:RATE] (e.g. http_5xx=3 or job_error=0:0.1), not {spec!r}")
    return {name.strip(): value.strip()}
