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
  starts after it (what precedes is the part-line cut at its top edge); a run with more than
  one line of text beyond it on either side is no seam (alike lines further in, such as totals
  differing by a digit, are different lines). An HTML table, one line
  of the answer, is compared row by row (its rows on lines of their own at a seam), and when
  the lower strip's table lost its opening rows as read twice, the upper strip's table runs on
  into it: one table. With no shared line
  (an overlap shorter than a text line) both are kept whole: text is never dropped on a guess.
  A ``<watermark>`` an earlier strip already gave is left out (``_watermarks_once``).

A seam need not join two strips of one column that follow each other. When a strip with a seam
is refused and cut finer (``pipeline.run.strips``), its own cut may part its columns, and so may
the strip above it: the rows the two shared are then in a column of the one and a column of the
other, with other strips read between them (a condensed transcript, four pages to a sheet, whose
first cut found no gutter: the lines of the rows read twice came back twice). So every strip
with a seam at its top (``overlap``) is matched with each strip read before it that shares rows
with it over a good part of the narrower width (``SHARED_WIDTH``; strips of one cut share rows
only at a seam), however many and wherever they come:

* with boxes, the seam is the middle of the rows it shares with them (down to the lowest of
  their bottoms); each keeps only its lines on its own side, and only the lines inside the
  other's width are judged;
* text only, a run of lines both read is looked for anywhere in either, anchored at the upper
  strip's end or the lower strip's start (``_seam_across``), and dropped from the lower strip
  when it holds at least ``MIN_SEAM_CHARS`` letters (one short line such as "A. Yes." is no
  proof).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.formats.model import answer_text, items
from pipeline.inputs.geometry import StripOffset, is_box

if TYPE_CHECKING:
    from pipeline.inputs.strips import Region

SAME_LINE = 0.85   # difflib ratio above which two lines are one line read twice
SEAM_WINDOW = 12   # lines looked at on each side of a seam
SHARED_WIDTH = 0.5  # strips share a seam when one's top lies in the other over this share of the narrower width
MIN_SEAM_CHARS = 20  # a seam between strips of different cuts drops lines only on a run of this many characters
SHORT_LINE = 3       # ... in which lines this short (line numbers) are passed over


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
    return _alike(_fold(a), _fold(b))


def _alike(a: str, b: str) -> bool:
    """Two folded lines are one line read twice: equal, or difflib-alike (the cheap upper bounds
    first: lengths too far apart, or too few letters in common, can never reach ``SAME_LINE``)."""
    if not a or not b:
        return False
    if a == b:
        return True
    if 2 * min(len(a), len(b)) < SAME_LINE * (len(a) + len(b)):
        return False
    matcher = difflib.SequenceMatcher(None, a, b)
    return matcher.quick_ratio() >= SAME_LINE and matcher.ratio() >= SAME_LINE


def seam_lines(upper: list[str], lower: list[str]) -> tuple[list[str], list[str]]:
    """``upper`` and ``lower`` with the lines read twice across their seam removed (text only)."""
    tail = upper[-SEAM_WINDOW:]
    head = lower[:SEAM_WINDOW]
    best = (0, 0, 0)   # (run length, index in tail, index in head)
    # a run may start in the lower strip only after at most one line with text: more than the
    # part-line cut at its top edge would be dropped
    starts = next((j for j in range(len(head)) if _inked(head[:j]) > 1), len(head))
    for i in range(len(tail)):
        for j in range(starts):
            k = 0
            while i + k < len(tail) and j + k < len(head) and _same(tail[i + k], head[j + k]):
                k += 1
            if k and _inked(tail[i + k:]) > 1:
                continue   # ... or more than the part-line at the upper strip's bottom edge
            if k > best[0] or (k == best[0] and k and i > best[1]):
                best = (k, i, j)
    k, i, j = best
    if k == 0:
        return upper, lower
    cut_upper = len(upper) - len(tail) + i + k
    return upper[:cut_upper], lower[j + k:]


def _inked(lines: list[str]) -> int:
    """Lines with text among ``lines``: what a seam would drop besides the lines read twice.

    Why: the rows two strips share hold a line or two; the run read twice must sit at the upper
    strip's end and the lower strip's start, with at most the one part-line each edge cuts
    beside it. A run matched further in (a ledger's "Total: 1,234" and "Total: 1,284" are
    difflib-alike) would drop every line before it in the lower strip, or after it in the upper."""
    return sum(1 for line in lines if line.strip())


def _lines_of(structured: dict) -> list[tuple[dict, dict]]:
    return [(b, ln) for b in structured.get("blocks") or [] if isinstance(b, dict)
            for ln in items(b.get("lines")) if isinstance(ln, dict) and is_box(ln.get("box"))]


def _has_boxes(structured: Any) -> bool:
    return isinstance(structured, dict) and bool(_lines_of(structured))


def _keep_lines(structured: dict, keep) -> dict:
    """The result with only the lines ``keep(line)`` accepts (empty blocks dropped)."""
    blocks = []
    for b in items(structured.get("blocks")):
        if not isinstance(b, dict):
            continue
        # a line without a box cannot be judged by where it lies: it stays (its text kept)
        lines = [ln for ln in items(b.get("lines")) if isinstance(ln, dict) and (not is_box(ln.get("box")) or keep(ln))]
        if lines:
            blocks.append({**b, "lines": lines})
    return {**structured, "blocks": blocks,
            "text": "\n".join(t for b in blocks for ln in b["lines"] if (t := answer_text(ln.get("text")) or ""))}


def _centre_y(line: dict) -> float:
    return (float(line["box"][1]) + float(line["box"][3])) / 2


def stitch(pieces: list[Piece], width: int, height: int) -> tuple[str, Any | None]:
    """The page's text and (when every strip has boxes) its structured result on the page's upload."""
    seams = _seams([p.region for p in pieces])
    boxed = bool(pieces) and all(_has_boxes(p.structured) for p in pieces)
    if boxed:
        moved = [StripOffset(p.region.x0, p.region.y0).shift_result(p.structured) for p in pieces]
        for n, uppers in seams.items():
            seam = (pieces[n].region.y0 + max(pieces[m].region.y1 for m in uppers)) / 2
            for m in uppers:   # each keeps its own side of the seam, judged within the other's width
                moved[m] = _keep_lines(moved[m], lambda ln, s=seam, r=pieces[n].region:
                                       _centre_y(ln) < s or not _within(ln, r))
            moved[n] = _keep_lines(moved[n], lambda ln, s=seam, rs=[pieces[m].region for m in uppers]:
                                   _centre_y(ln) >= s or not any(_within(ln, r) for r in rs))
        texts = [_text_of(m) for m in moved]
        text = "\n".join(t for t in texts if t)
        first = moved[0] if moved else {}
        structured = {k: v for k, v in first.items() if k not in ("blocks", "text", "width", "height")}
        structured.update({"width": width, "height": height, "text": text,
                           "blocks": [b for m in moved for b in m.get("blocks") or []]})
        return text, structured
    at_seam = {m for n, uppers in seams.items() for m in (n, *uppers)}
    lines = [(_rows_apart(p.text) if n in at_seam else p.text).splitlines() for n, p in enumerate(pieces)]
    for n, uppers in seams.items():
        if uppers == [n - 1] and (pieces[n - 1].region.x0, pieces[n - 1].region.x1) == (pieces[n].region.x0, pieces[n].region.x1):
            lines[n - 1], lines[n] = seam_lines(lines[n - 1], lines[n])
            _rejoin_table(lines[n - 1], lines[n])
        else:
            for m in uppers:
                lines[m], lines[n] = _seam_across(lines[m], lines[n])
    texts = _watermarks_once(["\n".join(ls) for ls in lines])
    return _joined([(text, pieces[n].region.paragraph) for n, text in enumerate(texts) if text]), None


def _seams(regions: list[Region]) -> dict[int, list[int]]:
    """For each strip with a seam at its top, the earlier strips (in reading order) it shares rows
    with, over at least ``SHARED_WIDTH`` of the narrower width (strips of one cut never share
    any: only a seam's rows are read twice; a strip of a finer cut may lie wholly in them)."""
    out: dict[int, list[int]] = {}
    for n, low in enumerate(regions):
        if low.overlap <= 0:
            continue
        uppers = [m for m, up in enumerate(regions[:n])
                  if low.y0 < up.y1 and up.y0 < low.y1
                  and min(up.x1, low.x1) - max(up.x0, low.x0) >= SHARED_WIDTH * min(up.width, low.width)]
        if uppers:
            out[n] = uppers
    return out


def _within(line: dict, region: Region) -> bool:
    """The line's centre (on the page) lies inside ``region``'s width."""
    return region.x0 <= (float(line["box"][0]) + float(line["box"][2])) / 2 < region.x1


def _seam_across(upper: list[str], lower: list[str]) -> tuple[list[str], list[str]]:
    """``upper`` and ``lower`` without the lines read twice where the lower strip's top lies in
    the upper one and they come from different cuts (text only).

    Either strip may hold several columns read one after the other (a strip the model read
    whole, before or after the other was cut finer into its columns), so the run of lines read
    twice is looked for anywhere, anchored at one end at least: it ends at the upper strip's last
    line or the one before it (a part-line cut at its bottom edge; that one goes too), or it
    starts at the lower strip's first line or the one after it (a part-line cut at its top edge;
    that one goes too). Lines of no more than ``SHORT_LINE`` characters (a transcript's line
    numbers, which one cut reads between the lines and the other in a column of their own) are
    passed over in the comparison and go with the run they lie in. Among such runs the one with
    the most lines read exactly alike wins, then the longest: rows of a table or numbered lines
    differ by a digit and are 85 % alike, and the longest run alone would match rows 1-9 to rows
    10-19. It must hold ``MIN_SEAM_CHARS`` characters, or nothing is dropped; the run itself is
    dropped from the lower strip."""
    fu, fl = [_fold(line) for line in upper], [_fold(line) for line in lower]
    up = [i for i, f in enumerate(fu) if len(f) > SHORT_LINE]
    low = [i for i, f in enumerate(fl) if len(f) > SHORT_LINE]
    best: tuple[int, int, int, int, int] | None = None   # (exact lines, chars, end in up, start, stop in low)
    for p in range(len(low)):
        for i in range(len(up)):
            if not (i >= len(up) - 2 or p <= 1 + SEAM_WINDOW):
                continue   # neither anchor can be reached from here
            size = 0
            while size < min(i + 1, p + 1, SEAM_WINDOW) and _alike(fu[up[i - size]], fl[low[p - size]]):
                size += 1
            if not size or not (i >= len(up) - 2 or p - size + 1 <= 1):
                continue
            run = [(fu[up[i - t]], fl[low[p - t]]) for t in range(size)]
            exact = sum(a == b for a, b in run)
            chars = sum(len(b) for _, b in run)
            if chars >= MIN_SEAM_CHARS and (best is None or (exact, chars) > best[:2]):
                best = (exact, chars, i + 1, p - size + 1, p + 1)
    if best is None:
        return upper, lower
    _, _, end, start, stop = best
    if end == len(up) - 1:     # the part-line after the run, at the upper strip's bottom edge
        upper = upper[:up[end]]
    first = low[0] if start <= 1 else low[start]   # with the part-line at the top edge; short lines before it stay
    lower = lower[:first] + lower[low[stop - 1] + 1:]
    return upper, lower


_WATERMARK = re.compile(r"(^[ \t]*)?<watermark\b[^>]*>((?:(?!</?watermark\b).)*)</watermark\s*>((?(1)[ \t]*(?:\n|$)|))", re.I | re.S | re.M)
_ROW_END = re.compile(r"(</tr\s*>)\s*(?=<tr\b)", re.I)
_TABLE_END = re.compile(r"</table\s*>\s*$", re.I)


def _joined(texts: list[tuple[str, bool]]) -> str:
    """The strips' texts in reading order, joined by a newline (a strip may end inside a
    paragraph), but by a blank line where the strip begins after a paragraph break (``Region.
    paragraph``: in Markdown, and in the ``.txt``, a newline alone ran the two paragraphs into
    one), or after a strip that ends with an HTML table: in Markdown such a block runs on to the
    next blank line, so the next strip's heading, emphasis or list was shown as raw text inside
    it."""
    out = ""
    for text, paragraph in texts:
        out += ("\n\n" if paragraph or _TABLE_END.search(out) else "\n") + text if out else text
    return out


def _watermarks_once(texts: list[str]) -> list[str]:
    """The strips' texts, a ``<watermark>`` that an earlier strip already gave (the same words,
    case and spaces aside) left out: a watermark is stamped across the page, so every strip it
    crosses shows it, and a page cut in five said "DRAFT" five times where the page read whole
    says it once. Within one strip, a watermark given twice stays (the model saw it twice)."""
    def key(match: re.Match) -> str:
        return " ".join(match.group(2).split()).casefold()

    def drop(match: re.Match) -> str:
        if key(match) not in seen:
            return match.group(0)
        return ""

    seen: set[str] = set()
    out = []
    for text in texts:
        own = {key(m) for m in _WATERMARK.finditer(text)}
        out.append(_WATERMARK.sub(drop, text).strip("\n"))
        seen |= own
    return out


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
    """A strip's text: its answer's, found as for a page sent whole (``answer_text``): an answer
    of boxed lines with no ``text`` beside them (before: the strip's text was "", and a page of
    such strips came out blank, ``no_text``)."""
    return (answer_text(structured) or "").strip("\n")
