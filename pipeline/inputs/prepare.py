"""Make one input file acceptable to deAPI's img2txt, or reject it with a reason a person can act on.

Role in the pipeline: ``scan`` finds a file, ``prepare`` turns it into one or more upload-ready
pages, the runner submits them. This module knows nothing of HTTP or state; it is sync and
CPU-bound, so the runner calls :func:`prepare_file` in a worker thread or process.

What happens to a file, in order (each step that changes pixels or bytes is recorded in
``PreparedPage.transforms`` for the result ``.json``):

1. **Pre-checks** — ``os.stat`` (unreadable / not a regular file / empty), then Pillow identifies
   the format from the *content* (never the extension). Dimensions are checked against
   ``max_source_pixels`` right after the header is parsed, before any pixel is decoded, so a
   decompression bomb costs nothing. Truncated or corrupt data surface when the pixels are
   decoded and are rejected, never sent.
2. **Pass-through** — a single-page file in a format the API takes (JPEG, PNG, GIF, BMP, WebP),
   within the byte and pixel limits and with no EXIF rotation to apply, is sent as the original
   bytes (``transforms == ()``): cheapest, and lossless.
3. **Otherwise** per page: EXIF orientation applied; pixels made square when the stated
   resolution differs by axis (a fax at 204 x 98 dpi: ``square_pixels:FXxFY``, :func:`pixel_stretch`);
   multi-page TIFF split into pages (other animated formats: first frame only); downscale to fit ``max_width`` (a page taller than
   ``max_height`` keeps its scale: the run cuts it into strips, ``run/strips.py``; big JPEGs
   are decoded at 1/2, 1/4 or 1/8 scale by libjpeg's DCT scaling — ``Image.draft`` — which is
   several times faster than a full decode); pad with white at the right/bottom up to
   ``min_width``/``min_height`` (padding keeps the text at the size it was written and keeps
   coordinates identical to the source, where upscaling would blur small text and change the
   scale); encode by content: bilevel/grayscale/palette → PNG, colour → JPEG with a short quality
   ladder, then further downscaling until the bytes fit ``max_upload_bytes`` (times the strips a
   tall page becomes).

What the bytes of a file Pillow cannot read are, and the rejections, are in ``identify``; the
mode, padding and encoding steps in ``encoding``.

Rejection codes (``RejectedInput.code``): ``empty_file``, ``unreadable``, ``not_an_image``, ``not_a_pdf``,
``truncated``, ``corrupt``, ``decompression_bomb``, ``too_many_pages``, ``cannot_fit``.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import stat as stat_mod
import struct
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from pipeline.inputs import upright
from pipeline.inputs.encoding import encode_to_fit, encode_unscaled, normalise_mode
from pipeline.inputs.geometry import SWAPPING_ORIENTATIONS, straightened_size
from pipeline.inputs.identify import (REJECTION_CODES, RejectedInput, decode_error, describe_non_image,
                                      describe_non_pdf, describe_wide_jpeg, image_magic, jpeg_precision,
                                      read_head, tiff_layout)
from pipeline.ocr.imaging import held_orientation, orient, page_frames

__all__ = [
    "PrecheckLimits",
    "PreparedPage",
    "PreparedFile",
    "RejectedInput",
    "prepare_file",
    "prepare_image_page",
    "encode_unscaled",
    "stat_input",
    "ACCEPTED_FORMATS",
    "REJECTION_CODES",
]

#: Formats the API accepts as uploads ("JPG, JPEG, PNG, GIF, BMP, WebP; max 10 MB").
#: MPO (camera JPEGs with an extra preview image) is a valid JPEG byte stream, so it counts as JPEG.
ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "GIF", "BMP", "WEBP"})
_FORMAT_ALIASES = {"MPO": "JPEG"}

#: Formats whose frames are separate document pages; every other multi-frame format
#: (animated GIF/WebP/PNG, ICO, MPO, ...) contributes its first frame only.
MULTIPAGE_FORMATS = frozenset({"TIFF"})

#: Pixel modes we pass through untouched; anything else (CMYK, 16-bit, float, ...) is converted.
_PASSTHROUGH_MODES = frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA"})

#: Pillow plugins we refuse to run on untrusted input: EPS shells out to Ghostscript.
_BLOCKED_OPEN_FORMATS = frozenset({"EPS"})

_CONTENT_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    "WEBP": "image/webp",
}
_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "GIF": ".gif", "BMP": ".bmp", "WEBP": ".webp"}


_PIL_LOCK = threading.Lock()
# Pillow warns (on stderr, into a cron log) of an image over its process-wide limit, which we
# raise to ``max_source_pixels`` (``_raise_pillow_bomb_limit``); our own check after ``open``
# rejects such a file with a reason the user can act on, so the warning only said it twice.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


@dataclass(frozen=True)
class PrecheckLimits:
    """The API's upload limits plus our own safety limits. Defaults are deAPI's documented ones."""

    max_upload_bytes: int = 10_000_000
    min_width: int = 128
    max_width: int = 4096
    min_height: int = 127
    max_height: int = 4096
    max_source_pixels: int = 250_000_000   # decompression-bomb guard, checked before decoding
    jpeg_quality: int = 90                 # first rung of the quality ladder
    min_jpeg_quality: int = 70             # below this we downscale rather than blur further
    max_pages: int = 1000                  # a TIFF with more pages is rejected, not half-done
    max_encode_attempts: int = 10          # hard cap on encodes per page (ladder + downscales)
    rotate_pages: str = "auto"             # auto | off: turn pages read upside down or sideways
    deskew: str = "auto"                   # auto | off: level pages skewed by a degree or more

    def __post_init__(self) -> None:
        if not (0 < self.min_width <= self.max_width and 0 < self.min_height <= self.max_height):
            raise ValueError(f"inconsistent pixel limits: {self}")
        if self.max_upload_bytes < 10_000:
            raise ValueError(f"max_upload_bytes too small to hold an image: {self.max_upload_bytes}")
        if not (1 <= self.min_jpeg_quality <= self.jpeg_quality <= 100):
            raise ValueError("need 1 <= min_jpeg_quality <= jpeg_quality <= 100")
        if self.max_source_pixels <= 0 or self.max_pages <= 0:
            raise ValueError("max_source_pixels and max_pages must be positive")
        if self.rotate_pages not in upright.MODES or self.deskew not in upright.MODES:
            raise ValueError(f"rotate_pages and deskew must be one of {upright.MODES}")

    @property
    def straightens(self) -> bool:
        return "auto" in (self.rotate_pages, self.deskew)

    def fit(self, width: float) -> float:
        """The scale a page ``width`` wide is prepared at: its width must fit an upload, its height
        need not. A page taller than ``max_height`` keeps the size of its text: the run
        cuts it into strips no taller than that (``run/strips.py``), where shrinking a long receipt
        or a scroll of 700 x 12000 px to 4096 px high would leave letters 3 px tall."""
        return min(1.0, self.max_width / width)

    def byte_budget(self, height: int) -> int:
        """The bytes a prepared page may take: one upload's worth for each strip it will be cut into."""
        return self.max_upload_bytes * max(1, math.ceil(height / self.max_height))


@dataclass(frozen=True)
class PreparedPage:
    """One upload: the bytes to send and the facts the result ``.json`` records."""

    data: bytes
    filename: str
    content_type: str
    format: str
    width: int
    height: int
    page_index: int
    scale: float                     # submitted px / source px (linear; 1.0 when unchanged)
    transforms: tuple[str, ...]      # () means: the original bytes, untouched
    sha256: str
    source: dict | None = None       # where the pixels came from when not an image file (PDF page facts)

    @property
    def passthrough(self) -> bool:
        return not self.transforms

    def to_json(self) -> dict:
        return {
            "page_index": self.page_index,
            "filename": self.filename,
            "content_type": self.content_type,
            "format": self.format,
            "width": self.width,
            "height": self.height,
            "bytes": len(self.data),
            "scale": self.scale,
            "transforms": list(self.transforms),
            "sha256": self.sha256,
            **({"source": self.source} if self.source is not None else {}),
        }


@dataclass(frozen=True)
class PreparedFile:
    """Everything prepared from one input file. ``source_width/height`` are as stored in the file
    (first page, before EXIF orientation)."""

    source_format: str
    source_width: int
    source_height: int
    page_count: int
    pages: tuple[PreparedPage, ...]
    source_bytes: int = 0

    def to_json(self) -> dict:
        """The facts for the result ``.json`` (no image bytes)."""
        return {
            "source_format": self.source_format,
            "source_width": self.source_width,
            "source_height": self.source_height,
            "source_bytes": self.source_bytes,
            "page_count": self.page_count,
            "pages": [p.to_json() for p in self.pages],
        }


# --------------------------------------------------------------------------------------------
# entry point


def prepare_file(path: Path, limits: PrecheckLimits = PrecheckLimits()) -> PreparedFile:
    """Check, convert and fit one file for upload; raise :class:`RejectedInput` if impossible."""
    path = Path(path)
    size = _stat_regular_file(path)
    _raise_pillow_bomb_limit(limits.max_source_pixels)

    # Small files are read once into memory: what we verify is then exactly what we may send.
    # Big files cannot be passed through anyway; Pillow reads them from disk as it decodes.
    if size <= limits.max_upload_bytes:
        data = _read_bytes(path)
        if not data:
            raise RejectedInput("empty_file", "the file is empty (0 bytes); was the copy interrupted?")
        source: io.BytesIO | Path = io.BytesIO(data)
    else:
        data = None
        source = path

    im = _open(path, source, data, limits)
    try:
        return _prepare_open_image(path, im, data, size, limits)
    except RejectedInput:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _bomb(exc, limits) from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, struct.error) as exc:
        raise decode_error(exc) from None
    finally:
        im.close()


# --------------------------------------------------------------------------------------------
# pre-checks


def _stat_regular_file(path: Path) -> int:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise RejectedInput("unreadable", f"the file vanished before it could be read: {path}") from None
    except OSError as exc:
        raise RejectedInput("unreadable", f"cannot stat the file: {exc.strerror or exc}") from None
    if not stat_mod.S_ISREG(st.st_mode):
        kind = _file_kind(st.st_mode)
        raise RejectedInput("unreadable", f"not a regular file ({kind}); only image files can be OCRed")
    if st.st_size == 0:
        raise RejectedInput("empty_file", "the file is empty (0 bytes); was the copy interrupted?")
    return st.st_size


def _file_kind(mode: int) -> str:
    for test, name in ((stat_mod.S_ISDIR, "a directory"), (stat_mod.S_ISFIFO, "a FIFO/named pipe"),
                       (stat_mod.S_ISSOCK, "a socket"), (stat_mod.S_ISCHR, "a character device"),
                       (stat_mod.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "a special file"


def _read_bytes(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except PermissionError as exc:
        raise RejectedInput("unreadable", f"permission denied reading the file ({exc.strerror}); "
                                          "fix its permissions or run as a user who may read it") from None
    except FileNotFoundError:
        raise RejectedInput("unreadable", "the file vanished before it could be read") from None
    except OSError as exc:
        raise RejectedInput("unreadable", f"the file could not be read: {exc.strerror or exc}") from None


def _raise_pillow_bomb_limit(max_source_pixels: int) -> None:
    """Pillow's own, process-wide bomb guard (89 Mpx by default, error at 2x) is lower than our
    configured limit; without this a legitimate 200 Mpx scan would be refused by Pillow before our
    explicit check runs. We only ever raise it, and never beyond our own limit: our check after
    ``Image.open`` (before any decode) is the real guard."""
    with _PIL_LOCK:
        if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < max_source_pixels:
            Image.MAX_IMAGE_PIXELS = max_source_pixels


def _open_formats() -> tuple[str, ...]:
    Image.init()
    return tuple(f for f in Image.OPEN if f not in _BLOCKED_OPEN_FORMATS)


def _bomb(exc: Exception, limits: PrecheckLimits) -> RejectedInput:
    """Pillow's own bomb error quotes Pillow's process-wide limit; the user can only act on ours,
    and is told so in the words of ``_check_pixels`` (Pillow gives the count, not the sides)."""
    import re

    found = re.search(r"\((\d+) pixels\)", str(exc))
    size = f"{int(found.group(1)):,} pixels" if found else "more pixels than allowed"
    return _too_many_pixels(f"the image declares {size}", limits)


def _open(path: Path, source, data: bytes | None, limits: PrecheckLimits) -> Image.Image:
    try:
        return Image.open(source, formats=_open_formats())
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # The warning arrives as an exception only when warnings are turned into errors (-W error).
        raise _bomb(exc, limits) from None
    except UnidentifiedImageError:
        head = data[:64] if data is not None else read_head(path)
        kind = image_magic(head)
        precision = jpeg_precision(data if data is not None else path) if kind == "JPEG" else None
        if precision is not None and precision != 8:
            raise RejectedInput("not_an_image", describe_wide_jpeg(precision)) from None
        layout = tiff_layout(data if data is not None else path) if kind == "TIFF" else None
        if layout:
            raise RejectedInput("not_an_image", f"a TIFF of a pixel layout Pillow cannot read: {layout}; "
                                                "save it as 8- or 16-bit grey or RGB without extra "
                                                "samples (e.g. tiffcp, or ImageMagick's -alpha off)") from None
        if kind:
            raise RejectedInput("corrupt", f"the file starts like a {kind} image but its header is damaged "
                                           "or cut short; copy or export it again") from None
        if path.suffix.lower() == ".pdf":  # named a PDF: say it is not one, not "convert it to PNG"
            raise RejectedInput("not_a_pdf", describe_non_pdf(head)) from None
        raise RejectedInput("not_an_image", describe_non_image(head, path.suffix)) from None
    except PermissionError as exc:
        raise RejectedInput("unreadable", f"permission denied reading the file ({exc.strerror})") from None
    except FileNotFoundError:
        raise RejectedInput("unreadable", "the file vanished before it could be read") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, struct.error) as exc:
        # The format was recognised but the header is broken.
        raise decode_error(exc) from None


# --------------------------------------------------------------------------------------------
# the work


def _prepare_open_image(path: Path, im: Image.Image, data: bytes | None, size: int,
                        limits: PrecheckLimits) -> PreparedFile:
    fmt = _FORMAT_ALIASES.get(im.format or "", im.format or "UNKNOWN")
    n_frames = getattr(im, "n_frames", 1) or 1
    frames = page_frames(im)      # a TIFF's thumbnail frames are no pages
    if frames[0]:
        im.seek(frames[0])
    if fmt == "TIFF":
        _orientation(im)          # before its size is read: the stored size, not Pillow's turned one
    src_w, src_h = im.size
    _check_pixels(src_w, src_h, limits, "the image")
    if fmt == "PNG":
        _orientation(im)          # its chunks walked while its file is open: any later load closes it
    multipage = fmt in MULTIPAGE_FORMATS and len(frames) > 1
    if multipage and len(frames) > limits.max_pages:
        raise RejectedInput("too_many_pages", f"{len(frames)} pages exceed precheck max_pages={limits.max_pages}; "
                                              "split the document")
    stem = path.stem or "image"

    # An MPO's extra frames are camera previews; its byte stream is a plain JPEG of the main image.
    frames_sent = 1 if im.format == "MPO" else n_frames
    straight = None
    square = pixel_stretch(im) == (1.0, 1.0)   # else the page is made square first (_prepare_page)
    if not multipage and data is not None and square and _can_pass_through(im, fmt, frames_sent, size, limits):
        straight = _verify_and_measure(im, limits)
        if straight.noop:
            page = PreparedPage(
                data=data, filename=stem + _EXTENSIONS[fmt], content_type=_CONTENT_TYPES[fmt], format=fmt,
                width=src_w, height=src_h, page_index=0, scale=1.0, transforms=(),
                sha256=hashlib.sha256(data).hexdigest())
            return PreparedFile(fmt, src_w, src_h, 1, (page,), size)
    elif frames_sent == 1 and square and limits.straightens and _decoded_at_a_dct_scale(im, limits):
        straight = _measure_oriented(im, limits)
    if straight is not None:      # measured on a reduced decode: start again from the bytes
        im.close()
        im = Image.open(io.BytesIO(data) if data is not None else path, formats=_open_formats())

    pages = []
    count = len(frames) if multipage else 1
    for index in range(count):
        transforms: list[str] = []
        if index:
            im.seek(frames[index])
            _orientation(im)
            _check_pixels(im.size[0], im.size[1], limits, f"page {index + 1}")
        elif fmt == "TIFF" and len(frames) < n_frames:
            transforms.append(f"thumbnails_skipped:{n_frames - len(frames)}")
        elif frames_sent > 1 and not multipage:
            transforms.append(f"first_frame_of:{n_frames}")
        name = f"{stem}-p{index + 1:03d}" if multipage else stem
        pages.append(_prepare_page(im, fmt, index, name, transforms, limits, straight))
    return PreparedFile(fmt, src_w, src_h, count, tuple(pages), size)


def prepare_image_page(im: Image.Image, source_format: str, index: int, name: str,
                       transforms: list[str], limits: PrecheckLimits) -> PreparedPage:
    """Fit and encode one already-decoded page (a rendered PDF page) exactly like a TIFF frame."""
    return _prepare_page(im, source_format, index, name, transforms, limits)


def stat_input(path: Path) -> int:
    """The size of a readable regular file, or :class:`RejectedInput` saying why not."""
    return _stat_regular_file(path)


def _check_pixels(w: int, h: int, limits: PrecheckLimits, what: str) -> None:
    if w <= 0 or h <= 0:
        raise RejectedInput("corrupt", f"{what} declares an impossible size {w}x{h}")
    if w * h > limits.max_source_pixels:
        raise _too_many_pixels(f"{what} declares {w}x{h} = {w * h:,} pixels", limits)


def _too_many_pixels(declared: str, limits: PrecheckLimits) -> RejectedInput:
    return RejectedInput("decompression_bomb", f"{declared}, over max_source_pixels={limits.max_source_pixels:,} "
                         "(possible decompression bomb); nothing was decoded. Raise precheck.max_source_pixels "
                         "if this is a genuine huge scan")


def _orientation(im: Image.Image) -> int:
    # first: a PNG's orientation is read from its chunks while its file is open (a load closes
    # it); a TIFF frame's tag is taken from Pillow, so it loads as stored
    value = held_orientation(im)
    if im.format == "PNG":
        im.load()   # here, not in a guard: a decode error must reject the file, not be swallowed
    return value


def pixel_stretch(im: Image.Image, swap: bool = False, max_pixels: int | None = None) -> tuple[float, float]:
    """The factors (x, y) that make the page's pixels square, from its stated resolution: (1, 1)
    when they are square already, unstated, or absurd.

    Why: a fax at its standard 204 x 98 dpi stores each pixel twice as tall as it is wide, so its
    text is half as tall in pixels as it is wide. Engines read it, but the reading that places a
    text-only answer's words on the page's lines found 26 of 97 words on such a page (96 of 96
    at 204 x 196 dpi), and the straightening's angles are only angles in square pixels.
    OCRmyPDF likewise renders such pages at one resolution. The lower resolution's axis is
    stretched up to the higher one's (never shrinking the sharper axis), unless the page would
    then exceed ``max_pixels``: then the sharper axis is shrunk instead. Ratios under 1.1 (a
    rounding in the header) and over 4 (not a real scanner's: a broken header) are left alone.
    ``swap``: the page is turned a quarter by its EXIF orientation, so its axes trade places."""
    dpi = im.info.get("dpi")
    try:
        x, y = (float(v) for v in dpi)   # type: ignore[union-attr]
    except (TypeError, ValueError):
        return 1.0, 1.0
    if not (math.isfinite(x) and math.isfinite(y)) or x <= 0 or y <= 0:
        return 1.0, 1.0
    ratio = max(x, y) / min(x, y)
    if ratio < 1.1 or ratio > 4.0:
        return 1.0, 1.0
    fx, fy = (1.0, ratio) if x > y else (ratio, 1.0)
    if max_pixels is not None and im.size[0] * im.size[1] * ratio > max_pixels:
        fx, fy = fx / ratio, fy / ratio
    return (fy, fx) if swap else (fx, fy)


def _can_pass_through(im: Image.Image, fmt: str, n_frames: int, size: int, limits: PrecheckLimits) -> bool:
    w, h = im.size
    return (fmt in ACCEPTED_FORMATS and n_frames == 1 and size <= limits.max_upload_bytes
            and limits.min_width <= w <= limits.max_width and limits.min_height <= h   # taller: cut, not shrunk
            and im.mode in _PASSTHROUGH_MODES and _orientation(im) == 1)


def _verify_and_measure(im: Image.Image, limits: PrecheckLimits) -> upright.Straightening:
    """Decode a pass-through candidate (rejecting damage) and say whether it needs straightening.
    A JPEG is decoded at the smallest DCT scale that still gives the orientation check its
    pixels (the stream is read whole either way)."""
    if not limits.straightens:
        _verify_decodes(im)
        return upright.NOTHING
    if im.format in ("JPEG", "MPO"):
        factor = min(1.0, upright.OSD_SIDE / max(im.size))
        im.draft(im.mode, (max(1, round(im.size[0] * factor)), max(1, round(im.size[1] * factor))))
    im.load()
    return upright.measure(im, limits.rotate_pages, limits.deskew)


def _dct_scaled(im: Image.Image, fit: float) -> bool:
    """Whether ``_prepare_page`` decodes ``im`` at 1/2-1/8 scale (libjpeg's DCT scaling) for a
    page prepared at ``fit``: a JPEG shrunk to half or less."""
    return im.format in ("JPEG", "MPO") and fit <= 0.5


def _decoded_at_a_dct_scale(im: Image.Image, limits: PrecheckLimits) -> bool:
    """A JPEG at least twice as wide as an upload (after its EXIF turn) is decoded at a DCT scale
    (``_dct_scaled``), a scale chosen for its width as stored."""
    w, h = im.size
    return _dct_scaled(im, limits.fit(h if _orientation(im) in SWAPPING_ORIENTATIONS else w))


def _measure_oriented(im: Image.Image, limits: PrecheckLimits) -> upright.Straightening:
    """The straightening of a big JPEG, measured on a small DCT decode turned by its EXIF tag
    (as ``_prepare_page`` turns it), before the decode that is sent: a page found sideways is
    sent with its stored height as its width, and the scale it is decoded at must be chosen
    for that (decoded at 1/2 for its stored width, a 9000 x 1400 sideways receipt was sent
    blown up from 700 px wide to 1400)."""
    factor = min(1.0, upright.OSD_SIDE / max(im.size))
    im.draft(im.mode, (max(1, round(im.size[0] * factor)), max(1, round(im.size[1] * factor))))
    im.load()
    oriented = orient(im, _orientation(im))   # a new image, as _prepare_page turns it
    try:
        return upright.measure(oriented, limits.rotate_pages, limits.deskew)
    finally:
        oriented.close()


def _verify_decodes(im: Image.Image) -> None:
    """Decode every byte of the stream so truncated/corrupt files are rejected, not uploaded.
    For JPEG, decoding at 1/8 scale still entropy-decodes the whole stream, at a fraction of
    the cost."""
    if im.format in ("JPEG", "MPO"):
        im.draft(im.mode, (max(1, im.size[0] // 8), max(1, im.size[1] // 8)))
    im.load()


def _prepare_page(im: Image.Image, fmt: str, index: int, name: str, transforms: list[str],
                  limits: PrecheckLimits, straight: upright.Straightening | None = None) -> PreparedPage:
    orientation = _orientation(im)
    swap = orientation in SWAPPING_ORIENTATIONS
    w0, h0 = im.size
    ow, oh = (h0, w0) if swap else (w0, h0)          # oriented source size
    fx, fy = pixel_stretch(im, swap, limits.max_source_pixels)
    stored = (ow, oh)
    if (fx, fy) != (1.0, 1.0):   # from here on "the source" is the page with square pixels
        ow, oh, straight = max(1, round(ow * fx)), max(1, round(oh * fy)), None
    # the width it is sent at: the stored height for a page found sideways (measured already)
    fit = limits.fit(oh if straight is not None and straight.turn in (90, 270) else ow)
    target = (max(1, round(ow * fit)), max(1, round(oh * fit)))

    work = im
    resample = Image.Resampling.LANCZOS
    if fx == fy == 1.0 and _dct_scaled(im, fit):
        # libjpeg DCT scaling: decode at 1/2, 1/4 or 1/8 directly (never below the target).
        req = (target[1], target[0]) if swap else target
        before = im.size
        im.draft(im.mode if im.mode in ("L", "RGB") else None, req)
        if im.size != before:
            transforms.append(f"jpeg_draft:1/{round(before[0] / im.size[0])}")
            # DCT scaling already did the big (area-averaging) reduction; the residual step is
            # < 2x, where Pillow's antialiased triangle filter is as legible as Lanczos and
            # about twice as fast.
            resample = Image.Resampling.BILINEAR
    work.load()

    if orientation != 1:
        work = orient(work, orientation)
        transforms.append(f"exif_transpose:{orientation}")

    work, kind = normalise_mode(work, transforms)
    if (ow, oh) != stored:   # square_pixels (a DCT-scaled decode is smaller, and stays so)
        work = work.resize((ow, oh), Image.Resampling.BICUBIC)
        transforms.append(f"square_pixels:{ow / stored[0]:.4f}x{oh / stored[1]:.4f}")
    if limits.straightens:      # rendered PDF pages too (text-layer pages never get here)
        work, ow, target = _straighten(work, straight, limits, transforms, ow, oh)
    if work.size != target:
        work = work.resize(target, resample, reducing_gap=3.0)
    scale = target[0] / ow
    data, out_fmt, (w, h), scale = encode_to_fit(work, kind, scale, ow, limits, transforms)
    if scale < 1.0:
        transforms.insert(_insert_pos(transforms), f"downscale:{scale:.4f}")
    if out_fmt != fmt:
        transforms.insert(0, f"convert:{fmt}->{out_fmt}")
    else:
        transforms.insert(0, f"reencode:{out_fmt}")
    if work is not im:
        work.close()
    return PreparedPage(
        data=data, filename=name + _EXTENSIONS[out_fmt], content_type=_CONTENT_TYPES[out_fmt],
        format=out_fmt, width=w, height=h, page_index=index, scale=round(scale, 6),
        transforms=tuple(transforms), sha256=hashlib.sha256(data).hexdigest())


def _straighten(work: Image.Image, straight: upright.Straightening | None, limits: PrecheckLimits,
                transforms: list[str], ow: int, oh: int) -> tuple[Image.Image, int, tuple[int, int]]:
    """Deskew and turn the page if it needs it; the straightened page's size in source pixels
    (its width, for the scale) and the target size that fits the limits."""
    if straight is None:
        straight = upright.measure(work, limits.rotate_pages, limits.deskew)
    if not straight.noop:
        work = upright.apply(work, straight, transforms)
    sw, sh = straightened_size(ow, oh, straight.skew, straight.turn)
    fit = limits.fit(sw)
    return work, int(sw), (max(1, round(sw * fit)), max(1, round(sh * fit)))


def _insert_pos(transforms: list[str]) -> int:
    """Keep the record in the order things happened: downscale comes before pad/encoding."""
    for i, t in enumerate(transforms):
        if t.startswith(("pad:", "jpeg_quality:")):
            return i
    return len(transforms)


