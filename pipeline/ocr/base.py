"""The one small interface every OCR engine implements, and the result types they return.

An engine turns one decoded page (a Pillow image) into an ``OcrPage``: text lines with boxes
and confidences, grouped into blocks in reading order. The server only ever sees this
interface, so the real engines (RapidOCR, Tesseract) and the fast deterministic engine used
by tests and benchmarks are interchangeable.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from PIL import Image

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels of the submitted image


@dataclass(frozen=True)
class OcrWord:
    """One word of a line, for the archival outputs (ALTO ``String``, hOCR ``ocrx_word``)."""

    text: str
    box: Box
    confidence: float

    def to_json(self) -> dict:
        return {"text": self.text, "box": list(self.box), "confidence": round(self.confidence, 4)}


@dataclass(frozen=True)
class OcrLine:
    text: str
    box: Box
    confidence: float
    words: tuple[OcrWord, ...] = ()   # empty when the engine gives no word boxes


@dataclass(frozen=True)
class OcrBlock:
    """A run of lines read together: a column, a paragraph, a table cell group."""

    lines: tuple[OcrLine, ...]

    @property
    def box(self) -> Box:
        xs0, ys0, xs1, ys1 = zip(*(line.box for line in self.lines)) if self.lines else ((0,), (0,), (0,), (0,))
        return (min(xs0), min(ys0), max(xs1), max(ys1))


@dataclass(frozen=True)
class OcrPage:
    engine: str
    width: int
    height: int
    blocks: tuple[OcrBlock, ...] = field(default_factory=tuple)
    text_only: str | None = None      # an engine that answers text without boxes (``truth``)
    # test only: the ``format=json`` answer as registered with the ``truth`` engine (any JSON
    # value), so a test can make the server answer a JSON shape not its own (docs/server.md)
    answer_json: Any = None

    @property
    def lines(self) -> tuple[OcrLine, ...]:
        return tuple(line for block in self.blocks for line in block.lines)

    @property
    def text(self) -> str:
        """Plain text: lines joined by newlines, blocks separated by a blank line."""
        if self.text_only is not None:
            return self.text_only
        return "\n\n".join("\n".join(line.text for line in block.lines) for block in self.blocks)

    def to_json(self) -> Any:
        """The documented ``format=json`` result shape (README, "JSON result"); a text-only
        engine's page has no ``blocks`` (a structured answer without positions)."""
        if self.answer_json is not None:
            return self.answer_json
        if self.text_only is not None:
            return {"engine": self.engine, "width": self.width, "height": self.height, "text": self.text}
        return {
            "engine": self.engine,
            "width": self.width,
            "height": self.height,
            "text": self.text,
            "blocks": [
                {
                    "box": list(block.box),
                    "lines": [
                        {"text": line.text, "box": list(line.box), "confidence": round(line.confidence, 4),
                         **({"words": [w.to_json() for w in line.words]} if line.words else {})}
                        for line in block.lines
                    ],
                }
                for block in self.blocks
            ],
        }


class EngineError(Exception):
    """The engine could not read this image (the job ends in ``error``, not the server)."""

    def __init__(self, message: str, code: str = "PROCESSING_ERROR") -> None:
        super().__init__(message)
        self.code = code


class Engine(ABC):
    """One OCR engine instance. Not assumed thread-safe: one instance per worker."""

    name: ClassVar[str]

    @abstractmethod
    def recognize(self, image: Image.Image, language: str | None = None) -> OcrPage:
        """Read one page. ``image`` is already decoded and EXIF-transposed."""
