"""Reading a tall page in strips against reading it whole: the CER each costs, page by page.

What is measured (issue 27, "the stitched text's CER against the same engine reading the whole
page is within 0.5 points"): for every scribe page taller than the hosted model's 850 px limit
(the ``multicol_*`` pages first, then the other classes), the hosted-like model's answer
(``server/hosted.py``: RapidOCR's reading rendered as Markdown) is turned into the ``.txt`` by
the Markdown rule (``formats/markdown.py``) twice:

* **whole**: the page as one image (the model with no height limit);
* **strips**: the strips the pipeline cuts at the limit (``inputs/strips.plan_strips``), each
  upload made by ``run/strips.strip_upload`` and read as its own job, the answers joined by
  ``run/stitch.stitch`` (text only, as the hosted model answers): the very functions a run
  calls, without the HTTP and state around them (the tests run the whole way on the pages that
  pass).

Each is scored against the page's ground truth (CER as ``bench/metrics.py`` defines it); the
figure is ``strips - whole`` in CER points (target: at most +0.5 on every page). It is given
twice: for the hosted-like model's Markdown (``hosted``), and for the engine's own text of the same
readings (``engine``): on table pages the renderer's tables differ whole and in strips, so the
first mixes what the cut costs with what rendering does; the second is the cut alone.

``python -m bench.strip_cer`` reads every tall page; ``--quick`` the multi-column pages only;
``--pages multicol_01 table_05`` names pages; ``--dev N`` adds N rendered pages of each
multi-column class of ``bench/devset.py`` (known text, nobody tuned the cut on them;
``--no-scribe`` for those alone); ``--cache DIR`` keeps each image's reading (by its
bytes' sha256) so a rerun after a change to the cut reads only the strips that changed. A
cached reading keeps the reading order it was made with: after a change to ``ocr/layout.py``
use a fresh folder (or re-lay out the cached lines, as the 2026-12-07 note in
``bench/results.json`` says was done).
RapidOCR runs in this process, one page at a time (about 10-20 CPU-s a page, whole and strips).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "scribeocr-benchmark"
LIMIT = 850


def _reader(cache: Path | None) -> Callable[[bytes], Any]:
    """bytes -> the engine's OcrPage, as a server worker reads an upload (``ocr/pool.py``)."""
    from pipeline.ocr import create_engine
    from pipeline.ocr.pool import decode_image

    engine = create_engine("rapidocr")

    def read(data: bytes) -> Any:
        path = cache / (hashlib.sha256(data).hexdigest() + ".pickle") if cache else None
        if path is not None and path.exists():
            return pickle.loads(path.read_bytes())
        page = engine.recognize(decode_image(data), "en")
        if path is not None:
            path.write_bytes(pickle.dumps(page))
        return page

    return read


def measure_page(image_path: Path, truth: str, read: Callable[[bytes], Any], limit: int = LIMIT) -> dict[str, Any]:
    """Whole and strips CER of one page, and what the cut was."""
    from bench.metrics import bag_f1, cer_counts
    from pipeline.formats.markdown import plain_text
    from pipeline.inputs.prepare import PrecheckLimits, prepare_file
    from pipeline.run.stitch import Piece, stitch
    from pipeline.run.strips import decode, plan_strips, strip_upload
    from pipeline.server.hosted import render_markdown

    page = prepare_file(image_path, PrecheckLimits()).pages[0]
    cpu = time.process_time()
    whole = read(page.data)
    with decode(page) as image:
        regions = plan_strips(image, limit)
        uploads = [strip_upload(image, r, page, n) for n, r in enumerate(regions)]
    readings = [read(u.data) for u in uploads]
    row: dict[str, Any] = {"page": image_path.stem, "height": page.height, "strips": len(regions),
                           "columns_cut": len({(r.x0, r.x1) for r in regions}) > 1,
                           "seams": sum(1 for r in regions if r.overlap)}
    # the hosted-like model (its Markdown), and the engine's own text (no rendering): the second
    # tells what the cut costs apart from what the Markdown rendering does with a whole page
    for name, answer in (("hosted", render_markdown), ("engine", lambda ocr: ocr.text)):
        joined, _ = stitch([Piece(r, answer(o), None) for r, o in zip(regions, readings)], page.width, page.height)
        whole_text, strips_text = plain_text(answer(whole)), plain_text(joined)
        e_whole, n = cer_counts(truth, whole_text)
        e_strips, _ = cer_counts(truth, strips_text)
        cer_whole, cer_strips = 100 * e_whole / n, 100 * e_strips / n
        row[name] = {"whole_cer_pct": round(cer_whole, 2), "strips_cer_pct": round(cer_strips, 2),
                     "points": round(cer_strips - cer_whole, 2),
                     # words found, order aside: tells a cut that loses text from one that reorders it
                     "whole_bag_f1": round(bag_f1(truth, whole_text), 4),
                     "strips_bag_f1": round(bag_f1(truth, strips_text), 4)}
    row["cpu_s"] = round(time.process_time() - cpu, 1)
    return row


def tall_pages(names: list[str] | None, limit: int, multicol_only: bool) -> list[Path]:
    """The scribe pages taller than ``limit``, multi-column ones first (or those named)."""
    from PIL import Image

    found = []
    for path in sorted((DATA / "img").iterdir()):
        if names and path.stem not in names:
            continue
        if multicol_only and not path.stem.startswith("multicol"):
            continue
        with Image.open(path) as im:
            if im.size[1] > limit:
                found.append(path)
    return sorted(found, key=lambda p: (not p.stem.startswith("multicol"), p.stem))


def dev_pages(per_class: int, classes: tuple[str, ...], folder: Path, scale: int = 1) -> list[tuple[Path, str]]:
    """Rendered pages of known text (``bench/devset.py``, 1240 x 1754 px: an A4 page at 150 dpi,
    so taller than the limit; ``scale`` 2 makes it 300 dpi, 2480 x 3508, as archives scan),
    written as the JPEGs a scanner would hand over. Nobody tuned the cut on them: the check on
    classes of layout beside the scribe pages."""
    from PIL import Image

    from bench import devset

    found = []
    for page in devset.pages(per_class, classes):
        path = folder / f"dev_{page.name}{'' if scale == 1 else f'_x{scale}'}.jpg"
        if scale == 1:
            path.write_bytes(page.jpeg)
        else:
            image = page.image.resize((page.image.width * scale, page.image.height * scale), Image.LANCZOS)
            image.save(path, "JPEG", quality=90, dpi=(150 * scale, 150 * scale))
        found.append((path, page.gt))
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="the multi-column pages only")
    p.add_argument("--pages", nargs="*", help="page names (file stems), e.g. multicol_01")
    p.add_argument("--limit", type=int, default=LIMIT)
    p.add_argument("--cache", type=Path, help="a folder keeping each image's reading between runs")
    p.add_argument("--dev", type=int, default=0, metavar="N",
                   help="also N rendered pages of each multi-column class of bench/devset.py (known text)")
    p.add_argument("--dev-classes", nargs="*", default=["article2", "article3", "mixed"])
    p.add_argument("--dev-scale", type=int, default=1, help="2: the rendered pages at 300 dpi (2480 x 3508)")
    p.add_argument("--no-scribe", action="store_true", help="only the rendered pages")
    args = p.parse_args(argv)
    if not (DATA / "img").is_dir():
        print(json.dumps({"bench": "strip_cer", "skipped": f"no scribe data at {DATA}"}))
        return 0
    sys.path.insert(0, str(ROOT))
    if args.cache:
        args.cache.mkdir(parents=True, exist_ok=True)
    read = _reader(args.cache)
    pages: list[tuple[Path, str]] = []
    if not args.no_scribe:
        for path in tall_pages(args.pages, args.limit, args.quick):
            truth_path = DATA / "gt_txt" / f"{path.stem}.txt"
            if truth_path.exists():   # multicol_10 has no ground truth
                pages.append((path, truth_path.read_text(encoding="utf-8")))
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        if args.dev:
            pages += dev_pages(args.dev, tuple(args.dev_classes), Path(folder), args.dev_scale)
        for path, truth in pages:
            row = measure_page(path, truth, read, args.limit)
            print(json.dumps(row), file=sys.stderr, flush=True)
            rows.append(row)
    out: dict[str, Any] = {"bench": "strip_cer", "limit_px": args.limit, "pages": len(rows), "rows": rows}
    for name in ("hosted", "engine"):
        worst = max(rows, key=lambda r: r[name]["points"], default=None)
        out[name] = {"within_half_point": sum(1 for r in rows if r[name]["points"] <= 0.5),
                     "words_kept": sum(1 for r in rows if r[name]["strips_bag_f1"] >= r[name]["whole_bag_f1"] - 0.01),
                     "over": [r["page"] for r in rows if r[name]["points"] > 0.5],
                     "worst": worst and {"page": worst["page"], "points": worst[name]["points"]}}
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
