"""The one writer of a file's outputs: render every configured format, write each atomically.

Why one writer: ``process`` (after OCR) and the regeneration of missing outputs for done files
(no API call) must produce identical files. Both call ``write_outputs``. Every output is
rendered first, in memory, then written by temp file + ``os.replace``; the ``.json`` goes last,
so its presence means the others are complete. Runs in one worker thread per file (Pillow and
XML work stay off the event loop).

The archival writers (ALTO, hOCR, PAGE, the searchable PDF with fpdf2, fontTools and pikepdf,
the PDF text reader with pypdfium2) are imported when a file first needs one, not with this
module: a txt-only run never loads them (start-up time and idle memory; ``tests/test_startup.py``).

The METS is rendered after the files it points at (their checksums), from the bytes rendered
in the same call or the files already on disk, and is rewritten whenever one of them is. The
searchable PDF becomes PDF/A here (``pdfa``), as ``OutputOptions`` says; what could not be
done as configured is said in ``notes`` for the run report. PAGE-XML is a file a page.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import aiofiles.os

from pipeline.formats.output import output_path, output_rel, write_atomic_sync

from . import SUFFIXES
from .mets import MIMETYPES, POINTS_AT, MetsFile, render_mets, render_mets_parts  # ElementTree only
from .markdown import markdown_document  # text only
from .model import FileLayout, layout_from_document

if TYPE_CHECKING:
    from .pdfpage import PdfFrame
    from .source import SourcePage


class OutputError(Exception):
    """An output could not be rendered (e.g. the source image for the PDF is unreadable)."""


@dataclass(frozen=True)
class OutputOptions:
    """The settings that change how outputs are written, not what the OCR read."""

    pdfa: str = "2b"                  # 2b | 3b | off: the searchable PDF's PDF/A flavour
    pdfa_fallback: str = "plain"      # plain (write a plain PDF, note it) | fail (the file fails)


def ordered(names: Iterable[str]) -> list[str]:
    """The configured names in writing order: METS after the files it points at, json last."""
    names = list(dict.fromkeys(names))
    tail = [n for n in ("mets", "json") if n in names]
    return [n for n in names if n not in tail] + tail


def page_file(output_root: Path, rel: str, index: int) -> Path:
    """The PAGE-XML file of page ``index``: ``scan.tif.page.xml`` for the first page (the one
    recorded as the ``page`` output), ``scan.tif.page-2.xml`` and on for the others."""
    if index == 0:
        return output_path(output_root, rel, SUFFIXES["page"])
    return output_path(output_root, rel, f".page-{index + 1}.xml")


def expected_outputs(output_root: Path, rel: str, names: Sequence[str]) -> list[str]:
    """Output paths (relative to ``output_root``) that ``names`` mean for input ``rel``."""
    return [output_rel(rel, SUFFIXES[n]) for n in ordered(names)]


def missing_outputs(recorded: Iterable[str], output_root: Path, rel: str, names: Sequence[str]) -> list[str]:
    """Format names configured for ``rel`` whose file the state does not list as written."""
    have = set(recorded)
    base = output_rel(rel, "")
    return [n for n in ordered(names) if base + SUFFIXES[n] not in have]


def _is_pdf_input(document: dict[str, Any]) -> bool:
    return (document.get("image") or {}).get("source_format") == "PDF"


def _pdf_layout(document: dict[str, Any], source_path: Path | None) -> tuple[FileLayout, list[PdfFrame] | None]:
    """A PDF input: boxes from the record (OCR pages, in the displayed frame through the render
    dpi), and the words of text-layer pages from the PDF itself (``pdf_text``). Without a
    readable source the text-layer pages stay text-only (flagged) and no PDF can be written."""
    import pypdfium2 as pdfium

    from .pdf_text import read_pdf

    layout = layout_from_document(document)
    text_pages = [int(p.get("index", 0)) for p in document.get("pages") or [] if p.get("text_source") == "text_layer"]
    if source_path is None:
        return layout, None
    try:
        frames, words = read_pdf(source_path, text_pages)
    except (OSError, ValueError, pdfium.PdfiumError):
        return layout, None
    pages = tuple(words[p.index] if p.index in words and words[p.index].has_boxes else p for p in layout.pages)
    return replace(layout, pages=pages), frames


def _layout(document: dict[str, Any], source_path: Path | None) -> tuple[FileLayout, list[SourcePage] | None]:
    from .source import read_source_pages

    sources = None
    if source_path is not None:
        try:
            sources = read_source_pages(source_path, len(document.get("pages") or ()) or None)
        except (OSError, ValueError):
            sources = None  # the record's own sizes are used (exact for page 1)
    sizes = {p.index: (p.width, p.height) for p in sources} if sources else None
    return layout_from_document(document, sizes), sources


def _pdf(document: dict[str, Any], layout: FileLayout, source_path: Path | None, sources, frames,
         options: OutputOptions, notes: list[str] | None) -> bytes:
    """The searchable PDF, as PDF/A unless ``options.pdfa`` is off (``pdfa``)."""
    if source_path is None:
        raise OutputError("the searchable PDF needs the source file")
    pdf_input = _is_pdf_input(document)
    if pdf_input and frames is None:
        raise OutputError("the searchable PDF needs the source PDF, which cannot be read")
    try:
        if pdf_input:
            from .pdf_overlay import render_pdf_over_original
            data = render_pdf_over_original(layout, source_path, frames)
        else:
            from .pdf import render_pdf
            data = render_pdf(layout, source_path, sources)
    except Exception as exc:  # one file's bad image is that file's error, never the run's
        raise OutputError(f"cannot write the searchable PDF: {exc}") from exc
    from .pdfa import OFF, PdfaRefused, to_pdfa

    if options.pdfa == OFF:
        return data
    try:
        return to_pdfa(data, options.pdfa)
    except PdfaRefused as exc:
        if options.pdfa_fallback == "fail":
            raise OutputError(f"cannot write the searchable PDF as PDF/A-{options.pdfa}: {exc} "
                              "(pdf.pdfa_fallback: plain writes a plain PDF instead)") from None
        if notes is not None:
            notes.append(f"searchable PDF written as plain PDF, not PDF/A-{options.pdfa}: {exc}")
        return data


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _mets_files(document: dict[str, Any], layout: FileLayout, out: dict[str, bytes], output_root: Path | None,
                rel: str, source_path: Path | None) -> list[MetsFile]:
    """The files a METS document points at: the source, and every output rendered now or on disk."""
    image = document.get("image") or {}
    source = document.get("source") or {}
    fmt = str(image.get("source_format") or "")
    mimetype = "application/pdf" if fmt == "PDF" else f"image/{fmt.lower() or 'unknown'}"
    here = output_path(output_root, rel, SUFFIXES["mets"]).parent if output_root is not None else None
    href = (Path(os.path.relpath(source_path, here)).as_posix() if source_path is not None and here is not None
            else rel)
    files = [MetsFile("image", href, mimetype, source.get("sha256"), source.get("size"))]

    def add(kind: str, key: str, path: Path | None, page: int | None = None) -> None:
        data = out.get(key)
        if data is None and path is not None and path.is_file():
            data = path.read_bytes()
        if data is not None:
            name = path.name if path is not None else f"{rel.rsplit('/', 1)[-1]}{SUFFIXES[kind]}"
            files.append(MetsFile(kind, name, MIMETYPES[kind], _sha256(data), len(data), page))

    for kind in POINTS_AT[:-1]:
        add(kind, kind, output_path(output_root, rel, SUFFIXES[kind]) if output_root is not None else None)
    for page in layout.pages:
        key = "page" if page.index == 0 else f"page:{page.index}"
        add("page", key, page_file(output_root, rel, page.index) if output_root is not None else None, page.index)
    return files


def render(names: Sequence[str], document: dict[str, Any], source_path: Path | None,
           options: OutputOptions | None = None, notes: list[str] | None = None,
           output_root: Path | None = None) -> dict[str, bytes]:
    """Every named output rendered to bytes (no file touched). PAGE-XML of pages after the first
    comes as ``page:<index>``; METS points at the outputs rendered here or, under
    ``output_root``, already on disk. ``notes`` collects what the run report should say (a PDF
    that could not be PDF/A)."""
    options = options or OutputOptions()
    out: dict[str, bytes] = {}
    layout: FileLayout | None = None
    sources = frames = None
    pdf_input = _is_pdf_input(document)
    rel = str((document.get("source") or {}).get("path") or (source_path.name if source_path else ""))
    for name in ordered(names):
        if name == "txt":
            out[name] = str(document.get("text") or "").encode("utf-8")
        elif name == "md":
            out[name] = markdown_document(document).encode("utf-8")
        elif name == "json":
            out[name] = (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
        else:
            if layout is None and pdf_input:
                layout, frames = _pdf_layout(document, source_path)
            elif layout is None:
                layout, sources = _layout(document, source_path)
            if name == "alto":
                from .alto import render_alto
                out[name] = render_alto(layout)
            elif name == "hocr":
                from .hocr import render_hocr
                out[name] = render_hocr(layout)
            elif name == "pdf":
                out[name] = _pdf(document, layout, source_path, sources, frames, options, notes)
            elif name == "page":
                from .page import render_pages
                for page, data in zip(layout.pages, render_pages(layout)):
                    out["page" if page.index == 0 else f"page:{page.index}"] = data
            elif name == "mets":
                out[name] = render_mets(layout, _mets_files(document, layout, out, output_root, rel, source_path))
            else:
                raise OutputError(f"unknown output format {name!r}")
    return out


def write_outputs_sync(output_root: Path, rel: str, names: Sequence[str], document: dict[str, Any],
                       source_path: Path | None, options: OutputOptions | None = None,
                       notes: list[str] | None = None) -> list[str]:
    """Render, then write each output atomically (json last); return the relative paths of the
    recorded outputs (one per format; further PAGE-XML pages are written beside the first)."""
    if "mets" not in names and set(names) & set(POINTS_AT) and output_path(output_root, rel, SUFFIXES["mets"]).exists():
        names = [*names, "mets"]    # a METS on disk records checksums: rewriting a file it points at rewrites it
    rendered = render(names, document, source_path, options, notes, output_root)
    written = []
    for name, data in rendered.items():
        if name.startswith("page:"):
            write_atomic_sync(page_file(output_root, rel, int(name[5:])), data)
            continue
        path = output_path(output_root, rel, SUFFIXES[name])
        write_atomic_sync(path, data)
        written.append(path.relative_to(output_root).as_posix())
    return written


_write_in_thread = aiofiles.os.wrap(write_outputs_sync)


async def write_outputs(output_root: Path, rel: str, names: Sequence[str], document: dict[str, Any],
                        source_path: Path | None, options: OutputOptions | None = None,
                        notes: list[str] | None = None) -> list[str]:
    return await _write_in_thread(output_root, rel, names, document, source_path, options, notes)


def read_document(output_root: Path, rel: str) -> dict[str, Any] | None:
    """The stored result ``.json`` of ``rel``, or None when missing or unreadable."""
    try:
        doc = json.loads(output_path(output_root, rel, SUFFIXES["json"]).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("pages"), list) else None


FOLDER_METS = "folder.mets.xml"


def write_folder_mets_sync(output_root: Path, input_root: Path, folder: str, rels: Sequence[str]) -> str | None:
    """One METS for the done files ``rels`` of ``folder`` (a multi-file object: the pages of a
    volume scanned one image a page), in name order, from their ``.json`` and the outputs on disk
    (no API call). Written as ``folder.mets.xml`` in the folder's output; returns its relative
    path, or None when no file has a readable record."""
    parts = []
    for rel in sorted(rels):
        document = read_document(output_root, rel)
        if document is None:
            continue
        layout = layout_from_document(document)
        parts.append((layout, _mets_files(document, layout, {}, output_root, rel, input_root / rel)))
    if not parts:
        return None
    path = output_root / folder / FOLDER_METS
    name = folder.rsplit("/", 1)[-1] if folder else input_root.name
    write_atomic_sync(path, render_mets_parts(folder or ".", name, parts))
    return path.relative_to(output_root).as_posix()
