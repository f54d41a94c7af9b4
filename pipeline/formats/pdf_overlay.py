"""Searchable PDF of a PDF input: the ORIGINAL pages, untouched, with an invisible text layer
grafted onto the pages we OCRed.

Why two libraries: fpdf2 already draws the image outputs' text layer (``pdf.TextLayer``: font
size from the box height, horizontal stretch to the box width, real spaces between words), so
the same code draws it here, on a text-only page of the displayed page size. pikepdf (qpdf,
well kept; already used by the tests) then copies each such page into the original document as
a Form XObject and appends one ``q <matrix> cm /OCRTextN Do Q`` to that page's content: the
page's own content streams, images and fonts are not decoded, re-encoded or re-rendered (a
rasterising tool like a re-render at ``pdf.dpi`` would lose vector text and bloat the file),
and the original content is wrapped in ``q``/``Q`` so an unbalanced graphics state in it cannot
move our text. The matrix (``pdfpage.PdfFrame.display_to_user``) puts the displayed frame onto
the page's user space, so rotated pages (``/Rotate`` 90/180/270) and CropBoxes that do not
start at 0,0 are handled.

Which pages get a layer: the pages we OCRed and that have boxes. Pages whose text came from
the PDF's own text layer get none (they are searchable already; a second layer would double
every search hit). A page OCRed because its own layer was untrusted (``text_layer`` verdict
``invisible``, ``unprintable``, ``too_short``) keeps that layer and gets ours as well; removing
another tool's text is not ours to do (docs/formats.md).
"""

from __future__ import annotations

import io
from pathlib import Path

import pikepdf
from fpdf import FPDF
from fpdf.enums import TextMode

from .model import FileLayout, PageLayout
from .pdf import TextLayer, page_text
from .pdf_text import TEXT_LAYER_ENGINE
from .pdfpage import PdfFrame, cm_operator


def needs_layer(page: PageLayout) -> bool:
    """Whether the searchable PDF grafts a text layer onto this page (module doc)."""
    return page.has_boxes and page.engine != TEXT_LAYER_ENGINE


def _text_pages(layout: FileLayout, frames: list[PdfFrame], pages: dict[int, PageLayout]) -> bytes:
    """A text-only PDF, one page per original page at its displayed size (empty where no layer)."""
    pdf = FPDF(unit="pt")
    pdf.set_auto_page_break(False)
    layer = TextLayer(pdf, layout)
    for i, frame in enumerate(frames):
        pdf.add_page(format=frame.size)
        page = pages.get(i)
        if page is not None and needs_layer(page):
            pdf.text_mode = TextMode.INVISIBLE
            page_text(layer, page)
            pdf.text_mode = TextMode.FILL
    return bytes(pdf.output())


def render_pdf_over_original(layout: FileLayout, source_path: Path, frames: list[PdfFrame]) -> bytes:
    """The original PDF with our text layer on every page that :func:`needs_layer`."""
    pages = {p.index: p for p in layout.pages}
    if not any(needs_layer(p) for p in pages.values() if p.index < len(frames)):
        return Path(source_path).read_bytes()   # nothing to add: the original, byte for byte
    text = pikepdf.open(io.BytesIO(_text_pages(layout, frames, pages)))
    with pikepdf.open(source_path) as original, text:
        if len(original.pages) != len(frames):
            raise ValueError(f"the PDF has {len(original.pages)} pages, pdfium read {len(frames)}")
        for i, frame in enumerate(frames):
            page = pages.get(i)
            if page is None or not needs_layer(page):
                continue
            target = original.pages[i]
            form = original.copy_foreign(text.pages[i].as_form_xobject())
            name = target.add_resource(form, pikepdf.Name.XObject, prefix="OCRText")
            target.contents_add(b"q\n", prepend=True)
            target.contents_add(b"\nQ\nq " + cm_operator(frame.display_to_user()) + b" " +
                                name.unparse() + b" Do Q\n")
        out = io.BytesIO()
        # An owner-password PDF (opens without a password, permissions restricted) stays
        # encrypted with its own settings; otherwise a deterministic /ID makes a regenerated file
        # identical (qpdf cannot derive one for an encrypted file).
        encrypted = bool(original.is_encrypted)
        original.save(out, encryption=encrypted, deterministic_id=not encrypted)
    return out.getvalue()
