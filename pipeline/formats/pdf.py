"""Searchable PDF: the source pages as images, with an invisible text layer on the words.

Built with fpdf2 (why: a well-kept, pure-Python PDF writer that embeds JPEG data as it is,
without recompression, draws text in the invisible render mode 3 that search, selection and
copy use, embeds a subset of a Unicode TrueType font, and stretches text horizontally; no
Ghostscript, no hand-written content-stream operators).

* Page size: the image's pixels at its stated resolution (``dpi``; 300 when it states none),
  in points, so the PDF prints at the scan's real size.
* Images: a JPEG source is embedded byte for byte (EXIF-rotated JPEGs too: the page draws the
  stored image rotated, rather than re-encoding rotated pixels); other formats (TIFF frames,
  PNG, ...) are decoded and stored losslessly (Flate; grey and RGB pages band by band, in
  bounded memory: ``pdf_image``). Mirrored EXIF orientations (2, 4, 5, 7)
  are decoded and stored losslessly as well.
* Text: each word at its box (from the layout, source pixels -> points), the font size set so
  the font's ascent-to-descent spans the box height and the text stretched to the box width, so
  a viewer's highlight covers the word on the image, and a space after every word. Boxes that overlap
  or touch on a row (a placed answer's can) are cut apart first (``pdf_spans``): extractors
  would join or drop their glyphs. Pages without boxes get no text layer (there is nowhere
  true to put it); docs/formats.md says so.
* Font: a glyphless font built for the file's characters (``glyphless``), so words of every
  script are in the layer and copy gives them back; right-to-left words are written in the
  order they are shown (``bidi``), as extraction expects.

PDF inputs keep their original pages; ``pdf_overlay`` grafts the same text layer onto them.
"""

from __future__ import annotations

import io
import logging
import tempfile
import math
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import TextMode
from PIL import Image

from .bidi import visual_order
from .glyphless import ASCENT, DESCENT, UNITS_PER_EM, glyphless_font
from .langtag import bcp47
from .model import FileLayout, PageLayout
from .pdf_image import add_image, can_stream
from .pdf_spans import same_row, word_spans
from .source import SourcePage, read_source_pages, upright_image

log = logging.getLogger("pipeline.formats.pdf")

#: rotation (degrees counter-clockwise, fpdf2's sense) that shows a stored JPEG upright
_ROTATION = {3: 180, 6: -90, 8: 90}


class PdfSourceError(Exception):
    """The source cannot be made into PDF pages (the file is gone or not an image)."""


def layout_chars(layout: FileLayout) -> set[str]:
    """Every character the words of ``layout`` use (the glyphless font maps exactly these)."""
    return {c for page in layout.pages for block in page.blocks for line in block.lines
            for word in line.words for c in word.text}


class TextLayer:
    """Draws words invisibly with the glyphless font (``glyphless``), each stretched to its box."""

    def __init__(self, pdf: FPDF, layout: FileLayout) -> None:
        self.pdf = pdf
        with tempfile.TemporaryDirectory(prefix="pipeline-font-") as tmp:  # fpdf2 takes a path only
            path = Path(tmp) / "glyphless.ttf"
            path.write_bytes(glyphless_font(layout_chars(layout)))
            pdf.add_font("ocr", "", str(path))
        self.family = "ocr"
        pdf.set_font(self.family, size=10)
        self.ascent = ASCENT / UNITS_PER_EM
        self.descent = -DESCENT / UNITS_PER_EM

    def place(self, word: str, box_pt: tuple[float, float, float, float], space_after: bool = False) -> None:
        """``word`` stretched over the box; ``space_after``: and a space in the same text object,
        one character wide beyond the box. A space drawn on its own a few points wide, after
        another one so (a line's last word), was taken by pdfium for a copy of that one and
        dropped ("Removaltrue,"); inside the word it is read as the word's own character."""
        x0, y0, x1, y1 = box_pt
        height, width = y1 - y0, x1 - x0
        if height <= 0 or width <= 0:
            return
        text = visual_order(word)
        pdf = self.pdf
        size = max(1.0, height / (self.ascent + self.descent))
        pdf.set_font(self.family, size=size)
        pdf.set_stretching(100)
        natural = pdf.get_string_width(text)
        if natural <= 0:
            return
        pdf.set_stretching(max(1.0, min(1000.0, 100.0 * width / natural)))
        pdf.text(x0, y1 - self.descent * size, text + " " if space_after else text)


def _draw_image(pdf: FPDF, path: Path, im: Image.Image, src: SourcePage, w_pt: float, h_pt: float) -> None:
    if src.format == "JPEG" and src.index == 0 and (src.orientation == 1 or src.orientation in _ROTATION):
        data = path.read_bytes()  # the original JPEG stream, embedded as DCTDecode untouched
        if src.orientation == 1:
            pdf.image(io.BytesIO(data), x=0, y=0, w=w_pt, h=h_pt)
            return
        angle = _ROTATION[src.orientation]
        sw, sh = (h_pt, w_pt) if src.orientation in (6, 8) else (w_pt, h_pt)  # stored size
        cx, cy = w_pt / 2, h_pt / 2
        with pdf.rotation(angle, x=cx, y=cy):
            pdf.image(io.BytesIO(data), x=cx - sw / 2, y=cy - sh / 2, w=sw, h=sh)
        return
    upright = upright_image(im)
    try:
        if can_stream(upright):     # in bounded memory (pdf_image: fpdf2 copies it five times)
            pdf.image(add_image(pdf, upright, f"pipeline-page-{src.index}"), x=0, y=0, w=w_pt, h=h_pt)
        else:
            pdf.image(upright, x=0, y=0, w=w_pt, h=h_pt)
    finally:
        if upright is not im:
            upright.close()


def _page_text(layer: TextLayer, page: PageLayout, src: SourcePage) -> None:
    if page.unit == "pt":
        page_text(layer, page)
    else:
        page_text(layer, page, 72.0 / src.dpi[0], 72.0 / src.dpi[1])


def page_text(layer: TextLayer, page: PageLayout, fx: float = 1.0, fy: float = 1.0) -> None:
    """Every word of ``page`` invisibly at its box (layout units times ``fx``/``fy`` = points),
    along the span ``pdf_spans`` gives it (boxes that overlap or touch on a row are cut apart),
    and a space after it, so that extraction and copy give "a b", not "ab", whatever the
    viewer's word-gap heuristics: stretched over the gap to the next word of its line, or, after
    a line's last word (or before a word closer than a character), the word's own trailing
    space, so that a word another line set right beside it stays apart."""
    if not page.has_boxes:
        return
    if page.text_angle:
        turned_page_text(layer, page, fx, fy)
        return
    lines = [[w for w in line.words if w.box is not None and w.text] for block in page.blocks for line in block.lines]
    spans = iter(word_spans([w.box for words in lines for w in words]))
    for words in lines:
        placed = [(w.text, w.box, next(spans)) for w in words]
        for i, (text, b, (x0, x1)) in enumerate(placed):
            nxt = placed[i + 1] if i + 1 < len(placed) else None
            # the next word of the line, on this row, a character or more to the right: a space
            # stretched over the gap; else the word's own trailing space (``TextLayer.place``)
            gap = nxt is not None and same_row(b, nxt[1]) and nxt[2][0] - x1 >= (x1 - x0) / len(text)
            layer.place(text, (x0 * fx, b[1] * fy, x1 * fx, b[3] * fy), space_after=not gap)
            if gap:
                layer.place(" ", (x1 * fx, b[1] * fy, nxt[2][0] * fx, b[3] * fy))


def turned_page_text(layer: TextLayer, page: PageLayout, fx: float, fy: float) -> None:
    """The words of a page ``prepare`` turned or levelled (``PageLayout.text_angle``): each word
    drawn along the quarter turn its text runs in on the stored image, centred on its box, so
    that search and copy follow the text as printed. A word's box on the source is the bounds of
    the turned word; its own length and height are the box's sides, swapped for a quarter turn,
    and for a skew solved from the bounds (``W = w cos a + h sin a``, ``H = w sin a + h cos a``).

    The skew itself is not drawn: poppler (``pdftotext``, and the viewers built on it) breaks a
    word drawn at a slant into pieces ("constitue nt", 8-33 % of the words of 4 letters or more
    at 4-7 degrees) and loses the order of its lines, where a level word is taken whole; PDFium,
    pdfminer and pypdf read either whole. So the highlight is a level rectangle of the word's
    length and height on the slanted word's centre."""
    angle = page.text_angle
    quarter = round(angle / 90.0) % 4
    rest = math.radians(abs(angle - 90.0 * round(angle / 90.0)))
    cos, sin = math.cos(rest), math.sin(rest)
    det = cos * cos - sin * sin
    for block in page.blocks:
        for line in block.lines:
            for word in (w for w in line.words if w.box is not None and w.text):
                x0, y0, x1, y1 = word.box[0] * fx, word.box[1] * fy, word.box[2] * fx, word.box[3] * fy
                cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
                bw, bh = (y1 - y0, x1 - x0) if quarter % 2 else (x1 - x0, y1 - y0)
                w = max((bw * cos - bh * sin) / det, 0.5 * bw)
                h = max((bh * cos - bw * sin) / det, 0.25 * bh)
                with layer.pdf.rotation(90 * quarter, x=cx, y=cy):
                    layer.place(word.text + " ", (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))


def render_pdf(layout: FileLayout, source_path: Path, sources: list[SourcePage] | None = None) -> bytes:
    """The searchable PDF of one image file (every page of a multi-page TIFF). ``sources`` is
    ``read_source_pages(source_path)`` when the caller has it already (a PNG's EXIF costs a decode)."""
    if sources is None:
        try:
            sources = read_source_pages(source_path)
        except (OSError, ValueError) as exc:
            raise PdfSourceError(f"cannot read the source image for the PDF: {exc}") from exc
    pdf = FPDF(unit="pt")
    pdf.set_auto_page_break(False)
    pdf.set_creator(f"pipeline {layout.tool.get('version') or ''}".strip())
    pdf.set_producer(f"pipeline {layout.tool.get('version') or ''} (fpdf2)".strip())
    pdf.set_title(layout.source_name)
    pdf.set_lang(bcp47(layout.settings.get("language")))
    layer = TextLayer(pdf, layout)
    pages = {p.index: p for p in layout.pages}
    with Image.open(source_path) as im:
        for src in sources:
            if src.frame:
                im.seek(src.frame)
            w_pt, h_pt = src.size_pt
            pdf.add_page(format=(w_pt, h_pt))
            _draw_image(pdf, source_path, im, src, w_pt, h_pt)
            page = pages.get(src.index)
            if page is not None:
                pdf.text_mode = TextMode.INVISIBLE
                _page_text(layer, page, src)
                pdf.text_mode = TextMode.FILL
    return bytes(pdf.output())
