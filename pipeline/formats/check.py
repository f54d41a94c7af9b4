"""Is an archival output on disk usable? The checks ``verify`` runs on ALTO, hOCR, PDF, PAGE,
METS and md files.

Why not trust the state: a file can be truncated by a full disk outside our atomic writes,
deleted by hand, or replaced by another tool. Each check is what a consumer would do first:
parse the XML (ALTO: the ALTO 4 root element; hOCR: XHTML with ``ocr_page`` elements; PAGE: a
``PcGts`` per page; METS: a ``page`` div per page), open the PDF with pdfium; and each must have
one page per page of the stored result. The PDF's text layer must also hold every word of the
result (``pdf_lost_words``): a layer that lost a script's words is found here, not by a reader.
Full schema validation needs the XSDs and ``xmlschema`` (a test dependency), so it stays in the
tests. Each function takes the file and the stored result (the parsed ``.json``) and returns None
when the file is fine, else the problem in words.
"""

from __future__ import annotations

import hashlib
import unicodedata
import re
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pypdfium2 as pdfium

from pipeline.inputs.pdf import _PDFIUM_LOCK, LINE_END_HYPHEN

from .alto import NS as ALTO_NS
from .mets import NS as METS_NS
from .mets import USE_NAMES, XLINK
from .model import has_positions, result_line
from .page import NS as PAGE_NS

_XHTML = "{http://www.w3.org/1999/xhtml}"


def _pages_problem(kind: str, found: int, expected: int) -> str | None:
    if found != expected:
        return f"{kind} has {found} pages, the result has {expected}"
    return None


def _page_count(doc: dict[str, Any]) -> int:
    return len(doc["pages"]) if isinstance(doc.get("pages"), list) else 0


def _parse(path: Path, kind: str) -> tuple[ET.Element | None, str | None]:
    try:
        return ET.parse(path).getroot(), None
    except (OSError, ET.ParseError) as exc:
        return None, f"{kind} is not well-formed XML ({exc})"


def _xml_pages(path: Path, doc: dict[str, Any], kind: str, root_tag: str, is_page) -> str | None:
    """Parse ``path``, expect ``root_tag``, count the elements ``is_page`` takes as pages."""
    root, problem = _parse(path, kind)
    if root is None:
        return problem
    if root.tag != root_tag:
        return f"not a {kind} file (root element {root.tag})"
    return _pages_problem(kind, sum(1 for el in root.iter() if is_page(el)), _page_count(doc))


def check_alto(path: Path, doc: dict[str, Any]) -> str | None:
    return _xml_pages(path, doc, "ALTO", f"{{{ALTO_NS}}}alto", lambda el: el.tag == f"{{{ALTO_NS}}}Page")


def check_hocr(path: Path, doc: dict[str, Any]) -> str | None:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        return f"hOCR is not well-formed XHTML ({exc})"
    found = sum(1 for d in root.iter(_XHTML + "div") if d.get("class") == "ocr_page")
    return _pages_problem("hOCR", found, _page_count(doc))


def check_page(path: Path, doc: dict[str, Any]) -> str | None:
    """The first page's PAGE-XML file (``path``) and the ``.page-N.xml`` files beside it."""
    for n in range(1, _page_count(doc) + 1):
        p = path if n == 1 else path.with_name(path.name[: -len(".page.xml")] + f".page-{n}.xml")
        if not p.exists():
            return f"missing PAGE-XML of page {n} ({p.name})"
        root, problem = _parse(p, "PAGE-XML")
        if root is None:
            return problem
        if root.tag != f"{{{PAGE_NS}}}PcGts" or root.find(f"{{{PAGE_NS}}}Page") is None:
            return f"not a PAGE 2019 file ({p.name}: root element {root.tag})"
    return None


def check_mets(path: Path, doc: dict[str, Any]) -> str | None:
    """One page div a page, and every output it points at there with the checksum it records
    (an output rewritten since, without its METS, is a METS that lies). The source image is
    not hashed here: verify already follows the source."""
    problem = _xml_pages(path, doc, "METS", f"{{{METS_NS}}}mets",
                         lambda el: el.tag == f"{{{METS_NS}}}div" and el.get("TYPE") == "page")
    if problem:
        return problem
    for grp in ET.parse(path).getroot().iter(f"{{{METS_NS}}}fileGrp"):
        if grp.get("USE") == USE_NAMES["image"]:
            continue
        for f in grp.iter(f"{{{METS_NS}}}file"):
            loc = f.find(f"{{{METS_NS}}}FLocat")
            href = loc.get(f"{{{XLINK}}}href") if loc is not None else None
            target = path.parent / unquote(href) if href else None   # written by mets.url_path
            if target is None or not target.is_file():
                return f"METS points at {href}, which is missing"
            if f.get("CHECKSUM") and hashlib.sha256(target.read_bytes()).hexdigest() != f.get("CHECKSUM"):
                return f"METS checksum of {href} does not match the file (it changed after the METS was written)"
    return None


def _words(text: str) -> list[str]:
    return unicodedata.normalize("NFKC", text).split()


def _layer_words(page: dict[str, Any]) -> list[str]:
    """The words of a stored page the searchable PDF's text layer carries (``pdf.py`` writes a
    word only where it has a box): a text-only answer's *placed* words (an unplaced one has
    nowhere true to go), none when no word was placed; the words of a structured result's lines
    as the layer is written with them (``model.result_line``: not the ``.txt``'s, which the
    Markdown rule may have changed, "Total***" -> "Total*"); every word of a page taken from the
    PDF's own text layer."""
    placed = page.get("placed")
    if page.get("positions") is False:
        return []
    result = page.get("result")
    if page.get("text_source") != "text_layer" and has_positions(result):
        lines = [result_line(ln) for b in result["blocks"] if isinstance(b, dict) for ln in b.get("lines") or []]
        return _words(" ".join(w.text for ln in lines if ln is not None for w in ln.words))
    if page.get("text_source") != "text_layer" and isinstance(placed, dict):
        boxed = [str(w.get("text") or "") for b in placed.get("blocks") or [] for ln in b.get("lines") or []
                 for w in ln.get("words") or [] if isinstance(w, dict) and isinstance(w.get("box"), list)]
        return _words(" ".join(boxed))
    return _words(str(page.get("text") or ""))


def pdf_lost_words(pdf_pages: list[str], doc: dict[str, Any]) -> str | None:
    """Words of the result missing from the PDF's text (``pdf_pages``, one string a page).

    Only the words the layer is written with count (``_layer_words``): no positions (a
    text-only result gets no layer), unplaced words, and pages that read no text are left out."""
    lost: list[tuple[int, list[str]]] = []
    for i, page in enumerate(doc.get("pages") or []):
        if not isinstance(page, dict) or i >= len(pdf_pages):
            continue
        found = _words(pdf_pages[i].replace(LINE_END_HYPHEN, "-\n"))   # as printed
        missing = Counter(_layer_words(page)) - Counter(found)
        if missing:
            lost.append((i + 1, list(missing.elements())))
    if not lost:
        return None
    total = sum(len(w) for _, w in lost)
    shown = ", ".join(f"page {n}: {' '.join(w[:5])}{' ...' if len(w) > 5 else ''}" for n, w in lost[:3])
    return (f"the PDF's text layer lost {total} word(s) of the result ({shown}); "
            "search and copy will not find them")


def check_pdf(path: Path, doc: dict[str, Any]) -> str | None:
    with _PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(str(path))
        except (pdfium.PdfiumError, OSError) as exc:
            return f"the PDF does not open ({exc})"
        try:
            found = len(pdf)
            texts = []
            for i in range(found):
                page = pdf[i]
                textpage = page.get_textpage()
                texts.append(textpage.get_text_range())
                textpage.close()
                page.close()
        finally:
            pdf.close()
    return _pages_problem("the PDF", found, _page_count(doc)) or pdf_lost_words(texts, doc)


def pdf_flavour_problem(path: Path, flavour: str) -> str | None:
    """None when the PDF declares the PDF/A flavour ``pdf.pdfa`` asks for (``off``: none), else why.

    A run does not rewrite the PDFs of done files when ``pdf.pdfa`` changes (that would read
    every PDF of the archive at every run); ``verify`` finds them by the conformance the PDF's
    XMP metadata declares, and ``--requeue`` has them written again from the ``.json``, free.
    A plain PDF where PDF/A is asked is fine when it cannot conform (the ``pdfa_fallback: plain``
    files of the run report): writing it again would change nothing, so it is tried first.
    """
    import pikepdf

    from .pdfa import PdfaRefused, to_pdfa

    try:
        with pikepdf.open(path) as pdf:
            declared = pdf.open_metadata().pdfa_status.lower()
    except (pikepdf.PdfError, OSError) as exc:
        return f"the PDF does not open ({exc})"
    wanted = "" if flavour == "off" else flavour
    if declared == wanted:
        return None
    if wanted and not declared:
        try:
            to_pdfa(path.read_bytes(), wanted)
        except PdfaRefused:
            return None                                 # the fallback: it cannot be PDF/A
    def name(f: str) -> str:
        return f"PDF/A-{f}" if f else "a plain PDF"
    return (f"the PDF is {name(declared)} where pdf.pdfa asks for {name(wanted)} "
            "(written before the setting changed)")


def check_md(path: Path, doc: dict[str, Any]) -> str | None:
    """The ``md`` output: UTF-8 text with one ``<!-- page N -->`` mark per page after the first."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return f"the Markdown output does not read as UTF-8 text ({exc})"
    return _pages_problem("the Markdown output", 1 + len(re.findall(r"^<!-- page \d+ -->$", text, re.M)), _page_count(doc))


CHECKS = {"alto": check_alto, "hocr": check_hocr, "pdf": check_pdf, "page": check_page, "mets": check_mets, "md": check_md}
