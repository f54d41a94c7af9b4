"""The deAPI-compatible OCR server: the embedded default, the test bed, a self-hosted service.

``create_app(ServerConfig)`` builds the aiohttp application; ``EmbeddedServer`` runs it on an
ephemeral loopback port; ``python -m pipeline serve`` runs it standalone (``cli.py``).
Faults (``FaultConfig`` of ``FaultRule``s) are live: flip them on ``srv.faults`` mid-run.
"""

from .app import create_app
from .config import PROFILES, ServerConfig
from .counters import Counters
from .embedded import EmbeddedServer
from .faults import FaultConfig, FaultRule

__all__ = ["PROFILES", "Counters", "EmbeddedServer", "FaultConfig", "FaultRule", "ServerConfig", "create_app"]
