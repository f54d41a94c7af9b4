"""The upload's bytes: the pixel mode a page's content needs, the padding to the API's minimum
size, and the encoding that fits the byte limit.

Split from ``prepare`` (which decides what is sent and records each step): these are the steps
that change a page's bytes and not what it shows, and ``run/strips.py`` encodes a tall page's
strips with them too (``encode_unscaled``: a strip keeps the page's scale).
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING

from PIL import Image, ImageChops

from pipeline.inputs.identify import RejectedInput
from pipeline.ocr.imaging import WIDE_GRAY_MODES, flatten_on_white, wide_gray_to_l

if TYPE_CHECKING:
    from pipeline.inputs.prepare import PrecheckLimits

__all__ = ["normalise_mode", "channels_equal", "pad_to_minimum", "encode_unscaled", "encode_image",
           "encode_to_fit", "GRAY_BAND_BYTES"]


def normalise_mode(im: Image.Image, transforms: list[str]) -> tuple[Image.Image, str]:
    """Reduce the image to what its content needs, which decides the encoding:
    ``"1"``/``"L"``/``"P"`` → PNG (text pages compress best losslessly), ``"RGB"`` → JPEG.
    RGB images whose three channels are identical (scanners often save gray as RGB) become L."""
    mode = im.mode
    if mode == "1":
        return im, "png"
    if mode == "P" and "transparency" not in im.info:
        return im, "png"
    if mode in ("RGBA", "LA", "PA", "P", "La", "RGBa"):
        transforms.append("flatten_alpha:white")
        im = flatten_on_white(im)
    elif mode in WIDE_GRAY_MODES:
        transforms.append(f"mode:{mode}->L")
        return wide_gray_to_l(im), "png"
    elif mode not in ("L", "RGB"):
        transforms.append(f"mode:{mode}->RGB")
        im = im.convert("RGB")
    if im.mode == "RGB":
        if channels_equal(im):
            transforms.append("mode:RGB->L")
            return im.getchannel("R"), "png"
        return im, "jpeg"
    return im, "png"


#: bytes of an RGB page compared at a time for grey-as-RGB (a band's three channels and their
#: differences are held at once, never the whole page's: a 576 MB colour scan split whole took
#: three more 192 MB images)
GRAY_BAND_BYTES = 4 << 20


def channels_equal(im: Image.Image) -> bool:
    """Whether the RGB image's three channels are identical (grey saved as RGB), band by band;
    a colour page is usually told by its first band."""
    w, h = im.size
    rows = max(1, GRAY_BAND_BYTES // (3 * w))
    for y in range(0, h, rows):
        with im.crop((0, y, w, min(h, y + rows))) as band:
            r, g, b = band.split()
            try:
                if ImageChops.difference(r, g).getbbox() or ImageChops.difference(g, b).getbbox():
                    return False
            finally:
                r.close(), g.close(), b.close()
    return True


def pad_to_minimum(im: Image.Image, limits: PrecheckLimits, transforms: list[str] | None) -> Image.Image:
    w, h = im.size
    pw, ph = max(w, limits.min_width), max(h, limits.min_height)
    if (pw, ph) == (w, h):
        return im
    fill = 255 if im.mode == "1" else (255 if im.mode == "L" else (255, 255, 255))
    if im.mode == "P":
        im = im.convert("RGB")
        fill = (255, 255, 255)
    canvas = Image.new(im.mode, (pw, ph), fill)
    canvas.paste(im, (0, 0))      # top-left: coordinates in the upload equal the source's
    if transforms is not None:
        transforms.append(f"pad:{pw}x{ph}")
    return canvas


def encode_unscaled(im: Image.Image, max_bytes: int, quality: int = 90,
                    min_quality: int = 50) -> tuple[bytes, str, int | None]:
    """``(bytes, "PNG" | "JPEG", JPEG quality or None)``: lossless PNG when it fits ``max_bytes``,
    else JPEG from ``quality`` down by 10 to ``min_quality``; never resized.

    For a strip of a page too tall for the model (``run/strips.py``): it must keep the page's
    scale (its boxes are the page's), and the page's bytes were only fitted for all its strips
    together (``PrecheckLimits.byte_budget``), so a strip of a colour photograph can be over the
    limit as PNG."""
    data = encode_image(im, "PNG", quality)
    if len(data) <= max_bytes:
        return data, "PNG", None
    rgb = im if im.mode in ("L", "RGB") else im.convert("L" if im.mode == "1" else "RGB")
    q, floor = quality, min(min_quality, quality)
    while q >= floor:
        data = encode_image(rgb, "JPEG", q)
        if len(data) <= max_bytes:
            return data, "JPEG", q
        q -= 10
    raise RejectedInput("cannot_fit", f"a strip of {im.width}x{im.height} px is over {max_bytes:,} bytes "
                                      f"even as JPEG at quality {floor}")


def encode_image(im: Image.Image, fmt: str, quality: int) -> bytes:
    buf = io.BytesIO()
    if fmt == "PNG":
        im.save(buf, "PNG", compress_level=6)
    else:
        im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def encode_to_fit(im: Image.Image, kind: str, scale: float, ow: int, limits: PrecheckLimits,
                   transforms: list[str]) -> tuple[bytes, str, tuple[int, int], float]:
    """Encode ``im`` so the bytes fit ``max_upload_bytes``, in as few encodes as we can.

    PNG first for ``kind == "png"``; if too big, the page goes to JPEG. JPEG: the quality ladder
    steps down by 10 from ``jpeg_quality`` to ``min_jpeg_quality`` while the overshoot is small
    (a quality step saves roughly 15-30 %); a large overshoot, or an exhausted ladder, shrinks the
    pixels instead, by sqrt(limit/size) with a margin — bytes scale about with pixel count — so it
    usually converges in one or two further encodes.
    """
    limit = limits.byte_budget(im.size[1])
    quality = limits.jpeg_quality
    fmt = "PNG" if kind == "png" else "JPEG"
    attempts = 0
    while attempts < limits.max_encode_attempts:
        attempts += 1
        padded = pad_to_minimum(im, limits, None)
        data = encode_image(padded, fmt, quality)
        if len(data) <= limit:
            size = padded.size
            if padded is not im:
                transforms.append(f"pad:{size[0]}x{size[1]}")
                padded.close()
            if fmt == "JPEG":
                transforms.append(f"jpeg_quality:{quality}")
            return data, fmt, size, scale
        if padded is not im:
            padded.close()
        ratio = limit / len(data)
        if fmt == "PNG":
            fmt = "JPEG"
            if im.mode not in ("L", "RGB"):
                im = im.convert("L" if im.mode == "1" else "RGB")
            continue
        if ratio >= 0.6 and quality - 10 >= limits.min_jpeg_quality:
            quality -= 10
            continue
        factor = min(0.9, math.sqrt(ratio) * 0.95)
        new = (max(1, round(im.size[0] * factor)), max(1, round(im.size[1] * factor)))
        im = im.resize(new, Image.Resampling.LANCZOS, reducing_gap=3.0)
        scale = new[0] / ow
    raise RejectedInput("cannot_fit", f"could not encode the image under {limit:,} bytes in "
                                      f"{limits.max_encode_attempts} attempts")
