"""Pillow mode conversions shared by the client's pre-checks (``prepare.py``) and the server's
engines (``server/engines/pool.py``), so both sides read transparent and 16-bit images alike.

* transparency is flattened onto white, not black: a scan's transparent margin is paper;
* 16- and 32-bit gray is stretched over the range it uses, not clipped: 16-bit scans are often
  dark, and clipping to the low 8 bits would turn them black.
"""

from __future__ import annotations

import os
import struct
import threading

from PIL import Image, PngImagePlugin, TiffImagePlugin

WIDE_GRAY_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")

#: how far one compressed PNG chunk (a colour profile, a zTXt/iTXt) may unpack. Why: Pillow's
#: 1 MB refused a PNG with a larger ICC profile (a printer's or a LUT profile, a few MB) as a
#: whole, and the pipeline called its image data damaged; the pixels are never in such a chunk,
#: and 16 MB (Pillow's 64 MB for all text chunks still holds) is nothing beside a decoded page.
#: Set here, where both the client's pre-checks and the embedded server's engines read PNGs.
PNG_MAX_CHUNK = 16 << 20
PngImagePlugin.MAX_TEXT_CHUNK = max(PngImagePlugin.MAX_TEXT_CHUNK, PNG_MAX_CHUNK)

#: Pillow's own reader of an uncompressed TIFF. Why it is wrapped: for a TIFF stored plane by
#: plane (``PlanarConfiguration`` 2, as some scanners' and image editors' 16-bit masters are)
#: with more than 8 bits a sample, Pillow (13) reads each plane as 8-bit samples: a 16-bit
#: RGB page came out as two shifted, striped copies of itself and was sent, read and put in the
#: searchable PDF so, silently (a tour's test page: 60 % of its words). libtiff, which Pillow
#: uses for every compressed TIFF, reads such a frame right, so it is handed to libtiff.
_PILLOW_TIFF_SETUP = TiffImagePlugin.TiffImageFile._setup
_LIBTIFF_SWITCH = threading.Lock()


#: ``info`` key of a wide-grey TIFF frame whose 0 is white (``PhotometricInterpretation`` 0,
#: MinIsWhite). Why: Pillow inverts such a frame's samples at 1 and 8 bits but not at 16 or 32,
#: so a MinIsWhite 16-bit page was sent as a negative and drawn as one in the searchable PDF.
#: ``wide_gray_to_l`` stretches it the other way round; ``info`` goes with every copy, crop
#: and turn of the frame.
MIN_IS_WHITE = "pipeline_min_is_white"


def _tiff_setup(self: TiffImagePlugin.TiffImageFile) -> None:
    """Pillow's frame set-up, done again through libtiff for a frame of wide separate planes,
    and a wide-grey MinIsWhite frame marked (:data:`MIN_IS_WHITE`).
    (``READ_LIBTIFF`` is Pillow's module switch, turned under a lock so that two such frames
    opened at once cannot leave it on; another thread opening a TIFF meanwhile reads it through
    libtiff too, which reads every TIFF Pillow's own reader does.)"""
    _PILLOW_TIFF_SETUP(self)
    self.info.pop(MIN_IS_WHITE, None)    # one frame's mark is not the next frame's
    if self.tag_v2.get(262) == 0 and self.mode in WIDE_GRAY_MODES:
        self.info[MIN_IS_WHITE] = True
    bits = self.tag_v2.get(258, (1,))
    bits = bits if isinstance(bits, tuple) else (bits,)
    # (Pillow's private attributes read with defaults: another Pillow without them reads as before)
    if (getattr(self, "_planar_configuration", 1) == 2 and not getattr(self, "use_load_libtiff", True)
            and max(bits, default=1) > 8):
        with _LIBTIFF_SWITCH:
            before = TiffImagePlugin.READ_LIBTIFF
            TiffImagePlugin.READ_LIBTIFF = True
            try:
                _PILLOW_TIFF_SETUP(self)
            finally:
                TiffImagePlugin.READ_LIBTIFF = before


TiffImagePlugin.TiffImageFile._setup = _tiff_setup


def flatten_on_white(im: Image.Image) -> Image.Image:
    """An RGB copy of ``im`` with its transparency composited onto white."""
    rgba = im.convert("RGBA")
    flat = Image.new("RGB", rgba.size, (255, 255, 255))
    flat.paste(rgba, mask=rgba.getchannel("A"))
    rgba.close()
    return flat


#: bytes of a wide-grey page converted at a time (as 32-bit values)
WIDE_BAND_BYTES = 4 << 20


def wide_gray_to_l(im: Image.Image) -> Image.Image:
    """16-bit/32-bit gray -> 8-bit, stretching the used range, band by band.

    Why in bands: converting the whole page to 32-bit ``I`` for its extrema and to ``F`` for the
    stretch held two more pages of twice and four times the 16-bit page's bytes at once: a
    9000 x 12000 16-bit scan (216 MB) was prepared in 1.2 GB, two such pages side by side
    (``prepare_workers: 2``) in 2.4 GB. Now only the 8-bit result and 4 MB of rows are added.
    Values as before: (v - lo) * 255 / span in 32-bit float, truncated (Pillow's ``F`` to ``L``);
    (hi - v) * 255 / span for a TIFF frame whose 0 is white (:data:`MIN_IS_WHITE`)."""
    import numpy as np   # here: the run's start-up imports no numpy (test_startup)

    w, h = im.size
    rows = max(1, WIDE_BAND_BYTES // (4 * w))
    lo = hi = None
    for y in range(0, h, rows):
        band = _wide_band(im, y, rows)
        if band.size:
            lo = band.min() if lo is None else min(lo, band.min())
            hi = band.max() if hi is None else max(hi, band.max())
    lo, hi = np.float32(lo if lo is not None else 0), np.float32(hi if hi is not None else 0)
    scale = np.float32(255.0) / ((hi - lo) or np.float32(1))
    origin, scale = (hi, -scale) if im.info.get(MIN_IS_WHITE) else (lo, scale)
    out = Image.new("L", (w, h))
    for y in range(0, h, rows):
        band = (_wide_band(im, y, rows, finite=False).astype(np.float32) - origin) * scale
        out.paste(Image.fromarray(np.clip(np.nan_to_num(band), 0, 255).astype(np.uint8), "L"), (0, y))
    return out


def _wide_band(im: Image.Image, y: int, rows: int, finite: bool = True):
    """Rows ``y`` to ``y + rows`` of a wide-grey page as an array; only its finite values when
    ``finite`` (a float page's NaN or infinity stretches nothing)."""
    import numpy as np

    with im.crop((0, y, im.size[0], min(im.size[1], y + rows))) as part:
        band = np.asarray(part)
    return band[np.isfinite(band)] if finite and band.dtype.kind == "f" else band


_ORIENTATION_TAG = 0x0112
#: the transposition that shows a frame of each EXIF/TIFF orientation upright (as ImageOps')
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
            4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
            6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}


def held_orientation(im: Image.Image) -> int:
    """The EXIF (or TIFF) orientation of the current frame, 1 when none or broken; call it
    before the frame's size or pixels are used, and turn the frame with :func:`orient`.

    Why a TIFF frame's tag is taken away: Pillow (13) turns a TIFF frame by its Orientation
    tag while loading it, reports the turned size before the load, drops the tag after it, and
    garbles an uncompressed frame turned 5-8. The pipeline reads the orientation, swaps the size
    and turns the page itself, as for a JPEG's EXIF; with Pillow also turning it, a TIFF stored
    300 x 100 with Orientation 6 was sent stretched back to 300 x 100. Taken away (the frame's
    cached EXIF, its tag, its stored size), the frame loads as stored under every Pillow.
    The value is kept in ``im.info`` for the frame (a TIFF's or a PNG's), so asking again gives
    it again (a loaded PNG's file is closed: its chunks can no longer be walked).
    A PNG whose orientation is not in its chunk headers is loaded here: a decode error is the
    caller's."""
    held = im.info.get("pipeline_held_orientation")
    if held is not None and held[0] == im.tell():
        return held[1]
    value = _png_orientation(im)
    if value is None:
        if im.format == "PNG":
            im.load()   # Pillow's answer for a PNG changes with loading: ask it loaded, always
        try:
            value = int(im.getexif().get(_ORIENTATION_TAG, 1))
        except Exception:   # a broken EXIF block must not lose the image: upright
            value = 1
    value = value if value in _UPRIGHT else 1
    if im.format == "PNG":   # its chunks are walked while its file is open: before a load closes it
        im.info["pipeline_held_orientation"] = (im.tell(), value)
    tags = getattr(im, "tag_v2", None)
    if im.format == "TIFF" and value != 1 and tags is not None:
        im.getexif().pop(_ORIENTATION_TAG, None)
        tags.pop(_ORIENTATION_TAG, None)
        im._size = (int(tags[256]), int(tags[257]))   # Pillow set the turned size
        im.info["pipeline_held_orientation"] = (im.tell(), value)
    return value


#: text chunks Pillow also takes an orientation from, when a PNG has no ``eXIf`` (ImageMagick
#: writes EXIF as a zTXt "Raw profile type exif"; XMP's ``tiff:Orientation``)
_PNG_EXIF_TEXTS = (b"Raw profile type exif\x00", b"XML:com.adobe.xmp\x00")
_PNG_MAX_EXIF = 1 << 20


def _png_orientation(im: Image.Image) -> int | None:
    """A PNG's orientation told from its chunks without decoding its pixels: its first ``eXIf``
    chunk's, 1 when it has none; ``None`` (ask Pillow, loaded) when it is no PNG, its chunks
    cannot be walked, or it has no ``eXIf`` but a text chunk Pillow reads an orientation from.

    Why walk: Pillow reads a PNG's chunks up to the pixels at open; an ``eXIf`` chunk may also
    come after them, so its ``getexif`` decodes the whole image to look (0.3 s and the decoded
    page for a 30 Mpx scan) whenever none came before. Writing ALTO or hOCR needs only the
    page's size and orientation (``formats/source.py``: "from the headers only").
    Why the first ``eXIf``: Pillow's answer depended on when it was asked. Before the pixels are
    loaded it gives the first ``eXIf``'s, after, the last one's; a zTXt EXIF or an XMP
    orientation it sees only after loading when they follow the pixels. The upload (prepare
    loads first) and the outputs (headers only) then turned one page two ways, and every box
    of its ALTO, hOCR and PDF landed on the wrong frame. A PNG may hold one ``eXIf`` (PNG
    spec); libpng keeps the first of two and ignores the rest, and so does this."""
    if im.format != "PNG":
        return None
    try:
        with open(im.filename, "rb") if getattr(im, "filename", None) else _borrowed(im.fp) as fp:
            fp.seek(8)   # the signature
            texts = False
            while True:
                head = fp.read(8)
                if len(head) < 8:
                    return None if texts else 1
                length, kind = struct.unpack(">I4s", head)
                if kind == b"eXIf":
                    if length > _PNG_MAX_EXIF:
                        return None
                    exif = Image.Exif()
                    exif.load(fp.read(length))
                    return int(exif.get(_ORIENTATION_TAG, 1))
                if kind in (b"tEXt", b"zTXt", b"iTXt"):
                    key = fp.read(min(22, length))
                    texts = texts or key.startswith(_PNG_EXIF_TEXTS)
                    fp.seek(-len(key), os.SEEK_CUR)
                if kind == b"IEND":
                    return None if texts else 1
                fp.seek(length + 4, os.SEEK_CUR)   # the data and its CRC
    except (OSError, ValueError, TypeError, AttributeError, struct.error):
        return None


class _borrowed:
    """``im``'s own open file, its position put back afterwards (an image opened from a stream)."""

    def __init__(self, fp):
        self.fp, self.where = fp, fp.tell()

    def __enter__(self):
        return self.fp

    def __exit__(self, *exc):
        self.fp.seek(self.where)


_NEW_SUBFILE_TYPE = 254
_REDUCED_RESOLUTION = 1   # its bit 0: "a reduced-resolution version of another image in this file"


def page_frames(im: Image.Image) -> list[int]:
    """The frames of a TIFF that are pages: every frame but its reduced-resolution copies (a
    thumbnail or preview, ``NewSubfileType`` bit 0), unless every frame is one; ``[0]`` for
    other formats. The file is left at frame 0.

    Why: a TIFF that stores a thumbnail of its page as a frame of its own (first or last) was
    read as one more page: an API call paid for a stamp-sized picture, an empty or garbled page
    in the ``.txt``, ALTO, PDF and METS, and a page count the volume does not have."""
    n = getattr(im, "n_frames", 1) or 1
    if im.format != "TIFF" or n == 1:
        return [0]
    pages = []
    for i in range(n):
        im.seek(i)
        kind = im.tag_v2.get(_NEW_SUBFILE_TYPE, 0)
        if not (isinstance(kind, int) and kind & _REDUCED_RESOLUTION):
            pages.append(i)
    im.seek(0)
    return pages or list(range(n))


def orient(im: Image.Image, orientation: int) -> Image.Image:
    """The loaded frame turned as its ``orientation`` (from :func:`held_orientation`) says; a new image."""
    method = _UPRIGHT.get(orientation)
    return im.transpose(method) if method is not None else im.copy()
