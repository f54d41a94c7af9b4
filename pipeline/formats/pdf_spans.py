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

The rule: every word keeps its box's height; its span is its box's x-range, ended a gap before a
word of the same row (sharing half the lower one's height) that starts further right, or closer
than that gap, begins (half way there at most). The gap is 0.15 line heights (``GAP_HEIGHTS``):
pdfium reads the space glyph the writer draws after every word, but poppler skips space glyphs
and breaks words only where the gap between glyphs is a tenth of the font size ("Totaldue" for
two words sharing a box). Words that start at the same x share the first one's width; a box of
no width is given ``GAP`` (a word the writer skipped for it was lost as well). Words further
apart than the gap are drawn on their boxes as they are.
"""

from __future__ import annotations

from typing import Sequence

from pipeline.inputs.geometry import Box

#: least room left between two words of a row (layout units: pixels or points)
GAP = 0.5
#: ... and in line heights: poppler breaks words only at a gap of a tenth of the font size (it
#: skips space glyphs), and the layer's font size is the box height
GAP_HEIGHTS = 0.15


def same_row(a: Box, b: Box) -> bool:
    """Whether extraction reads the two boxes as one row: they share half the lower one's height."""
    overlap = min(a[3], b[3]) - max(a[1], b[1])
    return overlap > 0 and overlap >= 0.5 * min(a[3] - a[1], b[3] - b[1])


def _gap(box: Box) -> float:
    return max(GAP, GAP_HEIGHTS * (box[3] - box[1]))


def _end_before(first: list[float], second: list[float], gap: float) -> None:
    """``first`` (starting left of ``second``) ends ``gap`` before ``second`` begins, half way at most."""
    first[1] = min(first[1], max(first[0] + (second[0] - first[0]) / 2, second[0] - gap))


def word_spans(boxes: Sequence[Box]) -> list[tuple[float, float]]:
    """For each box (the words of one page, in drawing order) the x-range its word is drawn in."""
    spans = [[float(b[0]), max(float(b[2]), b[0] + GAP)] for b in boxes]   # a box of no width (a cut share) too
    active: list[int] = []        # words met so far (by their left edge) that may reach the next one
    for j in sorted(range(len(boxes)), key=lambda k: (boxes[k][0], k)):
        active = [i for i in active if spans[i][1] + _gap(boxes[i]) > boxes[j][0]]
        for i in active:
            a, b = spans[i], spans[j]
            gap = min(_gap(boxes[i]), _gap(boxes[j]))
            if not same_row(boxes[i], boxes[j]) or a[0] >= b[1] + gap or b[0] >= a[1] + gap:
                continue
            if a[0] < b[0]:
                _end_before(a, b, gap)
            elif b[0] < a[0]:
                _end_before(b, a, gap)
            else:                 # both start here: the first takes the left half of the shared width
                mid = a[0] + (min(a[1], b[1]) - a[0]) / 2
                a[1] = mid
                b[0] = mid + min(gap, (b[1] - mid) / 2)
        active.append(j)
    return [(s[0], s[1]) for s in spans]
