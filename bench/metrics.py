"""Measures shared by the benchmarks: CER (bit-parallel Levenshtein), bag-of-words F1, peak RSS.

Normalisation as in ``../shared/embedded-ocr.md``: NFKC, whitespace collapsed to single spaces,
case-sensitive for CER; bag-of-words lower-cased with edge punctuation stripped.
"""

from __future__ import annotations

import re
import resource
import string
import unicodedata
from collections import Counter
from pathlib import Path


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).replace("\u0364", "")
    return re.sub(r"\s+", " ", text).strip()


def levenshtein(a: str, b: str) -> int:
    """Edit distance by Myers/Hyyrö bit-vectors on Python ints: O(len(a) * len(b) / 64) in C."""
    if len(a) < len(b):
        a, b = b, a
    m = len(b)
    if m == 0:
        return len(a)
    peq: dict[str, int] = {}
    for i, c in enumerate(b):
        peq[c] = peq.get(c, 0) | (1 << i)
    mask = (1 << m) - 1
    last = 1 << (m - 1)
    pv, mv, score = mask, 0, m
    for c in a:
        eq = peq.get(c, 0)
        xv = eq | mv
        xh = ((((eq & pv) + pv) & mask) ^ pv) | eq
        ph = (mv | ~(xh | pv)) & mask
        mh = pv & xh
        if ph & last:
            score += 1
        elif mh & last:
            score -= 1
        ph = ((ph << 1) | 1) & mask
        mh = (mh << 1) & mask
        pv = (mh | ~(xv | ph)) & mask
        mv = ph & xv
    return score


def cer(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edits, reference length) after normalisation; sum both over a set for a weighted CER."""
    ref, hyp = normalise(reference), normalise(hypothesis)
    return levenshtein(ref, hyp), len(ref)


def _bag(text: str) -> Counter:
    words = (w.strip(string.punctuation + "“”‘’«»—–") for w in normalise(text).lower().split())
    return Counter(w for w in words if w)


def bag_f1(reference: str, hypothesis: str) -> float:
    ref, hyp = _bag(reference), _bag(hypothesis)
    if not ref and not hyp:
        return 1.0
    common = sum((ref & hyp).values())
    if common == 0:
        return 0.0
    p, r = common / sum(hyp.values()), common / sum(ref.values())
    return 2 * p * r / (p + r)


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
