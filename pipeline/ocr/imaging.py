"""Pillow mode conversions shared by the client's pre-checks (``prepare.py``) and the server's
engines (``server/engines/pool.py``), so both sides read transparent and 16-bit images alike.

* transparency is flattened onto white, not black: a scan's transparent margin is paper;
* 16- and 32-bit gray is stretched over the range it uses, not clipped: 16-bit scans are often
  dark, and clipping to the low 8 bits would turn them black.
"""

from __future__ import annotations

from PIL import Image

WIDE_GRAY_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def flatten_on_white(im: Image.Image) -> Image.Image:
    """An RGB copy of ``im`` with its transparency composited onto white."""
    rgba = im.convert("RGBA")
    flat = Image.new("RGB", rgba.size, (255, 255, 255))
    flat.paste(rgba, mask=rgba.getchannel("A"))
    rgba.close()
    return flat


def wide_gray_to_l(im: Image.Image) -> Image.Image:
    """16-bit/32-bit gray -> 8-bit, stretching the used range."""
    lo, hi = im.getextrema() if im.mode != "I;16" else im.convert("I").getextrema()
    src = im.convert("F") if im.mode != "F" else im
    span = (hi - lo) or 1
    return src.point(lambda v: (v - lo) * 255.0 / span).convert("L")
