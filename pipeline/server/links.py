"""Signed, expiring result links: the server's stand-in for a storage bucket's presigned URLs.

A link is ``/results/{id}.{txt|json}?expires=<unix s>&sig=<hmac>``; the signature is an
HMAC-SHA256 of ``id:expires`` with a secret made at start-up (or, in a fleet, kept in the
shared store), so a link cannot be forged or
extended, and the download route needs no Authorization header (clients must not send one:
the token never travels to a storage host).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Callable


class ResultLinks:
    def __init__(self, ttl_s: float, clock: Callable[[], float], secret: bytes | None = None) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self._secret = secret or secrets.token_bytes(32)

    def use_secret(self, secret: bytes) -> None:
        """Sign with a secret every replica shares (the PostgreSQL store keeps one), so a link
        made by one replica downloads from any other."""
        self._secret = secret

    def _sign(self, request_id: str, expires: int) -> str:
        return hmac.new(self._secret, f"{request_id}:{expires}".encode(), hashlib.sha256).hexdigest()

    def make(self, base_url: str, request_id: str, fmt: str, expired: bool = False) -> str:
        """A fresh link, or (fault ``expire_result_link``) one that expired a second ago."""
        now = self.clock()
        expires = int(now) - 1 if expired else int(now + self.ttl_s)
        ext = "json" if fmt == "json" else "txt"
        return f"{base_url}/results/{request_id}.{ext}?expires={expires}&sig={self._sign(request_id, expires)}"

    def check(self, request_id: str, expires_raw: str, sig: str) -> str | None:
        """``None`` when valid, else ``"invalid"`` or ``"expired"``."""
        try:
            expires = int(expires_raw)
        except ValueError:
            return "invalid"
        if not hmac.compare_digest(sig.encode(), self._sign(request_id, expires).encode()):
            return "invalid"
        if expires < self.clock():
            return "expired"
        return None
