"""Reading order for engines that return lines row by row across the page (RapidOCR).

RapidOCR reads a two-column page as "left line 1, right line 1, left line 2, ...". We rebuild
the order from the line boxes alone:

1. cut the page into horizontal *bands* at every vertical gap between lines;
2. find each band's *column gaps* (x ranges no line box covers, at least 0.4 line heights wide);
3. merge consecutive bands into a *section* while their lines never cross the section's
   common column gaps (a full-width title or a table row ends a two-column section);
4. read a section column by column, each top to bottom (rows within a column left to right);
   a section with more than ``MAX_TEXT_COLUMNS`` columns is a table and is read row by row.

Pure functions over boxes: no OCR needed to test them.
"""

from __future__ import annotations

from statistics import median
from typing import Sequence, TypeVar

Box = tuple[float, float, float, float]
T = TypeVar("T")

MAX_TEXT_COLUMNS = 5   # more columns than this: a table, read row by row
COLUMN_GAP_LINES = 0.4  # a column gap is at least this many median line heights wide (tuned on the scribe set)


def _gaps(intervals: list[tuple[float, float]], min_width: float) -> list[tuple[float, float]]:
    """Uncovered stretches strictly inside the union of ``intervals`` that are wide enough."""
    out = []
    intervals = sorted(intervals)
    reach = intervals[0][1]
    for start, end in intervals[1:]:
        if start - reach >= min_width:
            out.append((reach, start))
        reach = max(reach, end)
    return out


def _crosses(box: Box, gaps: list[tuple[float, float]]) -> bool:
    return any(box[0] < g1 and box[2] > g0 for g0, g1 in gaps)


def _intersect(a: list[tuple[float, float]], b: list[tuple[float, float]], min_width: float) -> list[tuple[float, float]]:
    out = []
    for a0, a1 in a:
        for b0, b1 in b:
            lo, hi = max(a0, b0), min(a1, b1)
            if hi - lo >= min_width:
                out.append((lo, hi))
    return out


def _rows(indices: list[int], boxes: Sequence[Box], tol: float) -> list[int]:
    """Top to bottom; lines whose centres are within ``tol`` form a row read left to right."""
    by_y = sorted(indices, key=lambda i: (boxes[i][1] + boxes[i][3]) / 2)
    rows: list[list[int]] = []
    for i in by_y:
        cy = (boxes[i][1] + boxes[i][3]) / 2
        if rows and abs(cy - rows[-1][-1][1]) <= tol:
            rows[-1].append((i, cy))  # type: ignore[arg-type]
        else:
            rows.append([(i, cy)])  # type: ignore[list-item]
    return [i for row in rows for i, _ in sorted(row, key=lambda t: boxes[t[0]][0])]  # type: ignore[misc]


def reading_order(boxes: Sequence[Box]) -> list[list[int]]:
    """Indices of ``boxes`` grouped into blocks, blocks and lines in reading order."""
    if not boxes:
        return []
    heights = [max(b[3] - b[1], 1.0) for b in boxes]
    h = median(heights)
    col_gap = COLUMN_GAP_LINES * h
    # 1. bands: split at every vertical gap between lines
    order = sorted(range(len(boxes)), key=lambda i: boxes[i][1])
    bands: list[list[int]] = []
    reach = None
    for i in order:
        y0, y1 = boxes[i][1], boxes[i][3]
        if reach is None or y0 > reach - 0.25 * h:  # overlap of less than a quarter line: new band
            bands.append([i])
            reach = y1
        else:
            bands[-1].append(i)
            reach = max(reach, y1)
    # 2-3. sections of bands sharing column gaps
    sections: list[tuple[list[int], list[tuple[float, float]]]] = []
    for band in bands:
        gaps = _gaps([(boxes[i][0], boxes[i][2]) for i in band], col_gap)
        if sections:
            lines, common = sections[-1]
            if common:
                if not any(_crosses(boxes[i], common) for i in band):
                    lines.extend(band)
                    continue
                narrowed = _intersect(common, gaps, col_gap) if gaps else []
                if narrowed and not any(_crosses(boxes[i], narrowed) for i in lines + band):
                    sections[-1] = (lines + band, narrowed)
                    continue
            elif not gaps:
                lines.extend(band)
                continue
        sections.append((list(band), gaps))
    # 4. read each section
    blocks: list[list[int]] = []
    for lines, gaps in sections:
        if not gaps or len(gaps) + 1 > MAX_TEXT_COLUMNS:
            blocks.append(_rows(lines, boxes, 0.5 * h))
            continue
        cuts = [(g0 + g1) / 2 for g0, g1 in gaps]
        columns: list[list[int]] = [[] for _ in range(len(cuts) + 1)]
        for i in lines:
            cx = (boxes[i][0] + boxes[i][2]) / 2
            columns[sum(cx > c for c in cuts)].append(i)
        blocks += [_rows(col, boxes, 0.5 * h) for col in columns if col]
    return blocks
