"""The invisible text layer's font: a TrueType font whose every character is one box glyph.

Why: the text layer is never seen, only searched and copied, so its font needs no shapes, but it
must cover every script a page can hold (CJK, Arabic, Hebrew, Devanagari, Cyrillic, Greek ...)
and be embedded (PDF/A requires every font embedded). Tesseract and OCRmyPDF solve this with a
"GlyphLessFont"; this is the same idea, built per file with fontTools for exactly the characters
that file's words use: one glyph of half an em, mapped from each code point (cmap format 12,
so characters beyond the Basic Multilingual Plane are covered too). The glyph is a box from the
descent to the ascent rather than nothing: the layer is drawn in render mode 3, so it never
shows, and a glyph with no outline has no bounds, which made pdfium (and viewers built on it)
drop a one-character word (an "a", a CJK word of one character) from the text altogether. fpdf2 embeds it as a
CID-keyed TrueType font with a ``ToUnicode`` map, so ``pdftotext`` and a viewer's copy give back
the characters themselves. Building one costs about 3 ms (``bench/output_formats.py``), where
parsing and subsetting DejaVu Sans cost about 0.4 s, and it needs no system font.
"""

from __future__ import annotations

import io
from typing import Iterable

from fontTools.fontBuilder import FontBuilder
from fontTools.pens.ttGlyphPen import TTGlyphPen

UNITS_PER_EM = 1000
ADVANCE = 500            # every character is half an em wide; the layer stretches words to their box
ASCENT, DESCENT = 800, -200
FAMILY = "GlyphLessFont"


def _box():
    """A box from the descent to the ascent: the bounds of a character (see the module doc)."""
    pen = TTGlyphPen(None)
    pen.moveTo((0, DESCENT))
    pen.lineTo((0, ASCENT))
    pen.lineTo((ADVANCE, ASCENT))
    pen.lineTo((ADVANCE, DESCENT))
    pen.closePath()
    return pen.glyph()


def glyphless_font(chars: Iterable[str]) -> bytes:
    """A TrueType font mapping every character of ``chars`` (and the space) to one box glyph."""
    codes = {ord(c) for c in chars if len(c) == 1 and not 0xD800 <= ord(c) <= 0xDFFF} | {0x20}
    fb = FontBuilder(UNITS_PER_EM, isTTF=True)
    fb.setupGlyphOrder([".notdef", "box"])
    fb.setupCharacterMap({c: "box" for c in sorted(codes)})
    fb.setupGlyf({".notdef": _box(), "box": _box()})
    fb.setupHorizontalMetrics({".notdef": (ADVANCE, 0), "box": (ADVANCE, 0)})
    fb.setupHorizontalHeader(ascent=ASCENT, descent=DESCENT)
    fb.setupNameTable({"familyName": FAMILY, "styleName": "Regular"})
    fb.setupOS2(sTypoAscender=ASCENT, sTypoDescender=DESCENT, usWinAscent=ASCENT, usWinDescent=-DESCENT)
    fb.setupPost()
    out = io.BytesIO()
    fb.save(out)
    return out.getvalue()
