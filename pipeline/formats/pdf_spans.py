"""Where along its row each word of the searchable PDF's text layer is drawn: spans that neither
overlap nor touch another word's on the same row, so that text extraction gives every word back
whole and apart.

Why: a placed answer's boxes (``ocr/placement.py``) can overlap or touch, and not only between
neighbours of one line: an answer word set where another was set too (a lone "," matched to the
comma of "appellatur,"), two answer lines set on one printed line ("Levirit." ending where "e"
begins), a word placed out of order. Extractors do not follow the content stream: pdfium and
poppler gather the glyphs of a row and order them by position; glyphs with no space between them
become one word ("Levirit.e"), and a glyph drawn where the same glyph already is counts as a
fake-bold stroke and is dropped (pdfium: the same character within 7 % of the font size of one
of the row's last 7), so the lone "," was gone from search and copy, and ``verify`` reported
both (the real scans of 1668 did this; ``tests/test_placement_audit.py``).

The rule: every word keeps its box's height; its span is its box's x-range, ended where a word of
the same row (sharing half the lower one's height) that starts further right begins (half way
there at most, leaving ``GAP`` for the space glyph the writer draws after every word); words that
start at the same x share the first one's width; a box of no width is given ``GAP`` (a word the
writer skipped for it was lost as well). Boxes that do not collide are drawn as they are.
"""

from __future__ import annotations

from typing import Sequence

from pipeline.inputs.geometry import Box

#: room left between two words of a row for the space glyph (layout units: pixels or points)
GAP = 0.5


def same_row(a: Box, b: Box) -> bool:
    """Whether extraction reads the two boxes as one row: they share half the lower one's height."""
    overlap = min(a[3], b[3]) - max(a[1], b[1])
    return overlap > 0 and overlap >= 0.5 * min(a[3] - a[1], b[3] - b[1])


def _end_before(first: list[float], second: list[float]) -> None:
    """``first`` (starting left of ``second``) ends where ``second`` begins, half way at most."""
    first[1] = min(first[1], max(first[0] + (second[0] - first[0]) / 2, second[0] - GAP))


def word_spans(boxes: Sequence[Box]) -> list[tuple[float, float]]:
    """For each box (the words of one page, in drawing order) the x-range its word is drawn in."""
    spans = [[float(b[0]), max(float(b[2]), b[0] + GAP)] for b in boxes]   # a box of no width (a cut share) too
    active: list[int] = []        # words met so far (by their left edge) that may reach the next one
    for j in sorted(range(len(boxes)), key=lambda k: (boxes[k][0], k)):
        active = [i for i in active if spans[i][1] + GAP > boxes[j][0]]
        for i in active:
            a, b = spans[i], spans[j]
            if not same_row(boxes[i], boxes[j]) or a[0] >= b[1] + GAP or b[0] >= a[1] + GAP:
                continue
            if a[0] < b[0]:
                _end_before(a, b)
            elif b[0] < a[0]:
                _end_before(b, a)
            else:                 # both start here: the first takes the left half of the shared width
                mid = a[0] + (min(a[1], b[1]) - a[0]) / 2
                a[1] = mid
                b[0] = mid + min(GAP, (b[1] - mid) / 2)
        active.append(j)
    return [(s[0], s[1]) for s in spans]
