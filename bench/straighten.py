"""Turned and skewed pages (issue 23): what the straightening decides and what a page costs.

For every page of ``../shared/data`` (or ``--data``/``$PIPELINE_SHARED_DATA``) and its turned
(90/180/270, no EXIF) and skewed (+-1.5, +-4, +-7 degrees) versions (``bench/page_variants.py``):

* the decision (``pipeline.inputs.upright.measure``): right, left alone, or wrong (a page turned
  or levelled the wrong way); upright pages must never move;
* CPU time a page costs for each step, upright and turned, measured side by side in this one
  process: ``profile`` (reduce + line profile), ``fast_check`` (ascender ratio), ``osd``
  (Tesseract OSD, when asked), ``measure`` (all of it: with the four-way reading of crops when
  OSD is unsure, counted in ``read_asked``), ``apply`` (deskew + turn);
* with ``--ocr``: each engine reads the upright page and every variant as ``prepare`` would
  send it, decoded as the server decodes it; the share of variants whose CER is within 1 point
  of the upright page's, both with the straightening and without it (``off``), on the scored
  pages; every variant that misses, with its cause (``miss_cause``: ``left`` as it was,
  ``unstable``: the upright page moved by half a pixel already misses, or ``straightening``).

``--quick`` takes 3 pages and no OCR. Prints one JSON line (see bench/__main__.py).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import time
from pathlib import Path

from PIL import Image

from bench.metrics import cer_counts
from bench.page_variants import all_variants, variant
from pipeline.inputs import upright
from pipeline.inputs.prepare import PrecheckLimits, prepare_file
from pipeline.inputs.skew import ANALYSIS_SIDE, ascender_ratio, line_lie, reduce_gray
from pipeline.ocr import create_engine, osd
from pipeline.ocr.pool import decode_image
from pipeline.ocr.imaging import flatten_on_white

ROOT = Path(__file__).resolve().parents[1]


def data_dir(arg: str | None) -> Path:
    return Path(arg or os.environ.get("PIPELINE_SHARED_DATA") or ROOT.parent / "shared" / "data")


def pages(data: Path) -> list[tuple[Path, str | None]]:
    """(image, ground-truth text or None) for every shared scan."""
    out = []
    for p in sorted((data / "scribeocr-benchmark" / "img").iterdir()):
        gt = data / "scribeocr-benchmark" / "gt_txt" / f"{p.stem}.txt"
        out.append((p, gt.read_text() if gt.exists() else None))
    for p in sorted((data / "cis-hobbes-1668" / "tif").iterdir()):
        gt = data / "cis-hobbes-1668" / "gt" / f"{p.stem}.gt.txt"
        out.append((p, gt.read_text() if gt.exists() else None))
    return out


def gray(path: Path) -> Image.Image:
    im = Image.open(path)
    if im.mode in ("RGBA", "LA", "P"):
        im = flatten_on_white(im)
    return im.convert("L")


def cpu(fn):
    t = time.process_time()
    result = fn()
    return result, time.process_time() - t


def steps(im: Image.Image) -> dict[str, float]:
    """CPU seconds of each step on one page, and of the whole decision and its application."""
    big, t_big = cpu(lambda: reduce_gray(im, upright.OSD_SIDE))
    small, t_small = cpu(lambda: reduce_gray(big, ANALYSIS_SIDE))
    lie, t_lie = cpu(lambda: line_lie(small))
    _, t_fast = cpu(lambda: ascender_ratio(small, lie.angle))
    _, t_osd = cpu(lambda: osd.detect(big))
    how, t_measure = cpu(lambda: upright.measure(im))
    _, t_apply = cpu(lambda: upright.apply(im, how, []))
    return {"profile": t_big + t_small + t_lie, "fast_check": t_fast, "osd": t_osd,
            "measure": t_measure, "apply": t_apply, "osd_asked": how.osd_confidence is not None or bool(how.turn),
            "read_asked": how.read}


def verdict(kind: str, amount: float, how: upright.Straightening) -> str:
    if kind == "none":
        return "right" if how.noop else "wrong"
    if kind == "turn":
        want = (360 - int(amount)) % 360
        if how.turn == want:
            return "right"
        return "left" if how.turn == 0 else "wrong"
    if how.turn:
        return "wrong"
    if abs(how.skew + amount) <= 0.5:
        return "right"
    return "left" if how.skew == 0 else "wrong"


def prepared(im: Image.Image, straighten: bool, tmp: Path):
    """The upload ``prepare`` makes of this image (its bytes and recorded transforms)."""
    path = tmp / "variant.png"
    im.save(path)
    limits = PrecheckLimits() if straighten else PrecheckLimits(rotate_pages="off", deskew="off")
    (page,) = prepare_file(path, limits).pages
    return page


def pixels_digest(page) -> str:
    """SHA-256 of the upload's decoded pixels (its mode and size included): the cache key."""
    with Image.open(io.BytesIO(page.data)) as sent:
        return hashlib.sha256(f"{sent.mode}{sent.size}".encode() + sent.tobytes()).hexdigest()[:20]


def read_upload(engine, page) -> str:
    """The engine's text of the upload, decoded as the server decodes it (``pool.decode_image``)."""
    return engine.recognize(decode_image(page.data)).text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data")
    ap.add_argument("--quick", action="store_true", help="3 pages, no OCR")
    ap.add_argument("--limit", type=int, default=0, help="at most this many pages")
    ap.add_argument("--pages", help="only these pages (file names, comma-separated)")
    ap.add_argument("--ocr", nargs="*", default=None, help="engines to score (rapidocr tesseract)")
    ap.add_argument("--modes", default="auto,off", help="with --ocr: auto, off or both (auto,off)")
    ap.add_argument("--cache", help="with --ocr: a JSONL file of CERs already read (reused, extended)")
    ap.add_argument("--no-decisions", action="store_true", help="with --ocr: skip the decision and CPU pass")
    args = ap.parse_args(argv)
    data = data_dir(args.data)
    if not data.is_dir():
        print(json.dumps({"bench": "straighten", "skipped": f"{data} not present"}))
        return 0
    todo = pages(data)
    if args.quick:
        todo = todo[:: max(1, len(todo) // 3)][:3]
    elif args.limit:
        todo = todo[: args.limit]
    if args.pages:      # in the order given (a long OCR run can be stopped with its first pages read)
        todo = [t for name in args.pages.split(",") for t in todo if t[0].name == name]
    counts = {"upright": {"right": 0, "left": 0, "wrong": 0}, "turned": {"right": 0, "left": 0, "wrong": 0},
              "skewed": {"right": 0, "left": 0, "wrong": 0}}
    cost = {"upright": [], "turned": []}
    wrong, left = [], []
    for path, _ in ([] if args.no_decisions else todo):
        page = gray(path)
        cost["upright"].append(steps(page))
        counts["upright"][verdict("none", 0, upright.measure(page))] += 1
        for kind, amount in all_variants():
            im, _ = variant(page, [], kind, amount)
            if kind == "turn":
                cost["turned"].append(steps(im))
            v = verdict(kind, amount, upright.measure(im))
            counts["turned" if kind == "turn" else "skewed"][v] += 1
            if v != "right":
                (wrong if v == "wrong" else left).append(f"{path.name}:{kind}{amount:g}")
            im.close()
    result = {"bench": "straighten", "pages": len(todo), "variants": len(todo) * len(all_variants()),
              "decisions": counts, "wrong": wrong, "left": left}
    for what, rows in cost.items():
        if rows:
            result[f"cpu_ms_{what}"] = {k: round(1000 * sum(r[k] for r in rows) / len(rows), 1)
                                        for k in ("profile", "fast_check", "osd", "measure", "apply")}
            result[f"osd_asked_{what}"] = sum(r["osd_asked"] for r in rows)
            result[f"read_asked_{what}"] = sum(r["read_asked"] for r in rows)
    if args.ocr is not None and not args.quick:
        result["ocr"] = score_ocr(todo, args.ocr or ["tesseract", "rapidocr"], args.modes.split(","),
                                  args.cache)
    print(json.dumps(result))
    return 0


class ReadCache:
    """CER of an upload already read, keyed by engine, page and a digest of the upload's pixels:
    a rerun after a change to the decision or to the variant maker reads again only the uploads
    whose pixels changed, and a turned page turned back (the upright page's very pixels) is read
    once."""

    def __init__(self, path: str | None):
        self.path = Path(path) if path else None
        self.rows: dict[str, float] = {}
        if self.path and self.path.exists():
            for line in self.path.read_text().splitlines():
                row = json.loads(line)
                self.rows[row["key"]] = row["cer"]

    def cer(self, key: str, compute) -> float:
        if key not in self.rows:
            self.rows[key] = compute()
            if self.path:
                with self.path.open("a") as f:
                    f.write(json.dumps({"key": key, "cer": self.rows[key]}) + "\n")
        return self.rows[key]


def reading(name: str, page) -> str:
    """How the engine reads this upload, the first part of its cache key. Tesseract
    (``pipeline.ocr.columns.page_layout``): a page set in columns region by region since
    2026-12-06, keyed by its regions (``tesseract/columns:<digest>``: a change to the column
    finding reads such a page again); a page read whole that holds a form's or a table's cells
    and no running text as lines across (PSM 4, ``tesseract/psm4``); any other page read whole
    in Tesseract's own layout (PSM 3), exactly as before (``tesseract`` rows of earlier runs stay
    valid)."""
    if name == "tesseract":
        from pipeline.ocr.columns import page_layout

        regions, kind = page_layout(decode_image(page.data))
        if regions is not None:
            return "tesseract/columns:" + hashlib.sha256(repr(regions).encode()).hexdigest()[:8]
        return "tesseract/psm4" if kind == "cells" else "tesseract"
    return name


def score_ocr(todo, engines: list[str], modes: list[str], cache_path: str | None = None) -> dict:
    """Share of variants within 1 CER point of the upright page, with (``auto``) and without
    (``off``) straightening, overall and for each rotation and skew; the variants that miss."""
    import tempfile

    cache = ReadCache(cache_path)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in engines:
            engine = None

            def cer_of(gt: str, key: str, page) -> float:
                nonlocal engine
                key = key.replace(f"{name}|", f"{reading(name, page)}|", 1)
                if key not in cache.rows and engine is None:
                    engine = create_engine(name)

                def compute() -> float:
                    errors, length = cer_counts(gt, read_upload(engine, page))
                    return round(errors / max(length, 1), 5)
                return cache.cer(key, compute)

            ok = {m: 0 for m in modes}
            by = {m: {} for m in modes}
            missed = {m: [] for m in modes}
            n = 0
            for path, gt in todo:
                if gt is None:
                    continue
                page = gray(path)
                up = prepared(page, True, Path(tmp))
                base = cer_of(gt, f"{name}|{path.name}|{pixels_digest(up)}", up)

                def control_cer(page, gt, base=base, path=path) -> float:
                    """The upright page moved by half a pixel, nothing turned: how far the
                    engine's reading moves for the least resampling a levelling does."""
                    shifted = page.transform(page.size, Image.Transform.AFFINE, (1, 0, 0.5, 0, 1, 0.5),
                                             Image.Resampling.BICUBIC, fillcolor=255)
                    sent = prepared(shifted, False, Path(tmp))
                    return cer_of(gt, f"{name}|{path.name}|{pixels_digest(sent)}", sent) - base
                for kind, amount in all_variants():
                    im, _ = variant(page, [], kind, amount)
                    n += 1
                    label = f"{kind}{amount:+g}" if kind == "skew" else f"{kind}{amount:g}"
                    for mode in modes:
                        sent = prepared(im, mode == "auto", Path(tmp))
                        cer = cer_of(gt, f"{name}|{path.name}|{pixels_digest(sent)}", sent)
                        good = cer <= base + 0.01
                        ok[mode] += good
                        cell = by[mode].setdefault(label, [0, 0])
                        cell[0] += good
                        cell[1] += 1
                        if not good:
                            cause = miss_cause(kind, sent.transforms, lambda: control_cer(page, gt))
                            missed[mode].append(f"{path.stem}:{label} {100 * cer:.1f}/{100 * base:.1f} {cause}")
                    im.close()
                print(f"{name} {path.name} {ok} of {n}", file=sys.stderr, flush=True)
            out[name] = {"variants": n, **{f"within_1pt_{m}": ok[m] for m in modes},
                         **{f"by_variant_{m}": by[m] for m in modes},
                         **{f"missed_{m}": missed[m] for m in modes}}
    return out


def miss_cause(kind: str, transforms, control_drift) -> str:
    """Why a variant reads worse than the upright page: ``left`` (auto did not straighten it:
    the decision), ``unstable`` (the upright page itself, only moved by half a pixel, already
    reads more than 1 point worse: the engine's page layout, not the straightening, decides the
    reading order; ``control_drift`` is asked only then), else ``straightening`` (a loss the
    levelling itself adds: resampling, the angle)."""
    step = "deskew:" if kind == "skew" else "turn:"
    if not any(t.startswith(step) for t in transforms):
        return "left"
    return "unstable" if control_drift() > 0.01 else "straightening"


if __name__ == "__main__":
    sys.exit(main())
