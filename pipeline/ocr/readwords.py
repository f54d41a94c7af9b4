"""A cheap recognition pass for anchors: the page's words with their boxes *and* their text.

Why: on forms, tables, charts and pages with sidebars, the answer's reading order and the page's
disagree, and short cells of similar width fit many places, so an alignment by widths alone
(``align.py``) puts words on boxes not their own. Knowing roughly what each box says turns the
problem into matching text to text, which does not care about order (``textmatch.py``). The
recognition need not be good: the answer's text is the truth, the page's text only has to be
close enough to say *which* box holds a word.

Tesseract with the shipped LSTM model (``eng``, the small "fast" net), its own layout analysis
(``PSM.AUTO``); a page of more pixels than ``inkgeom.analysis_factor`` allows is read scaled down
and its boxes scaled back. Tesseract's inverted-text pass stays on: it reads white-on-dark slides and
headings, at little cost.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from statistics import median

from PIL import Image

from . import tess
from .inkgeom import LAYOUT_MAX_SIDE, Box, _scaled, analysis_factor


@dataclass(frozen=True)
class ReadWord:
    """One recognised word: its box (pixels of the given image), text, confidence 0..1, and the
    index of its text line (in Tesseract's reading order)."""

    box: Box
    text: str
    confidence: float
    line: int


def tesseract_words(image: Image.Image, language: str | None = "en", max_side: int = LAYOUT_MAX_SIDE,
                    sparse: bool = False, first_line: int = 0) -> list[ReadWord]:
    """Every word Tesseract reads on ``image``, in its reading order; ``sparse``: Tesseract's
    sparse-text mode (as much text as it finds, in no particular order), which reads table
    cells and chart labels its page layout takes for pictures. Lines are numbered from
    ``first_line``. ``language``: the answer's (``api.language``), read with its Tesseract data
    when installed, else with English: the answer's text is the truth here, the reading only
    has to say which box holds a word, and a hosted model reads languages we have no data for."""
    tesserocr = tess.tesserocr()

    from .languages import LanguageError, resolve_tesseract
    try:
        path, lang = resolve_tesseract(language)
    except LanguageError:
        path, lang = resolve_tesseract("en")
    factor = analysis_factor(image.width, image.height, max_side)
    gray = image.convert("L")
    if factor < 1.0:
        gray = gray.resize((max(1, round(image.width * factor)), max(1, round(image.height * factor))),
                           Image.Resampling.BILINEAR)
    api = _api(path, lang)
    api.SetPageSegMode(tesserocr.PSM.SPARSE_TEXT if sparse else tesserocr.PSM.AUTO)
    try:
        api.SetImage(gray)
        api.Recognize()
        it = api.GetIterator()
        out: list[ReadWord] = []
        line = first_line - 1
        RIL = tesserocr.RIL
        while it is not None:
            if it.IsAtBeginningOf(RIL.TEXTLINE):
                line += 1
            bb = it.BoundingBox(RIL.WORD)
            try:
                text = (it.GetUTF8Text(RIL.WORD) or "").strip()
            except RuntimeError:   # tesserocr's "No text returned": a reading that found no word
                text = ""
            if bb and text:
                out.append(ReadWord(_scaled(tuple(bb), factor), text, max(0.0, it.Confidence(RIL.WORD)) / 100.0,
                                    max(first_line, line)))
            if not it.Next(RIL.WORD):
                break
        return line_height_boxes(out)
    finally:
        api.Clear()


RULE_LENGTH = 25    # a rule is ink at least 1/25 of the page's width (height) long and one pixel thin


def without_rules(image: Image.Image) -> Image.Image | None:
    """The page with its ruling lines painted out (a table's or a form's horizontal and vertical
    rules), or None when it has none. Tesseract's page layout takes a ruled table for a picture
    and reads none of its cells; without the rules it reads them as text. Not for the first
    reading: on a form the rules are what keeps its fields apart."""
    import cv2
    import numpy as np

    gray = np.asarray(image.convert("L"))
    _, ink = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    h, w = gray.shape
    across = cv2.morphologyEx(ink, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (max(20, w // RULE_LENGTH), 1)))
    down = cv2.morphologyEx(ink, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (1, max(20, h // RULE_LENGTH))))
    rules = cv2.dilate(across | down, np.ones((3, 3), np.uint8))
    if not rules.any():
        return None
    out = gray.copy()
    out[rules > 0] = 255
    return Image.fromarray(out)


_APIS: dict[tuple[str, str], object] = {}


def _api(path: str, lang: str):
    """One Tesseract per language in this process, kept: loading the model costs about 0.07
    CPU-second, a tenth of reading a page (a geometry worker reads one page at a time)."""
    tesserocr = tess.tesserocr()

    key = (path, lang)
    if key not in _APIS:
        _APIS[key] = tesserocr.PyTessBaseAPI(path=path.rstrip("/") + "/", lang=lang, psm=tesserocr.PSM.AUTO)
    return _APIS[key]


GROW_AT_MOST = 1.8   # a word box grows to its line's body only up to this many times its own height


def line_height_boxes(words: list[ReadWord]) -> list[ReadWord]:
    """Each word's box grown vertically to its line's body (the median top and bottom of the
    line's word boxes: ascenders to baseline), as ALTO and hOCR word boxes usually are: a word
    of small letters ("are", "on") otherwise gets a box half the height of its neighbours'.
    Never more than ``GROW_AT_MOST`` its own height (a line that is really two rows of a
    table)."""
    by_line: dict[int, list[ReadWord]] = defaultdict(list)
    for w in words:
        by_line[w.line].append(w)
    body = {n: (median(w.box[1] for w in ws), median(w.box[3] for w in ws)) for n, ws in by_line.items()}
    out = []
    for w in words:
        x0, y0, x1, y1 = w.box
        top, bottom = int(min(y0, body[w.line][0])), int(max(y1, body[w.line][1]))
        if bottom - top <= GROW_AT_MOST * (y1 - y0):
            w = ReadWord((x0, top, x1, bottom), w.text, w.confidence, w.line)
        out.append(w)
    return out
