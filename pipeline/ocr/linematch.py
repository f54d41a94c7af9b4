"""Which page line holds which answer line, when the two reading orders disagree.

Why not a plain order alignment: the answer reads a page as its model does, the page's lines
come in our XY-cut's order, and on forms, tables, sidebars and depositions (line numbers in the
margin) the two orders differ; a monotone alignment then drifts and puts words on wrong lines.
Here the answer's lines walk over the page like a reader's eye (a Viterbi path): each answer
line is *emitted* by a run of word boxes on one page line whose widths fit its words, and a
step from one answer line to the next is cheap when it goes where reading goes (the next line
below in the same column, the next run on the same row, the XY-cut's successor) and costs a
jump otherwise. An answer line the page does not show takes the null state.

Emission of answer line ``i`` by a run of ``k`` consecutive boxes of page line ``j`` (``k`` =
its word count, or one fewer or more), all runs of all lines at once with numpy:

* scale: |log| of the run's width against the answer's characters x the page's character
  width, scaled by the line's height (a heading is wider per character);
* shape (``k`` = word count): the mean |log| of each word's share of the run against its box's;
* count: per box more or fewer than words.

Vectorised so that a 60-line page costs milliseconds; the word-level placement inside the
chosen run is ``align._words``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .inkgeom import GeoLine

NULL_EMISSION = 1.1     # an answer line with no ink (costs about a poor match)
JUMP = 1.6              # a step that is not where reading goes next
NEAR = 0.15             # a step to the next line below or the next run on the row
SAME_LINE = 0.35        # the next answer line on the same page line (table cells)
COUNT = 0.2             # per box more or fewer than words
SHAPE_DEFAULT = 0.35    # shape cost when boxes and words do not pair one to one
LEFTOVER = 0.04         # per box of the page line left to other answer lines


@dataclass(frozen=True)
class LineMatch:
    answer: int             # answer line index
    page: int               # page line index
    start: int              # first box of the run (index into that line's words)
    count: int              # boxes in the run
    cost: float             # its emission cost
    context: bool = False   # the answer line before or after sits where reading goes from here


class _Boxes:
    """Every word box of the page in one array, with its line and the line's scale."""

    def __init__(self, page: list[GeoLine]) -> None:
        rows = [(j, k, b) for j, ln in enumerate(page) for k, b in enumerate(ln.words)]
        self.line = np.array([r[0] for r in rows], dtype=np.int64)
        self.pos = np.array([r[1] for r in rows], dtype=np.int64)
        box = np.array([r[2] for r in rows], dtype=np.float64).reshape(-1, 4)
        self.x0, self.x1 = box[:, 0], box[:, 2]
        self.w = np.maximum(1.0, self.x1 - self.x0)
        heights = np.array([ln.height for ln in page], dtype=np.float64)
        h = float(np.median(heights)) if len(heights) else 1.0
        scale = np.where(heights > 1.3 * h, heights / h, 1.0)
        self.scale = scale[self.line]
        self.lines = len(page)
        self.count = np.array([len(ln.words) for ln in page])


def _unit(boxes: _Boxes, answer: list[list[str]]) -> float:
    chars = sum(sum(len(w) for w in a) + len(a) - 1 for a in answer) or 1
    ink = float(np.sum((boxes.x1 - boxes.x0) / boxes.scale))
    # word boxes hold no spaces: add about one character per box for them
    return ink / max(1.0, chars - len(boxes.w) * 0.5) if chars > len(boxes.w) else ink / chars


def emissions(answer: list[list[str]], boxes: _Boxes, unit: float):
    """(cost, start box, count) per answer line and page line: the best run of each line."""
    n, m, total = len(answer), boxes.lines, len(boxes.w)
    cost = np.full((n, m), np.inf)
    start = np.zeros((n, m), dtype=np.int64)
    count = np.zeros((n, m), dtype=np.int64)
    for i, words in enumerate(answer):
        lens = np.array([len(w) for w in words], dtype=np.float64)
        nw = len(words)
        chars = lens.sum() + nw - 1
        for k in (nw - 1, nw, nw + 1):
            if k < 1 or k > total:
                continue
            s = np.arange(total - k + 1)
            e = s + k - 1
            valid = boxes.line[s] == boxes.line[e]
            u = unit * boxes.scale[s]
            width = boxes.x1[e] - boxes.x0[s]
            with np.errstate(invalid="ignore", divide="ignore"):  # runs over two lines: masked below
                c = np.abs(np.log((chars * u + u) / (width + u))) + COUNT * abs(k - nw)
            if k == nw and nw > 1:
                win = sliding_window_view(boxes.w, k)
                share_w = win / win.sum(axis=1, keepdims=True)
                share_l = lens / lens.sum()
                c = c + np.mean(np.abs(np.log((share_l + 0.05) / (share_w + 0.05))), axis=1)
            elif nw > 1 or k > 1:
                c = c + SHAPE_DEFAULT
            c = c + LEFTOVER * (boxes.count[boxes.line[s]] - k)
            c[~valid] = np.inf
            c[np.isnan(c)] = np.inf
            lines = boxes.line[s]
            # best run per page line: sort by (line, cost) and take each line's first
            order = np.lexsort((c, lines))
            first = np.ones(len(order), dtype=bool)
            first[1:] = lines[order][1:] != lines[order][:-1]
            pick = order[first]
            lj = lines[pick]
            better = c[pick] < cost[i, lj]
            cost[i, lj[better]] = c[pick][better]
            start[i, lj[better]] = boxes.pos[s[pick][better]]
            count[i, lj[better]] = k
    return cost, start, count


def transitions(page: list[GeoLine], order_next: dict[int, int]) -> np.ndarray:
    """Cost of reading page line ``b`` right after page line ``a``."""
    m = len(page)
    t = np.full((m, m), JUMP)
    if m == 0:
        return t
    box = np.array([ln.box for ln in page], dtype=np.float64)
    h = np.maximum(1.0, box[:, 3] - box[:, 1])
    for a in range(m):
        x0, y0, x1, y1 = box[a]
        below = (box[:, 1] >= y1 - 0.3 * h[a]) & (box[:, 1] - y1 < 3.0 * h[a]) \
            & (np.minimum(box[:, 2], x1) - np.maximum(box[:, 0], x0) > 0)
        if below.any():
            nearest = np.where(below, box[:, 1], np.inf)
            t[a, nearest <= nearest.min() + 0.3 * h[a]] = NEAR
        same_row = (np.abs((box[:, 1] + box[:, 3]) / 2 - (y0 + y1) / 2) < 0.5 * h[a]) & (box[:, 0] > x1)
        if same_row.any():
            t[a, np.argmin(np.where(same_row, box[:, 0], np.inf))] = NEAR
        if a in order_next:
            t[a, order_next[a]] = min(t[a, order_next[a]], NEAR)
        t[a, a] = SAME_LINE
    return t


TALL_LINE = 3.0         # a "line" this many median heights tall is no text line (a rule, a column of numbers)


def text_lines(page: list[GeoLine]) -> tuple[list[GeoLine], list[int]]:
    """The page's lines without the tall ones, with each one's index in ``page``."""
    if not page:
        return [], []
    h = float(np.median([ln.height for ln in page]))
    keep = [j for j, ln in enumerate(page) if ln.words and ln.height <= TALL_LINE * h]
    return [page[j] for j in keep], keep


def match_lines(answer: list[list[str]], page: list[GeoLine]) -> list[LineMatch]:
    """Answer lines on the page's text lines (``text_lines``), by ``_viterbi``."""
    lines, where = text_lines(page)
    return [LineMatch(mt.answer, where[mt.page], mt.start, mt.count, mt.cost, mt.context)
            for mt in _viterbi(answer, lines)]


def _viterbi(answer: list[list[str]], page: list[GeoLine]) -> list[LineMatch]:
    """The Viterbi path of the answer's lines over the page's lines (null state: no match)."""
    n, m = len(answer), len(page)
    if not n or not m or not any(ln.words for ln in page):
        return []
    boxes = _Boxes(page)
    unit = _unit(boxes, answer)
    cost, start, count = emissions(answer, boxes, unit)
    trans = transitions(page, {j: j + 1 for j in range(m - 1)})
    # states 0..m-1 the page lines, m the null state
    full = np.full((m + 1, m + 1), JUMP * 0.5)
    full[:m, :m] = trans
    full[m, m] = 0.0
    emit = np.concatenate([cost, np.full((n, 1), NULL_EMISSION)], axis=1)
    score = emit[0] + np.append(np.zeros(m), 0.0)
    back = np.zeros((n, m + 1), dtype=np.int64)
    for i in range(1, n):
        total = score[:, None] + full
        back[i] = np.argmin(total, axis=0)
        score = total[back[i], np.arange(m + 1)] + emit[i]
    state = int(np.argmin(score))
    path = [state]
    for i in range(n - 1, 0, -1):
        state = int(back[i, state])
        path.append(state)
    path.reverse()

    def near(i: int, k: int) -> bool:
        """Answer line ``k`` (= i + 1) read right after ``i``: the next line or the next run."""
        a, b = path[i], path[k]
        if a >= m or b >= m:
            return False
        if a == b:
            return bool(start[k, b] == start[i, a] + count[i, a])
        return bool(full[a, b] <= NEAR)
    return [LineMatch(i, j, int(start[i, j]), int(count[i, j]), float(cost[i, j]),
                      (i > 0 and near(i - 1, i)) or (i + 1 < n and near(i, i + 1)))
            for i, j in enumerate(path) if j < m and np.isfinite(cost[i, j])]
