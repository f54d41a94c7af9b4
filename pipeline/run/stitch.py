"""Join the answers of a page's strips into the page's text (and its boxes), in reading order.

The strips come in reading order (``pipeline.inputs.strips``: columns cut apart first, each read
top to bottom), so joining is concatenation, except across a *seam*: where no blank run was tall
enough, two strips of one column share ``overlap`` rows, and the text lines in those rows are
read twice (a line crossing a strip's edge is read whole in one strip and in part in the other).
The repeat is removed:

* **with boxes** (``format: json``): the seam is the middle of the shared rows; the upper strip
  keeps its lines whose centre lies above it, the lower strip those whose centre lies on or below
  it. A line crossing the upper strip's bottom edge is whole in the lower strip and its centre is
  below the middle, and the other way round, so each line is kept once, whole.
* **text only** (the hosted model's answers): the longest run of consecutive lines that the end of
  the upper strip and the start of the lower strip share (compared with case and spaces folded,
  a similarity of at least ``SAME_LINE``, markup left out) is the overlap; the upper strip keeps its lines up to
  the end of that run (what follows is the part-line cut at its bottom edge), the lower strip
  starts after it (what precedes is the part-line cut at its top edge). An HTML table, one line
  of the answer, is compared row by row (its rows on lines of their own at a seam), and when
  the lower strip's table lost its opening rows as read twice, the upper strip's table runs on
  into it: one table. With no shared line
  (an overlap shorter than a text line) both are kept whole: text is never dropped on a guess.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.inputs.geometry import StripOffset

if TYPE_CHECKING:
    from pipeline.inputs.strips import Region

SAME_LINE = 0.85   # difflib ratio above which two lines are one line read twice
SEAM_WINDOW = 12   # lines looked at on each side of a seam


@dataclass
class Piece:
    """One strip's answer: where it lies on the page's upload, its text and structured result."""

    region: Region
    text: str
    structured: Any | None
    record: dict | None = None   # what the page's .json facts say of this strip


def _fold(line: str) -> str:
    """The line as compared across a seam: its text without markup (tags such as
    ``<page_number>``, ``<td>``: two page numbers in the same tags are 85 % alike by their tags
    alone, and a whole strip after "the same line" would be dropped), spaces and case folded."""
    return re.sub(r"\s+", " ", re.sub(r"<[^<>]*>", " ", line)).strip().casefold()


def _same(a: str, b: str) -> bool:
    a, b = _fold(a), _fold(b)
    return bool(a) and bool(b) and (a == b or difflib.SequenceMatcher(None, a, b).ratio() >= SAME_LINE)


def seam_lines(upper: list[str], lower: list[str]) -> tuple[list[str], list[str]]:
    """``upper`` and ``lower`` with the lines read twice across their seam removed (text only)."""
    tail = upper[-SEAM_WINDOW:]
    head = lower[:SEAM_WINDOW]
    best = (0, 0, 0)   # (run length, index in tail, index in head)
    for i in range(len(tail)):
        for j in range(len(head)):
            k = 0
            while i + k < len(tail) and j + k < len(head) and _same(tail[i + k], head[j + k]):
                k += 1
            if k > best[0] or (k == best[0] and k and i > best[1]):
                best = (k, i, j)
    k, i, j = best
    if k == 0:
        return upper, lower
    cut_upper = len(upper) - len(tail) + i + k
    return upper[:cut_upper], lower[j + k:]


def _lines_of(structured: dict) -> list[tuple[dict, dict]]:
    return [(b, ln) for b in structured.get("blocks") or [] if isinstance(b, dict)
            for ln in b.get("lines") or [] if isinstance(ln, dict) and isinstance(ln.get("box"), list)]


def _has_boxes(structured: Any) -> bool:
    return isinstance(structured, dict) and bool(_lines_of(structured))


def _keep_lines(structured: dict, keep) -> dict:
    """The result with only the lines ``keep(line)`` accepts (empty blocks dropped)."""
    blocks = []
    for b in structured.get("blocks") or []:
        lines = [ln for ln in b.get("lines") or [] if keep(ln)]
        if lines:
            blocks.append({**b, "lines": lines})
    return {**structured, "blocks": blocks, "text": "\n".join(ln.get("text", "") for b in blocks for ln in b["lines"])}


def _centre_y(line: dict) -> float:
    return (float(line["box"][1]) + float(line["box"][3])) / 2


def stitch(pieces: list[Piece], width: int, height: int) -> tuple[str, Any | None]:
    """The page's text and (when every strip has boxes) its structured result on the page's upload."""
    boxed = bool(pieces) and all(_has_boxes(p.structured) for p in pieces)
    if boxed:
        moved = [StripOffset(p.region.x0, p.region.y0).shift_result(p.structured) for p in pieces]
        for n in range(1, len(pieces)):
            seam = _seam(pieces[n - 1].region, pieces[n].region)
            if seam is None:
                continue
            moved[n - 1] = _keep_lines(moved[n - 1], lambda ln, s=seam: _centre_y(ln) < s)
            moved[n] = _keep_lines(moved[n], lambda ln, s=seam: _centre_y(ln) >= s)
        texts = [_text_of(m) for m in moved]
        text = "\n".join(t for t in texts if t)
        first = moved[0] if moved else {}
        structured = {k: v for k, v in first.items() if k not in ("blocks", "text", "width", "height")}
        structured.update({"width": width, "height": height, "text": text,
                           "blocks": [b for m in moved for b in m.get("blocks") or []]})
        return text, structured
    seams = [n for n in range(1, len(pieces)) if _seam(pieces[n - 1].region, pieces[n].region) is not None]
    at_seam = {m for n in seams for m in (n - 1, n)}
    lines = [(_rows_apart(p.text) if n in at_seam else p.text).splitlines() for n, p in enumerate(pieces)]
    for n in seams:
        lines[n - 1], lines[n] = seam_lines(lines[n - 1], lines[n])
        _rejoin_table(lines[n - 1], lines[n])
    return "\n".join("\n".join(ls) for ls in lines if ls), None


_ROW_END = re.compile(r"(</tr\s*>)\s*(?=<tr\b)", re.I)
_TABLE_END = re.compile(r"</table\s*>\s*$", re.I)


def _rows_apart(text: str) -> str:
    """An HTML table's rows on lines of their own: a table is one line of the hosted model's
    answer, and the rows read twice across a seam are compared row by row only so (the table
    stays one table: the Markdown rule reads it across lines)."""
    return _ROW_END.sub(r"\1\n", text)


def _rejoin_table(upper: list[str], lower: list[str]) -> None:
    """In place: when the lower strip now starts inside a table (its opening row was read twice
    and dropped), the upper strip's table, which holds those rows, runs on into it."""
    if upper and lower and re.match(r"\s*<tr\b", lower[0], re.I) and _TABLE_END.search(upper[-1]):
        upper[-1] = _TABLE_END.sub("", upper[-1])


def _text_of(structured: dict) -> str:
    text = structured.get("text")
    return text.strip("\n") if isinstance(text, str) else ""


def _seam(upper: Region, lower: Region) -> float | None:
    """The middle of the rows two strips of one column share, or None when they share none."""
    if lower.overlap <= 0 or (upper.x0, upper.x1) != (lower.x0, lower.x1) or lower.y0 >= upper.y1:
        return None
    return (lower.y0 + upper.y1) / 2
