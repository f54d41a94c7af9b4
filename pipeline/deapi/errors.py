"""What can go wrong talking to deAPI, and what each failure means for a file and for the run.

    DeapiError                      .reason (a sentence a person can act on), .status, .failure_class
    ├── AuthError                   401/403: the token is wrong, expired or suspended   -> fatal (stop the run)
    ├── InsufficientBalanceError    422 with errors.balance                              -> fatal
    ├── RateLimitError              429 (.retry_after, .limit_type)                      -> transient
    │   └── DailyLimitError         429 with X-RateLimit-Type: daily                     -> stop submitting this run
    ├── ValidationError             422 (.errors {field: [messages]})                    -> permanent (this file)
    ├── NotFoundError               404 (unknown request id or model)                    -> permanent / resubmit
    ├── ServerError                 5xx, HTML or JSON body                               -> transient
    ├── TransportError              connect errors, timeouts before an answer            -> transient
    ├── SubmitOutcomeUnknown        the submit was sent and its answer lost              -> possible duplicate
    ├── JobFailedError              the job ended in error/failed (.code)                -> permanent or transient by code
    ├── JobTimeoutError             the job did not finish by the deadline               -> transient (id kept)
    └── ResultExpiredError          the result link kept failing                          -> transient (id kept)
"""

from __future__ import annotations

from typing import Any


class DeapiError(Exception):
    failure_class = "transient"

    def __init__(self, reason: str, *, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status

    @property
    def code(self) -> str:
        return type(self).__name__


class AuthError(DeapiError):
    failure_class = "fatal"


class InsufficientBalanceError(DeapiError):
    failure_class = "fatal"


class RateLimitError(DeapiError):
    def __init__(self, reason: str, *, retry_after: float, limit_type: str | None, status: int = 429) -> None:
        super().__init__(reason, status=status)
        self.retry_after, self.limit_type = retry_after, limit_type


class DailyLimitError(RateLimitError):
    failure_class = "transient"


class ValidationError(DeapiError):
    failure_class = "permanent"

    def __init__(self, reason: str, *, errors: dict[str, list[str]] | None = None, status: int = 422) -> None:
        super().__init__(reason, status=status)
        self.errors = errors or {}


class NotFoundError(DeapiError):
    failure_class = "permanent"


class ServerError(DeapiError):
    pass


class TransportError(DeapiError):
    pass


class SubmitOutcomeUnknown(DeapiError):
    possible_duplicate = True


TRANSIENT_JOB_CODES = {"WORKER_TIMEOUT", "UNKNOWN_ERROR", "PROCESSING_ERROR", "TIMEOUT", None, ""}


class JobFailedError(DeapiError):
    def __init__(self, reason: str, *, code: str | None) -> None:
        super().__init__(reason)
        self._code = code or "UNKNOWN_ERROR"
        # A worker timeout or an unexplained failure may pass on a later run; bad input will not.
        self.failure_class = "transient" if code in TRANSIENT_JOB_CODES else "permanent"

    @property
    def code(self) -> str:
        return self._code


class JobTimeoutError(DeapiError):
    pass


class ResultExpiredError(DeapiError):
    pass


def laravel_errors(body: Any) -> dict[str, list[str]]:
    """Both documented 422 shapes: ``{field: [..]}`` and ``[{"field", "messages"}]``."""
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, dict):
        return {str(k): [str(m) for m in (v if isinstance(v, list) else [v])] for k, v in errors.items()}
    if isinstance(errors, list):
        out: dict[str, list[str]] = {}
        for item in errors:
            if isinstance(item, dict) and "field" in item:
                out[str(item["field"])] = [str(m) for m in item.get("messages", [])]
        return out
    return {}
