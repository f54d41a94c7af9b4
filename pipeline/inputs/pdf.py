"""PDF pages as pages: open a PDF with pypdfium2, then hand out one page at a time.

Why this shape: deAPI's ``img2txt`` takes images only, and archives hold books of hundreds of
pages. :class:`PdfSource` keeps the document open (pdfium reads it from disk on demand) and
turns *one* page into either

* a :class:`TextLayerPage` — the page's embedded text is real text, so no API call is needed; or
* a :class:`~pipeline.inputs.prepare.PreparedPage` — the page rendered at ``pdf.dpi`` (lowered only so the
  bitmap fits ``max_width``, as for an image; a page taller than ``max_height`` is cut into strips by
  the run; rendering at the target size is sharper than rendering big and downscaling) and then prepared exactly like a TIFF frame.

The caller asks for pages in order and keeps only a few at a time, so memory does not grow with
the page count (``bench/pdf_render.py``).

Every page records, under ``source``, what a box on the upload needs to be mapped back onto the
PDF page: the page size in points as displayed, the ``/Rotate`` pdfium applied while rendering,
the media box, pixels per point, the upload's scale and its white padding (right and bottom).

pdfium is not thread-safe, so every pdfium call, across all documents, holds ``_PDFIUM_LOCK``;
the Pillow work after rendering runs outside it.

File-level rejections (``RejectedInput.code``): ``encrypted`` (a user password is needed),
``damaged_pdf`` (pdfium cannot parse it, or the file ends before its ``%%EOF`` marker),
``no_pages``, ``too_many_pages``. Page-level failures (:class:`PageFailed`): ``page_render_failed``,
``decompression_bomb`` (the page at ``pdf.dpi`` would exceed ``max_source_pixels``; checked from
the page size before anything is rendered).
"""

from __future__ import annotations

import re
import threading
from decimal import Decimal
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from pipeline.inputs.geometry import straightened_size, straightening
from pipeline.inputs.prepare import PrecheckLimits, PreparedPage, RejectedInput, prepare_image_page, stat_input


class PdfSettings(Protocol):
    """What PDF reading needs of the ``pdf:`` settings (``config.PdfConfig`` is one). Declared here
    so that ``inputs/`` reads settings without importing the configuration, which sits above it."""

    dpi: int
    text_layer: str
    max_pages: int
    min_text_chars: int
    trust_invisible_text: bool


__all__ = ["PdfSource", "PdfSettings", "TextLayerPage", "PageFailed", "is_pdf", "PDF_REJECTION_CODES"]

PDF_REJECTION_CODES = {
    "encrypted": "the PDF needs a user password to open",
    "damaged_pdf": "the PDF is damaged or truncated and cannot be parsed",
    "no_pages": "the PDF has no pages",
    "too_many_pages": "the PDF has more pages than pdf.max_pages",
    "page_render_failed": "one or more pages could not be rendered (the others were OCRed)",
}

_PDFIUM_LOCK = threading.Lock()
# pdfium's text of a line that ends in a hyphen: the hyphen and the line break become one U+FFFE
# (a Unicode noncharacter, which XML cannot hold) joining the two lines ("con-" / "sider" reads
# "con\ufffesider"); per character (FPDFText_GetUnicode) that hyphen is U+0002. Put back as printed.
LINE_END_HYPHEN = "\ufffe"
LINE_END_HYPHEN_CHAR = "\x02"
_TAIL_BYTES = 4096          # where a complete PDF's last %%EOF marker must be
_MIN_PRINTABLE = 0.9        # share of printable characters for a text layer to count as text
_SCAN_SHARE = 0.5           # an image over at least this share of the page is a scanned page ...
_STAMP_SHARE = 0.05         # ... unless text covers at least this share: else its text is a stamp
_MAX_USER_UNIT = 75000.0    # the largest /UserUnit (PDF 2.0's implementation limit, Acrobat's)


def displayed_box(page: pdfium.PdfPage) -> tuple[float, float, float, float]:
    """The page's CropBox clipped to its MediaBox, in user space (before ``/Rotate``): what pdfium
    renders and ``get_size`` measures. Not ``get_cropbox()``/``get_mediabox()``: pdfium reads
    those only from the page itself, not inherited from the page tree (crbug.com/pdfium/1786),
    and pypdfium2 then answers US Letter; fpdf2, for one, puts a single-size document's MediaBox
    on the tree's root, so every word was mapped with a 792 pt tall page."""
    return tuple(float(v) for v in page.get_bbox())  # type: ignore[return-value]


def is_pdf(head: bytes) -> bool:
    """Content, not extension: the PDF header may follow up to 1 KB of junk (the spec allows it)."""
    return b"%PDF-" in head[:1024]


@dataclass(frozen=True)
class TextLayerPage:
    """A page whose text came from the PDF itself; it costs no API call."""

    page_index: int
    text: str
    source: dict


class PageFailed(Exception):
    """This one page cannot become an upload; the document's other pages go on."""

    def __init__(self, page_index: int, code: str, reason: str) -> None:
        super().__init__(f"page {page_index + 1}: {code}: {reason}")
        self.page_index, self.code, self.reason = page_index, code, reason


class PdfSource:
    """An open PDF handing out its pages one at a time. Close it (or use ``with``)."""

    kind = "PDF"
    lazy = True       # page() renders: run it in a worker thread

    def __init__(self, path: Path, limits: PrecheckLimits, settings: PdfSettings) -> None:
        self.path, self.limits, self.settings = Path(path), limits, settings
        self._user_units: tuple[float, ...] | None = None
        self.size = stat_input(self.path)
        self._check_tail()
        with _PDFIUM_LOCK:
            try:
                self._doc = pdfium.PdfDocument(str(self.path))
            except pdfium.PdfiumError as exc:
                raise _open_error(exc, self.path) from None
            self.page_count = len(self._doc)
            self.version = self._doc.get_version()
            # Before any page is loaded: without a form environment pdfium draws no form field,
            # and ``may_draw_forms`` alone drew nothing, so a filled-in field's value (a name
            # typed into a form, a page of fields only) never reached the OCR, silently.
            self._doc.init_forms()
        if self.page_count == 0:
            self.close()
            raise RejectedInput("no_pages", "the PDF opens but has no pages; nothing to OCR")
        if self.page_count > settings.max_pages:
            self.close()
            raise RejectedInput("too_many_pages", f"{self.page_count} pages exceed pdf.max_pages="
                                                  f"{settings.max_pages}; split the PDF or raise pdf.max_pages")

    def __enter__(self) -> "PdfSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        doc, self._doc = getattr(self, "_doc", None), None
        if doc is not None:
            with _PDFIUM_LOCK:
                doc.close()

    def info(self) -> dict:
        """File-level facts for the result ``.json`` (the per-page facts are in each page)."""
        return {"source_format": "PDF", "source_bytes": self.size, "page_count": self.page_count,
                "pdf_version": self.version, "dpi": self.settings.dpi, "text_layer": self.settings.text_layer}

    def _check_tail(self) -> None:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(max(0, self.size - _TAIL_BYTES))
                tail = fh.read()
        except OSError as exc:
            raise RejectedInput("unreadable", f"cannot read the file: {exc.strerror or exc}") from None
        if b"%%EOF" not in tail:
            raise RejectedInput("damaged_pdf", "the PDF ends before its %%EOF marker: the file is truncated "
                                               "(incomplete copy or download); copy it again")

    # -- one page -----------------------------------------------------------------------------

    def page(self, index: int) -> PreparedPage | TextLayerPage:
        """Page ``index`` (0-based) as text-layer text or as an upload; :class:`PageFailed` if neither."""
        settings, limits = self.settings, self.limits
        with _PDFIUM_LOCK:
            try:
                page = self._doc[index]
            except pdfium.PdfiumError as exc:
                raise PageFailed(index, "page_render_failed", f"pdfium cannot load the page ({exc})") from None
            try:
                width_pt, height_pt = page.get_size()          # as displayed, /Rotate applied
                source = {"kind": "pdf_page", "page_number": index + 1,
                          "page_size_pt": [round(width_pt, 3), round(height_pt, 3)],
                          "mediabox_pt": [round(v, 3) for v in page.get_mediabox(fallback_ok=False) or displayed_box(page)],
                          "rotation": page.get_rotation()}
                if settings.text_layer != "ocr":
                    text, verdict = _text_layer(page, settings)
                    source["text_layer"] = verdict
                    if text is not None:
                        source["text_source"] = "text_layer"
                        return TextLayerPage(index, text, source)
                unit = self._user_unit(index)
                if unit != 1.0:
                    source["user_unit"] = unit
                image, px_per_pt = self._render(page, index, width_pt, height_pt, unit)
            except pdfium.PdfiumError as exc:
                raise PageFailed(index, "page_render_failed", f"pdfium cannot render the page ({exc})") from None
            finally:
                page.close()
        try:
            dpi = round(px_per_pt * 72 / unit, 2)
            name = f"{self.path.stem or 'document'}-p{index + 1:04d}"
            prepared = prepare_image_page(image, "PDF", index, name, [f"render:{dpi}dpi"], limits)
        except RejectedInput as exc:
            raise PageFailed(index, exc.code, exc.reason) from None
        finally:
            image.close()
        skew, turn = straightening(prepared.transforms)      # a scanned page may be straightened
        drawn_w, drawn_h = straightened_size(image.width, image.height, skew, turn)
        content_w = round(drawn_w * prepared.scale)
        content_h = round(drawn_h * prepared.scale)
        source.update({"text_source": "ocr", "render_dpi": dpi, "px_per_pt": round(px_per_pt, 6),
                       "rendered_size": [image.width, image.height],
                       "upload_scale": prepared.scale, "upload_size": [prepared.width, prepared.height],
                       "padding": [max(0, prepared.width - content_w), max(0, prepared.height - content_h)]})
        return replace(prepared, source=source)

    def _user_unit(self, index: int) -> float:
        """The page's ``/UserUnit``: how many points one unit of its coordinates is (PDF 1.6, for
        pages over 200 inches: large maps and plans). Why read here: pdfium ignores it and
        measures and renders such a page as if its units were points, so a page with /UserUnit
        10 was drawn at a tenth of its size and its words sent 4 px tall, read as garbage, with
        no error. Read with pikepdf (qpdf; pdfium has no call for it) for all pages at the first
        page rendered; 1 when absent, not a number in (0, 75000], or the PDF beyond qpdf.
        Called with ``_PDFIUM_LOCK`` held, which also keeps pages' threads off the pikepdf copy."""
        if self._user_units is None:
            units: tuple[float, ...] = ()
            try:
                import pikepdf   # here: a run's start-up imports no pikepdf (test_startup)

                with pikepdf.open(self.path) as doc:
                    units = tuple(_unit(page.obj.get("/UserUnit")) for page in doc.pages)
            except Exception:   # qpdf's own verdict on a PDF pdfium opened: its pages keep points
                pass
            self._user_units = units if len(units) == self.page_count else ()
        return self._user_units[index] if index < len(self._user_units) else 1.0

    def _render(self, page: pdfium.PdfPage, index: int, width_pt: float, height_pt: float, unit: float = 1.0):
        """The page drawn at ``pdf.dpi`` (``width_pt``/``height_pt`` in the page's own units,
        ``unit`` points each), lowered only to fit the width limit; and the pixels per unit."""
        limits, dpi = self.limits, self.settings.dpi
        if not (width_pt > 0 and height_pt > 0):
            raise PageFailed(index, "page_render_failed", f"the page declares an impossible size "
                                                          f"{width_pt}x{height_pt} pt")
        full_w, full_h = width_pt * unit * dpi / 72, height_pt * unit * dpi / 72
        if full_w * full_h > limits.max_source_pixels:
            raise PageFailed(index, "decompression_bomb",
                             f"the page is {width_pt * unit:.0f}x{height_pt * unit:.0f} pt, {full_w:.0f}x{full_h:.0f} = "
                             f"{full_w * full_h:,.0f} pixels at {dpi} dpi, over max_source_pixels="
                             f"{limits.max_source_pixels:,}; nothing was rendered")
        px_per_pt = dpi / 72 * unit * limits.fit(full_w)
        if width_pt * px_per_pt < 1 or height_pt * px_per_pt < 1:
            raise PageFailed(index, "page_render_failed", f"the page is {width_pt:.0f}x{height_pt:.0f} pt: "
                                                          "too thin to render within the pixel limits")
        bitmap = page.render(scale=px_per_pt, may_draw_forms=True)
        try:
            image = bitmap.to_pil().copy()   # own the pixels; the bitmap's buffer is freed below
        finally:
            bitmap.close()
        return image, px_per_pt


def _unit(value: object) -> float:
    """A ``/UserUnit`` value as a number, 1 for anything but a number in (0, 75000]."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):   # pikepdf's reals: Decimal
        return 1.0
    unit = float(value)
    return unit if 0 < unit <= _MAX_USER_UNIT else 1.0


def _text_layer(page: pdfium.PdfPage, settings: PdfSettings) -> tuple[str | None, str]:
    """The page's embedded text when it should be used, else None; and the verdict, for the .json."""
    textpage = page.get_textpage()
    try:
        text = textpage.get_text_range()
    finally:
        textpage.close()
    text = text.replace(LINE_END_HYPHEN, "-\n").replace("\r\n", "\n").replace("\r", "\n").strip("\n")
    chars = [c for c in text if not c.isspace()]
    if not chars:
        return None, "none"
    if settings.text_layer == "use":
        return text, "used"
    if len(chars) < settings.min_text_chars:
        return None, f"too_short:{len(chars)}"
    printable = sum(c.isprintable() and c != "\ufffd" for c in chars) / len(chars)
    if printable < _MIN_PRINTABLE:
        return None, f"unprintable:{printable:.2f}"
    if not settings.trust_invisible_text and _mostly_invisible(page):
        return None, "invisible"    # an OCR layer of unknown quality: OCR the page ourselves
    stamp = _text_share_over_a_scan(page)
    if stamp is not None:
        return None, f"scanned_page:{stamp:.3f}"   # a header stamped on a scan: OCR the scan
    return text, "used"


def _text_share_over_a_scan(page: pdfium.PdfPage) -> float | None:
    """The share of the page its text covers, when the page is a scan (an image over half of it
    or more) whose text covers under 5 % of it; else None.

    Why: a scanned page with a line of real text added (a court's filing stamp, a "downloaded
    from" footer, an archive's cover heading, a Bates number) passed every test of real text, so
    the stamp was the page's whole text and the scan's words were never read, silently. A page
    of born-digital text covers far more (a sparse one, three lines, about 4 %); a page whose
    text lies over a page-sized picture (a slide, a form on a background) keeps its layer."""
    x0, y0, x1, y1 = page.get_cropbox()
    area = (x1 - x0) * (y1 - y0)
    if area <= 0:
        return None
    images, texts = 0.0, 0.0
    for obj in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE, pdfium_c.FPDF_PAGEOBJ_TEXT]):
        left, bottom, right, top = obj.get_bounds()
        shown = max(0.0, min(right, x1) - max(left, x0)) * max(0.0, min(top, y1) - max(bottom, y0))
        if obj.type == pdfium_c.FPDF_PAGEOBJ_IMAGE:
            images = max(images, shown)
        else:
            texts += shown
    if images < _SCAN_SHARE * area or texts >= _STAMP_SHARE * area:
        return None
    return texts / area


def _mostly_invisible(page: pdfium.PdfPage) -> bool:
    """True when most text objects use render mode 3 (invisible): the mark of an OCR layer."""
    modes = [pdfium_c.FPDFTextObj_GetTextRenderMode(obj.raw)
             for obj in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_TEXT])]
    if not modes:
        return False
    return sum(m == pdfium_c.FPDF_TEXTRENDERMODE_INVISIBLE for m in modes) * 2 > len(modes)


def _open_error(exc: pdfium.PdfiumError, path: Path) -> RejectedInput:
    code = getattr(exc, "err_code", None)
    # pdfium refuses a document whose page tree is empty without setting an error, so the code
    # it reports is whatever the last failed load left (an encrypted file's PASSWORD, say): the
    # page tree is looked at first.
    if code == pdfium_c.FPDF_ERR_SUCCESS or _empty_page_tree(path):
        return RejectedInput("no_pages", "the PDF has no pages (its page tree is empty); nothing to OCR")
    if code == pdfium_c.FPDF_ERR_PASSWORD:
        return RejectedInput("encrypted", "the PDF is encrypted with a user password; "
                                          "save an unprotected copy to OCR it")
    if code == pdfium_c.FPDF_ERR_SECURITY:
        return RejectedInput("encrypted", "the PDF uses an encryption scheme pdfium does not support; "
                                          "save an unprotected copy")
    return RejectedInput("damaged_pdf", f"the PDF is damaged and cannot be parsed ({exc}); "
                                        "re-export or copy it again")


_EMPTY_TREE = re.compile(rb"/Type\s*/Pages\b[^>]*/Count\s+0\b|/Count\s+0\b[^>]*/Type\s*/Pages\b")


def _empty_page_tree(path: Path) -> bool:
    """A cheap look at a file pdfium refused: a page tree that counts 0 pages. (pdfium's error
    code is process-wide and may be stale, so it cannot tell; object streams simply say no.)"""
    try:
        with open(path, "rb") as fh:
            data = fh.read(16 << 20)
    except OSError:
        return False
    return bool(_EMPTY_TREE.search(data))
