"""ALTO, hOCR and searchable PDF through the real runner and server (fast engine), and the rules
around them: boxes land in the source's coordinates, the files validate and render, adding an
output to a done tree costs no API call, and configs that cannot work are refused at start-up.

The fast engine's two lines cover the top and bottom half of the *submitted* image, so after
prepare has downscaled, padded or rotated a page, their boxes in the outputs must cover the top
and bottom half of the *source* page: any missed transform shows as a wrong number.
"""

from __future__ import annotations

import json
import sqlite3

import pytest
from PIL import Image, ImageChops, ImageStat

from conftest import TOKEN
from formats_checks import (ALTO_NS, alto_words, hocr_pages, hocr_words, iou, pdf_page_sizes, pdf_text, pdf_words,
                            render_pdf_pages, validate_alto)
from helpers import run_pipeline, save, text_page, write_config
from pipeline.config import ConfigError, load_config
from pipeline.exitcodes import ExitCode
from pipeline.formats.writer import render
from pipeline.inputs.geometry import PageGeometry

import xml.etree.ElementTree as ET

ALL = ["txt", "json", "alto", "hocr", "pdf"]


def alto_lines(path) -> list[tuple[int, tuple[float, float, float, float]]]:
    root = ET.parse(path).getroot()
    out = []
    for page in root.iter(ALTO_NS + "Page"):
        for ln in page.iter(ALTO_NS + "TextLine"):
            x, y = float(ln.get("HPOS")), float(ln.get("VPOS"))
            out.append((int(page.get("PHYSICAL_IMG_NR")), (x, y, x + float(ln.get("WIDTH")), y + float(ln.get("HEIGHT")))))
    return out


def alto_pages(path) -> list[tuple[float, float]]:
    root = ET.parse(path).getroot()
    return [(float(p.get("WIDTH")), float(p.get("HEIGHT"))) for p in root.iter(ALTO_NS + "Page")]


def make_tree(tmp_path) -> dict[str, tuple[int, int]]:
    """Inputs exercising each transform; returns the oriented source size per page-1."""
    inp = tmp_path / "in"
    # over max_width 4096: downscaled by 4096/5000 before upload
    save(text_page("wide", (5000, 300)), inp / "wide.png")
    # stored 500x200, EXIF 6: a person sees it 200x500
    exif = Image.Exif()
    exif[0x0112] = 6
    save(text_page("rotated", (500, 200), "RGB"), inp / "rot.jpg", exif=exif, dpi=(200, 200))
    # smaller than min_width/min_height 128x127: padded, coordinates unchanged
    save(text_page("t", (90, 60)), inp / "tiny.png")
    # two TIFF pages of different sizes
    frames = [text_page("one", (600, 300)), text_page("two", (400, 700))]
    frames[0].save(inp / "two.tif", save_all=True, append_images=frames[1:], dpi=(300, 300))
    return {"wide.png": (5000, 300), "rot.jpg": (200, 500), "tiny.png": (90, 60), "two.tif": (600, 300)}


async def test_every_output_written_with_boxes_in_source_coordinates(tmp_path, server):
    sizes = make_tree(tmp_path)
    cfg = write_config(tmp_path, server.base_url, api__format="json", outputs=ALL)
    code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK, report
    out = tmp_path / "out"
    for rel, (w, h) in sizes.items():
        alto = out / f"{rel}.alto.xml"
        validate_alto(alto)
        assert alto_pages(alto)[0] == (w, h)
        pdf = out / f"{rel}.pdf"
        hpages = hocr_pages(out / f"{rel}.hocr")
        assert len(render_pdf_pages(pdf, tmp_path / "png" / rel)) == len(hpages)
        assert "FAST-OCR" in [w for _, w, _ in pdf_words(pdf)]
        lines = [b for page, b in alto_lines(alto) if page == 1]
        if rel == "tiny.png":
            # padded to 128x127 at the right and bottom: the upload's top half (0-63) covers the
            # whole 60 px page, and its bottom half lies in the padding, clipped to the edge
            assert lines == [(0, 0, 90, 60), (0, 60, 90, 60)]
            continue
        # the fast engine's lines: top half and bottom half of the page, in source pixels
        assert iou(lines[0], (0, 0, w, h / 2)) > 0.97 and iou(lines[1], (0, h / 2, w, h)) > 0.97, (rel, lines)
        assert hpages[0]["bbox"] == f"0 0 {w} {h}" and hpages[0]["image"] == f'"{rel}"'
        assert hocr_words(out / f"{rel}.hocr")[0][1] == "FAST-OCR"
    # the tiff's second page has its own size, not the first page's
    assert alto_pages(out / "two.tif.alto.xml") == [(600, 300), (400, 700)]
    assert [p["ppageno"] for p in hocr_pages(out / "two.tif.hocr")] == ["0", "1"]
    # PDF page size: pixels at the file's resolution (rot.jpg says 200 dpi, two.tif 300)
    assert pdf_page_sizes(out / "rot.jpg.pdf") == [pytest.approx((200 * 72 / 200, 500 * 72 / 200), abs=0.01)]
    assert pdf_page_sizes(out / "two.tif.pdf") == [pytest.approx((144, 72), abs=0.01), pytest.approx((96, 168), abs=0.01)]
    # "done" lists every output
    db = sqlite3.connect(out / ".pipeline" / "state.sqlite")
    outputs = json.loads(db.execute("SELECT outputs FROM files WHERE rel='two.tif'").fetchone()[0])
    assert sorted(outputs) == sorted(f"two.tif{s}" for s in (".txt", ".json", ".alto.xml", ".hocr", ".pdf"))


async def test_adding_outputs_to_a_done_tree_costs_no_api_call(tmp_path, server):
    make_tree(tmp_path)
    code, _, _ = await run_pipeline(write_config(tmp_path, server.base_url, api__format="json"), TOKEN)
    assert code == ExitCode.OK
    out = tmp_path / "out"
    assert not list(out.rglob("*.alto.xml"))
    before = (server.counters.api_calls, server.counters.jobs_created, server.counters.models_calls)
    json_before = (out / "wide.png.json").read_bytes()

    cfg = write_config(tmp_path, server.base_url, api__format="json", outputs=ALL)
    code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK
    assert (server.counters.api_calls, server.counters.jobs_created, server.counters.models_calls) == before
    assert report["this_run"]["done"] == 4
    for rel in ("wide.png", "rot.jpg", "tiny.png", "two.tif"):
        validate_alto(out / f"{rel}.alto.xml")
        assert (out / f"{rel}.hocr").is_file() and (out / f"{rel}.pdf").is_file()
    assert (out / "wide.png.json").read_bytes() == json_before   # the record itself is untouched
    # regenerated outputs equal what a fresh run writes (one writer)
    assert alto_lines(out / "wide.png.alto.xml")[1][1] == pytest.approx((0, 150, 5000, 300), abs=1)

    mtime = (out / "wide.png.pdf").stat().st_mtime_ns
    code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK and report["this_run"]["skipped"] == 4
    assert (out / "wide.png.pdf").stat().st_mtime_ns == mtime
    assert server.counters.api_calls == before[0]


async def test_a_done_file_whose_record_is_gone_is_processed_again(tmp_path, server):
    save(text_page("x"), tmp_path / "in" / "a.png")
    await run_pipeline(write_config(tmp_path, server.base_url, api__format="json"), TOKEN)
    (tmp_path / "out" / "a.png.json").unlink()
    jobs = server.counters.jobs_created
    code, _, _ = await run_pipeline(write_config(tmp_path, server.base_url, api__format="json", outputs=ALL), TOKEN)
    assert code == ExitCode.OK
    assert server.counters.jobs_created == jobs + 1   # the results were gone: paid again, knowingly
    validate_alto(tmp_path / "out" / "a.png.alto.xml")


@pytest.mark.parametrize("outputs, fmt, message", [
    (["txt", "json", "altoo"], "json", "did you mean 'alto'"),
    (["txt", "alto"], "json", "outputs: must include json"),
    (["json", "pdf"], "json", "outputs: must include txt"),
])
def test_outputs_that_cannot_work_are_refused_at_start(tmp_path, outputs, fmt, message):
    cfg = write_config(tmp_path, "embedded", api__format=fmt, outputs=outputs)
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    assert message in str(err.value)


def test_default_outputs_are_txt_and_json(tmp_path):
    assert load_config(write_config(tmp_path, "embedded")).outputs == ("txt", "json")


def _document(rel: str, size: tuple[int, int], result: dict | None, text: str) -> dict:
    page = {"index": 0, "text": text, **({"result": result} if result else {})}
    return {"source": {"path": rel}, "image": {"source_width": size[0], "source_height": size[1], "pages": [
        {"page_index": 0, "width": size[0], "height": size[1], "scale": 1.0, "transforms": []}]},
        "settings": {"model": "m", "language": "en", "format": "json"}, "pages": [page], "text": text,
        "tool": {"name": "pipeline", "version": "0.1.0"}, "written_at": "2026-12-01T00:00:00Z"}


def test_a_text_only_result_gives_positionless_alto_and_hocr_and_an_image_only_pdf(tmp_path):
    src = save(text_page("hello world"), tmp_path / "p.png")
    doc = _document("p.png", (600, 200), None, "hello world\nsecond line")
    files = render(["alto", "hocr", "pdf"], doc, src)
    (tmp_path / "p.alto.xml").write_bytes(files["alto"])
    (tmp_path / "p.hocr").write_bytes(files["hocr"])
    (tmp_path / "p.pdf").write_bytes(files["pdf"])
    validate_alto(tmp_path / "p.alto.xml")
    words = alto_words(tmp_path / "p.alto.xml")
    assert [w[1] for w in words] == ["hello", "world", "second", "line"] and all(w[2] is None for w in words)
    assert b"positions=none(pages 1)" in files["alto"]
    assert hocr_pages(tmp_path / "p.hocr")[0]["x_positions"] == "none"
    assert [w[2] for w in hocr_words(tmp_path / "p.hocr")] == [None] * 4
    assert pdf_words(tmp_path / "p.pdf") == []      # nowhere true to put the words: no text layer
    assert len(render_pdf_pages(tmp_path / "p.pdf", tmp_path / "png")) == 1


def test_line_boxes_without_word_boxes_are_split_by_characters_and_the_pdf_text_sits_on_them(tmp_path):
    src = save(text_page("ab cd"), tmp_path / "p.png", dpi=(72, 72))   # 72 dpi: 1 px = 1 pt
    result = {"engine": "x", "blocks": [{"box": [100, 50, 300, 90], "lines": [
        {"text": "aaaa bbbb", "box": [100, 50, 290, 90], "confidence": 0.8}]}]}
    files = render(["alto", "pdf"], _document("p.png", (600, 200), result, "aaaa bbbb"), src)
    (tmp_path / "p.alto.xml").write_bytes(files["alto"])
    (tmp_path / "p.pdf").write_bytes(files["pdf"])
    validate_alto(tmp_path / "p.alto.xml")
    words = alto_words(tmp_path / "p.alto.xml")
    assert [(w[1], w[2], w[3]) for w in words] == [("aaaa", (100, 50, 184.44, 90), 0.8),
                                                        ("bbbb", (205.56, 50, 290, 90), 0.8)]
    found = pdf_words(tmp_path / "p.pdf")
    assert [w[1] for w in found] == ["aaaa", "bbbb"]
    for (_, _, true, _), (_, _, got) in zip(words, found):
        assert iou(true, got) > 0.8, (true, got)


def test_a_line_without_a_box_on_a_page_with_boxes_keeps_its_words_in_alto_and_hocr(tmp_path):
    # A foreign server's answer mixing boxed and unboxed lines: the unboxed lines were in the .txt
    # but dropped from ALTO and hOCR (found by the standin2 tour). They are there, with no position.
    src = save(text_page("ab cd"), tmp_path / "p.png")
    result = {"engine": "x", "blocks": [{"lines": [
        {"text": "boxed line", "box": [100, 50, 290, 90]},
        {"text": "no box here", "box": ["a", None, 3, 4]},
        {"text": "none at all"}]}]}
    files = render(["alto", "hocr", "pdf"], _document("p.png", (600, 200), result,
                                                      "boxed line\nno box here\nnone at all"), src)
    (tmp_path / "p.alto.xml").write_bytes(files["alto"])
    (tmp_path / "p.hocr").write_bytes(files["hocr"])
    (tmp_path / "p.pdf").write_bytes(files["pdf"])
    validate_alto(tmp_path / "p.alto.xml")
    words = alto_words(tmp_path / "p.alto.xml")
    assert [w[1] for w in words] == ["boxed", "line", "no", "box", "here", "none", "at", "all"]
    assert words[0][2] is not None and all(w[2] is None for w in words[2:])
    assert [w[1] for w in hocr_words(tmp_path / "p.hocr")] == [w[1] for w in words]
    assert [w[1] for w in pdf_words(tmp_path / "p.pdf")] == ["boxed", "line"]   # placed words only


SCRIPTS = ["Łódź", "发票合计", "مرحبا", "שלום", "नमस्ते", "Привет", "Γειά", "𠀋字"]


def test_words_of_every_script_come_back_from_the_pdf_text_layer(tmp_path):
    """Chinese, Arabic, Hebrew, Devanagari, Cyrillic, Greek (and a character beyond the BMP):
    each word is found by pdftotext, in reading order, with nothing replaced."""
    src = save(text_page("x", (900, 200)), tmp_path / "p.png", dpi=(72, 72))
    words = [{"text": w, "box": [50 + 90 * i, 50, 130 + 90 * i, 90], "confidence": 0.9} for i, w in enumerate(SCRIPTS)]
    line = " ".join(SCRIPTS)
    result = {"engine": "x", "blocks": [{"box": [50, 50, 850, 90], "lines": [
        {"text": line, "box": [50, 50, 850, 90], "confidence": 0.9, "words": words}]}]}
    (tmp_path / "p.pdf").write_bytes(render(["pdf"], _document("p.png", (900, 200), result, line), src)["pdf"])
    assert pdf_text(tmp_path / "p.pdf").split() == SCRIPTS


def test_a_rotated_jpeg_is_embedded_byte_for_byte_and_shows_upright(tmp_path):
    upright = text_page("UPRIGHT TEXT", (600, 240), "RGB")
    exif = Image.Exif()
    exif[0x0112] = 6   # stored rotated 90 degrees counter-clockwise; viewers turn it back
    src = save(upright.transpose(Image.Transpose.ROTATE_90), tmp_path / "r.jpg", exif=exif, quality=85,
               dpi=(300, 300))
    data = src.read_bytes()
    doc = _document("r.jpg", (240, 600), None, "")
    doc["image"]["pages"][0]["transforms"] = ["exif_transpose:6"]
    doc["image"]["source_width"], doc["image"]["source_height"] = 240, 600  # as stored
    pdf = render(["pdf"], doc, src)["pdf"]
    assert data in pdf                  # the original JPEG stream, not re-encoded
    (tmp_path / "r.pdf").write_bytes(pdf)
    [png] = render_pdf_pages(tmp_path / "r.pdf", tmp_path / "png", dpi=300)  # 1 px = 1 px
    shown = Image.open(png).convert("L")
    assert shown.size == (600, 240)
    same = ImageStat.Stat(ImageChops.difference(shown, upright.convert("L"))).mean[0]
    flipped = ImageStat.Stat(ImageChops.difference(shown, upright.convert("L").rotate(180))).mean[0]
    assert same < 1.5 and flipped > 4 * same, (same, flipped)


def _pdf_python_peak(src, size) -> tuple[bytes, int]:
    """The searchable PDF of ``src`` and the peak of Python's allocations while it was written."""
    import tracemalloc

    tracemalloc.start()
    try:
        pdf = render(["pdf"], _document(src.name, size, None, ""), src)["pdf"]
        return pdf, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_a_big_decoded_page_goes_into_the_pdf_without_whole_image_copies(tmp_path, mode):
    """A PNG or TIFF page is decoded and stored losslessly; fpdf2 made about four whole copies
    of the decoded pixels as Python bytes on the way (a 12000 x 16000 colour scan took 3.2 GB
    to write its PDF). Now it is compressed band by band: a page of 12 MB decoded adds
    under half of that to the Python allocations of writing a tiny page's PDF (it added over 3
    times it), and the pixels, the page size and the ICC profile come out as before."""
    import io

    import pikepdf
    from PIL import ImageCms

    size = (4000, 3000) if mode == "L" else (2400, 1700)     # 12 MB decoded
    page = text_page("Parish register\n1871 baptisms", size, mode)
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes() if mode == "RGB" else None
    src = save(page, tmp_path / "p.png", dpi=(200, 200), **({"icc_profile": icc} if icc else {}))
    small = save(text_page("x", (100, 100), mode), tmp_path / "small.png", dpi=(200, 200))
    render(["pdf"], _document(small.name, (100, 100), None, ""), small)    # imports, untraced
    _, base = _pdf_python_peak(small, (100, 100))
    pdf, peak = _pdf_python_peak(src, page.size)
    decoded = page.width * page.height * len(mode)
    assert peak - base < decoded / 2, (peak, base, decoded)
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        [raw] = doc.pages[0].get_images().values()
        assert [float(v) for v in doc.pages[0].MediaBox] == [0, 0, size[0] * 72 / 200, size[1] * 72 / 200]
        shown = pikepdf.PdfImage(raw).as_pil_image()
        assert shown.mode == mode and ImageChops.difference(shown, page).getbbox() is None
        space = raw.ColorSpace
        assert (space[0] == "/ICCBased" and space[1].read_bytes() == icc) if icc else space == "/DeviceGray"


def test_geometry_undoes_downscale_clips_padding_and_maps_pdf_pages():
    image = {"source_width": 5000, "source_height": 300, "pages": [
        {"page_index": 0, "width": 4096, "height": 246, "scale": 0.8192, "transforms": ["downscale:0.8192"]}]}
    g = PageGeometry.from_prepared(image, 0)
    assert (g.source_width, g.source_height) == (5000, 300)
    assert g.to_source((0, 123, 4096, 246)) == (0, 150, 5000, 300)
    padded = {"source_width": 90, "source_height": 60, "pages": [
        {"page_index": 0, "width": 128, "height": 127, "scale": 1.0, "transforms": ["pad:128x127"]}]}
    assert PageGeometry.from_prepared(padded, 0).to_source((10, 10, 128, 127)) == (10, 10, 90, 60)
    rotated = {"source_width": 500, "source_height": 200, "pages": [
        {"page_index": 0, "width": 200, "height": 500, "scale": 1.0, "transforms": ["exif_transpose:6"]}]}
    assert (PageGeometry.from_prepared(rotated, 0).source_width, PageGeometry.from_prepared(rotated, 0).source_height) == (200, 500)
    # a Letter page rendered at 200 dpi, then sent at half size
    letter = {"pages": [{"page_index": 0, "width": 850, "height": 1100, "scale": 0.5, "transforms": [],
                         "source": {"kind": "pdf_page", "page_size_pt": [612, 792], "render_dpi": 200,
                                    "rendered_size": [1700, 2200]}}]}
    pdfpage = PageGeometry.from_prepared(letter, 0)
    assert pdfpage.unit == "pt" and pdfpage.to_source((0, 0, 850, 1100)) == (0, 0, 612, 792)
    assert pdfpage.to_source((100, 100, 200, 150)) == (72.0, 72.0, 144.0, 108.0)


async def test_an_engines_words_cut_inside_the_lines_words_follow_the_line_text(tmp_path):
    """RapidOCR's word boxes can cut a line where its text has no space ("ELECTIO" "N" for the
    heading "ELECTION", "DateM" "me", "M" "ORGAN": a wide gap inside a word), or hold two of its
    words in one. The ``.txt`` holds the line's text; ALTO and the PDF's layer held the engine's
    cuts, so a search for "ELECTION" found nothing in the PDF and ``verify`` reported the words
    lost (3 of 6 real scans read with rapidocr, ``api.format: json``). The words now follow the
    line's text, boxes joined (or shared by characters). And ``verify`` judges the layer of a
    result with boxes by the words of its lines, not by the ``.txt``, which the Markdown rule
    may have changed. Through the real client, the server
    answering that shape (``truth`` engine, ``json_answer``)."""
    from pipeline.ocr.pool import decode_image
    from pipeline.ocr.truth import register
    from pipeline.server import EmbeddedServer, ServerConfig

    lines = [("ELECTION 2016", [("ELECTIO", (20, 20, 180, 60)), ("N", (190, 20, 215, 60)), ("2016", (240, 20, 330, 60))]),
             ("Release DateMme", [("Release", (20, 80, 120, 110)), ("DateM", (130, 80, 200, 110)), ("me", (210, 80, 240, 110))]),
             ("Total due now", [("Totaldue", (20, 130, 180, 160)), ("now", (200, 130, 260, 160))]),
             ("Nationwide Total***", [("Nationwide", (20, 175, 150, 200)), ("Total***", (160, 175, 260, 200))]),
             ("***", [("***", (20, 215, 60, 240))])]
    answer = {"engine": "x", "width": 400, "height": 260, "text": "\n".join(t for t, _ in lines), "blocks": [
        {"box": [20, 20, 330, 160], "lines": [
            {"text": text, "box": [ws[0][1][0], ws[0][1][1], ws[-1][1][2], ws[-1][1][3]], "confidence": 0.9,
             "words": [{"text": w, "box": list(b), "confidence": 0.9} for w, b in ws]} for text, ws in lines]}]}
    page = save(text_page("ELECTION", size=(400, 260)), tmp_path / "in" / "heading.png", "PNG")
    register(tmp_path / "truth", decode_image(page.read_bytes()), answer["text"], json_answer=answer)
    async with EmbeddedServer(ServerConfig(engine="truth", tokens=(TOKEN,), truth_dir=str(tmp_path / "truth"))) as srv:
        cfg = write_config(tmp_path, srv.base_url, api__format="json", outputs=["txt", "json", "alto", "pdf"])
        code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK, report
    out = tmp_path / "out"
    want = "ELECTION 2016 Release DateMme Total due now Nationwide Total*** ***".split()
    # the .txt read the answer's asterisks as Markdown emphasis ("Total*", "*") until marks around
    # marks alone were taken as printed (standin); the layer holds the lines' words, and verify
    # judges it by them (it compared the .txt: "Total***" and "***" lost, table_11)
    assert (out / "heading.png.txt").read_text().split()[-3:] == ["Nationwide", "Total***", "***"]
    strings = {w: box for _, w, box, _ in alto_words(out / "heading.png.alto.xml")}
    assert list(strings) == want
    assert pdf_text(out / "heading.png.pdf").split() == want
    assert strings["ELECTION"] == (20, 20, 215, 60)                  # the two boxes joined
    assert strings["Total"][2] == strings["due"][0] == 120           # one box shared by characters (5 of 8)
    from test_crash_safety import run_cli
    code, said = await run_cli("verify", str(cfg))
    assert code == ExitCode.OK and "0 problems" in said, said


def _png_with_chunk_before_end(im: Image.Image, kind: bytes, data: bytes) -> bytes:
    """``im`` as PNG bytes with one more chunk put just before IEND (after the pixels)."""
    import io

    buf = io.BytesIO()
    im.save(buf, "PNG")
    png = buf.getvalue()
    end = png.rindex(b"IEND") - 4
    return png[:end] + _png_chunk(kind, data) + png[end:]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_a_pngs_orientation_is_read_from_its_chunk_headers_not_its_pixels():
    """ALTO and hOCR need a page's size and orientation only; Pillow's getexif of a PNG with no
    eXIf before its pixels decoded the whole image to look behind them."""
    import io
    import random

    from pipeline.ocr.imaging import held_orientation

    class CountingReader(io.BytesIO):
        taken = 0

        def read(self, n=-1):
            data = super().read(n)
            self.taken += len(data)
            return data

    rnd = random.Random(7)
    noisy = Image.frombytes("L", (1500, 1500), bytes(rnd.choice((0, 255)) for _ in range(1500 * 1500)))
    png = _png_with_chunk_before_end(noisy, b"tEXt", b"Comment\x00after the pixels")
    fp = CountingReader(png)
    with Image.open(fp) as im:
        assert held_orientation(im) == 1
        assert fp.taken < len(png) / 20, (fp.taken, len(png))   # before: the whole file was read
        im.load()                                                # and the pixels still load after
        assert im.size == (1500, 1500)


def test_a_pngs_exif_after_its_pixels_still_turns_the_page(tmp_path):
    from pipeline.formats.source import read_source_pages

    exif = Image.Exif()
    exif[0x0112] = 6
    tiff = exif.tobytes()
    tiff = tiff[6:] if tiff.startswith(b"Exif\x00\x00") else tiff
    path = tmp_path / "late-exif.png"
    path.write_bytes(_png_with_chunk_before_end(text_page("late", (300, 100), "L"), b"eXIf", tiff))
    with Image.open(path) as im:
        assert "exif" not in im.info   # Pillow has not seen it at open
    (page,) = read_source_pages(path)
    assert (page.orientation, page.width, page.height) == (6, 100, 300)


def test_a_png_is_turned_alike_for_the_upload_and_for_its_outputs(tmp_path):
    """Pillow gave a PNG's orientation by when it was asked: before the pixels were loaded, the
    first of two eXIf chunks (or none, for ImageMagick's zTXt 'Raw profile type exif'), after,
    the last one's. prepare (loaded) sent the page turned one way, the outputs (headers only)
    described it turned another, and every box of ALTO, hOCR and the PDF missed its word
    (found by `verify`: 'the PDF's text layer lost 3 word(s)'). The first eXIf counts, as libpng's."""
    from PIL import PngImagePlugin

    from pipeline.formats.source import read_source_pages
    from pipeline.inputs.prepare import prepare_file

    def exif_of(value: int) -> bytes:
        exif = Image.Exif()
        exif[0x0112] = value
        raw = exif.tobytes()
        return raw[6:] if raw.startswith(b"Exif\x00\x00") else raw

    page = text_page("two", (300, 100), "L")
    two = tmp_path / "two-exif.png"
    late = _png_with_chunk_before_end(page, b"eXIf", exif_of(3))
    ihdr_end = 8 + 8 + 13 + 4   # the signature and IHDR: the first eXIf goes before the pixels
    two.write_bytes(late[:ihdr_end] + _png_chunk(b"eXIf", exif_of(6)) + late[ihdr_end:])
    raw_hex = exif_of(6).hex()
    info = PngImagePlugin.PngInfo()
    info.add_text("Raw profile type exif", f"\nexif\n{len(raw_hex) // 2:8d}\n{raw_hex}\n", zip=True)
    ztxt = tmp_path / "ztxt-exif.png"
    page.save(ztxt, pnginfo=info)
    for path in (two, ztxt):
        (source,) = read_source_pages(path)
        sent = prepare_file(path).pages[0].transforms
        assert (source.orientation, source.width, source.height) == (6, 100, 300), path.name
        assert "exif_transpose:6" in sent, (path.name, sent)


async def test_a_tiffs_thumbnail_frames_are_no_pages(tmp_path, server):
    """A TIFF storing a reduced-resolution copy of its page as a frame of its own (NewSubfileType
    1) was read as one page more: a job paid for the thumbnail, and the outputs had a page the
    volume has not. The pages are the other frames, each described by its own frame."""
    from PIL import TiffImagePlugin

    one, two = text_page("one", (600, 300)), text_page("two", (400, 700))
    path = tmp_path / "in" / "thumbs.tif"
    path.parent.mkdir(parents=True)
    reduced = TiffImagePlugin.ImageFileDirectory_v2()
    reduced[254] = 1
    with TiffImagePlugin.AppendingTiffWriter(path, new=True) as tf:
        for frame, info in ((one.resize((60, 30)), reduced), (one, None), (two, None), (two.resize((40, 70)), reduced)):
            frame.save(tf, "TIFF", dpi=(300, 300), **({"tiffinfo": info} if info else {}))
            tf.newFrame()
    cfg = write_config(tmp_path, server.base_url, api__format="json", outputs=ALL)
    code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK, report
    assert server.counters.jobs_created == 2                      # before: 4, two for thumbnails
    out = tmp_path / "out"
    record = json.loads((out / "thumbs.tif.json").read_text())
    assert record["image"]["page_count"] == 2 and "thumbnails_skipped:2" in record["image"]["pages"][0]["transforms"]
    assert alto_pages(out / "thumbs.tif.alto.xml") == [(600, 300), (400, 700)]
    assert pdf_page_sizes(out / "thumbs.tif.pdf") == [pytest.approx((144, 72), abs=0.01), pytest.approx((96, 168), abs=0.01)]
    lines = [b for page, b in alto_lines(out / "thumbs.tif.alto.xml") if page == 2]
    assert iou(lines[0], (0, 0, 400, 350)) > 0.97, lines    # page 2's lines on page 2's frame
    # a record made when every frame was a page keeps its pages in the outputs written from it
    from pipeline.formats.source import read_source_pages
    assert [(p.frame, p.width) for p in read_source_pages(path, 2)] == [(1, 600), (2, 400)]
    assert [(p.frame, p.width) for p in read_source_pages(path, 4)] == [(0, 60), (1, 600), (2, 400), (3, 40)]
