"""Where RapidOCR's time goes on dense scribe pages, and which settings buy throughput.

Why side by side: the machine is shared (other engineers run test suites on the same 2 cores),
so figures taken minutes apart are not comparable. Every setting here is a warm engine in this
one process, and each page is read by every setting in turn (the order rotating page by page),
so a burst of outside load hits all settings alike; each page's fastest read of ``--repeat``
is kept. The settings run on one intra-op thread each by default (``--threads``), the way each
of two workers runs on 2 cores, so their CPU seconds (what the machine's load disturbs least)
measure the work a setting costs. Each setting is reported as a ratio of time
against ``default`` (the embedded engine as it ships) and with its CER on the same pages, so a
setting that is faster only by reading worse shows it.

Per page and setting: decode (what the worker does to the upload bytes), RapidOCR's own stage
times (detection, angle classifier, recognition), the rest of ``read_lines`` (RapidOCR's resize
and crops, word boxes, our RGB->BGR copy and word-box tightening) and our reading order.

``--workers`` then compares the server's real pool (``engines/pool.py``) with one worker using
every core for ONNX Runtime's intra-op threads against one worker per core with one thread
each, in alternating rounds, and reports pages per minute and each worker's peak RSS.

Prints one JSON object per line (``bench/__main__.py`` collects them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from bench.metrics import cer_counts, peak_rss_mb
from bench.ocr_engines import DEFAULT_DATA, scribe_pages, upload_bytes

#: scribe pages of every kind (dense text, columns, tables, forms); the first N are used
PAGES = ("multicol_01", "singlecol_01", "table_01", "deposition_01", "filing_01", "multicol_03",
         "table_04", "form_01")

#: overrides on top of the shipped default (``engines/rapid.py`` ``DEFAULT_SETTINGS``)
SETTINGS: dict[str, dict] = {
    "default": {},
    "before": {"Global.use_cls": True},  # as shipped before issue 11's speed work
    "no-cls": {"Global.use_cls": False},
    "rec-batch-16": {"Rec.rec_batch_num": 16},
    "rec-batch-1": {"Rec.rec_batch_num": 1},
    "mem-arena": {"EngineConfig.onnxruntime.enable_cpu_mem_arena": True},
    "no-arena": {"EngineConfig.onnxruntime.enable_cpu_mem_arena": False},
    "max-side-1600": {"Global.max_side_len": 1600},
    "det-max-1280": {"Det.limit_type": "max", "Det.limit_side_len": 1280},
}
THREADS = "EngineConfig.onnxruntime.intra_op_num_threads"


def _text(lines) -> str:
    from pipeline.ocr.base import OcrPage
    from pipeline.ocr.rapid import order_lines

    return OcrPage("rapidocr", 0, 0, order_lines(lines)).text


def compare_settings(pages, names: list[str], repeat: int = 2, threads: int = 1) -> list[dict]:
    """Each setting's time per page (the fastest of ``repeat`` reads: outside load only adds), CER, shares."""
    from pipeline.ocr.pool import decode_image
    from pipeline.ocr.rapid import RapidOcrEngine

    engines = {}
    for name in names:
        engines[name] = RapidOcrEngine({THREADS: threads, **SETTINGS[name]} if threads else SETTINGS[name])
        engines[name].read_lines(decode_image(upload_bytes(pages[0])))  # models load on the first call
    best: dict[tuple[str, str], dict] = {}  # (setting, page) -> the fastest of the repeats
    for rep in range(repeat):
        for k, page in enumerate(pages):
            data = upload_bytes(page)
            shift = (k + rep) % len(names)
            for name in names[shift:] + names[:shift]:  # rotate who goes first
                engine = engines[name]
                c0, t0 = time.process_time(), time.perf_counter()
                image = decode_image(data)
                t1 = time.perf_counter()
                lines = engine.read_lines(image)
                t2 = time.perf_counter()
                text = _text(lines)
                t3, c3 = time.perf_counter(), time.process_time()
                stages = [float(x or 0.0) for x in (list(engine.last_elapse) + [0.0, 0.0, 0.0])[:3]]
                e, n = cer_counts(page.gt, text)
                run = {"seconds": t3 - t0, "cpu": c3 - c0, "decode": t1 - t0, "det": stages[0], "cls": stages[1], "rec": stages[2],
                       "other": (t2 - t1) - sum(stages), "layout": t3 - t2, "edits": e, "chars": n}
                key = (name, page.name)
                if key not in best or run["cpu"] < best[key]["cpu"]:
                    best[key] = run
                print(f"  {page.name} {name}: {t3 - t0:.1f} s, {c3 - c0:.1f} s CPU", file=sys.stderr, flush=True)
    acc = {n: {f: sum(best[(n, p.name)][f] for p in pages) for f in best[(n, pages[0].name)]} for n in names}
    base, base_cpu = acc[names[0]]["seconds"], acc[names[0]]["cpu"]
    rows = []
    for name in names:
        a = acc[name]
        rows.append({"bench": "ocr_speed", "setting": name, "overrides": SETTINGS[name], "baseline": names[0],
                     "pages": len(pages),
                     "s_per_page": round(a["seconds"] / len(pages), 2),
                     "pages_per_min": round(60 * len(pages) / a["seconds"], 1),
                     "time_vs_default": round(a["seconds"] / base, 3),
                     "cpu_s_per_page": round(a["cpu"] / len(pages), 2),
                     "cpu_vs_default": round(a["cpu"] / base_cpu, 3), "threads": threads or "default",
                     "cer_pct": round(100 * a["edits"] / max(a["chars"], 1), 2),
                     "share": {k: round(a[k] / a["seconds"], 3) for k in ("decode", "det", "cls", "rec", "other", "layout")}})
    rows[-1]["peak_rss_mb_all_engines"] = peak_rss_mb()
    return rows


def _worker_peaks(runner) -> list[float]:
    """VmHWM of each live worker process of ``runner`` (MB)."""
    out = []
    for proc in list(getattr(runner._executor, "_processes", {}).values()):
        try:
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    out.append(round(int(line.split()[1]) / 1024, 1))
        except OSError:
            pass
    return out


async def _pool_run(workers: int, blobs: list[bytes]) -> tuple[float, list[float]]:
    from pipeline.ocr.pool import EngineRunner

    runner = EngineRunner("rapidocr", workers=workers)
    await runner.start()
    await asyncio.gather(*(runner.recognize(blobs[0]) for _ in range(workers)))  # every worker warm
    t0 = time.perf_counter()
    await asyncio.gather(*(runner.recognize(b) for b in blobs))
    seconds = time.perf_counter() - t0
    peaks = _worker_peaks(runner)
    await runner.close()
    return seconds, peaks


def compare_workers(pages, rounds: int) -> list[dict]:
    blobs = [upload_bytes(p) for p in pages]
    runs: dict[int, list[float]] = {1: [], 2: []}
    peaks: dict[int, list[float]] = {1: [], 2: []}
    for r in range(rounds):
        for workers in ((1, 2) if r % 2 == 0 else (2, 1)):
            seconds, rss = asyncio.run(_pool_run(workers, blobs))
            runs[workers].append(seconds)
            peaks[workers] += rss
            print(f"  round {r}: {workers} worker(s): {seconds:.1f} s for {len(blobs)} pages", file=sys.stderr, flush=True)
    base = sum(runs[1])
    return [{"bench": "ocr_speed_workers", "workers": w, "threads_per_worker": "all cores" if w == 1 else 1,
             "pages": len(blobs) * rounds, "pages_per_min": round(60 * len(blobs) * rounds / sum(runs[w]), 1),
             "time_vs_1_worker": round(sum(runs[w]) / base, 3),
             "peak_rss_mb_per_worker": max(peaks[w], default=None)} for w in (1, 2)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.ocr_speed", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--pages", type=int, default=6, help="how many scribe pages: PAGES first, then the rest (29 in all) (default %(default)s)")
    ap.add_argument("--settings", nargs="*", default=list(SETTINGS), choices=list(SETTINGS),
                    help="the first is the baseline of the ratios (default: all, 'default' first)")
    ap.add_argument("--repeat", type=int, default=2, help="reads of each page per setting, fastest kept (default %(default)s)")
    ap.add_argument("--threads", type=int, default=1,
                    help="ONNX Runtime intra-op threads of every setting; 0: RapidOCR's own (all cores) (default %(default)s)")
    ap.add_argument("--workers", action="store_true", help="also compare 1 worker x all threads with 2 x 1")
    ap.add_argument("--no-settings", action="store_true", help="only the workers comparison")
    ap.add_argument("--rounds", type=int, default=2, help="workers comparison rounds (default %(default)s)")
    args = ap.parse_args(argv)
    every = {p.name: p for p in scribe_pages(args.data)} if (args.data / "scribeocr-benchmark").is_dir() else {}
    pages = ([every[n] for n in PAGES if n in every] + [p for n, p in every.items() if n not in PAGES])[:args.pages]
    if not pages:
        print(json.dumps({"bench": "ocr_speed", "skipped": f"no scribe pages under {args.data}"}))
        return 0
    rows = [] if args.no_settings else compare_settings(pages, args.settings, args.repeat, args.threads)
    if args.workers or args.no_settings:
        rows += compare_workers(pages, args.rounds)
    for row in rows:
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
