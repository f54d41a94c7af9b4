"""What the renderers need from the source file itself: page sizes, resolution, the pixels.

Why read the source again: the result ``.json`` records the upload, and the first page's stored
size; the archival outputs need every page's own size as a person sees it (after EXIF
rotation), its resolution (the PDF's page size in points), and for the searchable PDF the
original image data. Reading a header costs a millisecond and no decoding; pixels are decoded
only for a PDF page that cannot embed the original bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from PIL import Image

from pipeline.inputs.geometry import SWAPPING_ORIENTATIONS
from pipeline.ocr.imaging import (WIDE_GRAY_MODES, flatten_on_white, held_orientation, orient, page_frames,
                                  wide_gray_to_l)

DEFAULT_DPI = 300.0          # when the file states none (or an aspect ratio only): a usual scan


@dataclass(frozen=True)
class SourcePage:
    index: int
    width: int               # oriented (as displayed) pixels
    height: int
    dpi: tuple[float, float]
    orientation: int         # EXIF orientation of the stored pixels (1 = upright)
    format: str              # Pillow's format name of the file (JPEG, TIFF, PNG, ...)
    frame: int = 0           # the file's frame holding the page (a TIFF's thumbnail frames are no pages)

    @property
    def size_pt(self) -> tuple[float, float]:
        return (self.width * 72.0 / self.dpi[0], self.height * 72.0 / self.dpi[1])


def _dpi(im: Image.Image, orientation: int) -> tuple[float, float]:
    raw = im.info.get("dpi")
    try:
        x, y = float(raw[0]), float(raw[1])
    except (TypeError, ValueError, IndexError):
        x = y = DEFAULT_DPI
    if not (50 <= x <= 10000 and 50 <= y <= 10000):  # JFIF "aspect only" (1, 1), or nonsense
        x = y = DEFAULT_DPI
    return (y, x) if orientation in SWAPPING_ORIENTATIONS else (x, y)


def _orientation(im: Image.Image) -> int:
    return held_orientation(im)   # as prepare reads it (a TIFF frame's tag taken from Pillow)


def _frames(im: Image.Image, recorded: int | None) -> Iterator[tuple[int, int]]:
    """(page, frame) of every page, ``im`` at that frame: a TIFF's page frames (as prepare
    takes them, ``page_frames``); prepare sends only the first frame of GIF/WebP animations.
    A record of ``recorded`` pages, one a frame, was made before thumbnail frames were no
    pages: its pages are every frame still, so its outputs describe the pages it holds."""
    frames = page_frames(im)
    n = getattr(im, "n_frames", 1) or 1
    if recorded is not None and im.format == "TIFF" and len(frames) != recorded == n:
        frames = list(range(n))
    for page, frame in enumerate(frames):
        im.seek(frame)
        yield page, frame


def read_source_pages(path: Path, recorded: int | None = None) -> list[SourcePage]:
    """Every page's oriented size and resolution, from the headers only; ``recorded``: the
    page count of the record the outputs are written from, when there is one."""
    pages = []
    with Image.open(path) as im:
        fmt = "JPEG" if im.format == "MPO" else (im.format or "")
        for i, frame in _frames(im, recorded):
            o = _orientation(im)
            w, h = im.size
            if o in SWAPPING_ORIENTATIONS:
                w, h = h, w
            pages.append(SourcePage(i, w, h, _dpi(im, o), o, fmt, frame))
    return pages


def upright_image(im: Image.Image) -> Image.Image:
    """The current frame decoded, EXIF-rotated and in a mode a PDF image can hold: ``im`` itself
    when it is all that already (no copy of a big page), else a new image."""
    orientation = _orientation(im)
    im.load()
    out = im if orientation == 1 else orient(im, orientation)
    if out.mode in WIDE_GRAY_MODES:
        out = wide_gray_to_l(out)
    elif out.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (out.mode == "P" and "transparency" in out.info):
        out = flatten_on_white(out)
    elif out.mode not in ("1", "L", "RGB", "P", "CMYK"):
        out = out.convert("RGB")
    return out
