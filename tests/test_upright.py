"""Turned and skewed pages (issue 23): measured, straightened before upload, boxes undone.

Without OCR: the geometry round trip (a dot's place on the straightened page maps back onto
the page it came from), the decision on real scans (no upright page of ``../shared/data`` is
turned; turned and skewed versions are found), and what ``prepare`` records. With both real
engines through the runner: a page of known words, turned and skewed, whose ALTO words must land
on their boxes in the variant's own pixel frame and whose text must match the upright page's.
"""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image, ImageDraw

from bench.metrics import cer_counts
from bench.page_variants import all_variants, variant
from conftest import TOKEN
from formats_checks import alto_words, matched_fraction, pdf_words, render_pdf_pages, validate_alto
from helpers import font, run_pipeline, write_config
from pipeline.exitcodes import ExitCode
from pipeline.inputs import upright
from pipeline.inputs.geometry import PageGeometry
from pipeline.inputs.prepare import PrecheckLimits, prepare_file
from pipeline.ocr.imaging import flatten_on_white
from pipeline.server import EmbeddedServer, ServerConfig
from test_formats_real_ocr import draw_words


def _dot_page(size=(900, 600), at=(700, 120)) -> Image.Image:
    im = Image.new("L", size, 255)
    ImageDraw.Draw(im).rectangle((at[0] - 4, at[1] - 4, at[0] + 4, at[1] + 4), fill=0)
    return im


def _dot_centre(im: Image.Image) -> tuple[float, float]:
    ink = Image.eval(im.convert("L"), lambda v: 255 if v < 128 else 0)
    x0, y0, x1, y1 = ink.getbbox()
    return (x0 + x1) / 2, (y0 + y1) / 2


@pytest.mark.parametrize("skew,turn", [(0.0, 90), (0.0, 180), (0.0, 270), (4.0, 0), (-7.0, 0),
                                       (3.0, 90), (-1.5, 270), (12.0, 180)])
def test_a_box_on_the_straightened_page_maps_back_onto_the_source(skew, turn):
    page = _dot_page()
    transforms: list[str] = []
    out = upright.apply(page, upright.Straightening(skew, turn), transforms)
    assert [t.split(":")[0] for t in transforms] == (["deskew"] if skew else []) + (["turn"] if turn else [])
    cx, cy = _dot_centre(out)
    record = {"source_width": 900, "source_height": 600,
              "pages": [{"page_index": 0, "width": out.width, "height": out.height, "scale": 1.0,
                         "transforms": transforms}]}
    geo = PageGeometry.from_prepared(record, 0)
    x0, y0, x1, y1 = geo.to_source((cx - 1, cy - 1, cx + 1, cy + 1))
    assert abs((x0 + x1) / 2 - 700) <= 1.5 and abs((y0 + y1) / 2 - 120) <= 1.5, (x0, y0, x1, y1)
    # the same after a downscale: the scale is undone first
    half = out.resize((out.width // 2, out.height // 2))
    record["pages"][0].update(width=half.width, height=half.height, scale=half.width / out.width)
    hx, hy = _dot_centre(half)
    x0, y0, x1, y1 = PageGeometry.from_prepared(record, 0).to_source((hx - 1, hy - 1, hx + 1, hy + 1))
    assert abs((x0 + x1) / 2 - 700) <= 3 and abs((y0 + y1) / 2 - 120) <= 3, (x0, y0, x1, y1)


@pytest.mark.parametrize("skew,turn", [(0.0, 0), (4.0, 0), (-3.0, 90), (0.0, 270)])
def test_a_box_on_a_fax_made_square_then_straightened_maps_back_onto_the_fax(skew, turn):
    """A fax's pixels are made square first (``square_pixels:``: 900 x 300 stretched to 900 x
    600), then the page is levelled and turned on that frame: the mapping undoes the stretch last."""
    square = upright.apply(_dot_page(), upright.Straightening(skew, turn), transforms := [])
    cx, cy = _dot_centre(square)
    record = {"source_width": 900, "source_height": 300,
              "pages": [{"page_index": 0, "width": square.width, "height": square.height, "scale": 1.0,
                         "transforms": ["convert:TIFF->PNG", "square_pixels:1.0000x2.0000", *transforms]}]}
    geo = PageGeometry.from_prepared(record, 0)
    x0, y0, x1, y1 = geo.to_source((cx - 1, cy - 1, cx + 1, cy + 1))
    assert abs((x0 + x1) / 2 - 700) <= 1.5 and abs((y0 + y1) / 2 - 60) <= 1.5, (x0, y0, x1, y1)
    assert geo.to_source((0, 0, square.width, square.height))[2:] == (900, 300)


def test_blank_flat_and_noisy_pages_are_left_alone():
    for im in (Image.new("L", (800, 1000), 255), Image.new("RGB", (800, 600), (200, 10, 10)),
               Image.linear_gradient("L").resize((1200, 400))):
        assert upright.measure(im).noop


def _scans(data):
    return sorted((data / "scribeocr-benchmark" / "img").iterdir()) + sorted((data / "cis-hobbes-1668" / "tif").iterdir())


def _gray(path) -> Image.Image:
    im = Image.open(path)
    if im.mode in ("RGBA", "LA", "P"):
        im = flatten_on_white(im)
    return im.convert("L")


@pytest.mark.shared_data
def test_no_upright_page_of_the_shared_scans_is_turned_or_skewed(shared_data):
    moved = {}
    for path in _scans(shared_data):
        how = upright.measure(_gray(path))
        if how.turn or abs(how.skew) >= 1.0:
            moved[path.name] = how
    assert len(_scans(shared_data)) >= 30
    assert not moved, moved


@pytest.mark.shared_data
@pytest.mark.parametrize("name", ["singlecol_01.png", "deposition_02.png", "0023.tif"])
def test_turned_and_skewed_scans_are_found(shared_data, name):
    path = next(p for p in _scans(shared_data) if p.name == name)
    page = _gray(path)
    for kind, amount in (("turn", 90), ("turn", 180), ("turn", 270), ("skew", 4.0), ("skew", -7.0)):
        im, _ = variant(page, [], kind, amount)
        how = upright.measure(im)
        if kind == "turn":
            assert how.turn == (360 - amount) % 360 and abs(how.skew) < 1.0, (kind, amount, how)
        else:
            assert how.turn == 0 and abs(how.skew + amount) <= 0.3, (kind, amount, how)


@pytest.mark.shared_data
@pytest.mark.parametrize("name", ["chart_02.png", "table_01.png", "multicol_08.png"])
def test_pages_osd_is_unsure_of_are_turned_by_reading_crops(shared_data, name):
    """A chart, a sparse table and a page that is mostly a photograph: Tesseract's OSD answers
    them below its threshold or the wrong way; reading a few crops four ways finds every turn."""
    path = next(p for p in _scans(shared_data) if p.name == name)
    page = _gray(path)
    for amount in (90, 180, 270):
        im, _ = variant(page, [], "turn", amount)
        how = upright.measure(im)
        assert how.turn == (360 - amount) % 360 and how.read, (amount, how)


def test_prepare_records_the_straightening_and_off_leaves_the_page(tmp_path):
    page, _ = draw_words((1400, 1000), 36, 0, per_line=5, lines=8)
    im, _ = variant(page, [], "turn", 180)
    im, _ = variant(im, [], "skew", 4.0)
    path = tmp_path / "scan.png"
    im.save(path)
    (prepared,) = prepare_file(path).pages
    assert any(t.startswith("deskew:") for t in prepared.transforms), prepared.transforms
    assert "turn:180" in prepared.transforms, prepared.transforms
    (untouched,) = prepare_file(path, PrecheckLimits(rotate_pages="off", deskew="off")).pages
    assert untouched.passthrough and untouched.data == path.read_bytes()
    upright_path = tmp_path / "upright.png"
    page.save(upright_path)
    (same,) = prepare_file(upright_path).pages
    assert same.passthrough and same.data == upright_path.read_bytes()


@pytest.mark.real_ocr
@pytest.mark.parametrize("engine", ["tesseract", "rapidocr"])
async def test_turned_and_skewed_pages_read_like_the_upright_one(tmp_path, engine):
    page, truth = draw_words((1200, 900), 32, 0, per_line=4, lines=7)
    boxes = [b for _, b in truth]
    inp = tmp_path / "in"
    inp.mkdir()
    page.save(inp / "upright.png")
    expected = {"upright.png": truth}
    for kind, amount in all_variants():      # 90/180/270 and +-1.5, +-4, +-7 degrees
        im, moved = variant(page, boxes, kind, amount)
        name = f"{kind}{amount:+g}".replace(".", "p") + ".png"
        im.save(inp / name)
        expected[name] = [(w, b) for (w, _), b in zip(truth, moved)]
    async with EmbeddedServer(ServerConfig(engine=engine, tokens=(TOKEN,))) as srv:
        cfg = write_config(tmp_path, srv.base_url, api__format="json", outputs=["txt", "json", "alto", "pdf"],
                           timeouts__job_s=300)
        code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK, report
    out = tmp_path / "out"
    base = (out / "upright.png.txt").read_text()
    for name, words in expected.items():
        record = json.loads((out / f"{name}.json").read_text())["image"]["pages"][0]
        if name == "upright.png":
            assert record["transforms"] == [], record
        alto = out / f"{name}.alto.xml"
        validate_alto(alto)
        found = alto_words(alto)
        truth_words = [(1, w, b) for w, b in words]
        assert matched_fraction(truth_words, found) >= 0.9, (name, record["transforms"])
        # the searchable PDF shows the image as stored (its size), with the words on it (300 dpi)
        pdf = out / f"{name}.pdf"
        (png,) = render_pdf_pages(pdf, tmp_path / "png" / name)
        with Image.open(png) as shown, Image.open(inp / name) as stored:
            assert abs(shown.width / shown.height - stored.width / stored.height) < 0.01
        assert matched_fraction(truth_words, pdf_words(pdf), scale=300 / 72) >= 0.9, name
        errors, length = cer_counts(base, (out / f"{name}.txt").read_text())
        assert errors / length <= 0.01, (name, record["transforms"], errors, length)


def _scanned_pdf_of_variants(page, truth, variants, margin=36.0, s=0.5):
    """An image-only PDF, one page per (kind, amount) variant of ``page`` placed at ``margin``
    points and ``s`` points a pixel, then one page with a real text layer; and the true word
    boxes of the scanned pages in each page's displayed frame (points, top-left)."""
    from fpdf import FPDF

    pdf = FPDF(unit="pt")
    pdf.set_auto_page_break(False)
    pdf.set_font("helvetica", size=14)
    boxes = [b for _, b in truth]
    expected = []
    for n, (kind, amount) in enumerate(variants, start=1):
        im, moved = variant(page, boxes, kind, amount)
        pdf.add_page(format=(im.width * s + 2 * margin, im.height * s + 2 * margin))
        pdf.image(im, x=margin, y=margin, w=im.width * s, h=im.height * s)
        expected += [(n, w, (margin + x0 * s, margin + y0 * s, margin + x1 * s, margin + y1 * s))
                     for (w, _), (x0, y0, x1, y1) in zip(truth, moved)]
    pdf.add_page(format=(400, 300))
    pdf.text(40, 80, "A page with a real text layer is never turned")
    return bytes(pdf.output()), expected


@pytest.mark.real_ocr
@pytest.mark.parametrize("engine", ["tesseract", "rapidocr"])
async def test_scanned_pdf_pages_are_straightened_and_their_words_land_on_the_page(tmp_path, engine):
    """A PDF of scans (one turned 90 degrees, one skewed -4 degrees, no text layer) is read like
    the same images: straightened before upload, every box mapped back into the PDF page's own
    frame (points), so ALTO, hOCR and the searchable PDF describe the page as stored; the page
    with a text layer is taken from the PDF as it is."""
    import pdfs
    from formats_checks import hocr_words

    page, truth = draw_words((1000, 700), 32, 3, per_line=4, lines=5)
    data, expected = _scanned_pdf_of_variants(page, truth, [("turn", 90), ("skew", -4.0)])
    pdfs.write(tmp_path / "in" / "scan.pdf", data)
    async with EmbeddedServer(ServerConfig(engine=engine, tokens=(TOKEN,))) as srv:
        cfg = write_config(tmp_path, srv.base_url, api__format="json", outputs=["txt", "json", "alto", "hocr", "pdf"],
                           pdf__dpi=144, timeouts__job_s=300)
        code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK, report
    out = tmp_path / "out"
    pages = json.loads((out / "scan.pdf.json").read_text())["image"]["pages"]
    transforms = {p["page_index"]: p.get("transforms") or [] for p in pages}
    assert "turn:270" in transforms[0], transforms
    assert any(t.startswith("deskew:") for t in transforms[1]) and not any(t.startswith("turn:") for t in transforms[1])
    assert not any(t.startswith(("deskew:", "turn:")) for t in transforms.get(2, [])), transforms
    alto = out / "scan.pdf.alto.xml"
    validate_alto(alto)
    pt = 1200 / 72     # ALTO's inch1200 units per point
    in_pt = [(p, t, tuple(v / pt for v in b) if b else None) for p, t, b, _ in alto_words(alto)]
    pdf = out / "scan.pdf.pdf"
    scores = (matched_fraction(expected, in_pt), matched_fraction(expected, hocr_words(out / "scan.pdf.hocr")),
              matched_fraction(expected, pdf_words(pdf)))
    assert min(scores) >= 0.9, scores
    assert "never turned" in (out / "scan.pdf.txt").read_text()


def _two_columns(size=(1400, 1000), px=24, gutter=40, lines=18, para=0):
    """A page of two text columns (a narrow gutter, lines of equal height in both), and its
    text in reading order: the whole left column, then the right one. ``para``: a paragraph
    space this tall after every fifth line of the right column, so its lines leave the left
    column's rows (as text columns do; a table's cells share rows)."""
    from helpers import font
    from test_formats_real_ocr import WORDS

    img = Image.new("L", size, 255)
    draw = ImageDraw.Draw(img)
    f = font(px)
    width = (size[0] - 120 - gutter) // 2
    columns, k = [], 0
    for c in range(2):
        x0, y, rows = 60 + c * (width + gutter), 60, []
        for _ in range(lines):
            words, x = [], x0
            while x + draw.textlength(WORDS[k % len(WORDS)], font=f) <= x0 + width:
                word = WORDS[k % len(WORDS)]
                draw.text((x, y), word, font=f, fill=0)
                words.append(word)
                x += draw.textlength(word + " ", font=f)
                k += 7
            rows.append(" ".join(words))
            y += int(px * 1.5) + (para if c and len(rows) % 5 == 0 else 0)
        columns.append("\n".join(rows))
    return img, "\n".join(columns)


@pytest.mark.real_ocr
@pytest.mark.parametrize("angle", [-4.0, 7.0])
def test_a_skewed_two_column_page_is_read_column_by_column_once_levelled(tmp_path, angle):
    """Tesseract reads a two-column page skewed by 4 or 7 degrees across the gutter (line 1 of
    the left column, then line 1 of the right one: half the text out of place, or none of it);
    levelled by ``prepare`` and decoded as the server decodes it, it reads each column in turn,
    as on the upright page. That the test can fail: the same page with ``deskew: off``."""
    from pipeline.ocr import create_engine
    from pipeline.ocr.pool import decode_image

    page, text = _two_columns()
    im, _ = variant(page, [], "skew", angle)
    path = tmp_path / "scan.png"
    im.save(path)
    engine = create_engine("tesseract")

    def cer(limits: PrecheckLimits) -> float:
        (sent,) = prepare_file(path, limits).pages
        errors, length = cer_counts(text, engine.recognize(decode_image(sent.data)).text)
        return errors / length

    assert cer(PrecheckLimits(deskew="off")) > 0.3
    assert cer(PrecheckLimits()) <= 0.01


@pytest.mark.real_ocr
def test_tesseract_reads_a_page_alike_from_a_file_or_from_memory(tmp_path):
    """A page opened from a PNG (no resolution stored) and the same pixels made in memory are one
    reading: Tesseract is told one resolution for both (``pipeline.ocr.tessimage``). Left to
    estimate it from the PNG, Tesseract read this plain two-column page across the gutter."""
    from pipeline.ocr import create_engine

    page, text = _two_columns()
    path = tmp_path / "page.png"
    page.save(path)
    engine = create_engine("tesseract")
    with Image.open(path) as stored:
        from_file = engine.recognize(stored).text
    assert from_file == engine.recognize(page.copy()).text
    errors, length = cer_counts(text, from_file)
    assert errors / length <= 0.01


def _shaded_table(size=(1200, 1000), px=20):
    """A table of figures whose right column is shaded solid grey, ruled, under a heading as
    wide as the table: the shading spans every row and the heading every column, so the profile
    has no gaps either way until the shading is set aside."""
    from test_formats_real_ocr import WORDS
    from helpers import font

    img = Image.new("L", size, 255)
    draw = ImageDraw.Draw(img)
    f = font(px)
    x_cols = (60, 420, 640, 860)
    top, bottom = 60, size[1] - 60
    for x in x_cols[3:]:
        draw.rectangle((x - 10, top, x + 190, bottom), fill=120)
    draw.rectangle((50, top, size[0] - 50, bottom), outline=0, width=3)
    for x in x_cols[1:]:
        draw.line((x - 15, top, x - 15, bottom), fill=0, width=2)
    heading, k = [], 0
    while draw.textlength(" ".join(heading), font=f) < size[0] - 180:
        heading.append(WORDS[k % len(WORDS)])
        k += 7
    draw.text((x_cols[0], top + 15), " ".join(heading), font=f, fill=0)   # across every column
    y, k = top + 20 + 2 * px, 0
    while y + px < bottom - 10:
        draw.text((x_cols[0], y), " ".join(WORDS[(k + i) % len(WORDS)] for i in range(3)), font=f, fill=0)
        for x in x_cols[1:]:
            draw.text((x, y), f"{(k * 37) % 900 + 100}.{k % 10}", font=f, fill=0)
        y += int(px * 1.6)
        draw.line((50, y - 6, size[0] - 50, y - 6), fill=0, width=2)     # ruled between rows
        k += 5
    return img


def _on_a_ground(page: Image.Image, ground: int, frame: int = 60) -> Image.Image:
    """The page laid on a flat ground ``frame`` pixels wide all round (a scanner's lid or a
    black-backed feeder around the paper; a white frame around a slide's dark ground)."""
    out = Image.new("L", (page.width + 2 * frame, page.height + 2 * frame), ground)
    out.paste(page, (frame, frame))
    return out


def _slide(size=(1300, 900), px=30):
    """Light text on a dark ground, framed in white: a presentation slide as scanned."""
    from test_formats_real_ocr import WORDS
    from helpers import font

    img = Image.new("L", size, 40)
    draw = ImageDraw.Draw(img)
    f = font(px)
    y, k = 60, 0
    while y + px < size[1] - 60:
        draw.text((60, y), " ".join(WORDS[(k + i) % len(WORDS)] for i in range(6)), font=f, fill=235)
        y += int(px * 1.7)
        k += 6
    return _on_a_ground(img, 255, 30)


@pytest.mark.parametrize("page", ["shaded table", "slide", "dark surround", "wide dark surround"])
@pytest.mark.parametrize("angle", [-1.5, 4.0, -7.0])
def test_skewed_tables_slides_and_pages_on_a_dark_ground_are_levelled(page, angle):
    """The skew of pages whose ink is not only lines of print on paper: a table's shaded
    columns and rules, a slide's white frame, a feeder's black surround (each left unlevelled
    once: the profile was flat or the lines not clear enough across the page)."""
    if page == "shaded table":
        im = _shaded_table()
    elif page == "slide":
        im = _slide()
    else:   # wide: the ground covers two thirds of the scan (a small page on a feeder's bed)
        frame = 350 if page.startswith("wide") else 60
        im = _on_a_ground(draw_words((1100, 900), 28, 0, per_line=5, lines=12)[0], 20, frame)
    assert upright.measure(im).noop
    skewed, _ = variant(im, [], "skew", angle)
    if page.endswith("dark surround"):     # the feeder's ground, not white, fills the corners too
        skewed, _ = variant(im.point(lambda v: 255 - v), [], "skew", angle)
        skewed = skewed.point(lambda v: 255 - v)
    how = upright.measure(skewed)
    assert how.turn == 0 and abs(how.skew + angle) <= 0.3, how


@pytest.mark.shared_data
@pytest.mark.parametrize("name,angle", [("table_01.png", -4.0), ("table_04.png", 4.0), ("table_04.png", -1.5),
                                        ("multicol_03.png", 1.5), ("multicol_10.png", -1.5),
                                        ("slide_01.png", 1.5)])
def test_skewed_scans_whose_lines_were_unclear_are_levelled(shared_data, name, angle):
    """Scans the profile once left skewed: ruled tables (as spiky down the page as across),
    shaded columns, a dark sidebar, a slide in a white frame."""
    path = next(p for p in _scans(shared_data) if p.name == name)
    im, _ = variant(_gray(path), [], "skew", angle)
    how = upright.measure(im)
    assert how.turn == 0 and abs(how.skew + angle) <= 0.5, how


def test_text_columns_are_found_on_a_page_set_in_columns_only():
    """``text_columns`` gives a page set in columns its two columns, left then right, split in
    the gutter, and so does prose whose columns share rows (an article on a baseline grid); a
    single column, a table (short cells on shared rows), and a few lines of words set far apart
    (their spaces are no gutters) are read whole (None)."""
    from pipeline.ocr.columns import text_columns

    page, _ = _two_columns(size=(1000, 700), px=20, gutter=24, lines=18, para=15)
    regions = text_columns(page)
    assert [kind for kind, _ in regions] == ["column", "column"], regions
    (_, left), (_, right) = regions
    assert left[2] == right[0] and 500 - 24 <= left[2] <= 500 + 24 and left[1] < 64 and 638 < left[3]
    single = Image.new("L", (1000, 700), 255)
    single.paste(page.crop((0, 0, 500, 700)), (250, 0))
    assert text_columns(single) is None
    grid, _ = _two_columns()
    assert [kind for kind, _ in text_columns(grid)] == ["column", "column"]
    table = Image.new("L", (1400, 1000), 255)
    draw = ImageDraw.Draw(table)
    for n, y in enumerate(range(60, 940, 40)):
        for x, cell in ((60, f"item {n}"), (330, f"{n * 3}.50"), (760, f"north {n}"), (1060, f"{n} kg")):
            draw.text((x, y), cell, font=font(24), fill=0)
    assert text_columns(table) is None
    spaced, _ = draw_words((1200, 900), 32, 0, per_line=4, lines=7)   # word spaces, no columns
    assert text_columns(spaced) is None
    assert text_columns(_lists_side_by_side()) is None   # short entries: a receipt's, a form's


def _numbered_lines(size=(1000, 1300), px=22, short_line=3):
    """A transcript page: line numbers in a narrow column at x = 300, each line's text beside
    them up to the right margin, except line ``short_line``, which ends at x = 500: its ink
    (number and text) sits about 110 px left of the page's middle, a little over a tenth of the
    page's width."""
    from helpers import font

    img = Image.new("L", size, 255)
    draw = ImageDraw.Draw(img)
    f = font(px)
    words = "the witness said that the records were kept in the basement office until the move".split()
    y, k = 60, 0
    for n in range(1, 21):
        draw.text((300, y), f"{n:2d}", font=f, fill=0)
        x, end = 430, (500 if n == short_line else 985)
        while x + draw.textlength(words[k % len(words)], font=f) <= end:
            draw.text((x, y), words[k % len(words)], font=f, fill=0)
            x += draw.textlength(words[k % len(words)] + " ", font=f)
            k += 1
        y += 56
    return img


def test_white_margins_do_not_change_a_pages_columns():
    """A levelled page's canvas grows by white margins (80 px a side: a 1000 px page levelled
    by about 7 degrees). The page's columns must not change with them: a short line that is off
    centre on the page (more than a tenth of its width from the middle) was, on the wider canvas,
    within a tenth of the canvas's width, so it counted as a centred title and cut the section of
    columns in two (deposition_02 levelled: seven regions instead of three, 12-16 % CER against
    6.6 %). ``columns.centred`` now measures the centre on the printed width."""
    from PIL import ImageOps

    from pipeline.ocr.columns import text_columns

    page = _numbered_lines()
    regions = text_columns(page)
    assert [kind for kind, _ in regions] == ["column", "column"], regions
    pad = 80
    padded = text_columns(ImageOps.expand(page, border=pad, fill=255))
    assert padded is not None and [kind for kind, _ in padded] == ["column", "column"], padded
    assert abs(padded[0][1][2] - (regions[0][1][2] + pad)) <= 2     # the same gutter, moved by the margin


@pytest.mark.real_ocr
def test_tesseract_reads_a_forms_label_and_value_on_one_line():
    """A page read whole that holds no columns of running text (a form, a receipt, a table) is
    read as lines across the page (PSM 4), so each label stays with its value. Tesseract's own
    layout (PSM 3) read this form as two columns, every label, then every value (0 of 10 rows
    together; the rendered dev set's forms 49.9 % CER, 9.6 % now)."""
    from helpers import font
    from pipeline.ocr import create_engine
    from pipeline.ocr.columns import page_layout

    rows = [("Name", "Anna Weber"), ("Date of birth", "12 March 1961"), ("Place", "Leipzig"),
            ("Account", "4471 0923"), ("Amount due", "1,204.50 EUR"), ("Status", "paid"),
            ("Reference", "KX-2231"), ("Clerk", "J. Brandt"), ("Office", "Room 14"), ("Phone", "0341 55 21")]
    page = Image.new("L", (1000, 700), 255)
    draw = ImageDraw.Draw(page)
    for k, (label, value) in enumerate(rows):
        draw.text((60, 60 + 52 * k), label, font=font(22), fill=0)
        draw.text((520, 60 + 52 * k), value, font=font(22), fill=0)
    assert page_layout(page) == (None, "cells")
    text = create_engine("tesseract").recognize(page).text
    assert sum(f"{label} {value}" in text for label, value in rows) >= 8, text


def _lists_side_by_side(size=(1000, 900), px=20):
    """Three columns of short entries (an item, a count, a price) on pitches of their own, so
    their rows do not line up as a table's do: no running text in any of them."""
    from helpers import font

    img = Image.new("L", size, 255)
    draw = ImageDraw.Draw(img)
    f = font(px)
    for x, pitch, entry in ((60, 34, "Item {k}"), (430, 41, "{k} pcs"), (760, 37, "{k}.50 EUR")):
        y, k = 60, 1
        while y + px < size[1] - 40:
            draw.text((x, y), entry.format(k=k * 7 % 90 + 3), font=f, fill=0)
            y += pitch
            k += 1
    return img


@pytest.mark.real_ocr
@pytest.mark.shared_data
def test_tesseract_reads_a_multi_column_scan_alike_when_moved_by_a_quarter_pixel(shared_data):
    """Tesseract's own column finding changes under the least resampling: multicol_07 read whole
    was 8.7 % CER upright and 50.8 % moved by a quarter pixel (its columns read across). Read
    column by column (``columns.text_columns``) both read alike, and well. No rendered page
    reproduced this (clean columns, ragged or justified, gutters of 8-20 px: Tesseract read
    them the same at every shift), hence the real scan."""
    from pipeline.ocr import create_engine

    path = next(p for p in _scans(shared_data) if p.name == "multicol_07.png")
    truth = (shared_data / "scribeocr-benchmark" / "gt_txt" / "multicol_07.txt").read_text()
    page = _gray(path)
    moved = page.transform(page.size, Image.Transform.AFFINE, (1, 0, 0.25, 0, 1, 0),
                           Image.Resampling.BICUBIC, fillcolor=255)
    engine = create_engine("tesseract")
    cers = []
    for im in (page, moved):
        errors, length = cer_counts(truth, engine.recognize(im).text)
        cers.append(errors / length)
    assert max(cers) < 0.2 and abs(cers[0] - cers[1]) <= 0.01, cers


LONG_WORDS = ("constituent correspondence administration interrogatories photographic "
              "ecclesiastical parliamentary transcription").split()


@pytest.mark.real_ocr
async def test_the_pdf_of_a_levelled_page_gives_its_long_words_whole_to_pdftotext(tmp_path):
    """poppler (pdftotext, and the viewers built on it) breaks a word drawn at a slant into
    pieces ("constitue nt") and leaves text lines of it in the wrong order: the searchable PDF of
    a page levelled by a few degrees draws its words level in the page's quarter-turn frame,
    each centred on its box, as long as the word and as high as its line (solved from the
    box). A turned page still draws them along its quarter turn."""
    img = Image.new("L", (1300, 560), 255)
    draw, f = ImageDraw.Draw(img), font(34)
    y, k = 60, 0
    for _ in range(5):
        x = 60
        for _ in range(3):
            word = LONG_WORDS[k % len(LONG_WORDS)]
            draw.text((x, y), word, font=f, fill=0)
            x += draw.textlength(word + "  ", font=f)
            k += 1
        y += 90
    inp = tmp_path / "in"
    inp.mkdir()
    for kind, amount in (("skew", 7.0), ("skew", -4.0), ("turn", 90)):
        im, _ = variant(img, [], kind, amount)
        if kind == "turn":
            im, _ = variant(im, [], "skew", 4.0)
        im.save(inp / f"{kind}{amount:+g}.png")
    async with EmbeddedServer(ServerConfig(engine="tesseract", tokens=(TOKEN,))) as srv:
        cfg = write_config(tmp_path, srv.base_url, api__format="json", outputs=["txt", "json", "alto", "pdf"],
                           timeouts__job_s=120)
        code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK, report
    out = tmp_path / "out"
    for name in ("skew+7.png", "skew-4.png", "turn+90.png"):
        transforms = json.loads((out / f"{name}.json").read_text())["image"]["pages"][0]["transforms"]
        assert any(t.startswith("deskew:") for t in transforms), (name, transforms)
        read = [w for _, w, _, _ in alto_words(out / f"{name}.alto.xml") if w in LONG_WORDS]
        assert len(read) >= 12, (name, read)          # Tesseract reads them on the levelled page
        extracted = [w for _, w, _ in pdf_words(out / f"{name}.pdf")]
        whole = [w for w in read if w in extracted]
        assert len(whole) == len(read), (name, sorted(set(read) - set(whole)), extracted)


def test_a_big_jpeg_found_sideways_is_decoded_at_the_scale_it_is_sent_at(tmp_path):
    """A JPEG twice as wide as an upload is decoded at a DCT scale (``jpeg_draft``) chosen for
    its width; a tall page stored sideways (a receipt, a scroll) is sent turned, its stored
    height as its width: it was decoded at 1/2 and blown up again to its full size. Now its turn
    is measured first, so it is decoded whole and sent pixel for pixel; a page that is wide as
    printed keeps its fast decode."""
    from helpers import font

    page = Image.new("L", (1400, 9000), 255)
    draw, f = ImageDraw.Draw(page), font(40)
    words = "archive record letter parish harbour winter garden market bridge castle river".split()
    for k, y in enumerate(range(60, 8900, 70)):
        draw.text((60, y), " ".join(words[(k + i) % len(words)] for i in range(5)), font=f, fill=0)
    sideways = tmp_path / "sideways.jpg"
    page.transpose(Image.Transpose.ROTATE_90).convert("RGB").save(sideways, quality=90)
    (prepared,) = prepare_file(sideways).pages
    assert "turn:270" in prepared.transforms, prepared.transforms
    assert not any(t.startswith(("jpeg_draft", "downscale")) for t in prepared.transforms), prepared.transforms
    with Image.open(sideways) as stored:
        expected = stored.convert("RGB").split()[0].transpose(Image.Transpose.ROTATE_270)
    with Image.open(io.BytesIO(prepared.data)) as sent:
        assert sent.size == (1400, 9000) and sent.tobytes() == expected.tobytes()
    wide = tmp_path / "wide.jpg"
    page.crop((0, 0, 1400, 1400)).resize((9000, 1400)).convert("RGB").save(wide, quality=90)
    (prepared,) = prepare_file(wide).pages
    assert "jpeg_draft:1/2" in prepared.transforms and not any(t.startswith("turn:") for t in prepared.transforms)


@pytest.mark.parametrize("compression", ["raw", "tiff_deflate"])
async def test_a_tiff_page_with_an_orientation_tag_is_turned_once(tmp_path, server, compression):
    """Pillow turns a TIFF frame by its Orientation tag as it loads it (and garbles an
    uncompressed one turned 5-8); the pipeline turned it as well, by the tag it had read first:
    page 2 of this TIFF, stored sideways with Orientation 6 (upright as a viewer shows it), was
    sent stretched to its stored 1294 x 1000. Now it is sent upright, pixel for pixel the page
    it shows, and ALTO and the PDF describe it as shown; page 3, upright with a wrong
    Orientation 3, is shown upside down and so turned back (``turn:180``)."""
    from PIL import TiffImagePlugin

    from formats_checks import pdf_page_sizes
    from pipeline.ocr.fast import pixel_digest
    from test_formats import alto_pages

    page, _ = draw_words((1000, 1294), 36, 0, per_line=4, lines=12)
    inp = tmp_path / "in"
    inp.mkdir()
    with TiffImagePlugin.AppendingTiffWriter(inp / "mixed.tif", True) as tf:
        for im, orientation in ((page, 1), (page.transpose(Image.Transpose.ROTATE_90), 6), (page, 3)):
            tags = TiffImagePlugin.ImageFileDirectory_v2()
            tags[274] = orientation
            im.save(tf, format="TIFF", tiffinfo=tags, compression=compression, dpi=(150, 150))
            tf.newFrame()
    cfg = write_config(tmp_path, server.base_url, api__format="json", outputs=["txt", "json", "alto", "pdf"])
    code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK, report
    out = tmp_path / "out"
    record = json.loads((out / "mixed.tif.json").read_text())["image"]
    assert (record["source_width"], record["source_height"]) == (1000, 1294)
    transforms = [p["transforms"] for p in record["pages"]]
    assert "exif_transpose:6" in transforms[1] and not any(t.startswith("turn:") for t in transforms[1]), transforms
    assert "exif_transpose:3" in transforms[2] and "turn:180" in transforms[2], transforms
    text = (out / "mixed.tif.txt").read_text()
    assert text.count(f"FAST-OCR 1000x1294 L\npixels:{pixel_digest(page)}") == 3, text
    assert alto_pages(out / "mixed.tif.alto.xml") == [(1000, 1294)] * 3
    assert pdf_page_sizes(out / "mixed.tif.pdf") == [(480.0, 621.12)] * 3
