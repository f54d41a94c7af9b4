"""ALTO, hOCR and the searchable PDF for PDF inputs, through the real runner and server.

The frame every box of a PDF input is in: the page as a viewer shows it (CropBox, turned by
``/Rotate``), in points, origin top-left; poppler's ``pdftotext -cropbox -bbox`` reads the same
frame, so it is the independent judge here. The fast engine's two lines cover the top and
bottom half of the *rendered* page, so their boxes must cover the top and bottom half of the
displayed page whatever the render dpi, rotation or CropBox offset; text-layer pages get their
words from the PDF itself; the searchable PDF keeps the original pages (their image streams
byte for byte) and adds exactly one text layer where there was none.
"""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET

import pikepdf
import pytest

import pdfs
from conftest import TOKEN
from formats_checks import (ALTO_NS, alto_words, hocr_pages, hocr_words, iou, matched_fraction, pdf_words,
                            render_pdf_pages, validate_alto)
from helpers import run_pipeline, write_config
from pipeline.exitcodes import ExitCode
from pipeline.server import EmbeddedServer, ServerConfig

ALL = ["txt", "json", "alto", "hocr", "pdf"]
SENTENCE = "Parish records of the harbour town"
PT = 1200 / 72  # ALTO inch1200 units per point


def mixed_pdf() -> bytes:
    """Page 1 real text; 2 a scan; 3 a scan turned by /Rotate 90 with a CropBox off 0,0;
    4 a scan under an untrusted (invisible) OCR layer."""
    data = pdfs.build([("text", SENTENCE), ("scan", "scanned"), ("scan", "turned"), ("ocrlayer", SENTENCE)],
                      size=(400, 300))

    def shape(pdf):
        pdf.pages[2].obj.Rotate = 90
        pdf.pages[2].obj.CropBox = [20, 10, 380, 290]
    return pdfs.edit(data, shape)


def alto_tree(path):
    root = ET.parse(path).getroot()
    unit = root.find(f"{ALTO_NS}Description/{ALTO_NS}MeasurementUnit").text
    pages = [(float(p.get("WIDTH")), float(p.get("HEIGHT"))) for p in root.iter(ALTO_NS + "Page")]
    lines = []
    for page in root.iter(ALTO_NS + "Page"):
        for ln in page.iter(ALTO_NS + "TextLine"):
            x, y = float(ln.get("HPOS")), float(ln.get("VPOS"))
            lines.append((int(page.get("PHYSICAL_IMG_NR")),
                          (x / PT, y / PT, (x + float(ln.get("WIDTH"))) / PT, (y + float(ln.get("HEIGHT"))) / PT)))
    return unit, pages, lines


def image_streams(data: bytes) -> list[bytes]:
    with pikepdf.open(io.BytesIO(data)) as pdf:
        return sorted(obj.read_raw_bytes() for obj in pdf.objects
                      if isinstance(obj, pikepdf.Stream) and obj.get("/Subtype") == pikepdf.Name.Image)


async def test_pdf_input_boxes_in_the_displayed_page_frame(tmp_path, server):
    src = pdfs.write(tmp_path / "in" / "book.pdf", mixed_pdf())
    cfg = write_config(tmp_path, server.base_url, api__format="json", outputs=ALL, pdf__dpi=100)
    code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK, report
    assert server.counters.jobs_created == 3                     # the text page cost nothing
    out = tmp_path / "out"
    doc = json.loads((out / "book.pdf.json").read_text())
    assert "positions" not in doc["pages"][0]                    # placed from the PDF's own layer

    alto = out / "book.pdf.alto.xml"
    validate_alto(alto)
    unit, sizes, lines = alto_tree(alto)
    assert unit == "inch1200"
    displayed = {1: (400, 300), 2: (400, 300), 3: (280, 360), 4: (400, 300)}
    assert sizes == [(round(w * PT, 2), round(h * PT, 2)) for w, h in displayed.values()]
    for page in (2, 3, 4):                                       # the fast engine's halves, in points
        w, h = displayed[page]
        got = [b for p, b in lines if p == page]
        assert len(got) == 2
        assert iou(got[0], (0, 0, w, h / 2)) > 0.97 and iou(got[1], (0, h / 2, w, h)) > 0.97, (page, got)

    # page 1: every word of the text layer, at the box poppler sees in the original
    truth = [(1, t, b) for p, t, b in pdf_words(src, cropbox=True) if p == 1]
    assert [t for _, t, _ in truth] == SENTENCE.split()
    found = alto_words(alto)
    assert matched_fraction(truth, [(p, t, tuple(v / PT for v in b) if b else None, c) for p, t, b, c in found]) == 1.0
    assert all(c is None for p, _, _, c in found if p == 1)      # no invented confidence
    hocr = out / "book.pdf.hocr"
    assert matched_fraction(truth, hocr_words(hocr)) == 1.0
    assert [pg["bbox"] for pg in hocr_pages(hocr)] == ["0 0 400 300", "0 0 400 300", "0 0 280 360", "0 0 400 300"]

    # the searchable PDF: the original pages, their images untouched, one layer each
    pdf = out / "book.pdf.pdf"
    assert image_streams(pdf.read_bytes()) == image_streams(src.read_bytes())
    assert len(render_pdf_pages(pdf, tmp_path / "png")) == 4
    words = pdf_words(pdf, cropbox=True)
    assert [t for p, t, _ in words if p == 1] == SENTENCE.split()   # no second layer on the text page
    for page in (2, 3, 4):
        w, h = displayed[page]
        fast = [b for p, t, b in words if p == page and t == "FAST-OCR"]
        assert len(fast) == 1, (page, words)
        assert fast[0][1] < h * 0.1 and fast[0][3] < h / 2 + 1 and fast[0][0] < w * 0.1, (page, fast)
    assert [t for p, t, _ in words if p == 4].count("Parish") == 1  # its own layer, kept, plus ours


async def test_pdf_page_over_the_pixel_limit_maps_back_through_the_lowered_dpi(tmp_path, server):
    # 3000 pt wide at 200 dpi would be 8333 px: pdf.py renders it at 4096 px instead
    pdfs.write(tmp_path / "in" / "wide.pdf", pdfs.build([("scan", "wide")], size=(3000, 200)))
    cfg = write_config(tmp_path, server.base_url, api__format="json", outputs=ALL, pdf__dpi=200)
    assert (await run_pipeline(cfg, TOKEN))[0] == ExitCode.OK
    out = tmp_path / "out"
    src = json.loads((out / "wide.pdf.json").read_text())["pages"][0]["source"]
    assert src["render_dpi"] < 100 and src["rendered_size"][0] == 4096
    unit, sizes, lines = alto_tree(out / "wide.pdf.alto.xml")
    assert sizes == [(round(3000 * PT, 2), round(200 * PT, 2))]
    assert iou(lines[0][1], (0, 0, 3000, 100)) > 0.99 and iou(lines[1][1], (0, 100, 3000, 200)) > 0.99, lines


async def test_a_page_size_inherited_from_the_page_tree_frames_the_words(tmp_path, server):
    """fpdf2 (and older scanners' software) put a one-size document's MediaBox on the page
    tree's root, which the pages inherit; pdfium's own box getters do not look there and
    pypdfium2 then answers US Letter (612 x 792). The frame must be the page's real one: the
    text-layer page's words at the boxes poppler reads, the scanned page's layer on the page
    (drawn for a 792 pt page, it lay 492 pt above a 300 pt one, where poppler found none)."""
    data = pdfs.build([("text", SENTENCE), ("scan", "scanned")], size=(400, 300))
    assert data.count(b"/MediaBox") == 1                          # on /Pages only, as fpdf2 writes it
    src = pdfs.write(tmp_path / "in" / "tree.pdf", data)
    cfg = write_config(tmp_path, server.base_url, api__format="json", outputs=ALL, pdf__dpi=100)
    code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK, report
    out = tmp_path / "out"
    doc = json.loads((out / "tree.pdf.json").read_text())
    assert [p["source"]["mediabox_pt"] for p in doc["pages"]] == [[0, 0, 400, 300]] * 2
    truth = [(1, t, b) for p, t, b in pdf_words(src, cropbox=True) if p == 1]
    assert [t for _, t, _ in truth] == SENTENCE.split()
    found = [(p, t, tuple(v / PT for v in b) if b else None, c) for p, t, b, c in alto_words(out / "tree.pdf.alto.xml")]
    assert matched_fraction(truth, found) == 1.0, found
    fast = [b for p, t, b in pdf_words(out / "tree.pdf.pdf", cropbox=True) if p == 2 and t == "FAST-OCR"]
    assert len(fast) == 1 and fast[0][1] < 30 and fast[0][3] < 151, fast   # the page's upper half


async def test_a_text_layer_line_ending_in_a_hyphen_keeps_the_hyphen_and_the_line(tmp_path, server):
    """pdfium joins a line ending in a hyphen to the next: its text has one U+FFFE (a Unicode
    noncharacter) for the hyphen and the line break, per character the hyphen is U+0002. The
    .txt of a born-digital page had "con\\ufffesider" and ALTO one word "consider" with a box
    over both lines (and verify reported it lost); both keep the page as printed now."""
    from helpers import FONT

    text = ("The harbour board met on Tuesday to con-\nsider the survey of the quay wall and\n"
            "its repair before the winter storms.")
    src = pdfs.write(tmp_path / "in" / "born.pdf", pdfs.build([("text", text)], font=FONT))
    cfg = write_config(tmp_path, server.base_url, outputs=ALL)
    code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK, report
    assert server.counters.jobs_created == 0                     # the page's own text
    out = tmp_path / "out"
    assert (out / "born.pdf.txt").read_text().splitlines() == text.splitlines()
    validate_alto(out / "born.pdf.alto.xml")
    truth = [(p, t, b) for p, t, b in pdf_words(src, cropbox=True)]
    assert [t for _, t, _ in truth] == text.split()              # poppler: "con-", then "sider"
    found = [(p, t, tuple(v / PT for v in b) if b else None, c) for p, t, b, c in alto_words(out / "born.pdf.alto.xml")]
    # pdfium's boxes are the ink, poppler's the font's height: "on" and "con-" overlap by 0.44
    assert matched_fraction(truth, found, min_iou=0.4) == 1.0, found
    assert matched_fraction(truth, hocr_words(out / "born.pdf.hocr"), min_iou=0.4) == 1.0
    from test_crash_safety import run_cli
    code, said = await run_cli("verify", str(cfg))
    assert code == ExitCode.OK, said


def test_pdf_record_geometry_undoes_render_scale_and_padding():
    from pipeline.inputs.geometry import PageGeometry

    # 612x792 pt rendered at 150 dpi (1275x1650), uploaded at half size (638x825) and padded
    # to 700 wide: a box on the upload maps into points; the padding is clipped away.
    record = {"page_index": 0, "width": 700, "height": 825, "scale": 0.5,
              "source": {"kind": "pdf_page", "page_size_pt": [612, 792], "rendered_size": [1275, 1650],
                         "upload_scale": 0.5}}
    g = PageGeometry.from_prepared({"pages": [record]}, 0)
    assert g.unit == "pt" and (g.source_width, g.source_height) == (612, 792)
    x0, y0, x1, y1 = g.to_source((0, 412.5, 700, 825))
    assert (x0, y1) == (0, 792) and abs(y0 - 396) < 0.01 and x1 == 612
    text_page = {"page_index": 1, "source": {"kind": "pdf_page", "page_size_pt": [300, 400], "text_source": "text_layer"}}
    g = PageGeometry.from_prepared({"pages": [record, text_page]}, 1)
    assert (g.source_width, g.source_height, g.unit) == (300, 400, "pt")


async def test_owner_password_pdf_keeps_its_encryption_in_the_searchable_pdf(tmp_path, server):
    data = pdfs.encrypted(pdfs.build([("scan", "locked")], size=(300, 200)), user="")
    pdfs.write(tmp_path / "in" / "locked.pdf", data)
    cfg = write_config(tmp_path, server.base_url, api__format="json", outputs=ALL, pdf__dpi=100)
    assert (await run_pipeline(cfg, TOKEN))[0] == ExitCode.OK
    pdf = tmp_path / "out" / "locked.pdf.pdf"
    with pikepdf.open(pdf) as doc:
        assert doc.is_encrypted
    assert "FAST-OCR" in [t for _, t, _ in pdf_words(pdf)]


async def test_adding_outputs_to_a_done_pdf_tree_costs_no_api_call(tmp_path, server):
    pdfs.write(tmp_path / "in" / "book.pdf", mixed_pdf())
    cfg = write_config(tmp_path, server.base_url, api__format="json", pdf__dpi=100)
    assert (await run_pipeline(cfg, TOKEN))[0] == ExitCode.OK
    before = server.counters.snapshot()
    cfg = write_config(tmp_path, server.base_url, api__format="json", outputs=ALL, pdf__dpi=100)
    code, report, stream = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK, report
    assert server.counters.snapshot() == before
    out = tmp_path / "out"
    validate_alto(out / "book.pdf.alto.xml")
    assert len(render_pdf_pages(out / "book.pdf.pdf", tmp_path / "png")) == 4
    assert "FAST-OCR" in [t for _, t, _ in pdf_words(out / "book.pdf.pdf")]
    assert report["outputs_regenerated"] == 1
    assert report["this_run"] == {"done": 1}
    assert "1 done (1 of them only given new outputs, no API call)" in stream


def known_words_pdf() -> tuple[bytes, list[tuple[int, str, tuple[float, float, float, float]]]]:
    """Two image-only PDF pages with known words at known positions, and the true boxes in the
    displayed frame (points, top-left). Page 1: a CropBox off 0,0 (shows the MediaBox shifted by
    (-20, -10)). Page 2: /Rotate 90, the image stored sideways so the page shows it upright."""
    from fpdf import FPDF
    from PIL import Image
    from test_formats_real_ocr import draw_words

    s = 0.4                                              # points per image pixel (180 dpi)
    a, ta = draw_words((900, 380), 36, 0)
    b, tb = draw_words((900, 380), 36, 5)
    pdf = FPDF(unit="pt")
    pdf.set_auto_page_break(False)
    pdf.add_page(format=(460, 340))
    pdf.image(a, x=50, y=60, w=900 * s, h=380 * s)
    pdf.add_page(format=(300, 460))
    pdf.image(b.transpose(Image.Transpose.ROTATE_90), x=60, y=50, w=380 * s, h=900 * s)

    def shape(doc):
        doc.pages[0].obj.CropBox = [20, 10, 440, 330]
        doc.pages[1].obj.Rotate = 90
    data = pdfs.edit(bytes(pdf.output()), shape)
    truth = [(1, w, (50 + x0 * s - 20, 60 + y0 * s - 10, 50 + x1 * s - 20, 60 + y1 * s - 10))
             for w, (x0, y0, x1, y1) in ta]
    # page 2: stored (x, y) -> page (60 + 0.4y, 50 + 0.4(900 - x)); turned clockwise on a 460 pt
    # high page -> shown (460 - that y, that x) = (50 + 0.4x, 60 + 0.4y): upright at (50, 60)
    truth += [(2, w, (50 + x0 * s, 60 + y0 * s, 50 + x1 * s, 60 + y1 * s)) for w, (x0, y0, x1, y1) in tb]
    return data, truth


@pytest.mark.real_ocr
@pytest.mark.parametrize("engine", ["tesseract", "rapidocr"])
async def test_known_words_of_pdf_pages_land_on_their_boxes(tmp_path, engine):
    data, truth = known_words_pdf()
    pdfs.write(tmp_path / "in" / "scan.pdf", data)
    async with EmbeddedServer(ServerConfig(engine=engine, tokens=(TOKEN,))) as srv:
        cfg = write_config(tmp_path, srv.base_url, api__format="json", outputs=ALL, pdf__dpi=200,
                           timeouts__job_s=300)
        code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK, report
    out = tmp_path / "out"
    alto = out / "scan.pdf.alto.xml"
    validate_alto(alto)
    in_pt = [(p, t, tuple(v / PT for v in b) if b else None, c) for p, t, b, c in alto_words(alto)]
    assert all(c is not None for *_, c in in_pt)                 # WC on every OCRed String
    pdf = out / "scan.pdf.pdf"
    assert len(render_pdf_pages(pdf, tmp_path / "png")) == 2
    scores = (matched_fraction(truth, in_pt), matched_fraction(truth, hocr_words(out / "scan.pdf.hocr")),
              matched_fraction(truth, pdf_words(pdf, cropbox=True)))
    assert min(scores) >= 0.9, scores


async def test_verify_checks_every_configured_output_and_requeue_regenerates_for_free(tmp_path, server):
    from helpers import save, text_page
    from test_crash_safety import run_cli

    pdfs.write(tmp_path / "in" / "book.pdf", mixed_pdf())
    save(text_page("scan"), tmp_path / "in" / "scan.png")
    save(text_page("other"), tmp_path / "in" / "other.png")
    cfg = write_config(tmp_path, server.base_url, api__format="json", outputs=ALL, pdf__dpi=100)
    assert (await run_pipeline(cfg, TOKEN))[0] == ExitCode.OK
    assert (await run_cli("verify", str(cfg)))[0] == ExitCode.OK
    out = tmp_path / "out"
    alto = (out / "book.pdf.alto.xml").read_bytes()
    (out / "book.pdf.alto.xml").write_bytes(alto[: len(alto) // 2])      # truncated
    (out / "scan.png.hocr").unlink()                                       # missing
    (out / "other.png.pdf").write_bytes(b"%PDF-1.4\nnot really\n")         # does not open
    code, text = await run_cli("verify", str(cfg), "--json")
    assert code == ExitCode.FILES_FAILED
    problems = {(p["path"], p["remedy"]): p["problem"] for p in json.loads(text)["problems"]}
    assert set(problems) == {("book.pdf", "regenerate"), ("scan.png", "regenerate"), ("other.png", "regenerate")}
    assert "well-formed" in problems["book.pdf", "regenerate"]
    assert "missing hocr" in problems["scan.png", "regenerate"]
    assert "does not open" in problems["other.png", "regenerate"]
    code, text = await run_cli("verify", str(cfg), "--requeue")
    assert "0 requeued" in text and "3 to have outputs regenerated" in text
    before = server.counters.snapshot()
    code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK and report["outputs_regenerated"] == 3
    assert server.counters.snapshot() == before                           # no API call
    validate_alto(out / "book.pdf.alto.xml")
    assert (await run_cli("verify", str(cfg)))[0] == ExitCode.OK
    # a broken .json is not regenerable: the file is redone (an API call per page)
    (out / "scan.png.json").write_text("{")
    code, text = await run_cli("verify", str(cfg), "--requeue")
    assert "1 requeued" in text
    code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK and report["this_run"] == {"done": 1, "skipped": 2}
    assert server.counters.jobs_created == before["jobs_created"] + 1


def test_overlay_words_land_on_their_displayed_boxes_for_every_rotation(tmp_path):
    """Straight from a layout: a word at a known displayed box on pages turned 0/90/180/270 with
    a CropBox off 0,0 comes back there from poppler, and pdfium's reading of the result (the
    path text-layer pages take) gives the same box: the map and its inverse agree."""
    from pipeline.formats.model import Block, FileLayout, Line, PageLayout, Word
    from pipeline.formats.pdf_overlay import render_pdf_over_original
    from pipeline.formats.pdf_text import read_pdf

    rotations = (0, 90, 180, 270)
    data = pdfs.build([("scan", "x")] * 4, size=(400, 300))

    def shape(pdf):
        for page, r in zip(pdf.pages, rotations):
            page.obj.Rotate = r
            page.obj.CropBox = [20, 10, 380, 290]
    src = pdfs.write(tmp_path / "in.pdf", pdfs.edit(data, shape))
    frames, _ = read_pdf(src)
    box = (40.0, 30.0, 160.0, 54.0)
    pages = tuple(PageLayout(i, *frames[i].size, "pt",
                             (Block(box, (Line("Harbour", box, 0.9, (Word("Harbour", box, 0.9),)),)),), True, "fast")
                  for i in range(4))
    out = tmp_path / "out.pdf"
    out.write_bytes(render_pdf_over_original(FileLayout("in.pdf", "in.pdf", pages), src, frames))
    assert [f.size for f in frames] == [(360, 280), (280, 360), (360, 280), (280, 360)]
    found = {p: b for p, t, b in pdf_words(out, cropbox=True) if t == "Harbour"}
    assert sorted(found) == [1, 2, 3, 4]
    assert all(iou(b, box) > 0.8 for b in found.values()), found
    _, again = read_pdf(out, range(4))
    for i in range(4):
        words = [w for b in again[i].blocks for ln in b.lines for w in ln.words]
        got = words[0].box                                   # pdfium's boxes are the glyphs' ink: inside
        assert [w.text for w in words] == ["Harbour"], (i, words)
        assert iou(got, box) > 0.7 and all(abs(a - b) < 1 or (a > b) == (k < 2)
                                           for k, (a, b) in enumerate(zip(got, box))), (i, got)
