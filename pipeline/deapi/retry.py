"""Retries by failure class, on tenacity (the policy of openai-python's ``_base_client``).

* ``RateLimitError`` (429): wait ``Retry-After`` (seconds or an HTTP date, parsed by the
  client) - inside the shared rate limiter when the endpoint has one (the client pauses it for
  every worker and the retry itself waits 0), here otherwise; never longer than
  ``max_retry_after``. A ``DailyLimitError`` is never slept on: it goes straight to the
  caller, who stops submitting for this run. The client raises it for ``X-RateLimit-Type:
  daily`` and for any ``Retry-After`` over ``max_retry_after`` (hours of sleep inside a run
  help nobody; the next run picks the files up). 429s have their own budget
  (``max_rate_limit_waits``): a busy API is not a broken one, and the shared rate limiter
  already paces everybody after the first 429.
* ``ServerError`` (5xx, HTML gateway pages) and ``TransportError``: full-jitter exponential
  backoff (``initial`` doubling up to ``maximum``), at most ``max_attempts`` attempts. A 5xx
  with ``Retry-After`` (a 503 from an API in maintenance) waits at least that long, capped at
  ``max_retry_after``: in the shared limiter when the endpoint has one, here otherwise.
* everything else (other 4xx, ``SubmitOutcomeUnknown``, job failures): no retry.

Whether a *submit* may be retried is decided before an error reaches this module: the client
raises ``TransportError`` only when the request provably never left (no connection, or the
request headers were never written), and ``SubmitOutcomeUnknown`` (never retried) when it may
have been processed. A 429 or 5xx *answer* proves the server did not create the job.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Awaitable, Callable, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_random_exponential

from . import errors as E

T = TypeVar("T")
log = logging.getLogger("pipeline.deapi")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5             # attempts for 5xx / transport failures (first try included)
    initial: float = 1.0              # backoff base (s); attempt n waits uniform(0, initial * 2**n)
    maximum: float = 60.0             # backoff cap (s)
    max_retry_after: float = 300.0    # longest Retry-After waited for (s); longer ones stop the run
    max_rate_limit_waits: int = 10    # 429s tolerated for one call before giving up


def retryable(exc: BaseException) -> bool:
    if isinstance(exc, E.DailyLimitError):
        return False
    return isinstance(exc, (E.RateLimitError, E.ServerError, E.TransportError))


def rate_limit_wait(exc: E.RateLimitError | E.ServerError, policy: RetryPolicy) -> float:
    """The wait ``Retry-After`` asks for (a 429's, or a 5xx's that sent one), capped."""
    return max(0.0, min(exc.retry_after, policy.max_retry_after))


class _Stop:
    """Stop after ``max_attempts`` non-429 failures or ``max_rate_limit_waits`` 429s."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.failures = 0
        self.rate_limited = 0

    def __call__(self, state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, E.RateLimitError):
            self.rate_limited += 1
            return self.rate_limited >= max(1, self.policy.max_rate_limit_waits)
        self.failures += 1
        return self.failures >= max(1, self.policy.max_attempts)


def _wait(policy: RetryPolicy) -> Callable[[RetryCallState], float]:
    backoff = wait_random_exponential(multiplier=policy.initial, max=policy.maximum)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, E.RateLimitError):
            # The shared limiter already holds the endpoint paused for everyone: the retry
            # waits there (once), not here as well.
            return 0.0 if exc.waited_in_limiter else rate_limit_wait(exc, policy)
        if isinstance(exc, E.ServerError) and exc.retry_after is not None and not exc.waited_in_limiter:
            return max(backoff(state), rate_limit_wait(exc, policy))
        return backoff(state)

    return wait


async def call_with_retries(fn: Callable[[], Awaitable[T]], policy: RetryPolicy,
                            on_retry: Callable[[E.DeapiError], None] | None = None,
                            sleep: Callable[[float], Awaitable[None]] | None = None) -> T:
    """Run ``fn`` until it returns, retrying what ``retryable`` allows; re-raise the last error."""

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception()
        if isinstance(exc, E.DeapiError):
            log.info("deAPI call retried in %.2fs: %s", state.next_action.sleep if state.next_action else 0.0,
                     exc.reason)
            if on_retry is not None:
                on_retry(exc)

    kw = {"sleep": sleep} if sleep is not None else {}
    async for attempt in AsyncRetrying(stop=_Stop(policy), wait=_wait(policy), retry=retry_if_exception(retryable),
                                       before_sleep=before_sleep, reraise=True, **kw):
        with attempt:
            return await fn()
    raise AssertionError("unreachable")  # pragma: no cover
