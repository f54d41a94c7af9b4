"""Test PDFs built on the fly: fpdf2 writes them (real text, scanned images, invisible OCR
layers), pikepdf edits them into what archives also hold (rotated pages, passwords, broken page
trees). Every kind of page is a list item: ``("text", "...")``, ``("scan", "...")``,
``("ocrlayer", "...")`` (a scan with an invisible text layer over it) or ``("stamped", "...")``
(a scan filling the page with a line of visible text stamped over it, as courts file them)."""

from __future__ import annotations

import io
from pathlib import Path

import pikepdf
from fpdf import FPDF
from fpdf.enums import TextMode
from PIL import Image

from helpers import text_page

LETTER = (612, 792)


def build(pages: list[tuple[str, str]], size: tuple[float, float] = LETTER, font: str | None = None) -> bytes:
    """``font``: a TrueType file to embed for the text (default: the core font Helvetica, not
    embedded, as many real PDFs have it; such a PDF cannot become PDF/A)."""
    pdf = FPDF(unit="pt", format=size)
    pdf.set_auto_page_break(False)
    if font:
        pdf.add_font("embedded", "", font)
    pdf.set_font("embedded" if font else "helvetica", size=14)
    for kind, text in pages:
        pdf.add_page()
        if kind in ("scan", "ocrlayer"):
            img = text_page(text, size=(1200, 400))
            pdf.image(img, x=36, y=36, w=size[0] - 72)
        if kind == "stamped":
            pdf.image(text_page(text, size=(850, 1100)), x=0, y=0, w=size[0], h=size[1])
            pdf.text(36, 24, "Case 1:19-cv-01234 Document 12 Filed 03/04/19 Page 1 of 1")
        if kind in ("text", "ocrlayer"):
            pdf.text_mode = TextMode.INVISIBLE if kind == "ocrlayer" else TextMode.FILL
            for n, line in enumerate(text.split("\n")):
                pdf.text(72, 100 + 20 * n, line)
            pdf.text_mode = TextMode.FILL
    return bytes(pdf.output())


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def edit(data: bytes, fn, **save_kw) -> bytes:
    """``fn(pikepdf.Pdf)`` changes the document; the result is saved to bytes."""
    with pikepdf.open(io.BytesIO(data)) as pdf:
        fn(pdf)
        out = io.BytesIO()
        pdf.save(out, **save_kw)
    return out.getvalue()


def rotated(data: bytes, page: int, degrees: int) -> bytes:
    def turn(pdf):
        pdf.pages[page].obj.Rotate = degrees
    return edit(data, turn)


def encrypted(data: bytes, user: str, owner: str = "owner-secret") -> bytes:
    return edit(data, lambda pdf: None, encryption=pikepdf.Encryption(user=user, owner=owner))


def zero_pages(data: bytes) -> bytes:
    def strip(pdf):
        del pdf.pages[:]
    return edit(data, strip)


def broken_page(data: bytes, page: int) -> bytes:
    """Page ``page``'s entry in the page tree becomes an array: pdfium cannot load that page."""
    def breaks(pdf):
        pdf.Root.Pages.Kids[page] = pdf.make_indirect(pikepdf.Array([1, 2]))
    return edit(data, breaks)


def many_pages(n: int, size: tuple[float, float] = (144, 72)) -> bytes:
    """``n`` small pages, each with its number and a shared noise image (distinct uploads, big
    enough bytes that holding every page at once would show in the peak memory)."""
    noise = Image.effect_noise((300, 150), 80).convert("L")
    pdf = FPDF(unit="pt", format=size)
    pdf.set_auto_page_break(False)
    pdf.set_font("helvetica", size=10)
    for i in range(n):
        pdf.add_page()
        pdf.image(noise, x=0, y=0, w=size[0], h=size[1])
        pdf.text(8, 20, f"page {i + 1}")
    return bytes(pdf.output())
