"""A decoded page image put into the searchable PDF band by band, in bounded memory.

Why: fpdf2 stores a Pillow image losslessly by taking ``tobytes()`` of the whole image for its
cache key, then again into a ``bytearray``, then a third copy with every row prefixed for the
PNG predictor, and compresses that at once: about five times the decoded image in memory on
top of the image itself. A 12000 x 16000 colour scan (576 MB decoded, under the default
``precheck.max_source_pixels``) took 3.2 GB to write its PDF, and two such files written by the
run's threads at once took a single process to 6 GB. Here the same Flate stream (rows with
the predictor's "none" byte, ``/Predictor 15``, as fpdf2 writes it) is compressed
about ``BAND_BYTES`` at a time, and handed to fpdf2 as an image it has already loaded, under a
name of our own; the compressed stream is all that stays.

Only grey and RGB images take this way (what scans decode to); bilevel pages go to fpdf2's
CCITT G4 (compact already), palette and CMYK images to fpdf2 as before.
"""

from __future__ import annotations

import zlib

import numpy as np
from fpdf import FPDF
from PIL import Image

try:   # fpdf2's image cache is not its public API: another version may move it
    from fpdf.image_datastructures import RasterImageInfo
    from fpdf.image_parsing import is_iccp_valid
except ImportError:   # pragma: no cover - then every page goes through fpdf2 as before
    RasterImageInfo = None

#: bytes of decoded rows compressed at a time (Pillow's tobytes and the padded copy hold a band
#: two or three times over, whatever the page's size)
BAND_BYTES = 1 << 20

_SPACES = {"L": (1, "DeviceGray"), "RGB": (3, "DeviceRGB")}


def can_stream(im: Image.Image) -> bool:
    """Whether ``im`` is put band by band (grey or RGB), not through fpdf2's whole-image copies."""
    return RasterImageInfo is not None and im.mode in _SPACES


def flate_rows(im: Image.Image) -> bytes:
    """The image's rows, each after a 0 byte (PNG predictor "none"), Flate-compressed band by band."""
    channels = _SPACES[im.mode][0]
    w, h = im.size
    band_rows = max(1, BAND_BYTES // (w * channels))
    z = zlib.compressobj()
    parts = []
    for y in range(0, h, band_rows):
        y1 = min(h, y + band_rows)
        rows = np.frombuffer(im.crop((0, y, w, y1)).tobytes(), np.uint8).reshape(y1 - y, w * channels)
        padded = np.zeros((y1 - y, w * channels + 1), np.uint8)
        padded[:, 1:] = rows
        parts.append(z.compress(padded))
    parts.append(z.flush())
    return b"".join(parts)


def add_image(pdf: FPDF, im: Image.Image, name: str) -> str:
    """Register ``im`` (``can_stream``) in ``pdf``'s image cache under ``name`` (unique in the
    document) and return the name, for ``pdf.image(name, ...)``. An embedded ICC profile is
    kept, as fpdf2 keeps it."""
    channels, space = _SPACES[im.mode]
    w, h = im.size
    info = RasterImageInfo(data=flate_rows(im), w=w, h=h, cs=space, iccp=None, dpn=channels, bpc=8,
                           f="FlateDecode", inverted=False, dp=f"/Predictor 15 /Colors {channels} /Columns {w}")
    cache = pdf.image_cache
    info["i"] = len(cache.images) + 1
    info["usages"] = 0          # fpdf2 counts the use when pdf.image() finds it here
    info["iccp_i"] = None
    iccp = im.info.get("icc_profile")
    if iccp and is_iccp_valid(iccp, name):
        info["iccp_i"] = cache.icc_profiles.setdefault(iccp, len(cache.icc_profiles))
    cache.images[name] = info
    return name
