"""Benchmark: what the archival outputs and word boxes cost, as ratios measured side by side.

Three figures:

* **Rendering**: writing ``txt + json`` only, against ``txt + json + alto + hocr + pdf``, for the
  same result documents (a real Tesseract result of a page with 60 words), alternating the two
  variants run by run so machine load hits both alike. The ratio says how much longer a file's
  write step takes with every archival output on (OCR itself, seconds per page, is not in it).
* **PDF inputs**: the same for a scanned PDF (every output, the searchable PDF grafted onto the
  original pages), per file and per page, and the searchable PDF's size against the original's.
* **PDF/A**: the searchable PDF alone written plain (``pdf.pdfa: off``) against PDF/A-2b (the
  default: pikepdf.pdfa prepares, writes and re-validates it), alternating; and what PAGE-XML
  and METS add to the write step.
* **Word boxes**: RapidOCR with ``return_word_box`` (plus tightening to the ink) against
  without, on the same page, alternating; the ratio is the OCR time it adds.

    python -m bench.output_formats [--files 20] [--repeat 3]

Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
WORDS = "archive record letter parish harbour winter garden market bridge castle river morning".split()


def make_page(path: Path) -> None:
    img = Image.new("L", (1240, 900), 255)
    draw = ImageDraw.Draw(img)
    try:
        font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 34)
    except OSError:
        font = ImageFont.load_default(size=34)
    for row in range(10):
        draw.text((60, 60 + row * 80), " ".join(WORDS[(row + k) % len(WORDS)] for k in range(6)), font=font, fill=0)
    img.save(path, dpi=(300, 300))


def document_for(path: Path, engine) -> dict:
    """A result document shaped exactly as ``process`` writes it, from a real engine result."""
    from pipeline.inputs.prepare import prepare_file

    prepared = prepare_file(path)
    page = engine.recognize(Image.open(path))
    return {"source": {"path": path.name}, "image": prepared.to_json(),
            "settings": {"model": "m", "language": "en", "format": "json"},
            "pages": [{"index": 0, "text": page.text, "result": page.to_json()}], "text": page.text,
            "tool": {"name": "pipeline", "version": "bench"}, "written_at": "2026-01-01T00:00:00Z"}


def time_writes(out: Path, src: Path, doc: dict, names: list[str], files: int, pdfa: str = "2b") -> float:
    from pipeline.formats.writer import OutputOptions, write_outputs_sync

    t0 = time.perf_counter()
    for i in range(files):
        write_outputs_sync(out, f"f{i}.png", names, doc, src, OutputOptions(pdfa=pdfa))
    return time.perf_counter() - t0


def pdfa_row(tmp: Path, src: Path, doc: dict, files: int, repeat: int) -> dict:
    """The searchable PDF plain against PDF/A-2b, and txt+json against txt+json+page+mets,
    each pair alternating run by run."""
    plain, pdfa, base, archive = [], [], [], []
    for _ in range(repeat):
        plain.append(time_writes(tmp / "pp", src, doc, ["pdf"], files, pdfa="off"))
        pdfa.append(time_writes(tmp / "pa2", src, doc, ["pdf"], files))
        base.append(time_writes(tmp / "pm0", src, doc, ["txt", "json"], files))
        archive.append(time_writes(tmp / "pm1", src, doc, ["txt", "json", "page", "mets"], files))
    med = {k: statistics.median(v) / files * 1000 for k, v in
           (("plain", plain), ("pdfa", pdfa), ("base", base), ("archive", archive))}
    return {"pdf_plain_ms_per_file": round(med["plain"], 2), "pdf_pdfa_ms_per_file": round(med["pdfa"], 2),
            "pdfa_ratio": round(med["pdfa"] / med["plain"], 2),
            "page_mets_added_ms_per_file": round(med["archive"] - med["base"], 2),
            "pdf_plain_bytes": (tmp / "pp" / "f0.png.pdf").stat().st_size,
            "pdf_pdfa_bytes": (tmp / "pa2" / "f0.png.pdf").stat().st_size}


def pdf_input_row(tmp: Path, png: Path, engine, pages: int, repeat: int) -> dict:
    """A scanned PDF of ``pages`` copies of the page (fpdf2, the PNG embedded as is), its pages
    rendered by ``PdfSource`` as a run would, page 1 OCRed once and its result used for every
    page; then the write step with and without alto+hocr+pdf (the PDF grafted onto the original
    pages), and the searchable PDF's size against the original's."""
    from fpdf import FPDF

    from pipeline.config import PdfConfig
    from pipeline.inputs.pdf import PdfSource
    from pipeline.inputs.prepare import PrecheckLimits

    pdf = FPDF(unit="pt", format=(297.6, 216))     # 1240x900 px at 300 dpi
    for _ in range(pages):
        pdf.add_page()
        pdf.image(str(png), x=0, y=0, w=297.6, h=216)
    src = tmp / "scan.pdf"
    src.write_bytes(bytes(pdf.output()))
    with PdfSource(src, PrecheckLimits(), PdfConfig(text_layer="ocr")) as source:
        prepared = [source.page(i) for i in range(pages)]
        info = source.info()
    result = engine.recognize(Image.open(io.BytesIO(prepared[0].data))).to_json()
    info["pages"] = [p.to_json() for p in prepared]
    doc = {"source": {"path": src.name}, "image": info, "settings": {"model": "m", "language": "en", "format": "json"},
           "pages": [{"index": i, "text_source": "ocr", "text": "", "source": p.source, "result": result}
                     for i, p in enumerate(prepared)],
           "text": "", "tool": {"name": "pipeline", "version": "bench"}, "written_at": "2026-01-01T00:00:00Z"}
    base, full, plain = [], [], []
    for _ in range(repeat):
        base.append(time_writes(tmp / "pa", src, doc, ["txt", "json"], 3))
        full.append(time_writes(tmp / "pb", src, doc, ["txt", "json", "alto", "hocr", "pdf"], 3))
        plain.append(time_writes(tmp / "pc", src, doc, ["txt", "json", "alto", "hocr", "pdf"], 3, pdfa="off"))
    per_base, per_full = statistics.median(base) / 3, statistics.median(full) / 3
    return {"pdf_pages": pages, "pdf_txt_json_ms_per_file": round(per_base * 1000, 2),
            "pdf_all_outputs_ms_per_file": round(per_full * 1000, 2),
            "pdf_all_outputs_ms_per_page": round(per_full * 1000 / pages, 2),
            "pdf_all_outputs_plain_pdf_ms_per_file": round(statistics.median(plain) / 3 * 1000, 2),
            "pdf_source_bytes": src.stat().st_size, "pdf_searchable_bytes": (tmp / "pb" / "f0.png.pdf").stat().st_size}


def word_box_ratio(src: Path, repeat: int) -> dict:
    import numpy as np
    from rapidocr import RapidOCR

    from pipeline.ocr.rapid import line_words

    ocr = RapidOCR(params={"Global.log_level": "warning"})
    rgb = Image.open(src).convert("RGB")
    bgr = np.ascontiguousarray(np.asarray(rgb)[:, :, ::-1])
    ocr(bgr)  # warm-up
    plain, words = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        ocr(bgr)
        plain.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        r = ocr(bgr, return_word_box=True)
        gray = np.asarray(rgb.convert("L"))
        for entries in r.word_results or ():
            line_words(entries, gray)
        words.append(time.perf_counter() - t0)
    return {"rapidocr_s": round(statistics.median(plain), 3), "rapidocr_words_s": round(statistics.median(words), 3),
            "word_box_ratio": round(statistics.median(words) / statistics.median(plain), 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-rapidocr", action="store_true")
    ap.add_argument("--pdf-pages", type=int, default=10)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from pipeline.ocr.tesseract import TesseractEngine

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = tmp / "page.png"
        make_page(src)
        doc = document_for(src, TesseractEngine())
        words = sum(len(ln.get("words", [])) for b in doc["pages"][0]["result"]["blocks"] for ln in b["lines"])
        base, full = [], []
        for _ in range(args.repeat):
            base.append(time_writes(tmp / "a", src, doc, ["txt", "json"], args.files))
            full.append(time_writes(tmp / "b", src, doc, ["txt", "json", "alto", "hocr", "pdf"], args.files))
        per_base = statistics.median(base) / args.files
        per_full = statistics.median(full) / args.files
        sizes = {s: (tmp / "b" / f"f0.png{s}").stat().st_size for s in (".json", ".alto.xml", ".hocr", ".pdf")}
        row = {"bench": "output_formats", "files": args.files, "words_per_page": words,
               "txt_json_ms_per_file": round(per_base * 1000, 2), "all_outputs_ms_per_file": round(per_full * 1000, 2),
               "render_ratio": round(per_full / per_base, 2), "bytes": sizes,
               "source_png_bytes": src.stat().st_size}
        row.update(pdfa_row(tmp, src, doc, args.files, args.repeat))
        row.update(pdf_input_row(tmp, src, TesseractEngine(), args.pdf_pages, args.repeat))
        if not args.skip_rapidocr:
            row.update(word_box_ratio(src, args.repeat))
    print(f"{'variant':<32}{'ms per file':>12}")
    print(f"{'txt + json':<32}{row['txt_json_ms_per_file']:>12}")
    print(f"{'txt + json + alto + hocr + pdf':<32}{row['all_outputs_ms_per_file']:>12}   ratio {row['render_ratio']}")
    print(f"PDF input, {row['pdf_pages']} pages: txt + json {row['pdf_txt_json_ms_per_file']} ms, all outputs "
          f"{row['pdf_all_outputs_ms_per_file']} ms a file (with a plain PDF "
          f"{row['pdf_all_outputs_plain_pdf_ms_per_file']} ms); searchable PDF {row['pdf_searchable_bytes']} bytes "
          f"over the original's {row['pdf_source_bytes']}")
    print(f"searchable PDF alone: plain {row['pdf_plain_ms_per_file']} ms, PDF/A-2b {row['pdf_pdfa_ms_per_file']} ms "
          f"a file = {row['pdfa_ratio']}x ({row['pdf_plain_bytes']} vs {row['pdf_pdfa_bytes']} bytes); "
          f"page + mets add {row['page_mets_added_ms_per_file']} ms a file")
    if "word_box_ratio" in row:
        print(f"RapidOCR with word boxes vs without: {row['rapidocr_words_s']} s vs {row['rapidocr_s']} s "
              f"= {row['word_box_ratio']}x")
    print(json.dumps(row))


if __name__ == "__main__":
    main()
