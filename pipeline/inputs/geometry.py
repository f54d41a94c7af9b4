"""Map a box on the submitted image back to the source page, as a person sees the source.

Why a value object: ``prepare`` may rotate (EXIF orientation), downscale, pad and re-encode a
page before it is sent, and the engine's boxes are in the pixels of what was sent. Every
archival output (ALTO, hOCR, the searchable PDF's text layer) needs the boxes in the source's
own coordinates, and none of them should redo that arithmetic. ``PageGeometry`` is built once
per page from what ``prepare`` recorded in the result ``.json`` (``image.pages[i]``) and maps
boxes with ``to_source``.

What the mapping undoes, and why it is only a scale and a clip:

* EXIF rotation is applied *before* anything else and the upload is upright, so the engine
  already sees the page as a person does; the only thing left is the oriented page size (the
  stored size with width and height swapped for orientations 5-8).
* Downscaling (``downscale:``, ``jpeg_draft:``, the re-encode ladder) is a uniform scale of the
  oriented page: source = submitted / scale, per axis (the two axes are rounded separately).
* Padding (``pad:``) adds white at the right and bottom only, so it never moves a coordinate;
  a box in the padding is clipped to the page.
* PDF pages (rendered by ``pipeline.inputs.pdf`` at ``render_dpi``) map into the page's own coordinate
  system in PDF points: one more factor of ``72 / render_dpi``, origin top-left like the image.
  "The page" is the page as a viewer shows it: its CropBox, turned by its ``/Rotate``, which is
  what pdfium renders; ``formats.pdfpage`` maps that frame onto the PDF's user space.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

Box = tuple[float, float, float, float]  # x0, y0, x1, y1

#: orientations whose transpose swaps width and height (rotate 90/270, transpose, transverse)
SWAPPING_ORIENTATIONS = (5, 6, 7, 8)


@dataclass(frozen=True)
class PageGeometry:
    """How one submitted page relates to its source page."""

    submitted_width: int
    submitted_height: int
    source_width: float       # the page as a person sees it (after EXIF rotation); unit below
    source_height: float
    scale_x: float            # submitted pixels per source unit
    scale_y: float
    unit: str = "pixel"       # "pixel" for images, "pt" for PDF pages
    orientation: int = 1      # the EXIF orientation prepare applied (1 = none)

    def to_source(self, box: Sequence[float]) -> Box:
        """A submitted-image box in source units, clipped to the page (pixels rounded to int)."""
        x0, y0, x1, y1 = (float(v) for v in box[:4])
        x0, x1 = sorted((x0 / self.scale_x, x1 / self.scale_x))
        y0, y1 = sorted((y0 / self.scale_y, y1 / self.scale_y))
        w, h = self.source_width, self.source_height
        out = (min(max(x0, 0.0), w), min(max(y0, 0.0), h), min(max(x1, 0.0), w), min(max(y1, 0.0), h))
        if self.unit == "pixel":
            return tuple(float(round(v)) for v in out)  # type: ignore[return-value]
        return tuple(round(v, 2) for v in out)  # type: ignore[return-value]

    # -- construction from what prepare recorded --------------------------------------------

    @classmethod
    def from_prepared(cls, image: dict[str, Any], page_index: int,
                      source_size: tuple[float, float] | None = None) -> "PageGeometry":
        """Geometry of page ``page_index`` from the result ``.json``'s ``image`` record.

        ``source_size`` is the oriented page size when the caller has read it from the source
        file (exact for every page of a multi-page TIFF); without it the size is derived from
        the record (exact for page 1 and for pages that were not padded).
        """
        pages = image.get("pages") or []
        page = next((p for p in pages if p.get("page_index") == page_index), None)
        if page is None:
            raise ValueError(f"no prepared record for page {page_index}")
        pdf_page = page.get("source") or {}
        if pdf_page.get("kind") == "pdf_page":
            return cls.from_pdf_record(page)
        sub_w, sub_h = int(page["width"]), int(page["height"])
        scale = float(page.get("scale") or 1.0)
        orientation = _orientation(page.get("transforms") or ())
        if source_size is None:
            source_size = _derived_source_size(image, page, scale, orientation)
        ow, oh = float(source_size[0]), float(source_size[1])
        sx = sub_w / ow if abs(sub_w - ow * scale) <= 1.0 else scale   # else: that axis was padded
        sy = sub_h / oh if abs(sub_h - oh * scale) <= 1.0 else scale
        return cls(sub_w, sub_h, ow, oh, sx, sy, "pixel", orientation)

    @classmethod
    def from_pdf_record(cls, page: dict[str, Any]) -> "PageGeometry":
        """A PDF page from its record (``image.pages[i]``, with the ``source`` facts ``pdf.py``
        writes). Per axis, submitted pixels per point are the rendered bitmap's size over the
        page size (exact for the bitmap pdfium really drew, whose sides are rounded) times the
        upload's scale. A page taken from the PDF's text layer was never rendered: the geometry
        then only carries the page size (its boxes come from the PDF itself, ``pdf_text``)."""
        src = page["source"]
        pw, ph = (float(v) for v in src["page_size_pt"])
        if "rendered_size" not in src:
            return cls(0, 0, pw, ph, 1.0, 1.0, "pt", 1)
        rw, rh = (float(v) for v in src["rendered_size"])
        scale = float(page.get("scale") or src.get("upload_scale") or 1.0)
        return cls(int(page["width"]), int(page["height"]), pw, ph, rw / pw * scale, rh / ph * scale, "pt", 1)


def _orientation(transforms: Sequence[str]) -> int:
    for t in transforms:
        if t.startswith("exif_transpose:"):
            try:
                return int(t.split(":", 1)[1])
            except ValueError:
                return 1
    return 1


def _derived_source_size(image: dict[str, Any], page: dict[str, Any], scale: float,
                         orientation: int) -> tuple[float, float]:
    if page.get("page_index", 0) == 0 and image.get("source_width") and image.get("source_height"):
        w, h = float(image["source_width"]), float(image["source_height"])
        return (h, w) if orientation in SWAPPING_ORIENTATIONS else (w, h)
    # Later pages: the upload's size undone by the scale (padding, if any, stays on the page).
    return (round(page["width"] / scale), round(page["height"] / scale))


@dataclass(frozen=True)
class StripOffset:
    """A strip's place on its page's upload: boxes on the strip are moved by its top-left corner.

    A page too tall for the model is sent as strips (``pipeline.inputs.strips``); each strip's
    answer has its boxes in the strip's own pixels. Moving them by the strip's offset puts them
    on the page's upload, where ``PageGeometry`` takes over as for a page sent whole. It is a
    translation only: a strip is cut, never scaled.
    """

    dx: int
    dy: int

    def to_page(self, box: Sequence[float]) -> list[float]:
        x0, y0, x1, y1 = (float(v) for v in box[:4])
        return [x0 + self.dx, y0 + self.dy, x1 + self.dx, y1 + self.dy]

    def shift_result(self, result: dict[str, Any]) -> dict[str, Any]:
        """A ``format=json`` answer (blocks, lines, words with ``box``) with every box moved."""
        def moved(item: Any) -> Any:
            if not isinstance(item, dict):
                return item
            out = dict(item)
            if isinstance(out.get("box"), (list, tuple)) and len(out["box"]) >= 4:
                out["box"] = self.to_page(out["box"])
            for key in ("blocks", "lines", "words"):
                if isinstance(out.get(key), list):
                    out[key] = [moved(child) for child in out[key]]
            return out
        return moved(result)
