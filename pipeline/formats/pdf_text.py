"""What the outputs of a PDF input read from the PDF itself: each page's frame and, for pages
whose text came from the PDF's own text layer (no OCR), that layer's words with their boxes.

Why read the PDF again at output time: a text-layer page cost no API call and has no engine
result, but its words do have positions, in the PDF. pdfium gives every character's box (user
space); characters are joined into words at whitespace and into lines at pdfium's line breaks,
lines into blocks at a vertical gap wider than a line, and every box is brought into the
displayed frame (``pdfpage``), so ALTO, hOCR and the searchable PDF treat these pages like OCR
pages. Such words carry no confidence (``WC`` absent: it is the document's text, not a guess)
and the page's engine is ``pdf-text-layer``. Reading costs milliseconds and no pixels.

Every pdfium call holds ``pipeline.inputs.pdf``'s lock (pdfium is not thread-safe, and the writer
runs in worker threads beside the page renderer).
"""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Iterable

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from pipeline.inputs.pdf import _PDFIUM_LOCK, LINE_END_HYPHEN_CHAR, displayed_box

from .model import Block, Line, PageLayout, Word, union
from .pdfpage import PdfFrame

TEXT_LAYER_ENGINE = "pdf-text-layer"
_LINE_BREAKS = "\r\n"


def read_pdf(path: Path, text_pages: Iterable[int] = ()) -> tuple[list[PdfFrame], dict[int, PageLayout]]:
    """Every page's frame, and the text-layer layout of the pages in ``text_pages``."""
    wanted = set(text_pages)
    frames: list[PdfFrame] = []
    layouts: dict[int, PageLayout] = {}
    with _PDFIUM_LOCK:
        doc = pdfium.PdfDocument(str(path))
        try:
            for i in range(len(doc)):
                page = doc[i]
                try:
                    frame = PdfFrame(displayed_box(page), int(page.get_rotation()))
                    frames.append(frame)
                    if i in wanted:
                        layouts[i] = _text_layout(page, i, frame)
                finally:
                    page.close()
        finally:
            doc.close()
    return frames, layouts


def _text_layout(page: pdfium.PdfPage, index: int, frame: PdfFrame) -> PageLayout:
    textpage = page.get_textpage()
    try:
        lines = _lines(textpage, frame)
    finally:
        textpage.close()
    width, height = frame.size
    return PageLayout(index, width, height, "pt", _blocks(lines), bool(lines), TEXT_LAYER_ENGINE)


def _lines(textpage: pdfium.PdfTextPage, frame: PdfFrame) -> list[Line]:
    lines: list[Line] = []
    words: list[Word] = []
    chars: list[str] = []
    boxes: list[tuple[float, float, float, float]] = []

    def end_word() -> None:
        text = _clean("".join(chars))
        if text and boxes:    # a word pdfium gives no box for has no place on the page: left out
            words.append(Word(text, union(boxes), None))
        chars.clear()
        boxes.clear()

    def end_line() -> None:
        end_word()
        if words:
            lines.append(Line(" ".join(w.text for w in words), union([w.box for w in words if w.box]),
                              None, tuple(words)))
            words.clear()

    raw = textpage.raw
    for i in range(textpage.count_chars()):
        ch = chr(pdfium_c.FPDFText_GetUnicode(raw, i) or 32)
        if ch in _LINE_BREAKS:
            end_line()
        elif ch.isspace() or ch == "\x00":
            end_word()
        else:
            box = textpage.get_charbox(i)          # (left, bottom, right, top), user space
            if min(box[2] - box[0], box[3] - box[1]) < 0.5:  # no ink (another tool's glyphless OCR layer):
                box = textpage.get_charbox(i, loose=True)   # the font's ascent to descent
            if box[2] > box[0] or box[3] > box[1]:
                boxes.append(frame.user_box_to_display(box))
            if ch == LINE_END_HYPHEN_CHAR:         # a hyphen ending a line pdfium joined to the next:
                chars.append("-")                  # the word and the line end here, as printed
                end_line()
                continue
            chars.append(ch)
    end_line()
    return [ln for ln in lines if ln.box is not None]


def _clean(text: str) -> str:
    """pdfium hands out UTF-16 code units: join surrogate pairs (characters beyond the BMP),
    and drop control characters, which XML cannot hold (a hyphen ending a line comes as
    U+0002: ``_lines`` has made it a hyphen already)."""
    text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return "".join(c for c in text if unicodedata.category(c) != "Cc")


def _blocks(lines: list[Line]) -> tuple[Block, ...]:
    """Lines in the layer's order, a new block where the gap to the previous line exceeds its height."""
    blocks: list[list[Line]] = []
    for line in lines:
        prev = blocks[-1][-1] if blocks else None
        if prev is not None and prev.box and line.box:
            gap = line.box[1] - prev.box[3]
            if -(prev.box[3] - prev.box[1]) <= gap <= (prev.box[3] - prev.box[1]):
                blocks[-1].append(line)
                continue
        blocks.append([line])
    return tuple(Block(union([ln.box for ln in b if ln.box]), tuple(b)) for b in blocks)
