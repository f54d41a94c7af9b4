"""Benchmark: PDF pages rendered and prepared per second, and peak RSS against the page count.

Why: archives hold books of hundreds of pages. ``PdfSource`` renders one page at a time
(pypdfium2) and prepares it like a TIFF frame, so the peak memory must not grow with the page
count. Each size runs in a fresh child process (``--child N PATH``) that walks every page the
way the pipeline does and reports its own ``ru_maxrss``; the figures are side by side on one
machine: pages/s at each size, and peak RSS of the largest file divided by the smallest's
(target <= 1.10).

Pages are US Letter at ``--dpi`` (default 300): forty lines of vector text over a shared
grayscale scan, sent to OCR (``text_layer: ocr``) so every page is rendered. The PDFs are
cached in ``.bench/``.

    python -m bench.pdf_render [--pages 10,50,200] [--dpi 300]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".bench"


def make_pdf(path: Path, pages: int) -> None:
    from fpdf import FPDF
    from PIL import Image, ImageDraw

    scan = Image.new("L", (1700, 600), 235)
    draw = ImageDraw.Draw(scan)
    for y in range(20, 580, 28):
        draw.text((40, y), "Scanned letterhead and a stamp, line %d" % y, fill=30)
    pdf = FPDF(unit="pt", format="letter")
    pdf.set_auto_page_break(False)
    pdf.set_font("helvetica", size=11)
    for n in range(pages):
        pdf.add_page()
        pdf.image(scan, x=36, y=36, w=540)
        for line in range(40):
            pdf.text(54, 250 + 13 * line, f"Page {n + 1}, line {line + 1}: minutes of the meeting of the board.")
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))


def child(pages: int, path: Path, dpi: int) -> None:
    from pipeline.config import PdfConfig
    from pipeline.inputs.pdf import PdfSource
    from pipeline.inputs.prepare import PrecheckLimits

    started = time.perf_counter()
    upload_bytes = 0
    with PdfSource(path, PrecheckLimits(), PdfConfig(dpi=dpi, text_layer="ocr", max_pages=100_000)) as src:
        assert src.page_count == pages
        for i in range(src.page_count):
            upload_bytes += len(src.page(i).data)
    seconds = time.perf_counter() - started
    print(json.dumps({"pages": pages, "seconds": round(seconds, 2), "pages_per_s": round(pages / seconds, 2),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                      "mean_upload_kb": round(upload_bytes / pages / 1024, 1)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", default="10,50,200")
    ap.add_argument("--dpi", type=int, default=300)
    ap.add_argument("--child", nargs=2, metavar=("N", "PATH"))
    args = ap.parse_args()
    if args.child:
        child(int(args.child[0]), Path(args.child[1]), args.dpi)
        return
    sizes = sorted(int(n) for n in args.pages.split(","))
    runs = []
    for n in sizes:
        path = CACHE / f"pdf_render_{n}.pdf"
        if not path.exists():
            make_pdf(path, n)
        proc = subprocess.run([sys.executable, "-m", "bench.pdf_render", "--dpi", str(args.dpi),
                               "--child", str(n), str(path)], cwd=ROOT, text=True, capture_output=True, check=True)
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(f"{'pages':>6} {'seconds':>8} {'pages/s':>8} {'peak RSS MB':>12} {'upload KB':>10}")
    for r in runs:
        print(f"{r['pages']:>6} {r['seconds']:>8} {r['pages_per_s']:>8} {r['peak_rss_mb']:>12} {r['mean_upload_kb']:>10}")
    ratio = round(runs[-1]["peak_rss_mb"] / runs[0]["peak_rss_mb"], 3)
    print(json.dumps({"bench": "pdf_render", "dpi": args.dpi, "runs": runs,
                      "pages_per_s": runs[-1]["pages_per_s"], "rss_ratio": ratio,
                      "smallest": sizes[0], "largest": sizes[-1]}))


if __name__ == "__main__":
    main()
