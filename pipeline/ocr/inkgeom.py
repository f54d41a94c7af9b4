"""The page's own geometry without recognition: text lines and word boxes from the ink alone.

Why: a text-only answer (the hosted model gives no boxes) has the right words and no places;
the page itself has the places and no words. This module finds the places, cheaply, so that
``ocr/align.py`` can put the answer's words on them. Two ways are measured side by side in
``bench/word_geometry.py`` (docs/formats.md, "Words for text-only answers"):

* ``ink``: a classical ink analysis with OpenCV (shipped with RapidOCR): Otsu binarisation,
  connected components for the text size, a small dilation that joins letters (and i-dots)
  into pieces, pieces into lines, the page's own word gap (``word_gap``) joining pieces into
  words, then the lines in reading order (``ocr/layout.py``, the XY-cut the engines use).
  Cheap (about 0.18 CPU-second an A4 page), good on plain and degraded text, weak on scans
  with shading, rules and tables.
* ``tesseract``: Tesseract's layout analysis without recognition (``AnalyseLayout``, then the
  ``RIL.TEXTLINE`` and ``RIL.WORD`` iterators): finds 90 % of the scribe scans' word boxes
  (the ink analysis 66 %), about twice the CPU time.

Every threshold scales with the median character height, so the same rules hold at any
resolution. Pure functions of a Pillow image; boxes are pixels of that image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import median

import numpy as np
from PIL import Image

from . import tess
from .layout import reading_order

Box = tuple[int, int, int, int]

PIECE_GAP = 0.15       # ink closer than this many character heights is one piece (a letter run)
LAYOUT_MAX_SIDE = 2600   # pages larger than this are analysed scaled down (about 220 dpi for A4)
WORD_GAP_RANGE = (0.3, 0.9)  # the page's word gap (split of its gap sizes) lies in this range of heights
WORD_RISE = 0.45       # an i-dot or accent this many heights above its letter joins it
LINE_GAP = 1.6         # words closer than this many heights on one row are one line
MIN_HEIGHT_PX = 4      # ink smaller than this is specks, not letters
MAX_HEIGHT_SHARE = 0.3  # ink taller than this share of the page is a picture or a rule


@dataclass(frozen=True)
class GeoLine:
    """One text line found on the page: its box and its word boxes left to right."""

    box: Box
    words: tuple[Box, ...]

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]


def _gray(image: Image.Image) -> np.ndarray:
    if image.mode not in ("L", "1"):
        image = image.convert("L")
    return np.asarray(image.convert("L") if image.mode == "1" else image, dtype=np.uint8)


def _binary(gray: np.ndarray) -> np.ndarray:
    import cv2
    _, ink = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    return ink


def _char_height(stats: np.ndarray, page_h: int) -> float | None:
    heights = stats[1:, 3]
    widths = stats[1:, 2]
    keep = (heights >= MIN_HEIGHT_PX) & (heights <= page_h * MAX_HEIGHT_SHARE) & (widths <= heights * 4)
    if not keep.any():
        return None
    return float(np.median(heights[keep]))


def _components(mask: np.ndarray) -> np.ndarray:
    import cv2
    _, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    return stats


def ink_lines(image: Image.Image, max_side: int = LAYOUT_MAX_SIDE) -> list[GeoLine]:
    """Text lines with word boxes, in reading order, from the ink of ``image`` (a page larger
    of more pixels than ``analysis_factor`` allows is analysed scaled down, as for Tesseract, and
    the boxes scaled back)."""
    import cv2
    gray = _gray(image)
    factor = analysis_factor(gray.shape[1], gray.shape[0], max_side)
    if factor < 1.0:
        small = cv2.resize(gray, (max(1, round(gray.shape[1] * factor)), max(1, round(gray.shape[0] * factor))),
                           interpolation=cv2.INTER_AREA)
        return [GeoLine(_scaled(ln.box, factor), tuple(_scaled(b, factor) for b in ln.words))
                for ln in _ink_lines(small)]
    return _ink_lines(gray)


def analysis_factor(width: int, height: int, max_side: int = LAYOUT_MAX_SIDE) -> float:
    """The scale a page is analysed at: its longer side fits ``max_side``, except that a page
    longer and thinner than an A-series page (under 0.7 as wide as it is long) keeps as many pixels
    as a page of that shape ``max_side`` long (2600 x 1820 px).

    Why: the cost grows with the pixels, and the text must stay readable. A 620 x 9000 px
    receipt scaled to 2600 px high kept letters 7 px tall; at 0.93 of its size it keeps them.
    Pages of the usual shapes (A-series, Letter, either way up) are scaled as before."""
    by_side = max_side / max(1, width, height)
    by_pixels = math.sqrt(max_side * max_side * 0.7 / max(1, width * height))
    return min(1.0, max(by_side, by_pixels))


def _scaled(box: Box, factor: float) -> Box:
    return tuple(int(round(v / factor)) for v in box)  # type: ignore[return-value]


def _ink_lines(gray: np.ndarray) -> list[GeoLine]:
    import cv2
    page_h, page_w = gray.shape
    ink = _binary(gray)
    labels_n, labels, cstats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    h = _char_height(cstats, page_h)
    if h is None:
        return []
    # Drop specks and big blobs (pictures, rules, black borders) before joining anything.
    clean = np.zeros_like(ink)
    ok = np.zeros(labels_n, dtype=bool)
    hs, ws, areas = cstats[:, 3], cstats[:, 2], cstats[:, 4]
    ok[1:] = ((areas[1:] >= 3) & (hs[1:] <= max(4 * h, 12)) & (ws[1:] <= page_w * 0.6)
              & ~((hs[1:] < MIN_HEIGHT_PX) & (ws[1:] < MIN_HEIGHT_PX) & (areas[1:] < h * h * 0.02)))
    clean[ok[labels]] = 255
    gap = max(2, int(round(h * PIECE_GAP)))
    rise = max(1, int(round(h * WORD_RISE)))
    # Dilation joins letters (and i-dots) into words; the kernel's growth is taken off again.
    grown = cv2.dilate(clean, cv2.getStructuringElement(cv2.MORPH_RECT, (gap, rise)))
    gl, gr, gt, gb = gap // 2, gap - 1 - gap // 2, rise // 2, rise - 1 - rise // 2
    words = [(int(x + gl), int(y + gt), int(x + w - gr), int(y + hh - gb)) for x, y, w, hh, _ in _components(grown)[1:]]
    words = [b for b in words if b[3] - b[1] >= MIN_HEIGHT_PX * 0.75 or b[2] - b[0] >= h * 0.5]
    return _with_words(group_lines(words, h), h)


def word_gap(lines: list[GeoLine], h: float) -> float:
    """The gap between words on this page: the split of its piece gaps into two kinds (letters
    apart within a word, and spaces), by Otsu's criterion on the gap sizes, within bounds."""
    gaps = sorted(b[0] - a[2] for ln in lines for a, b in zip(ln.words, ln.words[1:]) if b[0] > a[2])
    low, high = WORD_GAP_RANGE[0] * h, WORD_GAP_RANGE[1] * h
    if len(gaps) < 4:
        return (low + high) / 2
    arr = np.asarray(gaps, dtype=float)
    best, best_t = -1.0, (low + high) / 2
    for t in np.unique(arr):
        if not low <= t <= high:
            continue
        a, b = arr[arr < t], arr[arr >= t]
        if len(a) == 0 or len(b) == 0:
            continue
        score = len(a) * len(b) * (b.mean() - a.mean()) ** 2
        if score > best:
            best, best_t = score, float(t)
    return best_t


def words_of(pieces: tuple[Box, ...], gap: float) -> list[Box]:
    """Pieces of one line (left to right) joined into words where they are closer than ``gap``."""
    out: list[list[int]] = []
    for b in pieces:
        if out and b[0] - out[-1][2] < gap:
            w = out[-1]
            w[1], w[2], w[3] = min(w[1], b[1]), max(w[2], b[2]), max(w[3], b[3])
        else:
            out.append(list(b))
    return [tuple(w) for w in out]  # type: ignore[misc]


def _with_words(lines: list[GeoLine], h: float) -> list[GeoLine]:
    gap = word_gap(lines, h)
    return [GeoLine(ln.box, tuple(words_of(ln.words, gap))) for ln in lines]


def group_lines(words: list[Box], h: float) -> list[GeoLine]:
    """Word boxes into lines (same row, a gap under ``LINE_GAP`` heights), in reading order."""
    if not words:
        return []
    order = sorted(range(len(words)), key=lambda i: (words[i][0], words[i][1]))
    lines: list[list[int]] = []
    ends: list[Box] = []   # each open line's box so far
    for i in order:
        x0, y0, x1, y1 = words[i]
        cy = (y0 + y1) / 2
        best, best_d = -1, None
        for k, (lx0, ly0, lx1, ly1) in enumerate(ends):
            if x0 - lx1 > LINE_GAP * h or x0 < lx0:
                continue
            overlap = min(y1, ly1) - max(y0, ly0)
            if overlap < 0.5 * min(y1 - y0, ly1 - ly0, h):
                continue
            d = abs(cy - (ly0 + ly1) / 2) + max(0, x0 - lx1) * 0.1
            if best_d is None or d < best_d:
                best, best_d = k, d
        if best < 0:
            lines.append([i])
            ends.append(words[i])
        else:
            lines[best].append(i)
            lx0, ly0, lx1, ly1 = ends[best]
            # the line's vertical extent follows its body, not one tall capital or descender
            ends[best] = (lx0, min(ly0, y0) if y1 - y0 <= 1.6 * h else ly0, max(lx1, x1),
                          max(ly1, y1) if y1 - y0 <= 1.6 * h else ly1)
    built = []
    for idx in lines:
        boxes = sorted((words[i] for i in idx), key=lambda b: b[0])
        box = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
        built.append(GeoLine(box, tuple(boxes)))
    return ordered(built)


def ordered(lines: list[GeoLine]) -> list[GeoLine]:
    """Lines in reading order (columns, then top to bottom), by the engines' XY-cut."""
    if not lines:
        return []
    blocks = reading_order([ln.box for ln in lines])
    return [lines[i] for block in blocks for i in block]


def tesseract_lines(image: Image.Image, api=None, max_side: int = LAYOUT_MAX_SIDE) -> list[GeoLine]:
    """Text lines and words from Tesseract's layout analysis, no recognition (``AnalyseLayout``).

    A page of more pixels than ``analysis_factor`` allows is analysed scaled down (an A4 page at 300 dpi at about
    220 dpi: about half the CPU time, word boxes within a pixel or two) and the boxes scaled back."""
    tesserocr = tess.tesserocr()

    from .languages import resolve_tesseract
    own = api is None
    if own:
        path, lang = resolve_tesseract("en")
        api = tesserocr.PyTessBaseAPI(path=path.rstrip("/") + "/", lang=lang, psm=tesserocr.PSM.AUTO)
    factor = analysis_factor(image.width, image.height, max_side)
    if factor < 1.0:
        image = image.convert("L").resize((max(1, round(image.width * factor)), max(1, round(image.height * factor))),
                                          Image.Resampling.BILINEAR)

    def back(b) -> Box:
        return _scaled(tuple(b), factor)
    try:
        api.SetImage(image.convert("L") if image.mode not in ("L", "RGB") else image)
        it = api.AnalyseLayout()
        out: list[GeoLine] = []
        if it is None:
            return out
        lines: list[tuple[Box, list[Box]]] = []
        RIL = tesserocr.RIL
        while True:
            if it.IsAtBeginningOf(RIL.TEXTLINE):
                bb = it.BoundingBox(RIL.TEXTLINE)
                if bb:
                    lines.append((back(bb), []))
            bb = it.BoundingBox(RIL.WORD)
            if bb and lines:
                lines[-1][1].append(back(bb))
            if not it.Next(RIL.WORD):
                break
        for box, words in lines:
            if words:
                out.append(GeoLine(box, tuple(sorted(words))))
        return out  # Tesseract's own reading order
    finally:
        if own:
            api.End()


def median_height(lines: list[GeoLine]) -> float:
    return float(median(ln.height for ln in lines)) if lines else 0.0
