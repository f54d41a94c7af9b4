"""Tesseract's page modes on the pages it reads whole: CER upright and under the least resampling.

For every scored page of ``../shared/data`` that ``columns.page_layout`` does not set in
columns (or ``--pages``), the upload ``prepare`` makes of the upright page and of the page moved
by six quarter- and half-pixel shifts (a bicubic resampling, nothing turned: what
``bench.straighten.miss_cause`` uses as its control), decoded as the server decodes them, each
read whole in each page segmentation mode of ``--modes`` (or, with ``--bands``, cut at
full-width blank runs, ``columns.split_bands``, and each band read with ``SetRectangle``).
Prints one JSON line a page and mode (CER in % upright and for each shift) and a summary: mean
CER upright and shifted, and how many shifts read within 1 point of upright. Why: the choice of
``tesseract.WHOLE_PSM`` (docs/configuration.md, "Page modes for pages read whole").
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from PIL import Image

from bench.metrics import cer_counts
from bench.straighten import data_dir, gray, pages, prepared
from pipeline.ocr.base import OcrPage
from pipeline.ocr.columns import ink_mask, page_layout, split_bands
from pipeline.ocr.pool import decode_image
from pipeline.ocr.tessimage import set_image
from pipeline.ocr.tesseract import TesseractEngine

SHIFTS = ((0.25, 0), (0, 0.25), (0.25, 0.25), (0.5, 0), (0, 0.5), (0.5, 0.5))


class ModeReader(TesseractEngine):
    """The engine, reading a page whole in one given mode, or band by band."""

    def read(self, image: Image.Image, psm: int, bands: bool) -> str:
        api = self._api(None)
        blocks: list = []
        try:
            set_image(api, image)
            api.SetPageSegMode(psm)
            if bands:
                for y0, y1 in split_bands(ink_mask(image), max(2, image.width // 500)):
                    api.SetRectangle(0, y0, image.width, y1 - y0)
                    self._read(api, blocks)
            else:
                self._read(api, blocks)
        finally:
            api.SetPageSegMode(self._tesserocr.PSM.AUTO)
            api.Clear()
        return OcrPage(engine=self.name, width=image.width, height=image.height, blocks=tuple(blocks)).text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data")
    ap.add_argument("--pages", help="only these pages (file names, comma-separated)")
    ap.add_argument("--modes", default="3,4,6", help="page segmentation modes to compare")
    ap.add_argument("--bands", action="store_true", help="read band by band instead of whole")
    args = ap.parse_args(argv)
    names = set(args.pages.split(",")) if args.pages else None
    modes = [int(m) for m in args.modes.split(",")]
    reader = ModeReader()
    tmp = Path(tempfile.mkdtemp())
    summary = {m: {"pages": 0, "upright": 0.0, "shifted": 0.0, "within": 0} for m in modes}
    for path, truth in pages(data_dir(args.data)):
        if truth is None or (names and path.name not in names):
            continue
        page = gray(path)
        images = [("upright", decode_image(prepared(page, True, tmp).data))]
        if names is None and page_layout(images[0][1])[0] is not None:
            continue      # set in columns: read region by region, not whole
        for dx, dy in SHIFTS:
            moved = page.transform(page.size, Image.Transform.AFFINE, (1, 0, dx, 0, 1, dy),
                                   Image.Resampling.BICUBIC, fillcolor=255)
            images.append((f"{dx},{dy}", decode_image(prepared(moved, False, tmp).data)))
        for mode in modes:
            row = {"bench": "tesseract_modes", "page": path.name, "psm": mode, "bands": args.bands}
            for label, image in images:
                errors, length = cer_counts(truth, reader.read(image, mode, args.bands))
                row[label] = round(100 * errors / max(length, 1), 2)
            print(json.dumps(row), flush=True)
            shifted = [row[f"{dx},{dy}"] for dx, dy in SHIFTS]
            s = summary[mode]
            s["pages"] += 1
            s["upright"] += row["upright"]
            s["shifted"] += sum(shifted) / len(shifted)
            s["within"] += sum(v <= row["upright"] + 1 for v in shifted)
    for mode, s in summary.items():
        n = max(s["pages"], 1)
        print(json.dumps({"bench": "tesseract_modes", "psm": mode, "bands": args.bands, "pages": s["pages"],
                          "mean_upright": round(s["upright"] / n, 2), "mean_shifted": round(s["shifted"] / n, 2),
                          "shifts_within_1pt": s["within"], "shifts": 6 * s["pages"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
