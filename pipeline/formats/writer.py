"""The one writer of a file's outputs: render every configured format, write each atomically.

Why one writer: ``process`` (after OCR) and the regeneration of missing outputs for done files
(no API call) must produce identical files. Both call ``write_outputs``. Every output is
rendered first, in memory, then written by temp file + ``os.replace``; the ``.json`` goes last,
so its presence means the others are complete. Runs in one worker thread per file (Pillow and
XML work stay off the event loop).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, Sequence

import aiofiles.os
import pypdfium2 as pdfium

from pipeline.formats.output import output_path, write_atomic_sync

from . import SUFFIXES
from .alto import render_alto
from .hocr import render_hocr
from .markdown import markdown_document
from .model import FileLayout, layout_from_document
from .pdf import render_pdf
from .pdf_overlay import render_pdf_over_original
from .pdf_text import read_pdf
from .pdfpage import PdfFrame
from .source import SourcePage, read_source_pages


class OutputError(Exception):
    """An output could not be rendered (e.g. the source image for the PDF is unreadable)."""


def ordered(names: Iterable[str]) -> list[str]:
    """The configured names in writing order: json last."""
    names = list(dict.fromkeys(names))
    return [n for n in names if n != "json"] + (["json"] if "json" in names else [])


def expected_outputs(output_root: Path, rel: str, names: Sequence[str]) -> list[str]:
    """Output paths (relative to ``output_root``) that ``names`` mean for input ``rel``."""
    return [output_path(output_root, rel, SUFFIXES[n]).relative_to(output_root).as_posix() for n in ordered(names)]


def missing_outputs(recorded: Iterable[str], output_root: Path, rel: str, names: Sequence[str]) -> list[str]:
    """Format names configured for ``rel`` whose file the state does not list as written."""
    have = set(recorded)
    return [n for n in ordered(names)
            if output_path(output_root, rel, SUFFIXES[n]).relative_to(output_root).as_posix() not in have]


def _is_pdf_input(document: dict[str, Any]) -> bool:
    return (document.get("image") or {}).get("source_format") == "PDF"


def _pdf_layout(document: dict[str, Any], source_path: Path | None) -> tuple[FileLayout, list[PdfFrame] | None]:
    """A PDF input: boxes from the record (OCR pages, in the displayed frame through the render
    dpi), and the words of text-layer pages from the PDF itself (``pdf_text``). Without a
    readable source the text-layer pages stay text-only (flagged) and no PDF can be written."""
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
    sources = None
    if source_path is not None:
        try:
            sources = read_source_pages(source_path)
        except (OSError, ValueError):
            sources = None  # the record's own sizes are used (exact for page 1)
    sizes = {p.index: (p.width, p.height) for p in sources} if sources else None
    return layout_from_document(document, sizes), sources


def render(names: Sequence[str], document: dict[str, Any], source_path: Path | None) -> dict[str, bytes]:
    """Every named output rendered to bytes (no file touched)."""
    out: dict[str, bytes] = {}
    layout: FileLayout | None = None
    sources = frames = None
    pdf_input = _is_pdf_input(document)
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
                out[name] = render_alto(layout)
            elif name == "hocr":
                out[name] = render_hocr(layout)
            elif name == "pdf":
                if source_path is None:
                    raise OutputError("the searchable PDF needs the source file")
                if pdf_input and frames is None:
                    raise OutputError("the searchable PDF needs the source PDF, which cannot be read")
                try:
                    out[name] = (render_pdf_over_original(layout, source_path, frames) if pdf_input
                                 else render_pdf(layout, source_path, sources))
                except Exception as exc:  # one file's bad image is that file's error, never the run's
                    raise OutputError(f"cannot write the searchable PDF: {exc}") from exc
            else:
                raise OutputError(f"unknown output format {name!r}")
    return out


def write_outputs_sync(output_root: Path, rel: str, names: Sequence[str], document: dict[str, Any],
                       source_path: Path | None) -> list[str]:
    """Render, then write each output atomically (json last); return their relative paths."""
    rendered = render(names, document, source_path)
    written = []
    for name, data in rendered.items():
        path = output_path(output_root, rel, SUFFIXES[name])
        write_atomic_sync(path, data)
        written.append(path.relative_to(output_root).as_posix())
    return written


_write_in_thread = aiofiles.os.wrap(write_outputs_sync)


async def write_outputs(output_root: Path, rel: str, names: Sequence[str], document: dict[str, Any],
                        source_path: Path | None) -> list[str]:
    return await _write_in_thread(output_root, rel, names, document, source_path)


def read_document(output_root: Path, rel: str) -> dict[str, Any] | None:
    """The stored result ``.json`` of ``rel``, or None when missing or unreadable."""
    try:
        doc = json.loads(output_path(output_root, rel, SUFFIXES["json"]).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("pages"), list) else None
