"""The searchable PDF as PDF/A (ISO 19005 level B: the look of every page is preserved).

Why PDF/A: archives file PDF/A, not plain PDF (OCRmyPDF's default output is PDF/A-2b). The
PDF is first written as before (fpdf2 for images, the original pages with a grafted text layer
for PDF inputs), then ``pikepdf.pdfa`` (offline, no Ghostscript) prepares it (an sRGB output
intent, XMP metadata declaring the conformance, no hidden annotations or JavaScript), writes it
and validates the bytes it wrote with its allowlist validator: an approval is never a false
one. Our own layer is made to conform (its glyphless font is embedded, see ``glyphless``);
fpdf2's ``/OpenAction`` (an initial zoom the validator does not accept) is dropped.

A file that cannot conform (an encrypted input PDF, an original page with an unembedded font or
a colour space the output intent does not cover) raises :class:`PdfaRefused` with the
validator's first findings; the writer then writes the plain PDF and notes it in the run
report, or fails the file, as ``pdf.pdfa_fallback`` says (docs/formats.md).
"""

from __future__ import annotations

import io

import pikepdf
import pikepdf.pdfa

FLAVOURS = ("2b", "3b")
OFF = "off"


class PdfaRefused(Exception):
    """The PDF cannot be made PDF/A; the message says why, in words."""


def _findings(report: pikepdf.pdfa.Report, limit: int = 3) -> str:
    shown = [f"{f.message} ({f.where})" for f in report.findings[:limit]]
    more = len(report.findings) - len(shown)
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


def to_pdfa(data: bytes, flavour: str) -> bytes:
    """``data`` (a PDF) written as validated PDF/A-``flavour``, or :class:`PdfaRefused`."""
    if flavour not in FLAVOURS:
        raise ValueError(f"unknown PDF/A flavour {flavour!r}")
    try:
        pdf = pikepdf.open(io.BytesIO(data))
    except pikepdf.PdfError as exc:
        raise PdfaRefused(f"the PDF does not open ({exc})") from None
    with pdf:
        if pdf.is_encrypted:
            raise PdfaRefused("the PDF is encrypted (the input's own protection), which PDF/A forbids")
        if isinstance(pdf.Root.get("/OpenAction"), pikepdf.Array):   # an initial view, not an action
            del pdf.Root.OpenAction
        out = io.BytesIO()
        try:
            pikepdf.pdfa.save(pdf, out, flavour)
        except pikepdf.pdfa.PdfaError as exc:
            raise PdfaRefused(_findings(exc.report)) from None
        except (ValueError, pikepdf.PdfError) as exc:
            raise PdfaRefused(str(exc)) from None
    return out.getvalue()


def check_pdfa(data: bytes | io.BytesIO, flavour: str) -> str | None:
    """None when ``data`` passes the validator for ``flavour``, else the findings in words."""
    report = pikepdf.pdfa.validate_written(io.BytesIO(data) if isinstance(data, bytes) else data, flavour)
    return None if report.passed else _findings(report)
