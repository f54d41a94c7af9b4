"""Is an archival output on disk usable? The checks ``verify`` runs on ALTO, hOCR, PDF and md files.

Why not trust the state: a file can be truncated by a full disk outside our atomic writes,
deleted by hand, or replaced by another tool. Each check is what a consumer would do first:
parse the XML (ALTO: the ALTO 4 root element; hOCR: XHTML with ``ocr_page`` elements), open the
PDF with pdfium; and all three must have one page per page of the stored result. Full ALTO
schema validation needs the XSD and ``xmlschema`` (a test dependency), so it stays in the tests.
Each function returns None when the file is fine, else the problem in words.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pypdfium2 as pdfium

from pipeline.inputs.pdf import _PDFIUM_LOCK

from .alto import NS as ALTO_NS

_XHTML = "{http://www.w3.org/1999/xhtml}"


def _pages_problem(kind: str, found: int, expected: int) -> str | None:
    if found != expected:
        return f"{kind} has {found} pages, the result has {expected}"
    return None


def check_alto(path: Path, pages: int) -> str | None:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        return f"ALTO is not well-formed XML ({exc})"
    if root.tag != f"{{{ALTO_NS}}}alto":
        return f"not an ALTO 4 file (root element {root.tag})"
    return _pages_problem("ALTO", len(root.findall(f".//{{{ALTO_NS}}}Page")), pages)


def check_hocr(path: Path, pages: int) -> str | None:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        return f"hOCR is not well-formed XHTML ({exc})"
    found = sum(1 for d in root.iter(_XHTML + "div") if d.get("class") == "ocr_page")
    return _pages_problem("hOCR", found, pages)


def check_pdf(path: Path, pages: int) -> str | None:
    with _PDFIUM_LOCK:
        try:
            doc = pdfium.PdfDocument(str(path))
        except (pdfium.PdfiumError, OSError) as exc:
            return f"the PDF does not open ({exc})"
        try:
            found = len(doc)
        finally:
            doc.close()
    return _pages_problem("the PDF", found, pages)


def check_md(path: Path, pages: int) -> str | None:
    """The ``md`` output: UTF-8 text with one ``<!-- page N -->`` mark per page after the first."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return f"the Markdown output does not read as UTF-8 text ({exc})"
    return _pages_problem("the Markdown output", 1 + len(re.findall(r"^<!-- page \d+ -->$", text, re.M)), pages)


CHECKS = {"alto": check_alto, "hocr": check_hocr, "pdf": check_pdf, "md": check_md}
