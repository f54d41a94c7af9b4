"""Reading order for engines that return lines row by row across the page (RapidOCR).

RapidOCR reads a two-column page as "left line 1, right line 1, left line 2, ...". We rebuild
the order from the line boxes alone, with a recursive XY-cut whose thresholds scale with the
median line height ``h`` (so the same rules hold at any resolution):

* a *column gap* is an x range no line box in the region covers, at least ``COLUMN_GAP_LINES * h``
  wide; a *row gap* is a y range no line box covers, at least ``ROW_GAP_LINES * h`` high;
* a region with column gaps is cut into columns, each read in turn - unless it is a *table*:
  it has at least three columns, not all of running text (short cells), and its row gaps cut
  it into at least ``TABLE_MIN_ROWS`` rows of which most have cells in two or more columns
  (text columns rarely pause at the same height; table rows do), or it has more than
  ``MAX_TEXT_COLUMNS`` columns. Rows without a gap between them are judged on the lines' own
  rows, when those lie on one baseline and no column is line numbers (``_is_table``). A table is read row by row, each row cell by cell
  (left to right), each cell top to bottom - the order a person (and Tesseract) reads it;
* neighbouring columns whose lines pair up one to one on the same rows are one group read row by
  row (a receipt's labels and amounts, a form's fields and values); a sparse column pairs only
  when its pairs are offset alike (one baseline, however skewed the scan), not scattered within
  the row tolerance as an independent column's lines are;
* lines under the end of every other text column, after a break, that are no running text
  themselves (a key/value block under two columns) are read after all the columns;
* a region without column gaps whose lines bridge a text gutter only with a few lines standing
  alone on their rows (a title, a page number, a footer) reads those as their own blocks and
  the runs between them as columns: a footnote stays in its column, as Tesseract reads it;
* a region without column gaps is cut at its widest row gap only (when it is clearly wider
  than the others: a paragraph break, not line spacing), and both halves are cut again;
* a region with no gap left is one *block*: its lines top to bottom, lines whose centres lie
  within half a line height of each other (one row) left to right.

Pure functions over boxes, no OCR: ``tests/test_layout.py`` tests them on synthetic pages, and
``bench/ocr_engines.py`` measures them on real scans (the thresholds were tuned there).
"""

from __future__ import annotations

import re
from bisect import bisect_left
from statistics import median
from typing import Sequence

Box = tuple[float, float, float, float]  # x0, y0, x1, y1

COLUMN_GAP_LINES = 0.33 # a column gap is at least this many median line heights wide (a levelled page: 0.36)
ROW_GAP_LINES = 0.25    # a row gap is at least this many median line heights high
PARAGRAPH_GAP = 1.5    # evenly spaced lines stay one block: cut only where a gap is this much wider
MAX_TEXT_COLUMNS = 5    # more columns than this side by side: a table
TABLE_MIN_COLUMNS = 3   # a table has at least this many columns (two short ones: a list, read by column)
TABLE_MIN_ROWS = 3      # ... and rows ...
TABLE_ROW_SHARE = 0.5   # ... and at least this share of them has cells in 2+ columns
SPANNING_SHARE = 0.2   # lines bridging a gutter (titles, footers) are at most this share
TEXT_ASPECT = 8.0       # running text: median line at least this many heights long (~16 chars)
TEXT_SHARE = 0.3        # a column pairs as running text when this share of its lines is that long
TEXT_MIN_LINES = 8      # ... and at least this many (a paragraph or two, not a table's long labels)
ROW_TOLERANCE = 0.5     # lines whose centres differ by less than this many heights share a row
ROW_OVERLAP = 0.6       # ... or share at least this much of the shorter one's height
PAIR_SHARE = 0.6        # a gap between label and value columns: this share of lines pair up row by row
PAIR_SHARE_BOTH = 0.7   # ... and this share of the lines on the side with more of them
PAIR_MAX_RATIO = 4      # ... (asked beside running text, or of a side this many times longer)
PAIR_ALIGN = 0.15       # ... where their pairs must be this well aligned (median offset in line heights)
PAIR_MIN = 2            # ... and at least this many of them


def _gaps(intervals: list[tuple[float, float]], min_width: float) -> list[tuple[float, float]]:
    """Uncovered stretches strictly inside the union of ``intervals``, at least ``min_width`` wide."""
    out: list[tuple[float, float]] = []
    intervals = sorted(intervals)
    reach = intervals[0][1]
    for start, end in intervals[1:]:
        if start - reach >= min_width:
            out.append((reach, start))
        reach = max(reach, end)
    return out


def _line_spacing(intervals: list[tuple[float, float]]) -> float:
    """Median clear space between successive lines (0 where they touch or overlap)."""
    intervals = sorted(intervals)
    reach, spaces = intervals[0][1], []
    for start, end in intervals[1:]:
        spaces.append(max(0.0, start - reach))
        reach = max(reach, end)
    return median(spaces) if spaces else 0.0


def _split(indices: list[int], boxes: Sequence[Box], gaps: list[tuple[float, float]], axis: int) -> list[list[int]]:
    """Partition ``indices`` at the gaps along ``axis`` (0: x, 1: y); no box crosses a gap."""
    cuts = [(g0 + g1) / 2 for g0, g1 in gaps]
    parts: list[list[int]] = [[] for _ in range(len(cuts) + 1)]
    for i in indices:
        centre = (boxes[i][axis] + boxes[i][axis + 2]) / 2
        parts[sum(centre > c for c in cuts)].append(i)
    return [p for p in parts if p]


def _same_row(a: Box, b: Box, tol: float) -> bool:
    """Centres within ``tol``, or most of the shorter box's height shared (a descender, "Soap",
    drops a box's centre below its neighbour's: "31.74" on the same baseline)."""
    if abs((a[1] + a[3]) - (b[1] + b[3])) / 2 <= tol:
        return True
    overlap = min(a[3], b[3]) - max(a[1], b[1])
    return overlap >= ROW_OVERLAP * min(a[3] - a[1], b[3] - b[1])


def _row_sets(indices: list[int], boxes: Sequence[Box], tol: float) -> list[list[int]]:
    """The lines grouped into rows, top to bottom: lines on the same row as a row's first line
    (``_same_row``), each row in the order the lines were found (its first line first)."""
    rows: list[list[int]] = []
    for i in sorted(indices, key=lambda i: (boxes[i][1] + boxes[i][3]) / 2):
        if rows and _same_row(boxes[rows[-1][0]], boxes[i], tol):
            rows[-1].append(i)
        else:
            rows.append([i])
    return rows


def _rows(indices: list[int], boxes: Sequence[Box], tol: float) -> list[int]:
    """Top to bottom; lines on the same row as a row's first line (``_same_row``) read left to right."""
    return [i for row in _row_sets(indices, boxes, tol) for i in sorted(row, key=lambda i: boxes[i][0])]


def _aspect(box: Box) -> float:
    """A line's length in line heights."""
    return (box[2] - box[0]) / max(box[3] - box[1], 1.0)


def _text_like(indices: list[int], boxes: Sequence[Box]) -> bool:
    """Running text: its lines are long (median width at least ``TEXT_ASPECT`` line heights)."""
    return median(_aspect(boxes[i]) for i in indices) >= TEXT_ASPECT


def _carries_text(indices: list[int], boxes: Sequence[Box]) -> bool:
    """Running text in some of it: at least ``TEXT_SHARE`` of its lines, and ``TEXT_MIN_LINES``
    or more, are long (paragraphs over a table are still text to pair with, however short the
    column's median line; a table's few long labels are not)."""
    long = sum(_aspect(boxes[i]) >= TEXT_ASPECT for i in indices)
    return _text_like(indices, boxes) or long >= max(TEXT_SHARE * len(indices), TEXT_MIN_LINES)


def _is_table(indices: list[int], boxes: Sequence[Box], col_gaps: list[tuple[float, float]],
              row_gaps: list[tuple[float, float]], tol: float, texts: Sequence[str] | None = None) -> bool:
    """Whether the region is a table (see the module's docstring). Rows set without a gap between
    them (fewer than ``TABLE_MIN_ROWS`` bands) are judged on the lines' own rows instead, when
    the lines sharing a row lie on one baseline (``_one_baseline``): a table's rows touch where
    its cells span two lines and a third column's cell is centred between them, and a table cut
    below its header (a strip of a page too tall for the hosted model, docs/client.md) has no
    row gap left at all; it was read column by column (scribe ``table_07``'s lower strip: +5.5
    CER points against the whole page, which reads those rows row by row). Only with the lines'
    texts known, and never beside a column of line numbers: a transcript's numbered lines lie on
    their numbers' rows, and two transcript pages side by side on one baseline grid (scribe
    ``deposition_01``) are text, numbers, text on every row, read page by page."""
    if len(col_gaps) + 1 > MAX_TEXT_COLUMNS:
        return True
    if len(col_gaps) + 1 < TABLE_MIN_COLUMNS:
        return False
    if all(_text_like(col, boxes) for col in _split(indices, boxes, col_gaps, axis=0)):
        return False
    cuts = [(g0 + g1) / 2 for g0, g1 in col_gaps]
    if len(row_gaps) + 1 >= TABLE_MIN_ROWS:
        bands, cells = _split(indices, boxes, row_gaps, axis=1), 2
    else:
        # a row of a table of three columns or more, not a numbered line (its number and its
        # text: a transcript's two pages side by side, their lines offset, have no row gap)
        bands, cells = _row_sets(indices, boxes, tol), TABLE_MIN_COLUMNS
        if (texts is None or len(bands) < TABLE_MIN_ROWS or not _one_baseline(bands, boxes, tol)
                or any(_line_numbers(col, texts) for col in _split(indices, boxes, col_gaps, axis=0))):
            return False
    multi = sum(1 for band in bands
                if len({sum((boxes[i][0] + boxes[i][2]) / 2 > c for c in cuts) for i in band}) >= cells)
    return multi >= TABLE_ROW_SHARE * len(bands)


def _one_baseline(rows: list[list[int]], boxes: Sequence[Box], tol: float) -> bool:
    """The lines sharing a row lie on one baseline: their centres' median distance from the
    row's first line is within ``PAIR_ALIGN`` line heights (``tol`` is half a line height). A
    table's cells are set on their row's baseline; the lines of independent columns whose line
    gaps fill each other's (so no row gap is left) only come near, anywhere within the row
    tolerance, and those columns must never be read across as rows."""
    offsets = [abs((boxes[i][1] + boxes[i][3]) - (boxes[row[0]][1] + boxes[row[0]][3])) / 2
               for row in rows for i in row[1:]]
    return bool(offsets) and median(offsets) <= PAIR_ALIGN * 2 * tol


_LINE_NUMBER = re.compile(r"\d{1,3}")


def _line_numbers(indices: list[int], texts: Sequence[str]) -> bool:
    """A column of line numbers: at least 80 % of its lines a number of up to three digits."""
    return sum(_LINE_NUMBER.fullmatch(texts[i].strip()) is not None for i in indices) >= 0.8 * len(indices)
_NUMERIC_CHARS = set("0123456789.,:;/-+%$€£*()x ")


def _numeric(text: str) -> bool:
    """An amount, a quantity, a date or a time: mostly digits and their punctuation."""
    chars = [c for c in text if not c.isspace()]
    return bool(chars) and sum(c in _NUMERIC_CHARS for c in chars) >= 0.7 * len(chars) and any(c.isdigit() for c in chars)


def _spread(offsets: list[float]) -> float:
    """How far pairs stray from their common offset (median absolute deviation).

    Lines that share a baseline on a skewed scan are all offset alike (the skew times the
    distance between them, a few pixels), so the spread is near zero; lines of an independent
    column that only come near each other's rows are offset anywhere within the row tolerance.
    """
    centre = median(offsets)
    return median(abs(d - centre) for d in offsets)


class _Cutter:
    def __init__(self, boxes: Sequence[Box], texts: Sequence[str] | None = None) -> None:
        self.boxes = boxes
        self.texts = texts
        h = median(max(b[3] - b[1], 1.0) for b in boxes)
        self.col_gap, self.row_gap, self.tol = COLUMN_GAP_LINES * h, ROW_GAP_LINES * h, ROW_TOLERANCE * h

    def blocks(self, indices: list[int], in_table: bool = False) -> list[list[int]]:
        boxes = self.boxes
        if len(indices) == 1:
            return [indices]
        col_gaps = _gaps([(boxes[i][0], boxes[i][2]) for i in indices], self.col_gap)
        row_gaps = _gaps([(boxes[i][1], boxes[i][3]) for i in indices], self.row_gap)
        if col_gaps:
            if in_table or _is_table(indices, boxes, col_gaps, row_gaps, self.tol, self.texts):
                if row_gaps:  # table rows, each then cut into its cells
                    return [b for band in _split(indices, boxes, row_gaps, 1) for b in self.blocks(band, True)]
                if len(col_gaps) + 1 > MAX_TEXT_COLUMNS:  # rows touch: plain row-by-row reading
                    return [_rows(indices, boxes, self.tol)]
                cells = _split(indices, boxes, col_gaps, 0)
                if self._multi_cell_rows(cells) >= 2:  # rows set without a gap between them
                    return [_rows(indices, boxes, self.tol)]
            columns = _split(indices, boxes, col_gaps, 0)
            tail = [] if in_table else self._tail_below(columns)
            if tail:  # a key/value block or table under text columns: read after all the columns
                in_tail = set(tail)
                rest = [i for i in indices if i not in in_tail]
                return self.blocks(rest, in_table) + self.blocks(tail, in_table)
            out: list[list[int]] = []
            for group in [[col] for col in columns] if in_table else self._row_groups(columns):
                if len(group) == 1:  # a column that runs on its own
                    out += self.blocks(group[0], in_table)
                else:  # label/value columns whose lines pair up: one block, read row by row
                    out.append(self._read_rows([i for col in group for i in col]))
            return out
        spanning = None if in_table else self._spanning(indices)
        if spanning:
            return self._around(indices, spanning, in_table)
        if row_gaps:
            widest = max(row_gaps, key=lambda g: g[1] - g[0])
            upper, lower = (self.blocks(part, in_table) for part in _split(indices, boxes, [widest], 1))
            spacing = _line_spacing([(boxes[i][1], boxes[i][3]) for i in indices])
            if widest[1] - widest[0] < PARAGRAPH_GAP * spacing and self._stacked(upper[-1], lower[0]):
                # evenly spaced lines, not a paragraph break: keep them one block
                return upper[:-1] + [upper[-1] + lower[0]] + lower[1:]
            return upper + lower
        return [_rows(indices, boxes, self.tol)]

    def _tail_below(self, columns: list[list[int]]) -> list[int]:
        """Lines at the foot of one column, below the end of every other, that are no running text.

        Text columns end; what a page sets under them (a key/value block, a small table) often
        lies within the first column's width, so the column gap alone would read it as that
        column's continuation, before the next column. It is a block of its own when every
        other column is running text, the lines follow the widest row gap below the end of all
        other columns (wider than the column's line spacing: a break, not the next line), the
        column above that gap is running text and the lines below are not (short lines).
        """
        boxes = self.boxes
        if len(columns) < 2 or any(len(col) < 2 for col in columns):
            return []
        for k, col in enumerate(columns):
            if not all(_text_like(other, boxes) for j, other in enumerate(columns) if j != k):
                continue
            others_bottom = max(boxes[i][3] for j, other in enumerate(columns) if j != k for i in other)
            spans = [(boxes[i][1], boxes[i][3]) for i in col]
            below = [g for g in _gaps(spans, self.row_gap) if g[0] >= others_bottom - self.tol]
            if not below:
                continue
            gap = max(below, key=lambda g: g[1] - g[0])  # the break before the block, not line spacing
            tail = [i for i in col if boxes[i][1] >= gap[1]]
            body = [i for i in col if boxes[i][1] < gap[1]]
            if (len(tail) < 2 or len(body) < 2 or _text_like(tail, boxes) or not _text_like(body, boxes)
                    or gap[1] - gap[0] < PARAGRAPH_GAP * _line_spacing(spans)):
                continue
            return tail
        return []

    def _pairs(self, left: list[int], right: list[int]) -> bool:
        """Lines on the two sides of a gap pair up row by row: rows across a gap, not two columns.

        Two columns of running text are always columns (their lines pair up too when set on one
        baseline grid). Running text beside short lines pairs only with amounts on its right
        (an invoice line) or labels on its left, never with a sidebar of words on its right or
        with line numbers; boxes alone (no ``texts``) keep such a gap a column. Then lines pair
        one to one on the same row (``_same_row``): at least ``PAIR_SHARE`` of the side with
        fewer lines and, beside running text or against a side over ``PAIR_MAX_RATIO`` times
        longer, pairs aligned within ``PAIR_ALIGN`` line heights (the shared baseline of a
        form's second fields, not the chance nearness of a sidebar's own grid).
        Beside running text ``PAIR_SHARE_BOTH`` of the other side must pair too. A receipt's labels and amounts, a
        form's fields and values, a table's cells do; a dense sidebar beside a text column
        (twice the lines) does not.
        """
        boxes = self.boxes
        left_text, right_text = _carries_text(left, boxes), _carries_text(right, boxes)
        if left_text and right_text:
            return False
        if left_text or right_text:  # running text beside a column of short lines
            short, on_left = (right, False) if left_text else (left, True)
            if self.texts is None:
                return False  # boxes alone cannot tell a label column from a sidebar
            share_numeric = sum(_numeric(self.texts[i]) for i in short) / len(short)
            if on_left and _line_numbers(short, self.texts):
                return False  # a deposition's line numbers: a column of their own
            if not on_left and share_numeric < 0.6:
                return False  # a sidebar of words beside the text
        fewer, more = (left, right) if len(left) <= len(right) else (right, left)
        by_centre = sorted(more, key=lambda i: boxes[i][1] + boxes[i][3])
        centres = [(boxes[i][1] + boxes[i][3]) / 2 for i in by_centre]
        paired, used, offsets = 0, set(), []
        for i in fewer:  # one partner each: a dense sidebar must not pair with every text line
            cy = (boxes[i][1] + boxes[i][3]) / 2
            k = bisect_left(centres, cy - 2 * self.tol)
            while k < len(centres) and centres[k] <= cy + 2 * self.tol:
                if k not in used and _same_row(boxes[i], boxes[by_centre[k]], self.tol):
                    paired += 1
                    used.add(k)
                    a, b = boxes[i], boxes[by_centre[k]]
                    offsets.append(min(b[1] - a[1], b[3] - a[3], key=abs))  # top or bottom edge, signed
                    break
                k += 1
        if paired < PAIR_SHARE * len(fewer) or paired < min(PAIR_MIN, len(fewer)):
            return False
        if left_text or right_text:  # beside running text the longer side must pair too
            return paired >= PAIR_SHARE_BOTH * len(more)
        if len(more) > PAIR_MAX_RATIO * len(fewer):  # a few lines beside many: rows share a baseline,
            return _spread(offsets) <= PAIR_ALIGN * 2 * self.tol  # an independent column only comes near
        return True

    def _row_groups(self, columns: list[list[int]]) -> list[list[list[int]]]:
        """Neighbouring columns merged into one group wherever their lines pair up row by row."""
        groups = [[columns[0]]]
        for col in columns[1:]:
            if self._pairs(groups[-1][-1], col):
                groups[-1].append(col)
            else:
                groups.append([col])
        return groups

    def _read_rows(self, indices: list[int]) -> list[int]:
        """Paired columns read as rows: bands between row gaps, each band row by row.

        A band of one row reads left to right. A band whose cells hold several lines reads cell
        by cell, each cell top to bottom (a wrapped table cell or address value), unless two or
        more of its rows span several cells (rows set without a gap between them), which read
        row by row.
        """
        boxes = self.boxes
        row_gaps = _gaps([(boxes[i][1], boxes[i][3]) for i in indices], self.row_gap)
        out: list[int] = []
        for band in _split(indices, boxes, row_gaps, 1) if row_gaps else [indices]:
            col_gaps = _gaps([(boxes[i][0], boxes[i][2]) for i in band], self.col_gap)
            cells = _split(band, boxes, col_gaps, 0) if col_gaps else [band]
            if len(cells) > 1 and max(len(c) for c in cells) > 1 and self._multi_cell_rows(cells) < 2:
                out += [i for cell in cells for i in _rows(cell, boxes, self.tol)]
            else:
                out += _rows(band, boxes, self.tol)
        return out

    def _multi_cell_rows(self, cells: list[list[int]]) -> int:
        """How many rows of the band have lines in two or more of its cells."""
        owner = {i: k for k, cell in enumerate(cells) for i in cell}
        order = _rows(list(owner), self.boxes, self.tol)
        count, row, last_cy = 0, set(), None
        for i in sorted(order, key=lambda i: (self.boxes[i][1] + self.boxes[i][3]) / 2):
            cy = (self.boxes[i][1] + self.boxes[i][3]) / 2
            if last_cy is not None and cy - last_cy > self.tol:  # rough rows suffice for a count
                count += len(row) > 1
                row = set()
                last_cy = cy
            elif last_cy is None:
                last_cy = cy
            row.add(owner[i])
        return count + (len(row) > 1)

    def _stacked(self, above: list[int], below: list[int]) -> bool:
        """The two blocks share most of their width (one column continuing downwards)."""
        a0, a1 = min(self.boxes[i][0] for i in above), max(self.boxes[i][2] for i in above)
        b0, b1 = min(self.boxes[i][0] for i in below), max(self.boxes[i][2] for i in below)
        return min(a1, b1) - max(a0, b0) >= 0.5 * min(a1 - a0, b1 - b0)

    def _spanning(self, indices: list[int]) -> set[int] | None:
        """Lines (titles, rules of text, page numbers) that alone bridge a column gutter.

        A gutter is an x range of at least a column gap that at most ``SPANNING_SHARE`` of the
        region's lines touch, with at least two lines wholly on each side; the touching lines
        must each stand on their own row (no other line beside them), as a title or a footer
        does. Returns them, or None when the region has no such gutter.
        """
        boxes = self.boxes
        n = len(indices)
        if n < 5:
            return None
        xs = sorted({boxes[i][0] for i in indices} | {boxes[i][2] for i in indices})
        best: tuple[float, set[int]] | None = None
        limit = max(1, int(SPANNING_SHARE * n))
        run_start = None
        for a, b in zip(xs, xs[1:] + [None]):  # elementary x intervals, plus a sentinel
            low = b is not None and sum(1 for i in indices if boxes[i][0] < b and boxes[i][2] > a) <= limit
            if low and run_start is None:
                run_start = a
            elif not low and run_start is not None:
                lo, hi, run_start = run_start, a, None
                mid = (lo + hi) / 2
                # bridging the gutter's middle, or standing wholly inside it (a page number)
                touching = {i for i in indices if boxes[i][0] < mid < boxes[i][2]
                            or (boxes[i][0] >= lo and boxes[i][2] <= hi)}
                left = [boxes[i][2] for i in indices if boxes[i][2] <= mid and i not in touching]
                right = [boxes[i][0] for i in indices if boxes[i][0] >= mid and i not in touching]
                if not touching or len(touching) > limit or len(left) < 2 or len(right) < 2:
                    continue
                sides = ([i for i in indices if boxes[i][2] <= mid and i not in touching],
                         [i for i in indices if boxes[i][0] >= mid and i not in touching])
                if not all(_text_like(side, boxes) for side in sides):
                    continue  # a table's header row, not a title over text columns
                width = min(right) - max(left)
                if width >= self.col_gap and (best is None or width > best[0]):
                    best = (width, touching)
        if best is None:
            return None
        touching = best[1]
        for s in touching:  # each must sit alone on its row
            for i in indices:
                if i not in touching and min(boxes[s][3], boxes[i][3]) - max(boxes[s][1], boxes[i][1]) > 0.25 * self.tol * 2:
                    return None
        return touching

    def _around(self, indices: list[int], spanning: set[int], in_table: bool) -> list[list[int]]:
        """Spanning lines as their own blocks; the runs of lines between them read as columns."""
        out: list[list[int]] = []
        run: list[int] = []
        for i in sorted(indices, key=lambda i: (self.boxes[i][1] + self.boxes[i][3]) / 2):
            if i in spanning:
                if run:
                    out += self.blocks(run, in_table)
                    run = []
                out.append([i])
            else:
                run.append(i)
        if run:
            out += self.blocks(run, in_table)
        return out


def reading_order(boxes: Sequence[Box], texts: Sequence[str] | None = None) -> list[list[int]]:
    """Indices of ``boxes`` grouped into blocks, blocks and lines in reading order.

    ``texts`` (the lines' text, when known) lets a column of amounts beside running text read
    as rows while a sidebar of words or a column of line numbers stays a column.
    """
    if not boxes:
        return []
    return _Cutter(boxes, texts).blocks(list(range(len(boxes))))
