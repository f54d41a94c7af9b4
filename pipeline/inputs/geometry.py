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
* Square pixels (``square_pixels:FXxFY``): a page whose stated resolution differs by axis (a
  fax at 204 x 98 dpi) was stretched by those factors before anything below; every other step
  happened on that square-pixel frame, which is undone last, per axis.
* Padding (``pad:``) adds white at the right and bottom only, so it never moves a coordinate;
  a box in the padding is clipped to the page.
* Straightening (``deskew:A``, then ``turn:Q``, both from ``pipeline.inputs.upright``) turns the
  page by a small angle about its centre on a canvas of its own size, then by a quarter turn;
  both are undone exactly here (:func:`deskew_frame` is the one matrix both sides use). A word
  box on the straightened page is a tilted rectangle on the source: its box in the source frame
  is the bounds of its four corners, so it is a little larger than the word (about
  ``h * sin(A)`` on each side for a word ``h`` high).
* PDF pages (rendered by ``pipeline.inputs.pdf`` at ``render_dpi``) map into the page's own coordinate
  system in PDF points: one more factor of ``72 / render_dpi``, origin top-left like the image;
  a rendered page that was straightened is undone the same way, in points.
  "The page" is the page as a viewer shows it: its CropBox, turned by its ``/Rotate``, which is
  what pdfium renders; ``formats.pdfpage`` maps that frame onto the PDF's user space.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

Box = tuple[float, float, float, float]  # x0, y0, x1, y1


def is_box(value: Any) -> bool:
    """Whether an answer's ``box`` is one: four finite numbers first (``[x0, y0, x1, y1]``).

    Why: a ``format=json`` answer is the API's to shape (deapi-api.md §1.4); a box of strings or
    nulls (``["a", null]``, ``["10", "20", ..]``), too short, or NaN made the outputs fail the file
    with an internal error (``float("a")``). A line whose box is not one has no position: its
    text stays, and is placed on the page as a text-only answer's is."""
    return (isinstance(value, (list, tuple)) and len(value) >= 4
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value[:4]))

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
    skew: float = 0.0         # deskew: degrees turned counter-clockwise about the centre
    turn: int = 0             # then a quarter turn counter-clockwise: 0, 90, 180 or 270
    stretch_x: float = 1.0    # square_pixels: the source stretched by these before the rest
    stretch_y: float = 1.0

    def to_source(self, box: Sequence[float]) -> Box:
        """A submitted-image box in source units, clipped to the page (pixels rounded to int)."""
        x0, y0, x1, y1 = (float(v) for v in box[:4])
        x0, x1 = sorted((x0 / self.scale_x, x1 / self.scale_x))
        y0, y1 = sorted((y0 / self.scale_y, y1 / self.scale_y))
        if self.skew or self.turn:
            x0, y0, x1, y1 = unstraighten((x0, y0, x1, y1), self.source_width * self.stretch_x,
                                          self.source_height * self.stretch_y, self.skew, self.turn)
        x0, x1 = x0 / self.stretch_x, x1 / self.stretch_x
        y0, y1 = y0 / self.stretch_y, y1 / self.stretch_y
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
        transforms = page.get("transforms") or ()
        orientation = _orientation(transforms)
        skew, turn = straightening(transforms)
        kx, ky = square_pixels(transforms)
        if source_size is None:
            source_size = _derived_source_size(image, page, scale, orientation)
            if (skew or turn) and page.get("page_index", 0) != 0:
                source_size = unstraightened_size(source_size, skew, turn)
            if page.get("page_index", 0) != 0:   # derived from the upload: the square-pixel frame
                source_size = (round(source_size[0] / kx), round(source_size[1] / ky))
        ow, oh = float(source_size[0]), float(source_size[1])
        # the frame that was scaled (ow, oh if neither square pixels nor straightening)
        fw, fh = straightened_size(round(ow * kx), round(oh * ky), skew, turn)
        sx = sub_w / fw if abs(sub_w - fw * scale) <= 1.0 else scale   # else: that axis was padded
        sy = sub_h / fh if abs(sub_h - fh * scale) <= 1.0 else scale
        return cls(sub_w, sub_h, ow, oh, sx, sy, "pixel", orientation, skew, turn, kx, ky)

    @classmethod
    def from_pdf_record(cls, page: dict[str, Any]) -> "PageGeometry":
        """A PDF page from its record (``image.pages[i]``, with the ``source`` facts ``pdf.py``
        writes). Per axis, submitted pixels per point are the rendered bitmap's size over the
        page size (exact for the bitmap pdfium really drew, whose sides are rounded) times the
        upload's scale. A page taken from the PDF's text layer was never rendered: the geometry
        then only carries the page size (its boxes come from the PDF itself, ``pdf_text``).
        A rendered page that was straightened (``deskew:``/``turn:``, as an image page) is
        undone in points: pdfium renders both axes at one resolution, so turning the bitmap
        about its centre is turning the page about its centre."""
        src = page["source"]
        pw, ph = (float(v) for v in src["page_size_pt"])
        if "rendered_size" not in src:
            return cls(0, 0, pw, ph, 1.0, 1.0, "pt", 1)
        rw, rh = (float(v) for v in src["rendered_size"])
        scale = float(page.get("scale") or src.get("upload_scale") or 1.0)
        skew, turn = straightening(page.get("transforms") or ())
        sx, sy = rw / pw * scale, rh / ph * scale
        if turn in (90, 270):       # the upload's x axis runs along the page's height
            sx, sy = sy, sx
        return cls(int(page["width"]), int(page["height"]), pw, ph, sx, sy, "pt", 1, skew, turn)


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
            if is_box(out.get("box")):
                out["box"] = self.to_page(out["box"])
            for key in ("blocks", "lines", "words"):
                if isinstance(out.get(key), list):
                    out[key] = [moved(child) for child in out[key]]
            return out
        return moved(result)


# -- straightening (deskew, then a quarter turn) -------------------------------------------------


def square_pixels(transforms: Sequence[str]) -> tuple[float, float]:
    """The stretch (x, y) that made the page's pixels square (``square_pixels:1.0000x2.0816``), or (1, 1)."""
    for t in transforms:
        kind, _, value = t.partition(":")
        if kind == "square_pixels":
            try:
                x, y = (float(v) for v in value.split("x"))
            except ValueError:
                break
            if x > 0 and y > 0:
                return x, y
    return 1.0, 1.0


def straightening(transforms: Sequence[str]) -> tuple[float, int]:
    """(deskew angle, quarter turn) recorded in ``transforms`` (``deskew:-4.00``, ``turn:90``)."""
    skew, turn = 0.0, 0
    for t in transforms:
        kind, _, value = t.partition(":")
        if kind == "deskew":
            skew = float(value)
        elif kind == "turn":
            turn = int(value) % 360
    return skew, turn


def deskew_frame(width: float, height: float, angle: float,
                 expand: bool = False) -> tuple[int, int, tuple[float, ...]]:
    """The canvas of a ``width`` x ``height`` page turned ``angle`` degrees counter-clockwise
    about its centre, and the affine matrix (``a, b, c, d, e, f``) from a point of that canvas to
    the page (Pillow's ``Image.transform(..., AFFINE, matrix)`` convention: the canvas centre
    maps to the page centre). The canvas is the page's own size (the corners that leave it are
    cut: a scan's corners are margin) unless ``expand``, which grows it to hold every corner.
    The upload keeps the page's size: the same price bucket and the same pixels per character
    as the page as stored (``expand`` is for making skewed test pages, ``bench/page_variants``)."""
    rad = math.radians(angle)
    cos, sin = math.cos(rad), math.sin(rad)
    # a page point p maps to the canvas by R(-angle) in image axes (y down): that is a
    # counter-clockwise turn as a person sees it
    corners = [(x - width / 2, y - height / 2) for x, y in ((0, 0), (width, 0), (width, height), (0, height))]
    xs = [x * cos + y * sin for x, y in corners]
    ys = [-x * sin + y * cos for x, y in corners]
    if expand:
        nw = max(1, math.ceil(max(xs) - min(xs) - 1e-6))
        nh = max(1, math.ceil(max(ys) - min(ys) - 1e-6))
    else:
        nw, nh = max(1, round(width)), max(1, round(height))
    # canvas -> page: p = R(angle) (q - canvas centre) + page centre
    a, b, d, e = cos, -sin, sin, cos
    c = width / 2 - a * nw / 2 - b * nh / 2
    f = height / 2 - d * nw / 2 - e * nh / 2
    return nw, nh, (a, b, c, d, e, f)


def straightened_size(width: float, height: float, skew: float, turn: int) -> tuple[float, float]:
    """The size of a ``width`` x ``height`` page once deskewed by ``skew`` and turned by ``turn``."""
    if skew:
        width, height, _ = deskew_frame(width, height, skew)
    return (height, width) if turn in (90, 270) else (width, height)


def unstraightened_size(size: Sequence[float], skew: float, turn: int) -> tuple[float, float]:
    """The page size before straightening, from the straightened one: used only when the record
    holds no source size for the page (later pages of a TIFF). A deskew keeps the size."""
    return (float(size[1]), float(size[0])) if turn in (90, 270) else (float(size[0]), float(size[1]))


def unstraighten(box: Box, width: float, height: float, skew: float, turn: int) -> Box:
    """A box on the straightened page back onto the page of ``width`` x ``height`` it came from:
    the quarter turn undone, then the deskew (the bounds of the box's four corners)."""
    dw, dh = (deskew_frame(width, height, skew)[:2] if skew else (width, height))
    x0, y0, x1, y1 = box
    corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    # Undo the quarter turn (counter-clockwise by ``turn`` on a dw x dh canvas).
    if turn == 90:
        corners = [(dw - y, x) for x, y in corners]
    elif turn == 180:
        corners = [(dw - x, dh - y) for x, y in corners]
    elif turn == 270:
        corners = [(y, dh - x) for x, y in corners]
    if skew:
        a, b, c, d, e, f = deskew_frame(width, height, skew)[2]
        corners = [(a * x + b * y + c, d * x + e * y + f) for x, y in corners]
    xs, ys = [p[0] for p in corners], [p[1] for p in corners]
    return min(xs), min(ys), max(xs), max(ys)
