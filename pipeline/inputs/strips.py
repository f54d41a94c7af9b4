"""Cut a page too tall for the model into horizontal strips at the gaps between text lines.

Why: the hosted model refuses images taller than about 850 px (``INPUT_TOO_LARGE``), and an
archive page at 300 dpi is 3508 px tall. Shrinking the page would make its text too small to
read, so the page is cut, and a cut must never go through a line of text: a line cut in two is
read as two half-lines of garbage, or not at all.

How, from the ink alone (Pillow + numpy, at the page's own resolution, no OCR):

* **Ink, bands and columns** (``pipeline.ocr.columns``, shared with the Tesseract engine,
  which reads a page set in columns column by column): dark pixels without the scan's frame,
  the page split at full-width blank runs into bands, a band cut at its white gutters. The
  recursive XY cut here goes to depth two: **the columns are cut apart first**, and the strips
  are read column by column, each top to bottom (bands top to bottom, columns left to right).
  A band of columns that fits the limit is never cut inside (the model reads its columns in
  order within one image); the other bands are cut as one run.
* **Strips**: a run is cut at blank runs into the fewest strips the limit allows, and among those
  cuts, the most at breaks (paragraph spaces, the space around a table) rather than between two
  lines or two table rows (``_gap_cuts``); blank paper above and below may be left out.
* **No gap tall enough** (a photo, a dense table, lines touching): the strip ends at its least
  inked row in the lower part of the window, and the next strip starts ``overlap`` rows above
  that cut, so a text line crossing the cut is whole in the next strip. The text read twice
  across such a seam is removed when the strips are joined (``pipeline.run.strips``): by the
  line boxes when the answer has them, else by matching the first lines of the lower strip
  against the last lines of the upper one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from pipeline.ocr.columns import blank_runs, ink_mask, sections, true_runs

OVERLAP_FRACTION = 0.15     # share of the limit a seam without a gap overlaps
MIN_STRIP_FRACTION = 0.5    # a cut without a gap is looked for in the lower half of the window
MARGIN = 8                  # rows of blank paper kept above a run's first line and below its last
BREAK_LINES = 0.6           # a blank run this many median line heights tall is a break (strips end there first)
PARAGRAPH_SPACING = 1.5     # ... and a paragraph break too when it is this many times the run's usual line gap


@dataclass(frozen=True)
class Region:
    """A strip of the page: its box on the upload (pixels) and the rows it shares with the strip
    above it (``overlap`` > 0 only for a seam cut where no gap was tall enough). ``paragraph``:
    the strip begins after a paragraph break (the cut above it lies in a blank run clearly taller
    than the lines' usual spacing), so its text is joined to the one above by a blank line, as the
    model separates paragraphs within one image (a cut between two lines of a paragraph: a newline)."""

    x0: int
    y0: int
    x1: int
    y1: int
    overlap: int = 0
    paragraph: bool = False

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    def to_json(self) -> dict:
        out = {"box": [self.x0, self.y0, self.x1, self.y1]}
        if self.overlap:
            out["overlap"] = self.overlap
        return out

    def row(self) -> list[int]:
        """As the state store keeps a cut plan (``from_row`` reads it back)."""
        return [self.x0, self.y0, self.x1, self.y1, self.overlap, int(self.paragraph)]

    @classmethod
    def from_row(cls, row: list[int]) -> "Region":
        """A kept row; one kept before ``paragraph`` existed has five numbers (no break known)."""
        return cls(*row[:5], paragraph=bool(row[5]) if len(row) > 5 else False)


def plan_strips(image: Image.Image, limit: int) -> list[Region]:
    """The page's strips in reading order, each at most ``limit`` rows tall (one region, the
    whole page, when it fits)."""
    width, height = image.size
    if height <= limit:
        return [Region(0, 0, width, height)]
    ink = ink_mask(image)
    return plan_from_ink(ink, limit)


def plan_from_ink(ink: np.ndarray, limit: int) -> list[Region]:
    height, width = ink.shape
    speck = max(2, width // 500)
    out = _layout(ink, 0, width, 0, height, limit, speck, width)
    # a strip of blank paper costs a job and reads nothing
    return [r for r in out if ink[r.y0:r.y1, r.x0:r.x1].sum() > speck]


def _layout(ink: np.ndarray, x0: int, x1: int, y0: int, y1: int, limit: int, speck: int,
            page_width: int) -> list[Region]:
    """Regions of the box in reading order (a recursive XY cut that stops as soon as a part fits).

    The box's bands (split at full-width blank runs) are grouped: a *section* is the longest run of
    consecutive bands that has a gutter over all of them (a two-column body with its footnotes);
    a section taller than the limit is cut into its columns, each laid out in turn (a column may
    hold sections of its own), a smaller one is kept whole
    (never cut inside: the model reads its columns in order within one image); the bands between
    sections (titles, full-width paragraphs) and the small sections are cut together at line gaps.
    """
    if y1 - y0 <= limit:
        return [Region(x0, y0, x1, y1)]
    out: list[Region] = []
    run_start: int | None = None
    keep_whole: list[tuple[int, int]] = []
    for s0, s1, columns in sections(ink, x0, x1, y0, y1, speck, page_width):
        if columns:
            # its ink, not the blank paper below it, says whether it fits: a short form on a
            # tall page is kept whole (cut into its columns, it was read label column first)
            t0, t1 = _inked(ink, x0, x1, s0, s1, speck)
            if t1 - t0 > limit:
                if run_start is not None:
                    out += _cut_run(ink, x0, x1, run_start, s0, limit, speck, keep_whole)
                    run_start, keep_whole = None, []
                out += [r for c0, c1 in columns for r in _layout(ink, x0 + c0, x0 + c1, s0, s1, limit, speck, page_width)]
                continue
            keep_whole.append((t0, t1))
        run_start = s0 if run_start is None else run_start
    if run_start is not None:
        out += _cut_run(ink, x0, x1, run_start, y1, limit, speck, keep_whole)
    return out


def _inked(ink: np.ndarray, x0: int, x1: int, y0: int, y1: int, speck: int) -> tuple[int, int]:
    """Rows [y0, y1) without the blank rows above the first inked row and below the last."""
    rows = np.flatnonzero(ink[y0:y1, x0:x1].sum(axis=1) > speck)
    return (y0 + int(rows[0]), y0 + int(rows[-1]) + 1) if rows.size else (y0, y1)


def _cut_run(ink: np.ndarray, x0: int, x1: int, y0: int, y1: int, limit: int, speck: int,
             keep_whole: list[tuple[int, int]]) -> list[Region]:
    """Rows [y0, y1) of columns [x0, x1) in strips of at most ``limit`` rows, cut at blank runs
    (none inside a ``keep_whole`` band: its columns must stay in one strip): as ``_gap_cuts``
    plans them, else (a stretch taller than the limit without a gap) greedily, each strip as
    tall as the limit allows, with an overlapping seam where no gap is found."""
    rows = ink[y0:y1, x0:x1].sum(axis=1)
    gaps = [(a, b) for a, b in blank_runs(rows, speck)
            if not any(k0 < y0 + (a + b) // 2 < k1 for k0, k1 in keep_whole)]
    total = y1 - y0
    planned = _gap_cuts(rows, gaps, limit, speck)
    paragraph = _paragraph_gaps(rows, gaps, speck)
    if planned is not None:
        return [Region(x0, y0 + a, x1, y0 + b, paragraph=n > 0 and _in_gap(a, paragraph))
                for n, (a, b) in enumerate(zip(planned, planned[1:]))]
    out: list[Region] = []
    top, overlap = 0, 0
    while total - top > limit:
        end = top + limit
        # the lowest blank run reaching into (top, end]: cut at its middle, clipped to the window
        cut = None
        for a, b in reversed(gaps):
            if a < end and b > top + 1:
                cut = min((a + b) // 2, end)
                if cut > top:
                    break
                cut = None
        if cut is not None:
            out.append(Region(x0, y0 + top, x1, y0 + cut, overlap, paragraph=bool(out) and _in_gap(top, paragraph)))
            top, overlap = cut, 0
            continue
        # no gap: the least inked row in the lower part of the window, then overlap the next strip
        lo = top + max(1, int(limit * MIN_STRIP_FRACTION))
        cut = lo + int(np.argmin(rows[lo:end]))
        if cut <= top:
            cut = end
        out.append(Region(x0, y0 + top, x1, y0 + cut, overlap, paragraph=bool(out) and _in_gap(top, paragraph)))
        overlap = min(int(limit * OVERLAP_FRACTION), cut - top - 1)
        top = cut - overlap
    out.append(Region(x0, y0 + top, x1, y1, overlap, paragraph=bool(out) and not overlap and _in_gap(top, paragraph)))
    return out


def _paragraph_gaps(rows: np.ndarray, gaps: list[tuple[int, int]], speck: int) -> list[tuple[int, int]]:
    """The blank runs between paragraphs: at least ``BREAK_LINES`` median line heights tall and
    ``PARAGRAPH_SPACING`` times the median blank run between lines (double-spaced typescript has
    tall line gaps everywhere and paragraphs marked by an indent: no break is taken from those)."""
    inner = [(a, b) for a, b in gaps if a > 0 and b < len(rows)]
    lines = [b - a for a, b in true_runs(rows > speck)]
    if not inner or not lines:
        return []
    tall = max(BREAK_LINES * float(np.median(lines)), PARAGRAPH_SPACING * float(np.median([b - a for a, b in inner])))
    return [(a, b) for a, b in inner if b - a >= tall]


def _in_gap(y: int, gaps: list[tuple[int, int]]) -> bool:
    return any(a <= y <= b for a, b in gaps)


def _gap_cuts(rows: np.ndarray, gaps: list[tuple[int, int]], limit: int, speck: int) -> list[int] | None:
    """The bounds of the strips (cuts inside blank runs) that split ``rows`` into the fewest
    strips of at most ``limit`` rows, and among those the cuts that fall most often at a *break*:
    a blank run at least ``BREAK_LINES`` median line heights tall (between paragraphs, around a
    table, under a heading), not the space between two lines or two rows of one table. A table cut
    between two rows is read as two tables, the second without its header, and a reader (our
    engine's layout as much as the hosted model) may take a headless fragment of a few rows for
    columns of text. Blank paper above the first line and below the last may be left out
    (``MARGIN`` rows of it kept) when that saves a strip. None when some stretch taller than the
    limit holds no blank run.

    A shortest path over the candidate cuts (each blank run's middle and quarter points, so a
    tall run offers some freedom), scored (strips, cuts not at a break, margins left out)."""
    total = len(rows)
    start = max(0, gaps[0][1] - MARGIN) if gaps and gaps[0][0] == 0 else 0
    stop = min(total, gaps[-1][0] + MARGIN) if gaps and gaps[-1][1] == total else total
    if stop <= start:
        return None
    lines = [b - a for a, b in true_runs(rows > speck)]
    paragraph = BREAK_LINES * float(np.median(lines)) if lines else float("inf")
    at_break: dict[int, bool] = {}
    for a, b in gaps:
        if a > start and b < stop:
            q = (b - a) // 4
            for p in (a + q, (a + b) // 2, b - q):
                at_break[p] = at_break.get(p, False) or (b - a) >= paragraph
    points = sorted({0, start, stop, total, *at_break})
    best: dict[int, tuple[int, int, int]] = {0: (0, 0, 0), start: (0, 0, 1 if start else 0)}
    back: dict[int, int] = {}
    for i, p in enumerate(points):
        if p <= start:
            continue
        miss = 0 if p >= stop else 0 if at_break.get(p) else 1
        margin = 1 if p == stop and stop < total else 0
        for q in points[:i]:
            if p - q <= limit and q in best and (q >= start or q == 0) and (p <= stop or q >= stop or p == total):
                score = (best[q][0] + 1, best[q][1] + miss, best[q][2] + margin)
                if p not in best or score <= best[p]:   # ties: the lowest previous cut
                    best[p], back[p] = score, q
    ends = [p for p in (total, stop) if p in best]
    if not ends:
        return None
    p = min(ends, key=lambda e: best[e])
    bounds = [p]
    while p in back:
        p = back[p]
        bounds.append(p)
    return bounds[::-1]
