"""What an input file is, told from its bytes, and the rejection a person can act on.

Split from ``prepare`` (which decides what is sent): when Pillow cannot read a file, the person
who finds it in ``failures.json`` needs to know what it really is (a PDF named ``.jpg``, a
DjVu book, an HTML error page saved by a failed download, a HEIC photo) and what to do, not a
decoder's message; and a file Pillow does recognise but cannot decode needs "copy it again"
(truncated) told apart from "re-scan it" (damaged).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

from PIL import Image, TiffImagePlugin

from pipeline.ocr.imaging import PNG_MAX_CHUNK

__all__ = ["RejectedInput", "REJECTION_CODES", "read_head", "image_magic", "describe_non_pdf",
           "describe_non_image", "decode_error", "jpeg_precision", "describe_wide_jpeg", "tiff_layout"]


REJECTION_CODES = {
    "empty_file": "the file has zero bytes",
    "unreadable": "the operating system refused to read it (permissions, not a regular file)",
    "not_an_image": "the content is not an image format Pillow can read",
    "not_a_pdf": "named .pdf, but the content is not a PDF (no %PDF- header)",
    "truncated": "the image data ends early (incomplete copy or download)",
    "corrupt": "the image data is damaged and cannot be decoded",
    "decompression_bomb": "the image declares more pixels than max_source_pixels",
    "too_many_pages": "the document has more pages than max_pages",
    "cannot_fit": "no encoding within the byte limit was found (should not happen in practice)",
}


class RejectedInput(Exception):
    """This input can never be OCRed as it is; ``reason`` says what a person can do about it."""

    def __init__(self, code: str, reason: str):
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


def read_head(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(64)
    except OSError:
        return b""


_MAGIC_HINTS = (
    (b"%PDF", "a PDF document; convert its pages to images (e.g. pdftoppm -png) first"),
    (b"PK\x03\x04", "a ZIP archive (or DOCX/ODT/XLSX document); extract or export the images first"),
    (b"\x1f\x8b", "a gzip-compressed file; decompress it first"),
    (b"%!PS", "a PostScript/EPS file; convert it to PNG or PDF-then-PNG first"),
    (b"\xd0\xcf\x11\xe0", "an old Microsoft Office document; export the images first"),
    (b"Rar!", "a RAR archive; extract the images first"),
    (b"7z\xbc\xaf", "a 7-Zip archive; extract the images first"),
    (b"AT&TFORM", "a DjVu document (scanned books' format); convert its pages to TIFF first "
                  "(e.g. ddjvu -format=tiff book.djvu book.tif)"),
)


_IMAGE_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),
)


def image_magic(head: bytes) -> str | None:
    for magic, kind in _IMAGE_MAGIC:
        if head.startswith(magic):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    if head[:2] == b"BM" and head[6:10] == b"\0\0\0\0" and len(head) >= 26:   # "BM" alone is too common
        return "BMP"
    return None


#: JPEG start-of-frame markers (C4 DHT, C8 JPG and CC DAC are no frames)
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_MAX_SEGMENTS = 512


def jpeg_precision(source: Path | bytes) -> int | None:
    """The bits a sample of a JPEG's frame header (SOFn), walking its segments from the start;
    ``None`` when no frame header is found before the scan data or the file ends.

    Why: a 12- or 16-bit JPEG (medical and some archival masters; libjpeg's 12-bit mode) is
    refused by Pillow, which reads 8-bit JPEGs only, as "cannot identify image file", and the
    rejection said its header was damaged: "copy or export it again" helps no one."""
    try:
        with (io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")) as fh:
            if fh.read(2) != b"\xff\xd8":
                return None
            for _ in range(_JPEG_MAX_SEGMENTS):
                head = fh.read(4)
                if len(head) < 4 or head[0] != 0xFF:
                    return None
                marker, length = head[1], int.from_bytes(head[2:4], "big")
                if marker in _JPEG_SOF:
                    precision = fh.read(1)
                    return precision[0] if precision else None
                if marker == 0xDA or length < 2:       # the scan data: no frame header before it
                    return None
                fh.seek(length - 2, io.SEEK_CUR)
    except OSError:
        return None
    return None


def describe_wide_jpeg(precision: int) -> str:
    """The reason a JPEG of more than 8 bits a sample is refused, with the way round it."""
    return (f"a {precision}-bit JPEG (its frame header says {precision} bits a sample; medical and "
            "some archival masters): Pillow reads 8-bit JPEGs only; convert it to a 16-bit TIFF or "
            "PNG first (e.g. with dcmtk's dcmj2pnm or a libjpeg built for 12 bits)")


_PHOTOMETRIC = {0: "grey (0 is white)", 1: "grey", 2: "RGB", 3: "palette", 4: "mask", 5: "CMYK",
                6: "YCbCr", 8: "CIELab", 32844: "LogL", 32845: "LogLuv"}
_SAMPLE_FORMAT = {1: "", 2: " signed", 3: " float"}


def tiff_layout(source: Path | bytes) -> str | None:
    """The pixel layout of a TIFF Pillow has no reader for, in words ("2 samples of 16 bits
    (grey with 1 extra sample)"), from its first directory; ``None`` when Pillow does have one
    (the file is broken some other way) or the directory cannot be read.

    Why: Pillow refuses a layout it has no mode for (16-bit grey with alpha, 2 samples of 12
    bits, ...) as "cannot identify image file", and the rejection said the TIFF's header was
    damaged: "copy or export it again" gives the same file again."""
    try:
        with (io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")) as fh, \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")     # Pillow's words on a broken directory: said below
            try:
                TiffImagePlugin.TiffImageFile(fh)
                return None
            except SyntaxError as exc:
                if "unknown pixel mode" not in str(exc):
                    return None
            fh.seek(0)
            head = fh.read(8)
            ifd = TiffImagePlugin.ImageFileDirectory_v2(head)
            fh.seek(ifd.next)
            ifd.load(fh)
    except Exception:   # a directory Pillow's own parser cannot read: damaged after all
        return None
    bits = ifd.get(258, (1,))
    bits = bits if isinstance(bits, tuple) else (bits,)
    samples = int(ifd.get(277, len(bits)) or 1)
    fmt = ifd.get(339, (1,))
    fmt = fmt[0] if isinstance(fmt, tuple) and fmt else fmt
    extra = ifd.get(338, ())
    extra = len(extra) if isinstance(extra, tuple) else 1
    what = _PHOTOMETRIC.get(ifd.get(262), f"photometric {ifd.get(262)}")
    kind = _SAMPLE_FORMAT.get(fmt, "")
    more = f" with {extra} extra sample{'s' if extra > 1 else ''} (alpha or other)" if extra else ""
    widths = "/".join(str(b) for b in sorted(set(bits)))
    return f"{samples} sample{'s' if samples > 1 else ''} of {widths}{kind} bits ({what}{more})"


def describe_non_pdf(head: bytes) -> str:
    """A file named ``.pdf`` whose content is neither a PDF nor an image."""
    what = describe_non_image(head, ".pdf")
    if not what.startswith("not an image format"):  # it recognised the content (HTML, a ZIP, text...)
        return f"not a PDF, though named .pdf: {what.removeprefix('not an image: ')}"
    return (f"not a PDF, though named .pdf: the content has no %PDF- header (first bytes: {head[:8].hex(' ')}); "
            "the file is damaged or something else; copy, download or export it again")


def describe_non_image(head: bytes, suffix: str = "") -> str:
    """Say what the bytes look like, so a person knows what landed in the input folder; text in
    a file named as an image (``suffix``, one Pillow knows; ``.pdf`` too) is said to be misnamed,
    a ``notes.txt`` taken by an ``include: ["**/*"]`` is not (it said "the extension lies")."""
    for magic, hint in _MAGIC_HINTS:
        if head.startswith(magic):
            return f"not an image: the content is {hint}"
    if head[4:8] == b"ftyp":
        brand = head[8:12].decode("ascii", "replace")
        if brand in ("heic", "heix", "mif1", "msf1", "avif", "hevc"):
            return (f"HEIC/AVIF image (brand {brand!r}) is not supported here; "
                    "convert it to JPEG or PNG first")
        return f"not an image: the content is an ISO media file (brand {brand!r}, e.g. MP4/MOV video)"
    stripped = head.lstrip()
    if stripped[:5].lower() in (b"<?xml", b"<svg ") or stripped[:4].lower() == b"<svg":
        return "not a raster image: the content is XML/SVG; rasterise it to PNG first"
    if stripped[:14].lower().startswith((b"<!doctype html", b"<html")):
        return "not an image: the content is an HTML page (a failed download?)"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and text and all(ch.isprintable() or ch in "\r\n\t" for ch in text):
        preview = text[:40].replace("\n", "\\n").replace("\r", "\\r")
        lies = "; the extension lies" if suffix.lower() in Image.registered_extensions() else ""
        return f"not an image: the file contains text (starts with {preview!r}){lies}"
    return (f"not an image format Pillow can read (first bytes: {head[:8].hex(' ')}); "
            "convert it to PNG or JPEG")


def decode_error(exc: BaseException) -> RejectedInput:
    msg = str(exc) or type(exc).__name__
    low = msg.lower()
    if "truncated" in low or isinstance(exc, EOFError) or "premature end" in low or "ran out of data" in low:
        return RejectedInput("truncated", f"the image data ends early ({msg}); the file is incomplete — "
                                          "copy or download it again")
    if isinstance(exc, PermissionError):
        return RejectedInput("unreadable", f"permission denied while reading ({exc.strerror})")
    if "decompressed data too large" in low:   # Pillow's words for a metadata chunk past its limit
        return RejectedInput("corrupt", f"a metadata chunk (a colour profile or text) unpacks to more than "
                                        f"{PNG_MAX_CHUNK >> 20} MB, the limit for one chunk ({msg}); the "
                                        "pixels may be fine: export the image again without that "
                                        "profile or metadata")
    return RejectedInput("corrupt", f"the image data is damaged and cannot be decoded ({msg}); "
                                    "re-export or re-scan it")
