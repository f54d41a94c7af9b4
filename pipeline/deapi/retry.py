"""Retries by failure class, on tenacity.

* ``RateLimitError`` (429): wait ``Retry-After`` (capped by ``max_retry_after``; a daily limit
  is raised as ``DailyLimitError`` before it gets here and is never slept on);
* ``ServerError`` (5xx) and ``TransportError``: jittered exponential backoff;
* everything else (4xx, ``SubmitOutcomeUnknown``): no retry. A submit is only ever retried
  when the failure proves it was not processed: a refused connection, a 429 or a 5xx answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable, TypeVar

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from . import errors as E

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    initial: float = 1.0
    maximum: float = 60.0
    max_retry_after: float = 300.0


def retryable(exc: BaseException) -> bool:
    if isinstance(exc, E.DailyLimitError):
        return False
    return isinstance(exc, (E.RateLimitError, E.ServerError, E.TransportError))


def _wait(policy: RetryPolicy) -> Callable:
    backoff = wait_random_exponential(multiplier=policy.initial, max=policy.maximum)

    def wait(state) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, E.RateLimitError):
            return min(exc.retry_after, policy.max_retry_after)
        return backoff(state)

    return wait


async def call_with_retries(fn: Callable[[], Awaitable[T]], policy: RetryPolicy,
                            on_retry: Callable[[E.DeapiError], None] | None = None) -> T:
    def before_sleep(state) -> None:
        exc = state.outcome.exception()
        if on_retry is not None and isinstance(exc, E.DeapiError):
            on_retry(exc)

    async for attempt in AsyncRetrying(stop=stop_after_attempt(max(1, policy.max_attempts)),
                                       wait=_wait(policy), retry=retry_if_exception(retryable),
                                       before_sleep=before_sleep, reraise=True):
        with attempt:
            return await fn()
    raise AssertionError("unreachable")  # pragma: no cover
