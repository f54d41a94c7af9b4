"""Hand Tesseract a page's own pixels at one stated resolution, whatever the image came from.

Why: tesserocr's ``SetImage`` saves the Pillow image in its ``format`` and Leptonica decodes
that file again, resolution included. An image made in memory (every page the server decodes:
``ImageOps.exif_transpose`` returns a copy) has no format and goes as a BMP, which Pillow
stamps 96 ppi; an image opened from a PNG without a ``pHYs`` chunk goes as that PNG, with no
resolution, and Tesseract then estimates one from the text's height. The estimate changes its
page layout analysis: a plain two-column page, rendered, upright, was read across the gutter
(64 % CER against 0 % at 96 ppi), so the same pixels read differently by their origin (the
straightening bench read the uploads from their PNG bytes, the server from memory).
``SetImageBytes`` takes the raw 8-bit rows (no encode, no decode) and ``TESSERACT_PPI`` is
stated for every page: exactly what the server's pages were read with (the same text, character
for character, on the shared scans), now also for images that arrive with a format.

Used by the recognition engine (``tesseract.py``), which callers hand images of any origin.
Orientation detection (``osd``, ``readturn``) and the word readings for placement
(``readwords``, ``inkgeom``) are always handed images made in memory (reduced, cropped,
converted), so they keep ``SetImage``: their thresholds were measured that way, and Tesseract's
orientation confidence is not the same through the two paths (7.2 against 8.9 on one page).
"""

from __future__ import annotations

from PIL import Image

#: the resolution Tesseract is told for every page: the 96 ppi it has always been told for the
#: server's pages (Pillow's BMP default); Tesseract's own estimate merges columns (see above)
TESSERACT_PPI = 96


def set_image(api, image: Image.Image) -> None:
    """``api.SetImage`` with the exact pixels at ``TESSERACT_PPI``: L and RGB as they are,
    bilevel as L, others as RGB (callers flatten transparency first: ``imaging.flatten_on_white``)."""
    if image.mode not in ("L", "RGB"):
        image = image.convert("L" if image.mode in ("1", "L", "LA", "La") else "RGB")
    depth = 1 if image.mode == "L" else 3
    api.SetImageBytes(image.tobytes(), image.width, image.height, depth, image.width * depth)
    api.SetSourceResolution(TESSERACT_PPI)
