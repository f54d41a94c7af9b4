"""The answer's words on recognised words, by their text, in whatever order the page reads.

Why text and not order: on tables, forms, charts and pages with sidebars the answer's reading
order and the page's disagree, so any alignment that walks both in order drifts. A cheap
recognition pass (``readwords.py``) says roughly what each box holds; matching by text is then
order-free, like a diff that allows moved blocks:

1. **Anchors.** Runs of consecutive answer words that equal (after ``norm``) consecutive
   recognised words, longest first (greedy string tiling), each taken only when it cannot be
   somewhere else: a run is taken when it is long (``LONG_RUN`` words, or ``LONG_CHARS``
   characters over at least two words) or when it occurs once in the answer's words and once in
   the page's words not yet taken. Repeated until nothing more is taken (a taken run makes
   others unique).
2. **Extension.** From each anchor outwards in both sequences: the next answer word and the next
   recognised word are paired when their texts are close (``SIMILAR``: a misread letter, an
   answer with a wrong character), or when two answer words equal one recognised word (a space
   the page closed; the box is cut at the character proportion) or one answer word two
   recognised ones (boxes joined).
3. **Gaps.** Between two placed answer words whose recognised words leave a gap of the same
   number of words, the words are paired in order (misread words between good ones); gaps of
   different sizes on one recognised line go to the width alignment (``align._words``).

A word none of this reaches stays without a box (counted), never placed by a guess. Every
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

LONG_RUN = 4          # a run of this many equal words is taken even if it repeats
LONG_CHARS = 12       # ... or of at least two words and this many characters
SIMILAR = 0.6         # texts this close (difflib ratio) pair in an extension
ANCHOR = 0.95
GAP = 0.7
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
        free_a = [t for i, t in enumerate(self.a) if i not in self.pair]
        free_r = [t for j, t in enumerate(self.r) if j not in self.used]
        counts: dict[int, tuple[Counter, Counter]] = {}

        def unique(i: int, j: int, n: int) -> bool:
            if n not in counts:
                counts[n] = (Counter(tuple(free_a[k:k + n]) for k in range(len(free_a) - n + 1)),
                             Counter(tuple(free_r[k:k + n]) for k in range(len(free_r) - n + 1)))
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
            if n >= LONG_RUN or (n >= 2 and chars >= LONG_CHARS) or (chars >= 2 and unique(i, j, n)):
                for k in range(n):
                    self.take(i + k, j + k, ANCHOR)
                taken = True
        return taken

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
        if not self.free(ni, nj):
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
            if len(words) == len(inner) and len(words) <= MAX_GAP:
                for i, j in zip(words, inner):
                    self.take(i, j, GAP)
            elif len({self.read[j].line for j in inner}) == 1:
                line = self.read[j1 + 1].line
                boxes = [(self.read[j].box, line) for j in inner]
                for i, got in zip(words, _words([answer[i] for i in words], boxes, GAP + 0.1)):
                    if got.box is not None:
                        self.pair[i] = (got.box, got.confidence or GAP, line)
                        self.at[i] = j1 + 1
                self.used.update(inner)


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
        m.gaps(flat)
        m.extend()
    out, k = [], 0
    for ln in answer:
        row = []
        for w in ln:
            got = m.pair.get(k)
            row.append(PlacedWord(w, got[0], round(got[1], 3), got[2]) if got else PlacedWord(w, None, None))
            k += 1
        out.append(tuple(row))
    return Placement(tuple(out), len(flat), len(m.pair))
