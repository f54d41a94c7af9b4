"""What the server received, so tests and benchmarks can assert "each file paid once"."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Counters:
    submits: int = 0                 # POSTs to img2txt that reached the handler
    jobs_created: int = 0
    submits_by_hash: Counter = field(default_factory=Counter)  # sha256(upload bytes) -> jobs created
    upload_sizes: list[int] = field(default_factory=list)
    status_polls: int = 0
    downloads: int = 0
    downloads_with_auth: int = 0     # downloads that carried an Authorization header (must stay 0)
    price_calls: int = 0
    models_calls: int = 0
    balance_calls: int = 0
    rate_limited: int = 0            # 429s served (real limits and injected)
    server_errors: int = 0           # injected 5xx
    dropped: int = 0                 # connections closed without an answer
    validation_errors: int = 0
    auth_failures: int = 0
    webhooks_sent: int = 0
    webhook_failures: int = 0
    jobs_failed: int = 0

    @property
    def api_calls(self) -> int:
        return self.submits + self.status_polls + self.downloads

    def snapshot(self) -> dict[str, Any]:
        out = {k: v for k, v in vars(self).items() if k not in ("submits_by_hash", "upload_sizes")}
        out["submits_by_hash"] = dict(self.submits_by_hash)
        out["api_calls"] = self.api_calls
        return out
