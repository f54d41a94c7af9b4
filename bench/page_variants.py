"""Turned and skewed versions of a page, with its word boxes carried into each version's frame.

Used by ``bench/straighten.py`` and ``tests/test_upright.py``: a variant is what a scanner or
feeder hands over (no EXIF tag), and its true word boxes are where the words really are in that
image, so the ALTO of the variant can be scored in the variant's own pixel frame.
"""

from __future__ import annotations

from PIL import Image

from pipeline.inputs.geometry import deskew_frame

Box = tuple[float, float, float, float]

TURNS = (90, 180, 270)
SKEWS = (1.5, -1.5, 4.0, -4.0, 7.0, -7.0)
_TRANSPOSE = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180,
              270: Image.Transpose.ROTATE_270}


def variant(page: Image.Image, boxes: list[Box], kind: str, amount: float) -> tuple[Image.Image, list[Box]]:
    """``kind`` ``turn`` (a quarter turn counter-clockwise, lossless) or ``skew`` (degrees
    counter-clockwise, white around); returns the image and the boxes' bounds in it."""
    w, h = page.size
    if kind == "turn":
        q = int(amount) % 360
        return page.transpose(_TRANSPOSE[q]), [_turn_box(b, w, h, q) for b in boxes]
    nw, nh, m = deskew_frame(w, h, amount, expand=True)
    fill = 255 if page.mode in ("L", "1") else (255,) * len(page.getbands())
    src = page.convert("L") if page.mode == "1" else page
    out = src.transform((nw, nh), Image.Transform.AFFINE, m, Image.Resampling.BICUBIC, fillcolor=fill)
    a, b, c, d, e, f = m              # canvas -> page; invert the rotation part for page -> canvas
    det = a * e - b * d
    ia, ib, id_, ie = e / det, -b / det, -d / det, a / det

    def fwd(x: float, y: float) -> tuple[float, float]:
        x, y = x - c, y - f
        return ia * x + ib * y, id_ * x + ie * y

    out_boxes = []
    for x0, y0, x1, y1 in boxes:
        pts = [fwd(x, y) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))]
        out_boxes.append((min(p[0] for p in pts), min(p[1] for p in pts),
                          max(p[0] for p in pts), max(p[1] for p in pts)))
    return out, out_boxes


def _turn_box(box: Box, w: float, h: float, q: int) -> Box:
    x0, y0, x1, y1 = box
    if q == 90:       # (x, y) -> (y, w - x)
        return (y0, w - x1, y1, w - x0)
    if q == 180:
        return (w - x1, h - y1, w - x0, h - y0)
    return (h - y1, x0, h - y0, x1)   # 270: (x, y) -> (h - y, x)


def all_variants() -> list[tuple[str, float]]:
    return [("turn", float(q)) for q in TURNS] + [("skew", s) for s in SKEWS]
