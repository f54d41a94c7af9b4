"""What deAPI's answers mean: the bodies of its status, balance and model answers parsed into
``JobStatus``, ``ModelInfo`` and numbers, whichever of the shapes the public sources disagree on
arrives (deapi-api.md): ``{"balance"}`` and ``{"data": {"balance"}}``; ``error``/``failed``
statuses and the many "still waiting" spellings; an error code inside a bare message; progress
as a number or a string; ``inference_types`` as a list or an object; ``info`` as ``[]``.

Pure functions of a body, no HTTP: the client (``client.py``) sends and retries, this module
reads what came back, so each shape is tested on its own (tests/test_client_parsing.py).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Callable

from . import errors as E

TERMINAL_OK = frozenset({"done", "completed", "complete", "success", "succeeded", "finished"})
TERMINAL_FAIL = frozenset({"error", "failed", "failure", "cancelled", "canceled", "expired"})
QUEUED = frozenset({"pending", "queued", "in_queue", "waiting"})   # not yet on a worker
# Everything else (pending, processing, queued, in_queue, waiting, running, in_progress, ...)
# means "keep waiting": an unknown spelling must not end a job the API is still running.


@dataclass(frozen=True)
class PixelLimits:
    min_width: int | None = None
    max_width: int | None = None
    min_height: int | None = None
    max_height: int | None = None


@dataclass(frozen=True)
class ModelInfo:
    slug: str
    name: str
    inference_types: tuple[str, ...]
    limits: PixelLimits | None


@dataclass(frozen=True)
class JobStatus:
    status: str
    progress: float | None = None
    result: str | None = None
    result_url: str | None = None
    error: str | None = None
    error_code: str | None = None
    raw: dict = field(default_factory=dict, repr=False)
    queued: bool = False   # wait_for_job: some poll saw the job still queued (pending) at the API

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_OK or self.status in TERMINAL_FAIL

    @property
    def ok(self) -> bool:
        return self.status in TERMINAL_OK

    @property
    def failed(self) -> bool:
        return self.status in TERMINAL_FAIL


def as_float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _as_str(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def parse_retry_after(value: str | None, *, now: Callable[[], float] = time.time, default: float = 1.0) -> float:
    """``Retry-After`` as seconds: a number of seconds or an HTTP date (RFC 9110)."""
    if value is None or not str(value).strip():
        return default
    value = str(value).strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now())
    except (TypeError, ValueError, IndexError, OverflowError):
        return default


def html_title(raw: bytes) -> str | None:
    m = re.search(rb"<title>(.*?)</title>", raw[:4096], re.I | re.S)
    return m.group(1).decode("utf-8", "replace").strip() if m else None


def unwrap_json_string(text: str, content_type: str) -> str:
    """A result file served as JSON whose whole body is one JSON string is that string.

    Why: the result file's type is not documented (deapi-api.md 1.3); storage that says
    ``application/json`` and holds ``"line one\\nline two"`` means the text, not the quotes and
    escapes. Anything else (an object for ``format=json``, a text file) is returned as it came."""
    if not (content_type == "application/json" or content_type.endswith("+json")):
        return text
    stripped = text.strip()
    if not (stripped.startswith('"') and stripped.endswith('"')):
        return text
    try:
        value = json.loads(stripped)
    except ValueError:
        return text
    return value if isinstance(value, str) else text


def parse_balance(body: Any) -> float:
    """``{"balance": x}`` (the docs) or ``{"data": {"balance": x}}`` (SDK, v2)."""
    for holder in (body.get("data") if isinstance(body, dict) else None, body):
        if isinstance(holder, dict) and "balance" in holder:
            value = as_float(holder["balance"])
            if value is not None:
                return value
    raise E.ServerError(f"the balance answer has no balance field: {str(body)[:200]}")


def parse_status(body: Any) -> JobStatus:
    """A ``request-status`` answer (``{"data": {...}}`` or the bare object) as a ``JobStatus``."""
    data = body.get("data") if isinstance(body, dict) and isinstance(body.get("data"), dict) else body
    if not isinstance(data, dict) or not str(data.get("status") or "").strip():
        raise E.ServerError(f"the status answer has no status: {str(body)[:200]}")
    status = str(data["status"]).strip().lower()
    error, code = data.get("error"), data.get("error_code")
    if isinstance(error, dict):  # {"code": .., "message": ..}
        code = code or error.get("code")
        error = error.get("message")
    if not code and isinstance(error, str):
        code = _code_in_message(error)
    return JobStatus(status=status, progress=as_float(data.get("progress")), result=_as_str(data.get("result")),
                     result_url=data.get("result_url") or None, error=_as_str(error or data.get("error_message")),
                     error_code=str(code) if code else None, raw=data)


ERROR_CODE_AT_START = re.compile(r"\s*([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)\s*(?:$|[:;,.(\[-])")


def _code_in_message(message: str) -> str | None:
    """The code a bare v1 ``error`` string starts with (``"INPUT_TOO_LARGE"``,
    ``"CONTEXT_LENGTH_EXCEEDED: ..."``), else None.

    Why: v1's status documents only ``error`` (a string); the codes (``error_code``) are
    documented for webhooks and v2. A code that arrives only inside the message must still
    decide what happens: a refusal for size cuts the page into strips, ``INVALID_INPUT`` is
    not retried. Only an upper-case word with an underscore, first and alone or followed by
    punctuation, counts, so ordinary prose never becomes a code."""
    m = ERROR_CODE_AT_START.match(message)
    return m.group(1) if m else None


def parse_models_page(body: Any, page: int = 1) -> tuple[list[ModelInfo], bool]:
    """One ``/models`` page: its models and whether another page follows. Accepts the Laravel
    paginator (``data`` + ``meta`` + ``links``), ``{"data": {"data": [...]}}`` and a bare list."""
    items: Any = body.get("data") if isinstance(body, dict) else body
    meta = body.get("meta") if isinstance(body, dict) else None
    links = body.get("links") if isinstance(body, dict) else None
    if isinstance(items, dict) and "data" in items:
        meta, links, items = items.get("meta", meta), items.get("links", links), items["data"]
    if not isinstance(items, list):
        raise E.ServerError(f"the models answer has no list of models: {str(body)[:200]}")
    models = [m for m in (_model_info(i) for i in items) if m is not None]
    return models, bool(items) and _has_next_page(meta, links, page)


def _model_info(m: Any) -> ModelInfo | None:
    if not isinstance(m, dict) or not m.get("slug"):
        return None
    types = m.get("inference_types") or []
    if isinstance(types, dict):  # v2: an object keyed by inference type
        types = list(types.keys())
    elif isinstance(types, str):
        types = [t.strip() for t in types.split(",")]
    info = m.get("info") if isinstance(m.get("info"), dict) else {}  # PHP sends [] for an empty object
    lim = info.get("limits") if isinstance(info.get("limits"), dict) else None
    limits = None
    if lim:
        def num(key: str) -> int | None:
            v = as_float(lim.get(key))
            return int(v) if v is not None else None
        limits = PixelLimits(num("min_width"), num("max_width"), num("min_height"), num("max_height"))
    return ModelInfo(slug=str(m["slug"]), name=str(m.get("name") or m["slug"]),
                     inference_types=tuple(str(t) for t in types), limits=limits)


def _has_next_page(meta: Any, links: Any, page: int) -> bool:
    if isinstance(meta, dict) and meta.get("last_page") is not None:
        try:
            return int(meta.get("current_page", page)) < int(meta["last_page"])
        except (TypeError, ValueError):
            pass
    if isinstance(links, dict):
        return bool(links.get("next"))
    return False
