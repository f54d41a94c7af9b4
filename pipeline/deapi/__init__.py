"""The deAPI client: HTTP calls, errors, retries, rate limiting, polling, concurrency, webhooks."""

from .client import ClientSettings, DeapiClient, JobStatus, ModelInfo, PixelLimits

__all__ = ["ClientSettings", "DeapiClient", "JobStatus", "ModelInfo", "PixelLimits"]
