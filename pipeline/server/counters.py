"""What the server received, so tests and benchmarks can assert "each file paid once".

The counters are plain integers on one object that lives as long as the server; the handlers
bump them and ``GET /_admin/counters`` serves ``snapshot()``. What grows with every job (the
upload hashes, sizes, latenesses, told jobs) keeps the last ``KEEP_UPLOAD_SIZES``: a
self-hosted server reads for months, and a key per page it ever read would grow without end.
"""

from __future__ import annotations

import hashlib
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

KEEP_UPLOAD_SIZES = 100_000


@dataclass
class Counters:
    submits: int = 0                 # POSTs to img2txt that reached the handler (after auth)
    jobs_created: int = 0
    submits_by_hash: Counter = field(default_factory=Counter)  # sha256(upload bytes) -> jobs created
    hashes_forgotten: int = 0        # distinct uploads dropped from submits_by_hash, oldest first
    upload_sizes: deque = field(default_factory=lambda: deque(maxlen=KEEP_UPLOAD_SIZES))  # bytes per job
    status_polls: int = 0
    downloads: int = 0
    downloads_with_auth: int = 0     # downloads that carried an Authorization header (must stay 0)
    price_calls: int = 0
    models_calls: int = 0
    balance_calls: int = 0
    rate_limited: int = 0            # 429s served (real limits and injected)
    server_errors: int = 0           # injected 5xx
    internal_errors: int = 0         # unexpected exceptions answered with the 500 envelope
    dropped: int = 0                 # connections closed without an answer
    validation_errors: int = 0       # 422s (including "Not enough balance.")
    auth_failures: int = 0           # 401s
    webhooks_sent: int = 0           # delivery attempts (each retry counts)
    webhooks_delivered: int = 0      # attempts answered 2xx
    webhook_failures: int = 0        # attempts that failed (non-2xx, 3xx, timeout, refused)
    jobs_done: int = 0
    jobs_failed: int = 0
    # Lateness: seconds from a job's end to the first status answer that told a client so
    # (the server's own clock). The benchmarks compare clients with it; no client can see it.
    lateness: deque = field(default_factory=lambda: deque(maxlen=KEEP_UPLOAD_SIZES))
    # job id -> when a client was first told the job ended (a terminal status answer or a
    # delivered terminal webhook), the server's monotonic clock: ``GET /_admin/jobs``.
    told: dict = field(default_factory=dict, repr=False)
    keep: int = field(default=KEEP_UPLOAD_SIZES, repr=False)  # distinct upload hashes kept

    def note_upload(self, image: bytes) -> None:
        """A job was created for ``image``: count it by the sha256 of its bytes (the judge of
        "each file paid once") and keep its size. Past ``keep`` distinct uploads the oldest hash
        is forgotten (``hashes_forgotten``): a second submit of that upload counts 1 again."""
        key = hashlib.sha256(image).hexdigest()
        if key not in self.submits_by_hash and len(self.submits_by_hash) >= self.keep:
            self.submits_by_hash.pop(next(iter(self.submits_by_hash)))
            self.hashes_forgotten += 1
        self.submits_by_hash[key] += 1
        self.upload_sizes.append(len(image))

    def observe_status(self, job: Any, now: float) -> None:
        """A status answer for ``job``; records its lateness the first time it says terminal."""
        if job.finished is not None and job.id not in self.told:
            self.observe_told(job.id, job.finished, now)

    def observe_told(self, job_id: str, finished: float, now: float) -> None:
        """A client learnt that the job that ended at ``finished`` ended (first time only)."""
        if job_id in self.told:
            return
        if len(self.told) >= KEEP_UPLOAD_SIZES:
            self.told.pop(next(iter(self.told)))
        self.told[job_id] = now
        self.lateness.append(max(0.0, now - finished))

    @property
    def api_calls(self) -> int:
        return self.submits + self.status_polls + self.downloads

    def snapshot(self) -> dict[str, Any]:
        out = {k: v for k, v in vars(self).items()
               if k not in ("submits_by_hash", "upload_sizes", "lateness", "told", "keep")}
        late = sorted(self.lateness)
        out["lateness_s"] = ({"n": len(late), "mean": round(sum(late) / len(late), 4),
                              "p50": round(late[len(late) // 2], 4),
                              "p95": round(late[min(len(late) - 1, int(0.95 * len(late)))], 4),
                              "p99": round(late[min(len(late) - 1, int(0.99 * len(late)))], 4),
                              "max": round(late[-1], 4)}
                             if late else {"n": 0})
        out["submits_by_hash"] = dict(self.submits_by_hash)
        out["api_calls"] = self.api_calls
        return out
