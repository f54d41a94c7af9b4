"""A PDF page as a viewer shows it, and how that frame sits in the PDF's own user space.

Why: every box for a PDF input (ALTO, hOCR, the searchable PDF's text layer) is in the frame
pdfium rendered for OCR: the page's CropBox (the MediaBox when it has none), turned clockwise
by its ``/Rotate``, in points, origin top-left. The PDF itself draws in *user space*: origin
wherever the CropBox puts it (often not 0,0), and unrotated. Two things cross that border:

* the text layer grafted onto an original page (``pdf_overlay``), drawn in the displayed frame
  and placed with :func:`display_to_user`;
* the words of a page whose text came from its own text layer (``pdf_text``), whose character
  boxes pdfium gives in user space, brought over with :func:`user_to_display`.

Both are the same affine map and its inverse, so they cannot disagree. ``/UserUnit`` (a PDF
1.6 page-size multiplier, rare) is not applied; docs/formats.md says so.
"""

from __future__ import annotations

from dataclasses import dataclass

Matrix = tuple[float, float, float, float, float, float]   # PDF order: a b c d e f


@dataclass(frozen=True)
class PdfFrame:
    """One page's CropBox (user space, points) and ``/Rotate`` (0, 90, 180 or 270)."""

    cropbox: tuple[float, float, float, float]
    rotation: int

    @property
    def size(self) -> tuple[float, float]:
        """The displayed width and height in points (swapped for 90 and 270)."""
        x0, y0, x1, y1 = self.cropbox
        w, h = abs(x1 - x0), abs(y1 - y0)
        return (h, w) if self.rotation in (90, 270) else (w, h)

    def display_to_user(self) -> Matrix:
        """Matrix from displayed coordinates (points, origin *bottom*-left of the shown page, as
        a PDF page drawn at the displayed size has them) to user space."""
        x0, y0, x1, y1 = self.cropbox
        cx, cy = min(x0, x1), min(y0, y1)
        cw, ch = abs(x1 - x0), abs(y1 - y0)
        r = self.rotation % 360
        if r == 90:     # shown (u, v) = (y - cy, cw - (x - cx))
            return (0.0, 1.0, -1.0, 0.0, cx + cw, cy)
        if r == 180:
            return (-1.0, 0.0, 0.0, -1.0, cx + cw, cy + ch)
        if r == 270:
            return (0.0, -1.0, 1.0, 0.0, cx, cy + ch)
        return (1.0, 0.0, 0.0, 1.0, cx, cy)

    def user_box_to_display(self, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        """A user-space box (left, bottom, right, top) as a displayed box (x0, y0, x1, y1),
        origin top-left: the frame every output of a PDF input uses."""
        a, b, c, d, e, f = invert(self.display_to_user())
        _, height = self.size
        xs, ys = [], []
        for x, y in ((box[0], box[1]), (box[2], box[3]), (box[0], box[3]), (box[2], box[1])):
            u, v = a * x + c * y + e, b * x + d * y + f
            xs.append(u)
            ys.append(height - v)
        return (round(min(xs), 2), round(min(ys), 2), round(max(xs), 2), round(max(ys), 2))


def invert(m: Matrix) -> Matrix:
    a, b, c, d, e, f = m
    det = a * d - b * c
    ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
    return (ia, ib, ic, id_, -(ia * e + ic * f), -(ib * e + id_ * f))


def cm_operator(m: Matrix) -> bytes:
    """``a b c d e f cm``: the one operator the overlay writes itself (the rest is fpdf2's)."""
    return (" ".join(f"{v:.4f}".rstrip("0").rstrip(".") or "0" for v in m) + " cm").encode("ascii")
