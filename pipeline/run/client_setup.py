"""Translate the run's ``Config`` into the deAPI client's settings and the job-slot limiter.

Kept apart from both sides on purpose: the client knows nothing of config files, and the
config knows nothing of HTTP.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pipeline.config import Config
from pipeline.deapi import ClientSettings
from pipeline.deapi.concurrency import AdaptiveLimit


def client_settings_from_config(config: Config) -> ClientSettings:
    t, r, p, rl = config.timeouts, config.retries, config.polling, config.rate_limits
    return ClientSettings(
        connect_timeout_s=t.connect_s, read_timeout_s=t.read_s,
        max_attempts=r.max_attempts, backoff_initial_s=r.backoff_initial_s, backoff_max_s=r.backoff_max_s,
        max_retry_after_s=r.max_retry_after_s,
        first_poll_s=p.first_poll_s, poll_min_interval_s=p.min_interval_s, poll_max_interval_s=p.max_interval_s,
        poll_backoff=p.backoff, status_calls_per_job=p.status_calls_per_job, poll_gap_share=p.max_lateness_share,
        poll_gap_floor_s=p.lateness_floor_s, not_found_grace_s=p.not_found_grace_s,
        plan=rl.plan, submit_per_minute=rl.submit_per_minute, submit_per_day=rl.submit_per_day,
        status_per_minute=rl.status_per_minute, status_per_day=rl.status_per_day,
        connections=config.concurrency.jobs_in_flight + 4,
        token_source=f"the {config.api.token_env} environment variable",
    )


class FixedSlots(asyncio.Semaphore):
    """A fixed window that says its size (the runner sizes its worker pool from it)."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.maximum = size


def job_slots_from_config(config: Config) -> Any:
    """The run's limit on jobs in flight: adaptive (AIMD) or a fixed semaphore.

    In embedded mode the server runs in this process with ``api.embedded.workers`` engine
    workers: two jobs a worker keep every engine busy (one reading, one waiting) while its
    completions arrive by webhook on loopback; more would only queue there and hold memory."""
    c = config.concurrency
    if config.embedded:
        return FixedSlots(min(c.jobs_in_flight, max(2, 2 * config.api.embedded.workers)))
    if not c.adaptive or c.min_jobs_in_flight >= c.jobs_in_flight:
        return FixedSlots(c.jobs_in_flight)
    # It starts at the configured number, not at 4: jobs waiting at an asynchronous API cost it
    # nothing until it says so (a 429 storm, a queue that threatens the deadline), while a slow
    # start costs a round of whole job times per doubling (12 s of a 90 s run with 2 s jobs).
    return AdaptiveLimit(c.min_jobs_in_flight, c.jobs_in_flight, initial=c.jobs_in_flight,
                         queue_limit_s=config.timeouts.job_s / 20)
