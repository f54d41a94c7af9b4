"""Right-to-left words in the text layer: characters in the order they are shown.

Why: a PDF draws glyphs left to right, and text extraction (poppler's ``pdftotext``, pdfium,
viewers' copy) reads a run of right-to-left characters (Arabic, Hebrew, ...) as drawn from the
right, reversing it back into reading order. A word written into the layer in reading order
would therefore come out reversed; it must be written in *visual* order, as Tesseract's PDF
renderer does. Within a right-to-left word, runs of left-to-right characters (digits, Latin)
keep their own order, which is what the Unicode bidirectional algorithm gives for a single word.
"""

from __future__ import annotations

import unicodedata

_RTL = {"R", "AL"}
_LTR = {"L", "EN", "AN"}


def is_rtl(word: str) -> bool:
    """Whether the word's first strong character is right-to-left."""
    for c in word:
        kind = unicodedata.bidirectional(c)
        if kind in _RTL:
            return True
        if kind == "L":
            return False
    return False


def visual_order(word: str) -> str:
    """The word's characters in the order a right-to-left reader sees them, left to right."""
    if not is_rtl(word):
        return word
    runs: list[tuple[bool, str]] = []          # (left-to-right run, text)
    for c in word:
        ltr = unicodedata.bidirectional(c) in _LTR
        if runs and runs[-1][0] == ltr:
            runs[-1] = (ltr, runs[-1][1] + c)
        else:
            runs.append((ltr, c))
    return "".join(text if ltr else text[::-1] for ltr, text in reversed(runs))
