"""The answer's words on the page's own lines: alignment by width against character counts.

Why widths: a text-only answer and the page's ink share nothing but their order and their
proportions. A line of 60 characters is about three times as wide as one of 20 in the same
font; a word of 9 letters is wider than its neighbour of 2. Two dynamic programmes use that:

1. **Lines.** The answer's lines (in its reading order) against the page's lines (in the
   XY-cut's reading order): each answer line takes one page line, two answer lines one page
   line, or one answer line up to ``MAX_SPLIT`` consecutive page lines (a reflowed paragraph);
   a page line with no answer (a stamp, a page number the model left out) or an answer line
   with no ink (a hallucination, a header the ink analysis missed) is skipped at a price. The
   cost of a pairing is how far the predicted width (characters x the page's character width,
   scaled by the line's height) is from the ink's width, in log ratio.
2. **Words.** Inside each pairing, the answer's words against the page line's word boxes: a
   word takes one box, or two or three (letters spaced wide), or two words share one box (a
   space the ink closed), which is then cut at the character proportion; boxes and words may
   be skipped. The cost is again the log ratio of widths, with the line's own character width.

A word whose pairing is too unlikely (``MIN_CONFIDENCE``) gets no box and is counted as
unplaced: a position is never made up. The confidence of a placed word is
``exp(-k * |log ratio|)`` of its line and its own width, times a factor for a shared box.

``place_text`` is the single entry point for the answer's text: whatever rule turns an answer
into plain text (the Markdown rule of a hosted model) goes in front of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import median
from typing import Sequence

from .inkgeom import Box, GeoLine
from .linematch import match_lines

MAX_SPLIT = 4           # an answer line may run over this many page lines (a reflowed paragraph) ...
MAX_SPLIT_REFLOWED = 40  # ... or this many when the answer is reflowed (lines wider than the page's)
SPLIT_LINE = 0.08        # cost per extra page line of a split answer line
MIN_CONFIDENCE = 0.5    # below this a word is left without a box
SKIP_ANSWER_LINE = 1.2  # costs in units of |log(width ratio)|
SKIP_PAGE_LINE = 0.9
SKIP_WORD = 1.0
SKIP_BOX = 0.7
SHARED_BOX = 0.35        # two words in one box
SPLIT_WORD = 0.2         # one word over several boxes (per extra box)
LINE_K = 1.5             # confidence = exp(-K * |log ratio|)
WORD_K = 1.2
SHORT_LINE = 3           # answer lines of fewer words are placed only in context (see linematch)
NO_CONTEXT = 0.7         # confidence factor of a line whose neighbours are not beside it


@dataclass(frozen=True)
class PlacedWord:
    text: str
    box: Box | None
    confidence: float | None
    line: int = -1          # index of the page line it sits on (-1: unplaced)


@dataclass(frozen=True)
class Placement:
    lines: tuple[tuple[PlacedWord, ...], ...]   # the answer's lines, its words in its order
    words: int
    placed: int


def _chars(words: Sequence[str]) -> int:
    return sum(len(w) for w in words) + max(0, len(words) - 1)


def _lr(pred: float, width: float, unit: float) -> float:
    """|log ratio| of predicted to measured width, softened by one character for short ones."""
    return abs(math.log((pred + unit) / (width + unit)))


class _Table:
    """A DP table over (answer position, page position): the best cost so far and where from."""

    def __init__(self, n: int, m: int) -> None:
        self.best = [[math.inf] * (m + 1) for _ in range(n + 1)]
        self.back: list[list[tuple | None]] = [[None] * (m + 1) for _ in range(n + 1)]
        self.best[0][0] = 0.0

    def relax(self, i: int, j: int, cost: float, came: tuple) -> None:
        if cost < self.best[i][j]:
            self.best[i][j], self.back[i][j] = cost, came

    def cells(self):
        """Reachable cells in an order where every move goes forward."""
        for i, row in enumerate(self.best):
            for j, cur in enumerate(row):
                if cur != math.inf:
                    yield i, j, cur

    def path(self, n: int, m: int):
        """The moves of the best path, last first: (from i, from j, tag, to i, to j)."""
        i, j = n, m
        while (i, j) != (0, 0):
            pi, pj, tag = self.back[i][j]  # type: ignore[misc]
            yield pi, pj, tag, i, j
            i, j = pi, pj


class _Lines:
    """Line-level DP between answer lines and page lines."""

    def __init__(self, answer: list[list[str]], page: list[GeoLine]) -> None:
        self.answer, self.page = answer, page
        self.chars = [_chars(a) for a in answer]
        heights = [ln.height for ln in page]
        self.h = median(heights) if heights else 1.0
        self.scale = [ln.height / self.h if ln.height > 1.3 * self.h else 1.0 for ln in page]
        self.width = [ln.box[2] - ln.box[0] for ln in page]
        total_pred = sum(self.chars) or 1
        self.unit = sum(w / s for w, s in zip(self.width, self.scale)) / total_pred  # px per char at h

    def fit(self, ia: int, na: int, jp: int, np_: int) -> float:
        """How well answer lines ``ia..`` fill page lines ``jp..``: width and word count."""
        chars = max(1, sum(self.chars[ia:ia + na]) + (na - 1) - (np_ - 1))  # a line break is no space on the page
        width = sum(self.width[jp:jp + np_])
        s = self.scale[jp]
        words = sum(len(a) for a in self.answer[ia:ia + na])
        boxes = sum(len(p.words) for p in self.page[jp:jp + np_])
        return _lr(chars * self.unit * s, width, self.unit * s) + 0.4 * abs(words - boxes) / max(words, boxes, 1)

    def cost(self, ia: int, na: int, jp: int, np_: int) -> float:
        c = self.fit(ia, na, jp, np_)
        if na > 1 or np_ > 1:
            c += 0.25 * (na - 1) + SPLIT_LINE * (np_ - 1)
            if np_ > 1:  # the continuation lines must follow on below, left-aligned-ish
                a, b = self.page[jp].box, self.page[jp + np_ - 1].box
                if b[1] < a[1]:
                    c += 1.0
        return c

    def run(self, max_split: int = MAX_SPLIT) -> list[tuple[int, int, int, int, float]]:
        n, m = len(self.answer), len(self.page)
        t = _Table(n, m)
        moves = [(1, 1), (2, 1)] + [(1, k) for k in range(2, max_split + 1)]
        for i, j, cur in t.cells():
            if i < n:
                t.relax(i + 1, j, cur + SKIP_ANSWER_LINE, (i, j, 0))
            if j < m:
                t.relax(i, j + 1, cur + SKIP_PAGE_LINE * (1.0 if len(self.page[j].words) > 1 else 0.5), (i, j, 0))
            for na, np_ in moves:
                if i + na <= n and j + np_ <= m:
                    t.relax(i + na, j + np_, cur + self.cost(i, na, j, np_), (i, j, 1))
        pairs = [(pi, i - pi, pj, j - pj, self.fit(pi, i - pi, pj, j - pj))
                 for pi, pj, matched, i, j in t.path(n, m) if matched]
        pairs.reverse()
        return pairs


def _words(words: list[str], boxes: list[tuple[Box, int]], line_conf: float) -> list[PlacedWord]:
    """Word-level DP: ``words`` onto ``boxes`` (each with its page line index), in order."""
    n, m = len(words), len(boxes)
    letters = sum(len(w) for w in words) or 1
    unit = sum(b[2] - b[0] for b, _ in boxes) / letters
    t = _Table(n, m)

    def span(j: int, k: int) -> float | None:
        if any(boxes[x][1] != boxes[j][1] for x in range(j, j + k)):
            return None  # one word never runs over two page lines
        return boxes[j + k - 1][0][2] - boxes[j][0][0]

    for i, j, cur in t.cells():
        if i < n:
            t.relax(i + 1, j, cur + SKIP_WORD, (i, j, "skip"))
        if j < m:
            bw = boxes[j][0][2] - boxes[j][0][0]
            t.relax(i, j + 1, cur + SKIP_BOX * (0.3 if bw < unit * 1.2 else 1.0), (i, j, "skip"))
        if i < n:
            for k in (1, 2, 3):
                w = span(j, k) if j + k <= m else None
                if w is None:
                    break
                t.relax(i + 1, j + k, cur + _lr(len(words[i]) * unit, w, unit) + SPLIT_WORD * (k - 1), (i, j, "word"))
        if i + 1 < n and j < m:
            w = boxes[j][0][2] - boxes[j][0][0]
            t.relax(i + 2, j + 1, cur + _lr((len(words[i]) + len(words[i + 1]) + 1) * unit, w, unit) + SHARED_BOX,
                    (i, j, "shared"))
    out: list[PlacedWord | None] = [None] * n
    for pi, pj, kind, i, j in t.path(n, m):
        if kind == "word":
            bs = [b for b, _ in boxes[pj:j]]
            box = (min(b[0] for b in bs), min(b[1] for b in bs), max(b[2] for b in bs), max(b[3] for b in bs))
            conf = line_conf * math.exp(-WORD_K * _lr(len(words[pi]) * unit, box[2] - box[0], unit))
            out[pi] = _word(words[pi], box, conf, boxes[pj][1])
        elif kind == "shared":
            (x0, y0, x1, y1), ln = boxes[pj]
            a, b = len(words[pi]), len(words[pi + 1])
            cut = x0 + (x1 - x0) * (a + 0.5) / (a + b + 1)
            conf = line_conf * math.exp(-WORD_K * _lr((a + b + 1) * unit, x1 - x0, unit)) * 0.8
            out[pi] = _word(words[pi], (x0, y0, int(cut), y1), conf, ln)
            out[pi + 1] = _word(words[pi + 1], (int(cut), y0, x1, y1), conf, ln)
    return [w if w is not None else PlacedWord(words[k], None, None) for k, w in enumerate(out)]


def _word(text: str, box: Box, conf: float, line: int) -> PlacedWord:
    if conf < MIN_CONFIDENCE:
        return PlacedWord(text, None, None)
    return PlacedWord(text, box, round(conf, 3), line)


def reflowed(answer: list[list[str]], page: list[GeoLine]) -> bool:
    """Whether the answer's lines are paragraphs (the model joined the page's lines): most of
    its characters are in lines longer than the page's longest line holds by half again (one
    long title or footnote over a table is not a reflowed answer)."""
    lines = _Lines(answer, page)
    widest = max(w / s for w, s in zip(lines.width, lines.scale)) / lines.unit
    long = sum(c for c in lines.chars if c > 1.5 * widest)
    return long > 0.5 * sum(lines.chars)


def _monotone(answer: list[list[str]], page: list[GeoLine]) -> list[tuple[int, list[PlacedWord]]]:
    """Lines paired in both reading orders at once (``_Lines``): right when the orders agree,
    and the way to place a reflowed answer (a paragraph over many page lines)."""
    out = []
    lines = _Lines(answer, page)
    for ia, na, jp, np_, cost in lines.run(MAX_SPLIT_REFLOWED if reflowed(answer, page) else MAX_SPLIT):
        words = [w for a in answer[ia:ia + na] for w in a]
        boxes = [(b, j) for j in range(jp, jp + np_) for b in page[j].words]
        got = _words(words, boxes, math.exp(-LINE_K * max(0.0, cost - 0.1)))
        k = 0
        for a in range(ia, ia + na):
            out.append((a, got[k:k + len(answer[a])]))
            k += len(answer[a])
    return out


def _spatial(answer: list[list[str]], page: list[GeoLine]) -> list[tuple[int, list[PlacedWord]]]:
    """Lines paired by a reader's walk over the page (``linematch``): orders may disagree."""
    out = []
    for mt in match_lines(answer, page):
        words = answer[mt.answer]
        if len(words) < SHORT_LINE and not mt.context:
            continue  # a line of one or two words fits too many places: only in context
        boxes = [(b, mt.page) for b in page[mt.page].words[mt.start:mt.start + mt.count]]
        conf = math.exp(-LINE_K * max(0.0, mt.cost - 0.15)) * (1.0 if mt.context else NO_CONTEXT)
        out.append((mt.answer, _words(words, boxes, conf)))
    return out


def _one_word_a_box(placed: list[list[PlacedWord]]) -> None:
    """A box claimed by two answer words keeps the more confident one; the other is unplaced."""
    owner: dict[tuple, tuple[int, int]] = {}
    for a, line in enumerate(placed):
        for k, w in enumerate(line):
            if w.box is None:
                continue
            prev = owner.get(w.box)
            if prev is None or (placed[prev[0]][prev[1]].confidence or 0) < (w.confidence or 0):
                if prev is not None:
                    placed[prev[0]][prev[1]] = PlacedWord(placed[prev[0]][prev[1]].text, None, None)
                owner[w.box] = (a, k)
            else:
                line[k] = PlacedWord(w.text, None, None)


def place_text(text: str, page: list[GeoLine], mode: str = "spatial") -> Placement:
    """The answer's plain ``text`` placed on the page's lines (the one entry point)."""
    answer = [ln.split() for ln in text.splitlines() if ln.split()]
    placed: list[list[PlacedWord]] = [[PlacedWord(w, None, None) for w in a] for a in answer]
    if answer and page:
        ways = [_spatial if mode == "spatial" else _monotone]
        if mode == "spatial" and reflowed(answer, page):
            ways.append(_monotone)   # a reader's walk pairs whole lines; a paragraph needs splitting
        best = None
        for way in ways:
            trial = [list(a) for a in placed]
            for a, got in way(answer, page):
                trial[a] = list(got)
            _one_word_a_box(trial)
            score = sum(w.confidence or 0.0 for a in trial for w in a)
            if best is None or score > best[0]:
                best = (score, trial)
        placed = best[1]
    total = sum(len(a) for a in answer)
    n_placed = sum(1 for a in placed for w in a if w.box is not None)
    return Placement(tuple(tuple(a) for a in placed), total, n_placed)
