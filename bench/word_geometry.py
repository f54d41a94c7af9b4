"""Word positions for text-only answers: each geometry method's CPU time and placement, side by side.

Why: a text-only answer (the hosted model) gets its word boxes from the page's own geometry
(``pipeline/ocr/inkgeom.py``) and the width alignment (``pipeline/ocr/align.py``). This
measures, in one run, for each method tried (``read``, the default: a cheap Tesseract reading
and the answer's words matched to it by text, ``ocr/readwords.py`` and ``ocr/textmatch.py``;
by widths alone on the page's geometry: ``ink``, OpenCV ink analysis; ``tesseract``,
Tesseract's layout analysis without recognition; ``mix``, both):

* **CPU-seconds per A4 page at 300 dpi** (geometry + alignment, ``time.process_time``), on
  devset pages (``bench/devset.py``, drawn at 150 dpi, scaled x2 to 2480 x 3508): target <= 0.5;
* **lines placed** on those devset pages: the union of an answer line's placed words against
  the drawn line's box, IoU >= 0.5 (devset knows line boxes, not word boxes);
* **words placed** on the scribe scans (``../shared/data/scribeocr-benchmark``, answer = the
  truth text, truth word boxes): share placed at IoU >= 0.5 ("right"), share placed elsewhere
  ("wrong", IoU < 0.5 with its own box) and, of those, on another word's box ("other", IoU >=
  0.5 with another truth word's box; the issue's "no word on another word's box"), overall
  and per class of page (the name before ``_``: table, form, chart, multicol, ...);
* **pages a second of a whole run**: ``pipeline run`` against the ``truth`` engine (text only,
  so every page is placed) with ``alto, hocr`` (and then ``pdf`` too: its writer embeds the
  page image, a cost of its own) against ``txt, json`` only, same pages.

``--quick`` runs 3 scribe pages, one devset page per class and a 6-page run.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIBE = ROOT.parent / "shared" / "data" / "scribeocr-benchmark"


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def place(image, text: str, method: str):
    from pipeline.ocr.placement import place as place_by

    t0 = time.process_time()
    placement, _ = place_by(image, text, method)
    return placement, time.process_time() - t0


def devset_pages(per_class: int):
    from bench import devset

    out = []
    for p in devset.pages(per_class):
        big = p.image.resize((p.image.width * 2, p.image.height * 2))
        lines = [(ln.text, tuple(v * 2 for v in ln.box)) for ln in p.lines if ln.text.split()]
        out.append((p.name, big, lines))
    return out


def devset_row(method: str, pages) -> dict:
    cpu, right, total = [], 0, 0
    for name, image, lines in pages:
        text = "\n".join(t for t, _ in lines)
        placement, secs = place(image, text, method)
        cpu.append(secs)
        for (_, box), words in zip(lines, placement.lines):
            boxes = [w.box for w in words if w.box is not None]
            total += 1
            if boxes:
                u = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
                right += iou(u, box) >= 0.5
    return {"a4_pages": len(pages), "cpu_s_per_a4_page": round(sum(cpu) / len(cpu), 3),
            "cpu_s_max": round(max(cpu), 3), "devset_lines_placed": round(right / max(1, total), 3)}


def scribe_row(method: str, limit: int | None) -> dict:
    from PIL import Image

    if not SCRIBE.is_dir():
        return {"scribe": f"skipped: {SCRIBE} not present"}
    right = wrong = other = total = 0
    cpu = []
    per_page = {}
    classes: dict[str, list[int]] = {}
    names = sorted(p.stem for p in (SCRIBE / "gt_txt").glob("*.txt"))[:limit]
    for name in names:
        image = Image.open(next((SCRIBE / "img").glob(name + ".*")))
        image.load()
        truth = json.loads((SCRIBE / "gt_txt" / f"{name}.boxes.json").read_text())
        placement, secs = place(image, (SCRIBE / "gt_txt" / f"{name}.txt").read_text(), method)
        cpu.append(secs)
        words = [w for ln in placement.lines for w in ln]
        r = sum(1 for w, t in zip(words, truth) if w.box is not None and iou(w.box, t[:4]) >= 0.5)
        wr = sum(1 for w, t in zip(words, truth) if w.box is not None and iou(w.box, t[:4]) < 0.5)
        ot = sum(1 for k, (w, t) in enumerate(zip(words, truth)) if w.box is not None and iou(w.box, t[:4]) < 0.5
                 and any(iou(w.box, u[:4]) >= 0.5 for j, u in enumerate(truth) if j != k))
        right, wrong, other, total = right + r, wrong + wr, other + ot, total + len(truth)
        per_page[name] = round(r / max(1, len(truth)), 2)
        c = classes.setdefault(name.split("_")[0], [0, 0, 0, 0])
        c[0], c[1], c[2], c[3] = c[0] + r, c[1] + wr, c[2] + ot, c[3] + len(truth)
    return {"scribe_pages": len(names), "scribe_words": total, "scribe_right": round(right / max(1, total), 3),
            "scribe_wrong": round(wrong / max(1, total), 3), "scribe_other": round(other / max(1, total), 4),
            "scribe_cpu_s_per_page": round(sum(cpu) / len(cpu), 3), "scribe_cpu_s_max": round(max(cpu), 3),
            "scribe_per_class": {k: {"right": round(v[0] / v[3], 3), "wrong": round(v[1] / v[3], 3),
                                     "other": round(v[2] / v[3], 4), "words": v[3]} for k, v in sorted(classes.items())},
            "scribe_per_page": per_page}


async def whole_run(pages, outputs: list[str], tmp: Path) -> float:
    """Pages a second of ``pipeline run`` on ``pages`` against the truth engine (text only)."""
    import yaml

    from pipeline.config import load_config
    from pipeline.ocr.pool import decode_image
    from pipeline.ocr.truth import register
    from pipeline.run.runner import Runner
    from pipeline.server import EmbeddedServer, ServerConfig

    inp, truth = tmp / "in", tmp / "truth"
    inp.mkdir(parents=True, exist_ok=True)
    for name, image, lines in pages:
        buf = io.BytesIO()
        image.convert("L").save(buf, "PNG")
        (inp / f"{name}.png").write_bytes(buf.getvalue())
        register(truth, decode_image(buf.getvalue()), "\n".join(t for t, _ in lines))
    async with EmbeddedServer(ServerConfig(engine="truth", tokens=("bench",), truth_dir=str(truth))) as srv:
        cfg = {"input": str(inp), "output": str(tmp / "out"), "progress": "off", "outputs": outputs,
               "api": {"base_url": srv.base_url, "token_env": "BENCH_TOKEN", "format": "text"},
               "geometry": {"workers": 2}, "concurrency": {"jobs_in_flight": 8}}
        (tmp / "config.yaml").write_text(yaml.safe_dump(cfg))
        os.environ["BENCH_TOKEN"] = "bench"
        runner = Runner(load_config(tmp / "config.yaml"), stream=io.StringIO())
        t0 = time.perf_counter()
        code = await runner.run()
        seconds = time.perf_counter() - t0
    if code != 0:
        raise RuntimeError(f"run exited {code}: {runner.stream.getvalue()[-500:]}")
    return len(pages) / seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--methods", nargs="*", default=["read", "mix", "ink", "tesseract"])
    ap.add_argument("--no-run", action="store_true", help="skip the whole-run pages a second")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    pages = devset_pages(1 if args.quick else 3)
    limit = 3 if args.quick else None
    for method in args.methods:
        row = {"bench": "word_geometry", "method": method, **devset_row(method, pages), **scribe_row(method, limit)}
        print(f"{method}: {row['cpu_s_per_a4_page']} CPU-s per A4 page (max {row['cpu_s_max']}), devset lines "
              f"{row['devset_lines_placed']:.1%}; scribe words right {row.get('scribe_right')} wrong "
              f"{row.get('scribe_wrong')} on another word's box {row.get('scribe_other')}", file=sys.stderr)
        print(json.dumps(row), flush=True)
    if args.no_run:
        return
    run_pages = pages[:6] if args.quick else pages
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b, tempfile.TemporaryDirectory() as c:
        plain = asyncio.run(whole_run(run_pages, ["txt", "json"], Path(a)))
        placed = asyncio.run(whole_run(run_pages, ["txt", "json", "alto", "hocr"], Path(b)))
        with_pdf = asyncio.run(whole_run(run_pages, ["txt", "json", "alto", "hocr", "pdf"], Path(c)))
    print(json.dumps({"bench": "word_geometry_run", "pages": len(run_pages), "txt_json_pages_per_s": round(plain, 2),
                      "placed_pages_per_s": round(placed, 2), "ratio": round(placed / plain, 3),
                      "with_pdf_pages_per_s": round(with_pdf, 2)}), flush=True)


if __name__ == "__main__":
    main()
