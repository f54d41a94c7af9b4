"""What can go wrong talking to deAPI, and what each failure means for a file and for the run.

Every error carries ``.reason`` (a sentence a person can act on), ``.status`` (the HTTP status,
when there was one) and ``.failure_class``, which is all the runner needs to decide:

* ``fatal``     - stop the whole run (nothing else can succeed: bad token, no money);
* ``transient`` - this file failed now; retried later in this run or on the next one;
* ``permanent`` - this file will fail the same way again; do not pay for it again.

::

    DeapiError                      .reason .status .failure_class .possible_duplicate
    ├── AuthError                   401/403: token wrong, expired, suspended          -> fatal
    ├── InsufficientBalanceError    422 with errors.balance (or "balance" in message) -> fatal
    ├── RateLimitError              429 (.retry_after, .limit_type)                  -> transient (retried)
    │   └── DailyLimitError         429 with X-RateLimit-Type: daily or a Retry-After  -> transient; stop
    │                               over max_retry_after, or the plan's daily budget     submitting this run
    │                               spent locally
    ├── ValidationError             422 / other 4xx (.message, .errors {field: [..]}) -> permanent (this file)
    ├── NotFoundError               404 (unknown request id or model)                 -> permanent (resubmit)
    ├── ServerError                 5xx (JSON or an HTML gateway page), bad 2xx body  -> transient (retried)
    ├── TransportError              connect error / timeout, nothing answered          -> transient (retried)
    ├── SubmitOutcomeUnknown        the upload was sent, its answer lost: the job      -> transient, NEVER
    │                               may exist (.possible_duplicate = True)                retried silently
    ├── JobFailedError              the job ended in error/failed (.code, .message)    -> by code (below)
    ├── JobTimeoutError             the job did not finish by the deadline             -> transient (id kept)
    └── ResultExpiredError          the result link kept failing after fresh links     -> transient (id kept)

``JobFailedError`` is transient for codes that say the worker, not the image, failed
(``WORKER_TIMEOUT``, ``PROCESSING_ERROR``, ``UNKNOWN_ERROR``, ``TIMEOUT``, or no code at all:
"deAPI job failed: unknown error" is retryable in the field, deapi-api.md §2.3); every other
code (``INVALID_INPUT``, ``INPUT_TOO_LARGE``, ``AGE_RESTRICTED``, ``CONTEXT_LENGTH_EXCEEDED``,
...) is about the input and permanent.

Why a class per kind (as httpx and OCRmyPDF do) instead of status codes: callers branch on
meaning ("may this job exist twice?"), and the meaning of a 422 depends on its body.
"""

from __future__ import annotations

from typing import Any

FAILURE_CLASSES = ("transient", "permanent", "fatal")


class DeapiError(Exception):
    """Base class; ``failure_class`` defaults per subclass and may be overridden per instance."""

    failure_class = "transient"
    possible_duplicate = False

    def __init__(self, reason: str, *, status: int | None = None, failure_class: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        if failure_class is not None:
            if failure_class not in FAILURE_CLASSES:
                raise ValueError(f"failure_class must be one of {FAILURE_CLASSES}, not {failure_class!r}")
            self.failure_class = failure_class

    @property
    def code(self) -> str:
        """A short stable name for reports (the class name; job failures give the API's code)."""
        return type(self).__name__

    def __str__(self) -> str:
        return self.reason

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason!r}, status={self.status!r}, failure_class={self.failure_class!r})"


class AuthError(DeapiError):
    failure_class = "fatal"


class InsufficientBalanceError(DeapiError):
    failure_class = "fatal"


class RateLimitError(DeapiError):
    def __init__(self, reason: str, *, retry_after: float, limit_type: str | None, status: int | None = 429) -> None:
        super().__init__(reason, status=status)
        self.retry_after = float(retry_after)
        self.limit_type = limit_type
        self.waited_in_limiter = False  # True: the shared limiter holds the pause, the retry waits 0


class DailyLimitError(RateLimitError):
    """The day's quota is gone: sleeping up to 24 h inside a run helps nobody; stop submitting."""


class ValidationError(DeapiError):
    failure_class = "permanent"

    def __init__(self, message: str, errors: Any = None, *, status: int | None = 422,
                 reason: str | None = None) -> None:
        self.message = message
        self.errors = normalize_errors(errors)
        if reason is None:
            detail = "; ".join(f"{k}: {' '.join(v)}" for k, v in self.errors.items()) or message
            reason = f"the API rejected the request ({status}): {detail}"
        super().__init__(reason, status=status)


class NotFoundError(DeapiError):
    failure_class = "permanent"


class ServerError(DeapiError):
    """A 5xx (or an answer that makes no sense). ``retry_after``: the answer's ``Retry-After``
    (a 503 from an API in maintenance says when to come back), else None: backoff alone."""

    def __init__(self, reason: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(reason, status=status)
        self.retry_after = retry_after
        self.waited_in_limiter = False  # True: the shared limiter holds the pause


class TransportError(DeapiError):
    pass


class SubmitOutcomeUnknown(DeapiError):
    """The POST left this machine and no answer came back: the job may exist and be charged.

    Never retried by the client; the caller decides (record it, then resubmit knowingly or ask
    a person), because deAPI has no idempotency key and no way to list jobs."""

    possible_duplicate = True


TRANSIENT_JOB_CODES = frozenset({"WORKER_TIMEOUT", "UNKNOWN_ERROR", "PROCESSING_ERROR", "TIMEOUT"})


class SubmissionsShut(DeapiError):
    """The run stopped submitting while this call waited in the rate limiter: nothing was sent."""


class JobFailedError(DeapiError):
    def __init__(self, code: str | None, message: str | None = None, *, request_id: str | None = None) -> None:
        self._code = (code or "UNKNOWN_ERROR").strip() or "UNKNOWN_ERROR"
        self.message = message or "no details given"
        self.request_id = request_id
        transient = code is None or not str(code).strip() or self._code in TRANSIENT_JOB_CODES
        where = f"job {request_id}" if request_id else "the OCR job"
        advice = ("the worker failed, not the image: the file is retried on a later run" if transient
                  else "the API says the input itself is the problem: check the image (size, content)")
        super().__init__(f"{where} failed ({self._code}): {self.message}; {advice}",
                         failure_class="transient" if transient else "permanent")

    @property
    def code(self) -> str:
        return self._code


class JobTimeoutError(DeapiError):
    pass


class ResultExpiredError(DeapiError):
    pass


def api_failure(exc: BaseException) -> bool:
    """A failure of the API rather than of the call: a 5xx answer or no answer at all (for a
    submit, one that provably never left). Not an answer that makes no sense (a result over the
    size cap, a done job with no result): asking again would only meet it again."""
    return isinstance(exc, TransportError) or (isinstance(exc, ServerError) and (exc.status or 0) >= 500)


def normalize_errors(errors: Any) -> dict[str, list[str]]:
    """Both documented 422 shapes as ``{field: [messages]}``: Laravel's ``{field: [..]}`` object
    and the errors page's ``[{"field": .., "messages": [..]}]`` list (deapi-api.md §4.2)."""
    if isinstance(errors, dict):
        return {str(k): [str(m) for m in (v if isinstance(v, list) else [v])] for k, v in errors.items()}
    if isinstance(errors, list):
        out: dict[str, list[str]] = {}
        for item in errors:
            if isinstance(item, dict) and "field" in item:
                msgs = item.get("messages", item.get("message", []))
                msgs = msgs if isinstance(msgs, list) else [msgs]
                out.setdefault(str(item["field"]), []).extend(str(m) for m in msgs)
        return out
    return {}


def laravel_errors(body: Any) -> dict[str, list[str]]:
    """``errors`` of a response body, in either shape (see ``normalize_errors``)."""
    return normalize_errors(body.get("errors") if isinstance(body, dict) else None)
