"""A model that answers like deAPI's hosted OCR model: Markdown text, no boxes, 5-20 s jobs.

Why: the hosted model (Nanonets-OCR-s behind ``Nanonets_Ocr_S_F16``) is a vision-language
model, not a line detector. It answers Markdown-like text (``#`` headings, tables as HTML
``<table>``, ``<page_number>`` at the foot) and nothing positional, and its jobs take 5-20 s
(deapi-api.md §1.3-1.4, §2.3, §8). Our other models answer plain text with line and word
boxes, so without this one no test would ever meet the answers the client exists for.

The page is read by the server's real engine (any of ours; ``fast`` for quick tests) and its
lines are rendered as the hosted model would (the ``truth`` engine's registered text is taken as
the Markdown itself: a test's given answer):

* a line at least ``HEADING_RATIO`` times the page's median line height, of at most
  ``HEADING_MAX_WORDS`` words, is a heading: ``#`` (``##`` under ``H1_RATIO``), on its own line;
* at least ``TABLE_MIN_ROWS`` consecutive rows of the page, each of two or more short lines
  side by side and none of them long (cells, not the lines of a text column beside a sidebar
  or a deposition's line numbers), are a table: an HTML ``<table>``
  with one ``<tr>`` a row and one ``<td>`` a cell, left to right, written where its first cell
  comes in reading order (the hosted model writes tables as HTML);
* the lowest line of the page, in its bottom ``FOOT_SHARE``, that is only a page number
  (``12``, ``- 12 -``, ``xii``, ``Page 12``) and alone on its row (not the last cell of a
  table's row) is ``<page_number>12</page_number>``, last;
* every other line is written as read, blocks separated by a blank line.

``format: json`` answers ``{"text": "<the same Markdown>"}``: the real JSON shape is
unpublished (deapi-api.md §1.4); we assume an object carrying the Markdown under ``text`` and
nothing positional, which is the least a client can rely on (docs/server.md, "The hosted-like
model").

``HostedSettings`` holds what is configurable about the model: its job times and its size
limits (the height above which a job fails ``INPUT_TOO_LARGE``, the answer length above which it
fails ``CONTEXT_LENGTH_EXCEEDED``; ``size_limits.py`` turns them into job errors).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from dataclasses import dataclass
from statistics import median

from pipeline.ocr.base import OcrLine, OcrPage
from pipeline.ocr.pool import EngineRunner

HOSTED_MODELS = ("Nanonets_Ocr_S_Hosted",)  # the catalogue slugs that answer this way (models.py)

HEADING_RATIO = 1.4    # a heading's line is this many median line heights tall ...
H1_RATIO = 1.8         # ... and from this many, a top-level ``#``
HEADING_MAX_WORDS = 12
TABLE_MIN_ROWS = 3     # a table is this many consecutive rows of 2+ cells side by side ...
TEXT_ASPECT = 8.0      # ... whose cells are short (running text is at least this many heights long)
FOOT_SHARE = 0.12      # a page number lies in the bottom 12 % of the page
ROW_TOLERANCE = 0.5    # lines whose centres differ by under this many line heights share a row

_ROMAN = r"(?=[ivxlcdm])m{0,3}(?:cm|cd|d?c{0,3})(?:xc|xl|l?x{0,3})(?:ix|iv|v?i{0,3})"   # xii, not "civic"
_PAGE_NUMBER = re.compile(r"^[\s\-–—.(\[]*(?:page\s+|p\.\s*|seite\s+)?(\d{1,4}|%s)[\s\-–—.)\]]*$" % _ROMAN, re.I)


@dataclass(frozen=True)
class HostedSettings:
    """What is configurable about the hosted-like model (``ServerConfig.hosted``)."""

    job_s: tuple[float, float] = (5.0, 20.0)   # each job takes uniform(lo, hi) seconds (tests: scale it down)
    # Job errors as the hosted model gives them (size_limits.py): INPUT_TOO_LARGE above this height
    # (deapi-api.md §8: ~850 px), CONTEXT_LENGTH_EXCEEDED above this many answer characters.
    max_input_height: int | None = 850
    max_answer_chars: int | None = None

    def __post_init__(self) -> None:
        lo, hi = self.job_s
        if not 0 <= lo <= hi:
            raise ValueError(f"hosted job_s must be 0 <= lo <= hi, not {self.job_s!r}")

    def job_seconds(self, rng: random.Random) -> float:
        lo, hi = self.job_s
        return rng.uniform(lo, hi) if hi > lo else lo


def is_hosted(model: str) -> bool:
    return model in HOSTED_MODELS


def _height(line: OcrLine) -> float:
    return max(1.0, float(line.box[3] - line.box[1]))


def _rows(lines: list[OcrLine], h: float) -> list[list[OcrLine]]:
    """Lines grouped into rows across the whole page (centres within ``ROW_TOLERANCE`` line
    heights), each row left to right, rows top to bottom."""
    rows: list[list[OcrLine]] = []
    for line in sorted(lines, key=lambda ln: (ln.box[1] + ln.box[3]) / 2):
        centre = (line.box[1] + line.box[3]) / 2
        if rows and abs(centre - sum((x.box[1] + x.box[3]) / 2 for x in rows[-1]) / len(rows[-1])) < ROW_TOLERANCE * h:
            rows[-1].append(line)
        else:
            rows.append([line])
    return [sorted(row, key=lambda ln: ln.box[0]) for row in rows]


def _cell_row(row: list[OcrLine]) -> bool:
    """A row of table cells: two or more lines side by side, every one short. Not running text:
    the two columns of a text page are no table, and neither is a column's line beside a
    sidebar entry or a line number (one long line in the row is enough to say so)."""
    if len(row) < 2:
        return False
    return max((ln.box[2] - ln.box[0]) / _height(ln) for ln in row) < TEXT_ASPECT


def tables(lines: list[OcrLine], h: float) -> list[list[list[OcrLine]]]:
    """The page's tables: runs of at least ``TABLE_MIN_ROWS`` consecutive cell rows."""
    found, run = [], []
    for row in _rows(lines, h) + [[]]:
        if _cell_row(row):
            run.append(row)
            continue
        if len(run) >= TABLE_MIN_ROWS:
            found.append(run)
        run = []
    return found


def _html_table(rows: list[list[str]]) -> str:
    def esc(s: str) -> str:
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "<table>" + "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows) + "</table>"


def page_number_line(page: OcrPage) -> OcrLine | None:
    """The page's number at its foot, if its lowest line is one (module doc)."""
    lines = [ln for ln in page.lines if ln.text.strip()]
    if not lines or page.height <= 0:
        return None
    low = max(lines, key=lambda ln: ln.box[3])
    if low.box[1] < (1 - FOOT_SHARE) * page.height or not _PAGE_NUMBER.match(low.text.strip()):
        return None
    # alone on its row: a number with other lines beside it is a cell of a table's last row
    # (a strip of a table often ends with one), not the page's number
    middle = (low.box[1] + low.box[3]) / 2
    if any(ln is not low and ln.box[1] <= middle <= ln.box[3] for ln in lines):
        return None
    return low


def render_markdown(page: OcrPage) -> str:
    """The page as the hosted model answers it: Markdown headings, HTML tables, the page number.
    A text-only engine's page (``truth``: the answer a test registered for the pixels) is the
    answer as it is, so a test can make this model answer any given Markdown, with its job
    times and size limits (before, it had no lines and the answer was empty)."""
    if page.text_only is not None:
        return page.text_only
    lines = [ln for ln in page.lines if ln.text.strip()]
    if not lines:
        return ""
    h = median(_height(ln) for ln in lines)
    number = page_number_line(page)
    found = tables([ln for ln in lines if ln is not number], h)
    table_of = {id(ln): k for k, rows in enumerate(found) for row in rows for ln in row}
    written: set[int] = set()
    parts: list[str] = []
    for block in page.blocks:
        text: list[str] = []
        for line in block.lines:
            if not line.text.strip() or line is number:
                continue
            k = table_of.get(id(line))
            ratio = _height(line) / h
            heading = k is None and ratio >= HEADING_RATIO and len(line.text.split()) <= HEADING_MAX_WORDS
            if (k is not None and k not in written) or heading:
                if text:
                    parts.append("\n".join(text))
                    text = []
            if k is not None:
                if k not in written:
                    written.add(k)
                    parts.append(_html_table([[ln.text.strip() for ln in row] for row in found[k]]))
            elif heading:
                parts.append(("# " if ratio >= H1_RATIO else "## ") + line.text.strip())
            else:
                text.append(line.text)
        if text:
            parts.append("\n".join(text))
    if number is not None:
        parts.append(f"<page_number>{number.text.strip()}</page_number>")
    return "\n\n".join(parts)


async def hosted_markdown(engine: EngineRunner, image: bytes, language: str | None,
                          settings: HostedSettings, rng: random.Random) -> str:
    """Read the page, render it, and take the job's drawn time (never less than the reading took).
    The Markdown itself: the caller checks its length and makes the answer (``answer_document``)."""
    started = time.monotonic()
    duration = settings.job_seconds(rng)
    page = await engine.recognize(image, language)
    markdown = render_markdown(page)
    rest = duration - (time.monotonic() - started)
    if rest > 0:
        await asyncio.sleep(rest)
    return markdown


def answer_document(markdown: str, fmt: str) -> str:
    """The result document in the job's format: the Markdown, or ``{"text": ...}`` (module doc)."""
    return json.dumps({"text": markdown}, ensure_ascii=False) if fmt == "json" else markdown


__all__ = ["HOSTED_MODELS", "HostedSettings", "answer_document", "hosted_markdown", "is_hosted", "page_number_line", "render_markdown"]
