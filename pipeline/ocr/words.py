"""Word boxes for the archival outputs: tightening them to the ink, and hanging them on lines.

Why this exists: ALTO ``String`` and hOCR ``ocrx_word`` want each word's own box. Tesseract
reports tight word boxes; RapidOCR splits a line's box at the character columns its recogniser
found, so a word gets the full (padded) height of the detector's line polygon, which is about
twice the height of the letters. ``tighten`` shrinks such a box to the ink it contains, on the
submitted image the engine already has in memory, so the word box fits the word the way a
person would draw it.

Kept apart from the engine modules so the engines only call two small functions.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable, Sequence

import numpy as np

from .base import Box, OcrBlock, OcrLine, OcrWord

MIN_CONTRAST = 48  # grey levels between the darkest and lightest pixel; below it the crop is blank


def tighten(gray: np.ndarray, box: Box) -> Box:
    """``box`` shrunk to the ink inside it (dark pixels of an 8-bit grey image).

    Rows of ink are taken as the largest run of inked rows, bridging blank gaps of up to an
    eighth of the crop's height (the dot over an ``i`` or ``j``), so descenders and dots stay
    with their word while a sliver of the next line at the crop's edge does not pull the box
    up or down. A crop without contrast keeps the box as it was.
    """
    h, w = gray.shape[:2]
    x0, y0, x1, y1 = max(0, box[0]), max(0, box[1]), min(w, box[2]), min(h, box[3])
    if x1 - x0 < 2 or y1 - y0 < 2:
        return box
    crop = gray[y0:y1, x0:x1]
    lo, hi = int(crop.min()), int(crop.max())
    if hi - lo < MIN_CONTRAST:
        return box
    ink = crop < (lo + hi) / 2
    row_ink = ink.sum(axis=1)
    max_gap = max(1, (y1 - y0) // 8)
    best, best_mass, start, mass, gap, end = None, 0, None, 0, 0, 0
    for i, n in enumerate(row_ink.tolist() + [0] * (max_gap + 1)):
        if n:
            if start is None:
                start, mass = i, 0
            mass += n
            gap = 0
            end = i
        elif start is not None:
            gap += 1
            if gap > max_gap:
                if mass > best_mass:
                    best, best_mass = (start, end), mass
                start = None
    if best is None:
        return box
    r0, r1 = best
    cols = np.flatnonzero(ink[r0:r1 + 1].any(axis=0))
    if cols.size == 0:
        return box
    return (x0 + int(cols[0]), y0 + r0, x0 + int(cols[-1]) + 1, y0 + r1 + 1)


def _overlap(a: Box, b: Box) -> int:
    return max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))


def attach_words(blocks: Sequence[OcrBlock], words: Iterable[OcrWord]) -> tuple[OcrBlock, ...]:
    """Give every line the words whose boxes overlap it most, in left-to-right order.

    Used where an engine reports words in a separate pass from its lines (Tesseract), so the
    lines and their order stay exactly as the engine's line pass produced them.
    """
    lines = [line for block in blocks for line in block.lines]
    per_line: dict[int, list[OcrWord]] = {}
    for word in words:
        scores = [(_overlap(word.box, line.box), i) for i, line in enumerate(lines)]
        best = max(scores, default=(0, -1))
        if best[0] > 0:
            per_line.setdefault(best[1], []).append(word)
    out, k = [], 0
    for block in blocks:
        new_lines: list[OcrLine] = []
        for line in block.lines:
            found = sorted(per_line.get(k, ()), key=lambda w: w.box[0])
            new_lines.append(replace(line, words=tuple(found)) if found else line)
            k += 1
        out.append(OcrBlock(lines=tuple(new_lines)))
    return tuple(out)
