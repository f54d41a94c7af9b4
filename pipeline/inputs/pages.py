"""One interface to a file's pages, whatever the file is: a single image, TIFF frames, PDF pages.

Why: per-page state, submission and the outputs should never ask what kind of file a page came
from. :func:`open_source` looks at the *content* (``%PDF-`` in the first KB, never the
extension) and returns a :class:`PageSource`:

* :class:`ImageSource` wraps :func:`pipeline.inputs.prepare.prepare_file` (images are prepared when
  opened, as before: a single image or a TIFF's frames);
* :class:`pipeline.inputs.pdf.PdfSource` renders one page per :meth:`PageSource.page` call, so a
  1,000-page PDF is never in memory at once.

``page(i)`` returns a :class:`~pipeline.inputs.prepare.PreparedPage` (to submit) or a
:class:`~pipeline.inputs.pdf.TextLayerPage` (text taken from the PDF, no API call), or raises
:class:`~pipeline.inputs.pdf.PageFailed` for that page alone. ``lazy`` says whether ``page`` does real
work (and should run in a worker thread).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from pipeline.inputs.pdf import PageFailed, PdfSettings, PdfSource, TextLayerPage, is_pdf
from pipeline.inputs.prepare import PrecheckLimits, PreparedPage, prepare_file

__all__ = ["PageSource", "ImageSource", "open_source", "sniff_pdf", "is_pdf", "PageFailed", "TextLayerPage"]


class PageSource(Protocol):
    kind: str
    lazy: bool
    page_count: int

    def info(self) -> dict: ...
    def page(self, index: int) -> PreparedPage | TextLayerPage: ...
    def close(self) -> None: ...


class ImageSource:
    """An image file's pages, prepared up front by :func:`prepare_file`."""

    lazy = False

    def __init__(self, path: Path, limits: PrecheckLimits) -> None:
        self._prepared = prepare_file(path, limits)
        self.kind = self._prepared.source_format
        self.page_count = len(self._prepared.pages)

    def info(self) -> dict:
        doc = self._prepared.to_json()
        doc.pop("pages")
        return doc

    def page(self, index: int) -> PreparedPage:
        return self._prepared.pages[index]

    def close(self) -> None:
        self._prepared = None  # type: ignore[assignment]


def sniff_pdf(path: Path) -> bool:
    """Whether the file's content is a PDF (an unreadable file is not; prepare says why)."""
    try:
        with open(path, "rb") as fh:
            return is_pdf(fh.read(1024))
    except OSError:
        return False


def open_source(path: Path, limits: PrecheckLimits, pdf: PdfSettings) -> PdfSource | ImageSource:
    """The page source for ``path``; raises :class:`~pipeline.inputs.prepare.RejectedInput` for bad files."""
    path = Path(path)
    if sniff_pdf(path):
        return PdfSource(path, limits, pdf)
    return ImageSource(path, limits)
