"""Which way up a page is, by reading it: Tesseract's word confidence on a few crops, 4 ways.

Why: Tesseract's orientation detection (``pipeline.ocr.osd``) is unsure on pages with little
running text (charts, sparse tables, a page that is mostly a photograph) and sometimes names the
wrong direction of a sideways page; 21 of the 114 turned versions of the shared scans were left
turned. Reading a few crops of the page in each of the four quarter turns and keeping the one
Tesseract reads with clearly the highest confidence answers them: upright text reads at a
character-weighted confidence of 60-95, the three wrong turns at 15-55. It costs a second or
two of CPU, so ``pipeline.inputs.upright`` asks it only when OSD is unsure.

The crops: the page (long side ``OSD_SIDE`` pixels, already levelled) is cut into a
``GRID`` x ``GRID`` grid; the cells that look like print on paper (mostly light, some dark) are
taken, darkest first, at most ``CROPS``, doubled in size (Tesseract wants ~20 px x-heights).
English data reads the confidence of any Latin-script page well enough (it is never the text
kept). One ``PyTessBaseAPI`` per thread (``osd.thread_api``).
"""

from __future__ import annotations

from PIL import Image

from pipeline.ocr import tess
from pipeline.ocr.osd import thread_api

GRID = 5
CROPS = 3
#: a cell is print on paper when this share is light (> 200) and this range dark (< 128)
MIN_LIGHT = 0.6
DARK_RANGE = (0.02, 0.3)
#: the best turn must read at this confidence, this far above every other turn, on this many
#: characters, or the reading says nothing
MIN_CONFIDENCE = 60.0
MIN_MARGIN = 20.0
MIN_CHARS = 40

_TRANSPOSE = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180,
              270: Image.Transpose.ROTATE_270}


def _api():
    return thread_api("eng", "SINGLE_BLOCK")


def crops(page: Image.Image) -> list[Image.Image]:
    """The cells of the page that look like print, darkest first, doubled in size."""
    import numpy as np  # loaded when a page is first read (the start-up loads no numpy)

    arr = np.asarray(page if page.mode == "L" else page.convert("L"))
    h, w = arr.shape
    ch, cw = h // GRID, w // GRID
    if ch < 8 or cw < 8:
        return []
    cells = []
    for i in range(GRID):
        for j in range(GRID):
            cell = arr[i * ch:(i + 1) * ch, j * cw:(j + 1) * cw]
            dark, light = float((cell < 128).mean()), float((cell > 200).mean())
            if light >= MIN_LIGHT and DARK_RANGE[0] <= dark <= DARK_RANGE[1]:
                cells.append((dark, i, j))
    cells.sort(reverse=True)
    out = []
    for _, i, j in cells[:CROPS]:
        c = page.crop((j * cw, i * ch, (j + 1) * cw, (i + 1) * ch))
        out.append(c.resize((c.width * 2, c.height * 2), Image.Resampling.BICUBIC))
        c.close()
    return out


def scores(page: Image.Image) -> dict[int, tuple[float, int]]:
    """For each counter-clockwise quarter turn: (character-weighted word confidence, characters)."""
    api = _api()
    if not api:
        return {}
    tesserocr = tess.tesserocr()

    level = tesserocr.RIL.WORD
    total = {q: [0.0, 0] for q in (0, 90, 180, 270)}
    for crop in crops(page):
        for q in total:
            im = crop if q == 0 else crop.transpose(_TRANSPOSE[q])
            try:
                api.SetImage(im)
                api.Recognize()
                for word in tesserocr.iterate_level(api.GetIterator(), level):
                    try:
                        n = sum(ch.isalnum() for ch in word.GetUTF8Text(level) or "")
                    except RuntimeError:        # an empty word
                        continue
                    total[q][0] += word.Confidence(level) * n
                    total[q][1] += n
            except RuntimeError:
                pass
            finally:
                api.Clear()
                if im is not crop:
                    im.close()
        crop.close()
    return {q: (s / n if n else 0.0, n) for q, (s, n) in total.items()}


def clear_turn(found: dict[int, tuple[float, int]]) -> int | None:
    """The quarter turn that puts the page ``scores`` read upright, when it read clearly best
    (``MIN_CONFIDENCE``, ``MIN_MARGIN``, ``MIN_CHARS``); else None."""
    if not found:
        return None
    ranked = sorted(found.items(), key=lambda kv: kv[1][0], reverse=True)
    (best, (conf, chars)), (_, (second, _)) = ranked[0], ranked[1]
    if conf >= MIN_CONFIDENCE and conf - second >= MIN_MARGIN and chars >= MIN_CHARS:
        return best
    return None
