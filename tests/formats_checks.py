"""Readers and checks for the archival outputs, shared by the format tests.

Each reader parses the real file the way a consumer would (ALTO and hOCR with an XML parser,
the PDF with poppler's ``pdftotext -bbox`` and ``pdftoppm``), so the tests check what a viewer
or repository would see, not our own data structures.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ALTO_NS = "{http://www.loc.gov/standards/alto/ns-v4#}"
XHTML_NS = "{http://www.w3.org/1999/xhtml}"
XLINK_NS = "http://www.w3.org/1999/xlink"

# ../shared beside the checkout (CI, /work/main) or beside the worktrees' folder (/work/wt/<name>)
_ROOT = Path(__file__).resolve().parents[1]
SCHEMA_DIRS = [_ROOT.parent / "shared" / "schemas", _ROOT.parent.parent / "shared" / "schemas"]

Box = tuple[float, float, float, float]


@functools.cache
def _schema(name: str):
    import xmlschema

    for d in SCHEMA_DIRS:
        if (d / name).is_file() and (d / "xlink.xsd").is_file():
            # ALTO and METS import XLink from a remote URL; map it to the local copy (offline).
            return xmlschema.XMLSchema(str(d / name), locations={XLINK_NS: str(d / "xlink.xsd")})
    return None


def _validate(path: Path, name: str) -> None:
    schema = _schema(name)
    if schema is None:
        pytest.skip(f"{name} not found in {', '.join(map(str, SCHEMA_DIRS))} (../shared/schemas)")
    schema.validate(str(path))


def validate_alto(path: Path) -> None:
    """Raise if ``path`` is not valid ALTO 4.4; skip (with the reason) when the XSD is absent."""
    _validate(path, "alto-4-4.xsd")


def validate_mets(path: Path) -> None:
    """Raise if ``path`` is not valid METS 1.12.1; skip (with the reason) when the XSD is absent."""
    _validate(path, "mets-1-12-1.xsd")


def validate_page(path: Path) -> None:
    """Raise if ``path`` is not valid PAGE 2019-07-15; skip (with the reason) when the XSD is absent."""
    _validate(path, "page-2019-07-15.xsd")


def _num(el: ET.Element, name: str) -> float:
    return float(el.get(name))


def alto_words(path: Path) -> list[tuple[int, str, Box, float | None]]:
    """(page number, CONTENT, box, WC) of every String."""
    root = ET.parse(path).getroot()
    out = []
    for page in root.iter(ALTO_NS + "Page"):
        n = int(page.get("PHYSICAL_IMG_NR"))
        for s in page.iter(ALTO_NS + "String"):
            if s.get("HPOS") is None:
                box = None
            else:
                x, y = _num(s, "HPOS"), _num(s, "VPOS")
                box = (x, y, x + _num(s, "WIDTH"), y + _num(s, "HEIGHT"))
            out.append((n, s.get("CONTENT"), box, float(s.get("WC")) if s.get("WC") else None))
    return out


def _title_props(title: str) -> dict[str, str]:
    props = {}
    for part in title.split(";"):
        part = part.strip()
        if part:
            key, _, value = part.partition(" ")
            props[key] = value.strip()
    return props


def hocr_words(path: Path) -> list[tuple[int, str, Box | None, float | None]]:
    """(page number, text, bbox, x_wconf/100) of every ocrx_word (parsed as XHTML)."""
    root = ET.parse(path).getroot()
    out = []
    for page in root.iter(XHTML_NS + "div"):
        if page.get("class") != "ocr_page":
            continue
        n = int(_title_props(page.get("title"))["ppageno"]) + 1
        for w in page.iter(XHTML_NS + "span"):
            if w.get("class") != "ocrx_word":
                continue
            props = _title_props(w.get("title") or "")
            box = tuple(float(v) for v in props["bbox"].split()) if "bbox" in props else None
            conf = float(props["x_wconf"]) / 100 if "x_wconf" in props else None
            out.append((n, w.text, box, conf))
    return out


def hocr_pages(path: Path) -> list[dict[str, str]]:
    root = ET.parse(path).getroot()
    return [_title_props(d.get("title")) for d in root.iter(XHTML_NS + "div") if d.get("class") == "ocr_page"]


def need_poppler() -> None:
    if not (shutil.which("pdftotext") and shutil.which("pdftoppm")):
        pytest.skip("poppler-utils (pdftotext, pdftoppm) not installed: apt-get install poppler-utils")


def pdf_words(path: Path, cropbox: bool = False) -> list[tuple[int, str, Box]]:
    """(page number, word, box in points, origin top-left) from ``pdftotext -bbox``; with
    ``cropbox`` in the page as a viewer shows it (CropBox, ``/Rotate`` applied)."""
    need_poppler()
    args = ["pdftotext", "-bbox", *(["-cropbox"] if cropbox else []), str(path), "-"]
    html = subprocess.run(args, check=True, capture_output=True).stdout
    root = ET.fromstring(re.sub(rb"<!DOCTYPE[^>]*>", b"", html))
    out = []
    for n, page in enumerate(root.iter(XHTML_NS + "page"), 1):
        for w in page.iter(XHTML_NS + "word"):
            out.append((n, w.text or "", (float(w.get("xMin")), float(w.get("yMin")),
                                          float(w.get("xMax")), float(w.get("yMax")))))
    return out


def pdf_text(path: Path) -> str:
    """The text ``pdftotext -raw`` extracts (content order, right-to-left runs put back in
    reading order), without the embedding marks poppler puts around right-to-left runs."""
    need_poppler()
    text = subprocess.run(["pdftotext", "-raw", "-enc", "UTF-8", str(path), "-"], check=True,
                          capture_output=True).stdout.decode("utf-8")
    return re.sub("[\u202a-\u202e]", "", text)


def pdf_page_sizes(path: Path) -> list[tuple[float, float]]:
    need_poppler()
    html = subprocess.run(["pdftotext", "-bbox", str(path), "-"], check=True, capture_output=True).stdout
    root = ET.fromstring(re.sub(rb"<!DOCTYPE[^>]*>", b"", html))
    return [(float(p.get("width")), float(p.get("height"))) for p in root.iter(XHTML_NS + "page")]


def render_pdf_pages(path: Path, out_dir: Path, dpi: int = 36) -> list[Path]:
    """Every page rendered by ``pdftoppm`` (fails the test if any page does not render)."""
    need_poppler()
    out_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["pdftoppm", "-r", str(dpi), "-png", str(path), str(out_dir / "p")], check=True,
                   capture_output=True)
    return sorted(out_dir.glob("p*.png"))


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def matched_fraction(truth: list[tuple[int, str, Box]], found: list[tuple], min_iou: float = 0.5,
                     scale: float = 1.0) -> float:
    """Share of ground-truth words with a found word of the same text whose box (times
    ``scale``, e.g. points -> pixels) overlaps the true box with IoU >= ``min_iou``."""
    hits = 0
    for page, text, box in truth:
        for f in found:
            if f[0] == page and f[1] == text and f[2] is not None:
                fb = tuple(v * scale for v in f[2])
                if iou(fb, box) >= min_iou:
                    hits += 1
                    break
    return hits / len(truth) if truth else 0.0
