"""Measures shared by the benchmarks: OCR accuracy as ``../shared/embedded-ocr.md`` §3 defines it, and peak RSS.

* ``normalise``: NFKC (also maps long s to s), combining small e removed, whitespace collapsed
  to single spaces; case is kept (CER is case-sensitive).
* ``levenshtein``: plain edit distance, bit-parallel (Myers 1999 / Hyyrö 2003) on Python's big
  ints: one pass over the longer string, each step a handful of big-int operations done in C,
  so a 5,000 x 5,000-character page costs milliseconds where the two-row DP costs ~10 s.
* ``bag_f1``: order-free bag-of-words F1, lower-cased, edge punctuation stripped.
* ``geometric_text``: words or lines put into one geometric order (rows by y-centre, each row
  left to right) - for rowCER, which measures recognition without reading-order conventions.
* ``peak_rss_mb``: this process's peak resident memory (VmHWM), for the memory figures.
"""

from __future__ import annotations

import re
import resource
import string
import unicodedata
from collections import Counter
from pathlib import Path
from statistics import median
from typing import Sequence

_EDGE_PUNCT = string.punctuation + "“”‘’„«»‹›—–…·•"


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).replace("\u0364", "")
    return re.sub(r"\s+", " ", text).strip()


def levenshtein(a: str, b: str) -> int:
    """Edit distance (unit costs) between ``a`` and ``b``; bit-vectors over the shorter one."""
    if len(a) < len(b):
        a, b = b, a
    m = len(b)
    if m == 0:
        return len(a)
    peq: dict[str, int] = {}
    for i, ch in enumerate(b):
        peq[ch] = peq.get(ch, 0) | (1 << i)
    mask = (1 << m) - 1
    high = 1 << (m - 1)
    pv, mv, score = mask, 0, m
    for ch in a:
        eq = peq.get(ch, 0)
        xv = eq | mv
        xh = (((eq & pv) + pv) ^ pv) | eq
        ph = mv | (~(xh | pv) & mask)
        mh = pv & xh
        if ph & high:
            score += 1
        elif mh & high:
            score -= 1
        ph = ((ph << 1) | 1) & mask
        mh = (mh << 1) & mask
        pv = mh | (~(xv | ph) & mask)
        mv = ph & xv
    return score


def cer_counts(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edits, reference length) after normalisation: sum both over a set for a weighted CER."""
    ref, hyp = normalise(reference), normalise(hypothesis)
    return levenshtein(ref, hyp), len(ref)


def _bag(text: str) -> Counter:
    words = (w.strip(_EDGE_PUNCT) for w in normalise(text).lower().split())
    return Counter(w for w in words if w)


def bag_f1(reference: str, hypothesis: str) -> float:
    ref, hyp = _bag(reference), _bag(hypothesis)
    if not ref and not hyp:
        return 1.0
    common = sum((ref & hyp).values())
    if common == 0:
        return 0.0
    precision, recall = common / sum(hyp.values()), common / sum(ref.values())
    return 2 * precision * recall / (precision + recall)


def geometric_text(items: Sequence[tuple[float, float, float, float, str]]) -> str:
    """Texts in rows by y-centre (within half a median height of the row's mean), left to right."""
    if not items:
        return ""
    h = median(max(1.0, it[3] - it[1]) for it in items)
    rows: list[list] = []
    for it in sorted(items, key=lambda it: (it[1] + it[3]) / 2):
        cy = (it[1] + it[3]) / 2
        if rows and abs(cy - rows[-1][0]) <= 0.5 * h:
            row = rows[-1]
            row[1].append(it)
            row[0] = sum((x[1] + x[3]) / 2 for x in row[1]) / len(row[1])
        else:
            rows.append([cy, [it]])
    return "\n".join(" ".join(it[4] for it in sorted(row[1], key=lambda it: it[0])) for row in rows)


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM belongs to the current address space, so unlike
    ``ru_maxrss`` it does not inherit the parent's footprint across fork+exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
