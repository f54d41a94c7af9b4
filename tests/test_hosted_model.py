"""The hosted-like model (``pipeline/server/hosted.py``) and the pipeline against it: Markdown
answers without boxes become a plain ``.txt``, the ``md`` output keeps them, and ALTO/hOCR carry
no markup as words. Job times are scaled down to 10-50 ms (never asserted)."""

from __future__ import annotations

import json
import re

import pytest
from PIL import Image, ImageDraw

from conftest import TOKEN
from formats_checks import alto_words, hocr_words, validate_alto
from helpers import distinct_png, font, run_pipeline, save, write_config
from pipeline.exitcodes import ExitCode
from pipeline.ocr.base import OcrBlock, OcrLine, OcrPage
from pipeline.server import EmbeddedServer, ServerConfig
from pipeline.server.hosted import HostedSettings, render_markdown

HOSTED = "Nanonets_Ocr_S_Hosted"
QUICK = HostedSettings(job_s=(0.01, 0.05), max_input_height=None)  # whole pages: the Markdown, not the strips, is judged here
MARKUP = re.compile(r"[#<>|*]|page_number|</?t[dr]")


def hosted_server(engine: str) -> EmbeddedServer:
    return EmbeddedServer(ServerConfig(engine=engine, tokens=(TOKEN,), hosted=QUICK))


def line(text: str, box: tuple[int, int, int, int]) -> OcrLine:
    return OcrLine(text, box, 0.99)


def test_render_markdown_finds_heading_table_and_page_number_from_the_layout():
    # Line boxes as an engine reports them: a tall title, running text, a 3x3 grid of short
    # cells split over blocks by the reading order, and a lone number at the foot.
    blocks = (
        OcrBlock((line("Harbour Report", (50, 40, 560, 130)),)),
        OcrBlock((line("The ships arrived in the early morning hours.", (55, 160, 700, 195)),
                  line("Cargo was unloaded before noon by the crews.", (55, 205, 720, 240)))),
        OcrBlock((line("Vessel", (50, 350, 150, 390)),)),
        OcrBlock((line("Tons", (390, 352, 470, 390)), line("Anna", (50, 400, 140, 440)),
                  line("1200", (390, 400, 475, 440)), line("Crew", (690, 350, 780, 390)))),
        OcrBlock((line("14", (690, 400, 740, 440)), line("Clara", (50, 450, 140, 490)),
                  line("2100", (390, 450, 475, 490)), line("22", (690, 450, 740, 490)))),
        OcrBlock((line("12", (470, 1220, 520, 1255)),)),
    )
    md = render_markdown(OcrPage("rapidocr", 1000, 1300, blocks))
    assert md == ("# Harbour Report\n\n"
                  "The ships arrived in the early morning hours.\nCargo was unloaded before noon by the crews.\n\n"
                  "<table><tr><td>Vessel</td><td>Tons</td><td>Crew</td></tr>"
                  "<tr><td>Anna</td><td>1200</td><td>14</td></tr>"
                  "<tr><td>Clara</td><td>2100</td><td>22</td></tr></table>\n\n"
                  "<page_number>12</page_number>")


def test_two_text_columns_are_no_table_and_a_number_mid_page_no_page_number():
    left = tuple(line(f"left column running text line number {k} here", (40, 100 + 50 * k, 480, 135 + 50 * k))
                 for k in range(4))
    right = tuple(line(f"right column running text line number {k} here", (520, 100 + 50 * k, 960, 135 + 50 * k))
                  for k in range(4))
    mid = (line("7", (480, 600, 500, 635)),)
    md = render_markdown(OcrPage("rapidocr", 1000, 1300, (OcrBlock(left), OcrBlock(right), OcrBlock(mid))))
    assert "<table>" not in md and "<page_number>" not in md and "#" not in md
    assert md.endswith("\n\n7")


def test_a_sidebar_beside_running_text_and_line_numbers_are_no_table():
    # A text column with a sidebar of short entries beside it, and a deposition's line numbers
    # beside its lines: rows of two lines side by side, but one of them is running text, so no
    # row is a table row (the whole page used to become one <table> of column + sidebar).
    text = tuple(line(f"a narrow column's running text, {k}", (40, 100 + 50 * k, 420, 135 + 50 * k))
                 for k in range(5))
    sidebar = tuple(line(f"Item {k}", (700, 100 + 50 * k, 800, 135 + 50 * k)) for k in range(5))
    numbers = tuple(line(f"{k + 1}", (10, 500 + 50 * k, 30, 535 + 50 * k)) for k in range(5))
    testimony = tuple(line(f"Q. Where were you on the {k}th?", (60, 500 + 50 * k, 480, 535 + 50 * k))
                      for k in range(5))
    md = render_markdown(OcrPage("rapidocr", 1000, 1300, (OcrBlock(text), OcrBlock(sidebar),
                                                          OcrBlock(numbers), OcrBlock(testimony))))
    assert "<table>" not in md
    assert "Item 4" in md and "Q. Where were you on the 4th?" in md


def test_hosted_settings_refuse_a_backwards_time_range():
    with pytest.raises(ValueError, match="job_s"):
        HostedSettings(job_s=(5.0, 1.0))


async def test_the_hosted_like_model_is_offered_and_answers_without_boxes(tmp_path):
    async with hosted_server("fast") as srv:
        distinct_png(tmp_path / "in" / "a.png", 1)
        cfg = write_config(tmp_path, srv.base_url, api__model=HOSTED, api__format="json",
                           outputs=["txt", "json", "md"])
        code, report, _ = await run_pipeline(cfg, TOKEN)
        assert code == ExitCode.OK, report
    doc = json.loads((tmp_path / "out" / "a.png.json").read_text())
    (page,) = doc["pages"]
    assert set(page["result"]) == {"text"}          # the assumed JSON shape: Markdown, no boxes
    assert page["result"]["text"].startswith("FAST-OCR 300x200")
    assert (tmp_path / "out" / "a.png.md").read_text() == page["result"]["text"] + "\n"


def draw_report_page() -> Image.Image:
    img = Image.new("L", (1000, 1300), "white")
    d = ImageDraw.Draw(img)
    d.text((60, 50), "Harbour Report", font=font(64), fill=0)
    y = 160
    for t in ("The ships arrived in the early morning hours.", "Cargo was unloaded before noon by the crews.",
              "Weather remained calm for the whole week."):
        d.text((60, y), t, font=font(28), fill=0)
        y += 45
    y += 60
    for row in (("Vessel", "Tons", "Crew"), ("Anna", "1200", "14"), ("Boreas", "860", "9"), ("Clara", "2100", "22")):
        for x, cell in zip((60, 400, 700), row):
            d.text((x, y), cell, font=font(28), fill=0)
        y += 50
    d.text((480, 1220), "12", font=font(28), fill=0)
    return img


@pytest.mark.real_ocr
@pytest.mark.parametrize("fmt", ["text", "json"])
async def test_the_pipeline_writes_plain_txt_markdown_md_and_no_markup_words(tmp_path, fmt):
    save(draw_report_page(), tmp_path / "in" / "report.png", "PNG")
    outputs = ["txt", "json", "md"] + (["alto", "hocr"] if fmt == "json" else [])
    async with hosted_server("rapidocr") as srv:
        cfg = write_config(tmp_path, srv.base_url, api__model=HOSTED, api__format=fmt, outputs=outputs,
                           timeouts__job_s=300)  # RapidOCR on a loaded machine: never the judge here
        code, report, _ = await run_pipeline(cfg, TOKEN)
        assert code == ExitCode.OK, report
    out = tmp_path / "out"
    md = (out / "report.png.md").read_text()
    assert md.startswith("# Harbour Report\n")
    assert "<table><tr><td>Vessel</td><td>Tons</td><td>Crew</td></tr>" in md
    assert md.rstrip().endswith("<page_number>12</page_number>")
    txt = (out / "report.png.txt").read_text()
    assert not MARKUP.search(txt), txt
    assert txt.startswith("Harbour Report\n")
    assert "Vessel\tTons\tCrew\nAnna\t1200\t14\n" in txt
    assert txt.rstrip().endswith("\n12")
    doc = json.loads((out / "report.png.json").read_text())
    (page,) = doc["pages"]
    assert page["text"] == txt and doc["text"] == txt
    assert page["answer"] + "\n" == md                       # the raw answer is kept
    if fmt == "json":
        assert page["result"] == {"text": page["answer"]}
        assert page["placed"]["words"] == len(txt.split())    # the .txt's words go to the placer (run/placing.py)
        validate_alto(out / "report.png.alto.xml")
        for words in (alto_words(out / "report.png.alto.xml"), hocr_words(out / "report.png.hocr")):
            texts = [w[1] for w in words]
            assert "Harbour" in texts and "Vessel" in texts and "12" in texts
            assert not [t for t in texts if MARKUP.search(t)], texts
            assert sum(w[2] is not None for w in words) == page["placed"]["placed"]   # placed, or none


@pytest.mark.real_ocr
async def test_an_identical_file_reuses_the_raw_answer_not_the_plain_text(tmp_path):
    save(draw_report_page(), tmp_path / "in" / "a" / "report.png", "PNG")
    async with hosted_server("rapidocr") as srv:
        cfg = write_config(tmp_path, srv.base_url, api__model=HOSTED, outputs=["txt", "json", "md"], timeouts__job_s=300)
        code, report, _ = await run_pipeline(cfg, TOKEN)
        assert code == ExitCode.OK, report
        save(draw_report_page(), tmp_path / "in" / "b" / "report.png", "PNG")   # the same pixels, a new file
        code, report, _ = await run_pipeline(cfg, TOKEN)
        assert code == ExitCode.OK, report
        assert srv.counters.submits == 1
    out = tmp_path / "out"
    doc = json.loads((out / "b" / "report.png.json").read_text())
    assert doc["pages"][0]["reused"] is True
    assert (out / "b" / "report.png.md").read_text() == (out / "a" / "report.png.md").read_text()
    assert (out / "b" / "report.png.txt").read_text() == (out / "a" / "report.png.txt").read_text()
    assert "<table>" in doc["pages"][0]["answer"] and "<" not in doc["text"]


@pytest.mark.parametrize("foot, number", [("12", True), ("- 12 -", True), ("xii", True), ("Page 7", True),
                                          ("civic", False), ("Thank you", False), ("1952-03-04", False)])
def test_only_a_page_number_at_the_foot_becomes_page_number(foot, number):
    from pipeline.server.hosted import page_number_line

    body = line("Some running text on the page body here.", (50, 100, 700, 140))
    page = OcrPage("rapidocr", 1000, 1300, (OcrBlock((body,)), OcrBlock((line(foot, (450, 1220, 560, 1255)),))))
    assert (page_number_line(page) is not None) is number
    assert (f"<page_number>{foot}</page_number>" in render_markdown(page)) is number


def test_a_number_beside_other_cells_at_the_foot_is_no_page_number():
    """A strip of a table often ends with a row whose last cell is a bare number: it is a cell,
    not the page's number (a page number stands alone on its row)."""
    from pipeline.server.hosted import page_number_line

    body = line("Some running text on the page body here.", (50, 100, 700, 140))
    row = (line("Blaine", (50, 1222, 160, 1255)), line("292", (400, 1220, 460, 1254)), line("25", (800, 1221, 840, 1256)))
    page = OcrPage("rapidocr", 1000, 1300, (OcrBlock((body,)), OcrBlock(row)))
    assert page_number_line(page) is None and "<page_number>" not in render_markdown(page)


async def test_the_hosted_model_answers_a_given_markdown_registered_with_the_truth_engine(tmp_path):
    """With the ``truth`` engine, the hosted-like model answers the Markdown a test registered for
    the page (its job times, its JSON wrapping and its size limits stay the model's), in both
    formats: before, a text-only page had no lines to render and every answer was empty."""
    from pipeline.formats.markdown import plain_text
    from pipeline.ocr.pool import decode_image
    from pipeline.ocr.truth import register

    answer = "# Harbour Report\n\n<table><tr><th>Vessel</th><td>Anna</td></tr></table>\n<page_number>4</page_number>"
    page = distinct_png(tmp_path / "in" / "page.png", 3)
    register(tmp_path / "truth", decode_image(page.read_bytes()), answer)
    for fmt in ("text", "json"):
        async with EmbeddedServer(ServerConfig(engine="truth", tokens=(TOKEN,), hosted=QUICK,
                                               truth_dir=str(tmp_path / "truth"))) as srv:
            cfg = write_config(tmp_path, srv.base_url, api__model=HOSTED, api__format=fmt,
                               output=str(tmp_path / fmt), outputs=["txt", "json", "md"])
            code, report, _ = await run_pipeline(cfg, TOKEN)
        assert code == ExitCode.OK, report
        assert (tmp_path / fmt / "page.png.txt").read_text(encoding="utf-8") == plain_text(answer) != ""
        assert (tmp_path / fmt / "page.png.md").read_text(encoding="utf-8") == answer + "\n"
        page_json = json.loads((tmp_path / fmt / "page.png.json").read_text(encoding="utf-8"))["pages"][0]
        assert page_json.get("result") == ({"text": answer} if fmt == "json" else None)
