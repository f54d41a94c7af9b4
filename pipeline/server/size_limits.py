"""The hosted model's size limits as job errors: ``INPUT_TOO_LARGE`` and ``CONTEXT_LENGTH_EXCEEDED``.

Why job errors and not a 422 at submit: that is what deAPI does (deapi-api.md §8: "anything
taller than ~850 px failed with Nanonets", reported as the job's ``error_code``; long dense
pages fail with ``CONTEXT_LENGTH_EXCEEDED``). The job is created, charged, then fails, and a
failed job is refunded like every other job error here (``ledger.py``), so a client that learns
the limit from the refusal has lost a round trip, not money.

The limits are off by default (our engines take any size); ``pipeline serve --max-input-height
850 --max-answer-chars N`` (or ``ServerConfig``, also for the embedded server) switches them on,
for every model or per model name (``model_limits``).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from PIL import Image

from pipeline.ocr.base import EngineError

INPUT_TOO_LARGE = "INPUT_TOO_LARGE"
CONTEXT_LENGTH_EXCEEDED = "CONTEXT_LENGTH_EXCEEDED"


@dataclass(frozen=True)
class SizeLimits:
    """Height (px) and answer length (characters) a model takes; None = no limit."""

    max_input_height: int | None = None
    max_answer_chars: int | None = None
    per_model: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)

    def for_model(self, model: str) -> tuple[int | None, int | None]:
        return self.per_model.get(model, (self.max_input_height, self.max_answer_chars))

    @property
    def active(self) -> bool:
        return bool(self.max_input_height or self.max_answer_chars or self.per_model)


def check_input(limits: SizeLimits | None, model: str, image: bytes) -> None:
    """Refuse an upload taller than the model takes (only the header is read)."""
    if limits is None or not limits.active:
        return
    max_h = limits.for_model(model)[0]
    if not max_h:
        return
    try:
        with Image.open(io.BytesIO(image)) as im:
            height = im.size[1]
    except Exception:  # noqa: BLE001 - an undecodable image is the engine's error to report
        return
    if height > max_h:
        raise EngineError(f"input image is {height} px tall; model {model} takes at most {max_h} px",
                          INPUT_TOO_LARGE)


def check_answer(limits: SizeLimits | None, model: str, text: str) -> None:
    """Refuse an answer longer than the model's context allows."""
    if limits is None or not limits.active:
        return
    max_chars = limits.for_model(model)[1]
    if max_chars and len(text) > max_chars:
        raise EngineError(f"the answer ({len(text)} characters) exceeds the context length of model {model} "
                          f"({max_chars})", CONTEXT_LENGTH_EXCEEDED)
