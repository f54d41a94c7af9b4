"""The deAPI client: HTTP calls, errors, retries, rate limiting, polling, concurrency, webhooks.

``DeapiClient`` (``client.py``) is the only thing that talks HTTP to the API; it raises only the
classes in ``errors.py``, and ``bodies.py`` reads what the API answered. ``retry.py`` decides
what is retried, ``ratelimit.py`` paces every worker through one shared budget per endpoint,
``polling.py`` learns when to ask for a job's status, ``concurrency.py`` sizes the number of jobs in flight. ``webhook.py`` receives deAPI's
signed job events (a hint; polling stays the truth).
"""

from .bodies import JobStatus, ModelInfo, PixelLimits
from .client import ClientSettings, ClientStats, DeapiClient
from .concurrency import AdaptiveLimit
from .polling import PollPlanner
from .ratelimit import PLANS, RateLimiter

__all__ = ["PLANS", "AdaptiveLimit", "ClientSettings", "ClientStats", "DeapiClient", "JobStatus", "ModelInfo",
           "PixelLimits", "PollPlanner", "RateLimiter"]
