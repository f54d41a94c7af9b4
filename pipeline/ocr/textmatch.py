"""The answer's words on recognised words, by their text, in whatever order the page reads.

Why text and not order: on tables, forms, charts and pages with sidebars the answer's reading
order and the page's disagree, so any alignment that walks both in order drifts. A cheap
recognition pass (``readwords.py``) says roughly what each box holds; matching by text is then
order-free, like a diff that allows moved blocks:

1. **Anchors.** Runs of consecutive answer words that equal (after ``norm``) consecutive
   recognised words, longest first (greedy string tiling), each taken only when it cannot be
   somewhere else: it occurs once in the whole answer and once among all the page's words.
   Repeated until nothing more is taken (a run cut by a longer one is found again in parts).
   Runs that repeat are placed next to their context (``beside``) or not at all.
2. **Extension.** From each anchor outwards in both sequences: the next answer word and the next
   recognised word are paired when their texts are close (``SIMILAR``: a misread letter, an
   answer with a wrong character), or when two answer words equal one recognised word (a space
   the page closed; the box is cut at the character proportion) or one answer word two
   recognised ones (boxes joined).
3. **Gaps.** Between two placed answer words whose recognised words leave a gap whose text,
   joined, is close to the answer's (``GAP_TEXT``: misread words between good ones), the words
   are paired in order when the gap has as many words on both sides; gaps of different sizes on
   one recognised line go to the width alignment (``align._words``).
4. **Answer lines stay together** (``keep_lines_together``): a word placed far from every
   placed neighbour of its answer line, with other lines' words between, loses its box.

``place_by_text(..., before=)`` runs the same on a second reading of the page for the words an
earlier one left unplaced (``placement.read_and_match``). A word none of this reaches stays without a box (counted), never placed by a guess. Every
recognised word takes at most one answer word (or a cut share of its box). Confidences:
an anchor ``ANCHOR``, an extension by the texts' similarity, a gap ``GAP``.
"""

from __future__ import annotations

import heapq
import unicodedata
from collections import Counter, defaultdict
from difflib import SequenceMatcher

from .align import Placement, PlacedWord, _words
from .inkgeom import Box
from .readwords import ReadWord

FAR = 8.0             # a word this many heights from its answer-line neighbours is misplaced
BESIDE = 2.0          # ... and may take a free word of its text this near them instead
NEXT_LINE = 1.5       # an extension goes on to a line starting at most this many heights below
NEAR_CONTEXT = 6.0    # a repeated run is placed at most this many word heights from its context
CLEARLY = 1.5         # ... and the next candidate must be this many times (+ 1 height) farther
CONTEXT_WORDS = 3     # context: the placed answer words up to this far before or after the run
CONTEXT = 0.8         # confidence of a run placed by its context
SIMILAR = 0.6         # texts this close (difflib ratio) pair in an extension
ANCHOR = 0.95
GAP = 0.7
GAP_TEXT = 0.5        # a gap's answer words and recognised words, joined, at least this similar
GAP_WIDTHS = 0.6      # a gap placed by widths (unequal counts) keeps only words this confident
MAX_GAP = 8           # equal gaps longer than this are not paired blindly
_QUOTES = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-", "‐": "-"})
_PUNCT = ".,;:!?\"'()[]{}*|"


def norm(word: str) -> str:
    """Lower case, plain quotes and dashes, surrounding punctuation off (kept when that is all)."""
    w = unicodedata.normalize("NFKC", word).translate(_QUOTES).lower()
    return w.strip(_PUNCT) or w


def similarity(a: str, b: str) -> float:
    if a == b:
        return 1.0
    return SequenceMatcher(None, a, b, autojunk=False).ratio()


class _Matcher:
    def __init__(self, answer: list[str], read: list[ReadWord]) -> None:
        self.a = [norm(w) for w in answer]
        self.r = [norm(w.text) for w in read]
        self.read = read
        self.pair: dict[int, tuple[Box, float, int]] = {}   # answer index -> (box, confidence, line)
        self.used: set[int] = set()                           # recognised words taken
        self.by_read: dict[int, int] = {}                     # recognised index -> an answer index
        self.at: dict[int, int] = {}                          # answer index -> its recognised index
        heights = sorted(w.box[3] - w.box[1] for w in read)
        self.h = float(max(1, heights[len(heights) // 2])) if heights else 1.0

    def take(self, i: int, j: int, conf: float, box: Box | None = None) -> None:
        self.pair[i] = (box or self.read[j].box, conf, self.read[j].line)
        self.used.add(j)
        self.by_read[j] = i
        self.at[i] = j

    def free(self, i: int, j: int) -> bool:
        return 0 <= i < len(self.a) and 0 <= j < len(self.r) and i not in self.pair and j not in self.used

    # 1. anchors ---------------------------------------------------------------------------
    def anchors(self) -> None:
        while self._tile():
            pass

    def _runs(self) -> list[tuple[int, int, int]]:
        where: dict[str, list[int]] = defaultdict(list)
        for j, t in enumerate(self.r):
            if j not in self.used:
                where[t].append(j)
        runs = []
        for i, t in enumerate(self.a):
            if i in self.pair:
                continue
            for j in where.get(t, ()):
                if self.free(i - 1, j - 1) and self.a[i - 1] == self.r[j - 1]:
                    continue   # not where the run starts
                n = 1
                while self.free(i + n, j + n) and self.a[i + n] == self.r[j + n]:
                    n += 1
                runs.append((i, j, n))
        return runs

    def _tile(self) -> bool:
        # A run is unique when it occurs once in the whole answer and once among all the page's
        # words: a phrase the answer says twice may be in either place, and the one occurrence
        # left free on the page may be the wrong one when the recogniser missed or misread the
        # right one. Repeated runs are placed by their context (``beside``), or not at all.
        counts: dict[int, tuple[Counter, Counter]] = {}

        def unique(i: int, j: int, n: int) -> bool:
            if n not in counts:
                counts[n] = (Counter(tuple(self.a[k:k + n]) for k in range(len(self.a) - n + 1)),
                             Counter(tuple(self.r[k:k + n]) for k in range(len(self.r) - n + 1)))
            gram = tuple(self.a[i:i + n])
            return counts[n][0][gram] == 1 and counts[n][1][gram] == 1

        taken = False
        heap = [(-n, i, j) for i, j, n in self._runs()]
        heapq.heapify(heap)
        while heap:
            n, i, j = heapq.heappop(heap)
            n = -n
            if not all(self.free(i + k, j + k) for k in range(n)):
                continue   # a longer run took part of it; its free parts are found next round
            chars = sum(len(self.a[i + k]) for k in range(n))
            if chars >= 2 and unique(i, j, n):
                for k in range(n):
                    self.take(i + k, j + k, ANCHOR)
                taken = True
        return taken

    # 1b. repeated runs, placed beside their context ----------------------------------------
    def beside(self) -> bool:
        """Runs that repeat (a form's repeated block, a table's repeated cells), each taken at
        the occurrence next to where the answer's neighbouring words were placed: the nearest
        by box distance (in word heights), within ``NEAR_CONTEXT`` and clearly nearer than the
        next candidate (``CLEARLY``); a run with no placed neighbour, or two candidates about
        as near, stays unplaced."""
        by_start: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for i, j, n in self._runs():
            by_start[i].append((n, j))
        taken = False
        for i in sorted(by_start, key=lambda i: -max(n for n, _ in by_start[i])):
            scored = []
            for n, j in by_start[i]:
                if not all(self.free(i + k, j + k) for k in range(n)):
                    continue
                d = self._context_distance(i, n, j)
                if d is not None:
                    scored.append((d, -n, j, n))
            scored.sort()
            if not scored or scored[0][0] > NEAR_CONTEXT:
                continue
            if len(scored) > 1 and scored[1][0] < CLEARLY * scored[0][0] + 1.0:
                continue
            _, _, j, n = scored[0]
            for k in range(n):
                self.take(i + k, j + k, CONTEXT)
            taken = True
        return taken

    def _context_distance(self, i: int, n: int, j: int) -> float | None:
        """Box distance (word heights) from the run at ``j`` to the nearest placed answer word
        within ``CONTEXT_WORDS`` before or after the answer run ``i..i+n``."""
        best = None
        first, last = self.read[j].box, self.read[j + n - 1].box
        for k in range(1, CONTEXT_WORDS + 1):
            for a, box in ((i - k, first), (i + n - 1 + k, last)):
                if a in self.pair:
                    d = _distance(self.pair[a][0], box) / self.h + 0.5 * (k - 1)
                    best = d if best is None else min(best, d)
        return best

    # 2. extension -------------------------------------------------------------------------
    def extend(self) -> None:
        work = sorted(self.by_read.items())   # (recognised index, answer index) of this pass
        while work:
            j, i = work.pop()
            for step in (1, -1):
                got = self._step(i, j, step)
                if got:
                    work.append(got)

    def _step(self, i: int, j: int, step: int) -> tuple[int, int] | None:
        ni, nj = i + step, j + step
        if not self.free(ni, nj) or not self._follows(*sorted((j, nj))):
            return None
        s = similarity(self.a[ni], self.r[nj])
        if s >= SIMILAR:
            self.take(ni, nj, 0.5 + 0.45 * s)
            return nj, ni
        # two answer words in one recognised word (the page's space closed up)
        i2 = ni + step
        if self.free(i2, nj):
            lo, hi = sorted((ni, i2))
            joined = self.a[lo] + self.a[hi]
            if similarity(joined, self.r[nj]) >= 0.8:
                x0, y0, x1, y1 = self.read[nj].box
                la, lb = len(self.a[lo]), len(self.a[hi])
                cut = int(x0 + (x1 - x0) * la / (la + lb))
                self.take(lo, nj, 0.7, (x0, y0, cut, y1))
                self.pair[hi] = ((cut, y0, x1, y1), 0.7, self.read[nj].line)
                self.at[hi] = nj
                return nj, i2
        # one answer word over two recognised words (a word read as two)
        j2 = nj + step
        if self.free(ni, j2) and self.read[nj].line == self.read[j2].line:
            lo, hi = sorted((nj, j2))
            if similarity(self.a[ni], self.r[lo] + self.r[hi]) >= 0.8:
                a, b = self.read[lo].box, self.read[hi].box
                self.take(ni, lo, 0.7, (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])))
                self.used.add(hi)
                return j2, ni
        return None

    def _follows(self, j: int, k: int) -> bool:
        """Recognised word ``k`` is where reading goes after ``j``: the same text line, or a line
        starting just below (the sparse reading's order alone says nothing)."""
        a, b = self.read[j], self.read[k]
        if a.line == b.line:
            return True
        return b.box[1] >= a.box[1] + 0.5 * self.h and b.box[1] - a.box[3] <= NEXT_LINE * self.h

    # 4. answer lines are page lines ---------------------------------------------------------
    def keep_lines_together(self, line_of: list[int]) -> None:
        """An answer line is read on the page as one line (or, reflowed, as consecutive ones):
        a word placed far (``FAR`` heights) from every placed neighbour of its answer line, on
        another row or with other lines' words between them (not a table row's cells), was
        matched by its text alone in the wrong place (a line number of the other column, a
        repeated label): it loses its box, and takes instead a free recognised word of similar
        text right beside such a neighbour, if there is one."""
        def neighbours(i: int) -> list[Box]:
            return [self.pair[k][0] for k in (i - 1, i + 1)
                    if 0 <= k < len(self.a) and line_of[k] == line_of[i] and k in self.pair]
        def apart(i: int, b: Box) -> bool:
            """Far, and not a table row's cells: another row, or other lines' words between."""
            a = self.pair[i][0]
            if _distance(a, b) <= FAR * self.h:
                return False
            if min(a[3], b[3]) - max(a[1], b[1]) < 0.5 * self.h:
                return True
            lo, hi = min(a[2], b[2]), max(a[0], b[0])
            return any(lo <= r.box[0] and r.box[2] <= hi and min(r.box[3], a[3]) - max(r.box[1], a[1]) > 0.5 * self.h
                       and line_of[k] != line_of[i] for j, r in enumerate(self.read)
                       for k in [self.by_read.get(j, -1)] if k >= 0)
        for i in sorted(self.pair):
            near = neighbours(i)
            if near and all(apart(i, b) for b in near):
                del self.pair[i]
                j = self.at.pop(i, None)
                if j is not None:
                    self.used.discard(j)
                    self.by_read.pop(j, None)
        for i in range(len(self.a)):
            near = neighbours(i) if i not in self.pair else []
            if not near:
                continue
            cands = sorted((min(_distance(r.box, b) for b in near), j) for j, r in enumerate(self.read)
                           if j not in self.used and similarity(self.a[i], self.r[j]) >= SIMILAR)
            if cands and cands[0][0] <= BESIDE * self.h and (len(cands) == 1 or cands[1][0] > cands[0][0] + self.h):
                self.take(i, cands[0][1], CONTEXT)

    # 3. gaps ------------------------------------------------------------------------------
    def gaps(self, answer: list[str]) -> None:
        placed = sorted(self.pair)
        for i1, i2 in zip(placed, placed[1:]):
            if i2 - i1 < 2 or i1 not in self.at or i2 not in self.at:
                continue
            j1, j2 = self.at[i1], self.at[i2]
            if j2 - j1 < 2:
                continue
            inner = range(j1 + 1, j2)
            if any(j in self.used for j in inner):
                continue
            words = list(range(i1 + 1, i2))
            joined = similarity("".join(self.a[i] for i in words), "".join(self.r[j] for j in inner))
            if joined < GAP_TEXT:
                continue   # not the same words misread: the two orders differ here
            if len(words) == len(inner) and len(words) <= MAX_GAP:
                for i, j in zip(words, inner):
                    self.take(i, j, GAP)
            elif len({self.read[j].line for j in inner}) == 1:
                line = self.read[j1 + 1].line
                boxes = [(self.read[j].box, line) for j in inner]
                for i, got in zip(words, _words([answer[i] for i in words], boxes, GAP + 0.1)):
                    if got.box is not None and (got.confidence or 0) >= GAP_WIDTHS:
                        self.pair[i] = (got.box, got.confidence or GAP, line)
                        self.at[i] = j1 + 1
                self.used.update(inner)


def _distance(a: Box, b: Box) -> float:
    """Gap between two boxes (0 when they touch or overlap)."""
    dx = max(0, b[0] - a[2], a[0] - b[2])
    dy = max(0, b[1] - a[3], a[1] - b[3])
    return float((dx * dx + dy * dy) ** 0.5)


def _overlaps(a: Box, b: Box) -> bool:
    ix = min(a[2], b[2]) - max(a[0], b[0])
    iy = min(a[3], b[3]) - max(a[1], b[1])
    if ix <= 0 or iy <= 0:
        return False
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1])) or 1
    return ix * iy > 0.3 * smaller


def place_by_text(text: str, read: list[ReadWord], before: Placement | None = None) -> Placement:
    """The answer's plain ``text`` placed on the recognised words ``read`` (the one entry point
    of this method, as ``align.place_text`` is of the width alignment). With ``before`` (an
    earlier pass over the same page), its placed words stay and only the others are placed, on
    recognised words that do not overlap a box already given."""
    answer = [ln.split() for ln in text.splitlines() if ln.split()]
    flat = [w for ln in answer for w in ln]
    line_of = [n for n, ln in enumerate(answer) for _ in ln]
    kept: dict[int, tuple[Box, float, int]] = {}
    if before is not None:
        words = [w for ln in before.lines for w in ln]
        kept = {i: (w.box, w.confidence or 0.0, w.line) for i, w in enumerate(words) if w.box is not None}
        taken = [b for b, _, _ in kept.values()]
        read = [r for r in read if not any(_overlaps(r.box, b) for b in taken)]
    m = _Matcher(flat, read)
    m.pair.update(kept)
    if flat and read:
        m.anchors()
        m.extend()
        while m.beside():
            m.extend()
        m.gaps(flat)
        m.extend()
        m.keep_lines_together(line_of)
    out, k = [], 0
    for ln in answer:
        row = []
        for w in ln:
            got = m.pair.get(k)
            row.append(PlacedWord(w, got[0], round(got[1], 3), got[2]) if got else PlacedWord(w, None, None))
            k += 1
        out.append(tuple(row))
    return Placement(tuple(out), len(flat), len(m.pair))
