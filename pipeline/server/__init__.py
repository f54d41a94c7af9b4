"""The deAPI-compatible OCR server: the embedded default, the test bed, a self-hosted service.

``create_app(ServerConfig)`` builds the aiohttp application; ``EmbeddedServer`` runs it on an
ephemeral loopback port; ``python -m pipeline serve`` runs it standalone (``cli.py``).
Faults (``FaultConfig`` of ``FaultRule``s) are live: flip them on ``srv.faults`` mid-run.
"""

from .config import PROFILES, ServerConfig
from .counters import Counters
from .faults import FaultConfig, FaultRule

__all__ = ["PROFILES", "Counters", "EmbeddedServer", "FaultConfig", "FaultRule", "ServerConfig", "create_app"]


def __getattr__(name: str):
    """``create_app`` and ``EmbeddedServer`` load aiohttp's server side: only when asked for, so
    ``pipeline run --help`` and a run against a remote API do not pay for it (issue 25)."""
    if name == "create_app":
        from .app import create_app
        return create_app
    if name == "EmbeddedServer":
        from .embedded import EmbeddedServer
        return EmbeddedServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
