"""Text-only answers whose words cannot all be placed, through the real runner, the ``truth``
engine (the known text of each page, no boxes, as the hosted model answers) and ``verify``.

What an archive meets: a line broken with a hyphen (pdfium reads the layer's "dis-" at a line's
end as one U+FFFE joining it to the next line), an answer word printed nowhere on the page (it
gets no box, so no place in the PDF's text layer), a ruled table Tesseract's sparse-text mode
reads no word of (tesserocr raises "No text returned"; the placement of the words the earlier
readings placed must survive it), and a blank page (nothing placed: ``"positions": false``, also
when ALTO/PDF are added to a done tree later). A fresh tree's ``verify`` must find nothing wrong.
And the searchable PDF's layer for placed words: at the angle the text runs on a page read
turned, and kept in order where two placed boxes overlap.
"""

from __future__ import annotations

import json

import pypdfium2 as pdfium
from PIL import Image, ImageDraw

from conftest import TOKEN
from helpers import font, run_pipeline, save, write_config
from pipeline.exitcodes import ExitCode
from pipeline.inputs.pages import open_source
from pipeline.inputs.prepare import PrecheckLimits
from pipeline.config import PdfConfig
from pipeline.ocr.pool import decode_image
from pipeline.ocr.truth import register
from pipeline.server import EmbeddedServer, ServerConfig
from test_crash_safety import run_cli

CELLS = "parish harbour council minutes shipment railway district treasury volume folio estate museum".split()


def lines_page(lines: list[str], px: int = 40) -> Image.Image:
    img = Image.new("L", (1300, 120 + len(lines) * px * 2), 255)
    draw = ImageDraw.Draw(img)
    for n, line in enumerate(lines):
        draw.text((60, 60 + n * px * 2), line, font=font(px), fill=0)
    return img


def ruled_table(rows: int = 6, cols: int = 3, cell: tuple[int, int] = (400, 80), px: int = 36,
                rule: int = 6) -> tuple[Image.Image, str]:
    """A table with heavy rules round every cell; its text row by row."""
    w, h = cell
    img = Image.new("L", (cols * w + 40, rows * h + 40), 255)
    draw = ImageDraw.Draw(img)
    for r in range(rows + 1):
        draw.line([(20, 20 + r * h), (20 + cols * w, 20 + r * h)], fill=0, width=rule)
    for c in range(cols + 1):
        draw.line([(20 + c * w, 20), (20 + c * w, 20 + rows * h)], fill=0, width=rule)
    text = []
    for r in range(rows):
        row = [CELLS[(r * cols + c) % len(CELLS)] for c in range(cols)]
        for c, word in enumerate(row):
            draw.text((30 + c * w, 20 + r * h + (h - px) // 2), word, font=font(px), fill=0)
        text.append(" ".join(row))
    return img, "\n".join(text)


def make_inputs(inp) -> dict[str, str]:
    hyphen = ["The parish council of the harbour dis-", "trict met on the morning of the survey",
              "and the treasury report was approved."]
    printed = ["Minutes of the village school committee", "held at the chapel on the first of May."]
    grid, grid_text = ruled_table()
    pages = {"hyphen.png": (lines_page(hyphen), "\n".join(hyphen)),
             # the answer says two words more than the page prints: they get no box
             "extra.png": (lines_page(printed), "\n".join(printed) + "\nzymurgy quixotically"),
             "table.png": (grid, grid_text),
             "blank.png": (Image.new("L", (900, 600), 255), "nothing printed here")}
    for rel, (img, _) in pages.items():
        save(img, inp / rel, dpi=(300, 300))
    return {rel: text for rel, (_, text) in pages.items()}


async def test_verify_finds_a_fresh_tree_sound_when_words_are_hyphenated_or_unplaced(tmp_path):
    answers = make_inputs(tmp_path / "in")
    for rel, text in answers.items():
        source = open_source(tmp_path / "in" / rel, PrecheckLimits(), PdfConfig())
        try:
            register(tmp_path / "truth", decode_image(source.page(0).data), text)
        finally:
            source.close()
    async with EmbeddedServer(ServerConfig(engine="truth", tokens=(TOKEN,), truth_dir=str(tmp_path / "truth"))) as srv:
        code, report, _ = await run_pipeline(write_config(tmp_path, srv.base_url), TOKEN)
        assert code == ExitCode.OK, report
        jobs = srv.counters.jobs_created
        # ALTO and the PDF added to the done tree: the pages are placed now, with no API call
        cfg = write_config(tmp_path, srv.base_url, outputs=["txt", "json", "alto", "pdf"])
        code, report, _ = await run_pipeline(cfg, TOKEN)
        assert code == ExitCode.OK and report["outputs_regenerated"] == 4, report
        assert srv.counters.jobs_created == jobs
    pages = {rel: json.loads((tmp_path / "out" / f"{rel}.json").read_text())["pages"][0] for rel in answers}

    table = pages["table.png"]["placed"]
    assert "error" not in table and table["placed"] >= 3, table     # a reading of no word is no error
    assert pages["extra.png"]["placed"]["placed"] == pages["extra.png"]["placed"]["words"] - 2
    assert pages["hyphen.png"]["placed"]["placed"] == pages["hyphen.png"]["placed"]["words"]
    assert pages["blank.png"].get("positions") is False, pages["blank.png"]
    assert all("positions" not in pages[rel] for rel in ("hyphen.png", "extra.png", "table.png"))

    code, text = await run_cli("verify", str(cfg))
    assert code == ExitCode.OK, text
    assert "0 problems" in text


def _register(tmp_path, answers: dict[str, str]) -> None:
    for rel, text in answers.items():
        source = open_source(tmp_path / "in" / rel, PrecheckLimits(), PdfConfig())
        try:
            for i in range(source.page_count):
                register(tmp_path / "truth", decode_image(source.page(i).data), text)
        finally:
            source.close()


async def test_placed_words_of_a_turned_page_run_along_its_text_in_the_pdf(tmp_path):
    """A page scanned sideways is read turned upright; a text-only answer's words are placed on
    the upright upload and mapped back, and the searchable PDF must draw each at the angle its
    text runs on the page as stored (docs/formats.md, Coordinates), as it does for an engine's
    boxes: then pdfium's extraction (what ``verify`` and Chromium read) gives the answer's lines
    back. Drawn level in their tall narrow boxes, the words came back in another order. An
    image and a PDF page alike."""
    from fpdf import FPDF

    lines = ["The parish council of the harbour district", "met on the morning of the survey and",
             "agreed that the treasury report be approved", "by the members present at the meeting",
             "and the clerk will write to the county", "surveyor about the new quay wall this week"]
    sideways = lines_page(lines, px=36).rotate(90, expand=True)     # stored turned a quarter
    save(sideways, tmp_path / "in" / "turned.png", dpi=(300, 300))
    pdf = FPDF(unit="pt", format=(sideways.width * 72 / 300, sideways.height * 72 / 300))
    pdf.add_page()
    pdf.image(sideways, x=0, y=0, w=pdf.w, h=pdf.h)
    (tmp_path / "in" / "turned.pdf").write_bytes(bytes(pdf.output()))
    answer = "\n".join(lines)
    _register(tmp_path, {"turned.png": answer, "turned.pdf": answer})
    async with EmbeddedServer(ServerConfig(engine="truth", tokens=(TOKEN,), truth_dir=str(tmp_path / "truth"))) as srv:
        cfg = write_config(tmp_path, srv.base_url, outputs=["txt", "json", "pdf"])
        code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK, report
    for rel in ("turned.png", "turned.pdf"):
        doc = json.loads((tmp_path / "out" / f"{rel}.json").read_text())
        assert "turn:270" in doc["image"]["pages"][0]["transforms"], doc["image"]["pages"][0]
        assert doc["pages"][0]["placed"]["placed"] == doc["pages"][0]["placed"]["words"]
        pdf = pdfium.PdfDocument(str(tmp_path / "out" / f"{rel}.pdf"))
        try:
            text = pdf[0].get_textpage().get_text_range()
        finally:
            pdf.close()
        got = [" ".join(ln.split()) for ln in text.splitlines() if ln.strip()]
        assert got == lines, (rel, got)


def test_words_whose_boxes_overlap_keep_their_space_and_order_in_the_pdf(tmp_path):
    """A placed answer can give a word a box running into the next word's ("Document:" over
    the "28" of "28-1", seen on a court filing's header). Extractors order glyphs by position,
    so the space drawn after the first word's box came after the second word: "Document:28-1",
    and ``verify`` reported both words lost. The layer ends such a word where the next begins."""
    import pdfs
    from pipeline.formats.check import pdf_lost_words
    from pipeline.formats.model import Block, FileLayout, Line, PageLayout, Word
    from pipeline.formats.pdf_overlay import render_pdf_over_original
    from pipeline.formats.pdf_text import read_pdf

    src = pdfs.write(tmp_path / "in.pdf", pdfs.build([("scan", "x")], size=(400, 300)))
    frames, _ = read_pdf(src)
    words = (Word("Case", (40.0, 30.0, 70.0, 42.0), 0.9), Word("Document:", (76.0, 30.0, 140.0, 42.0), 0.9),
             Word("28-1", (128.0, 30.0, 152.0, 42.0), 0.9), Word("Filed", (160.0, 30.0, 185.0, 42.0), 0.9))
    line = Line("Case Document: 28-1 Filed", (40.0, 30.0, 185.0, 42.0), 0.9, words)
    page = PageLayout(0, *frames[0].size, "pt", (Block(line.box, (line,)),), True, "placed:read")
    out = tmp_path / "out.pdf"
    out.write_bytes(render_pdf_over_original(FileLayout("in.pdf", "in.pdf", (page,)), src, frames))
    pdf = pdfium.PdfDocument(str(out))
    try:
        text = pdf[0].get_textpage().get_text_range()
    finally:
        pdf.close()
    assert text.split() == ["Case", "Document:", "28-1", "Filed"], text
    assert pdf_lost_words([text], {"pages": [{"text": line.text}]}) is None


def test_a_word_set_over_another_keeps_its_glyphs_in_the_pdf(tmp_path):
    """Placed boxes can overlap across lines, or coincide: an answer's lone "," set on the comma
    that ends "appellatur," of another line (two readings of the page saw the comma apart and
    within the word; a 1668 scan), two words in one box. Extractors take a glyph drawn where the
    same glyph already is for a fake-bold stroke and drop it (pdfium: within 7 % of the font
    size), and order the rest by position: the "," was lost, "same"/"spot" came out "samepot".
    The layer now cuts words of one row apart (``formats/pdf_spans.py``), and draws a word whose
    box has no width (a cut share of a narrow word) in a sliver, where it was left out. The
    space after a line's last word ("Removal", set between "as" and "true,") is the word's own
    character: drawn apart, a few points wide after the like one ending "the", pdfium dropped it
    ("Removaltrue,"; a court filing placed by ink)."""
    from pipeline.formats.check import pdf_lost_words
    from pipeline.formats.model import Block, FileLayout, Line, PageLayout, Word
    from pipeline.formats.pdf import render_pdf

    src = save(Image.new("L", (2000, 600), 255), tmp_path / "page.png", dpi=(96, 96))
    lines = [[("lium", (304, 55, 439, 112)), (",", (1883, 48, 1909, 123)), ("Hominem.", (474, 55, 723, 112))],
             [("Civitas", (1464, 54, 1627, 112)), ("appellatur,", (1643, 55, 1906, 119))],
             [("same", (300, 300, 400, 340)), ("spot", (300, 300, 400, 340)), ("over", (500, 300, 700, 340))],
             [("lap", (550, 300, 650, 340)), ("nil", (800, 300, 800, 340))],
             [("as", (877, 446, 910, 464)), ("true,", (922, 440, 998, 469)), ("the", (1011, 437, 1063, 464))],
             [("Removal", (877, 440, 998, 469))]]
    layout_lines = tuple(Line(" ".join(t for t, _ in ws), None, None, tuple(Word(t, b, 0.9) for t, b in ws))
                         for ws in lines)
    page = PageLayout(0, 2000, 600, "pixel", (Block(None, layout_lines),), True, "placed:read")
    pdf = pdfium.PdfDocument(render_pdf(FileLayout("page.png", "page.png", (page,)), src))
    try:
        text = pdf[0].get_textpage().get_text_range()
    finally:
        pdf.close()
    assert sorted(text.split()) == sorted(t for ws in lines for t, _ in ws), text
    assert pdf_lost_words([text], {"pages": [{"text": "\n".join(ln.text for ln in layout_lines)}]}) is None


async def test_alto_and_pdf_added_when_the_state_store_was_lost_are_placed_too(tmp_path):
    """A done text-only tree whose state store is lost is adopted from its ``.json`` files (no
    API call); outputs configured since are written from them as when a done file is given new
    outputs: its words placed on the page, the placement recorded. They were written without
    positions (ALTO ``positions=none``, a PDF without a text layer) and ``verify`` then
    reported every word of the layer lost."""
    answers = {rel: text for rel, text in make_inputs(tmp_path / "in").items() if rel in ("extra.png", "blank.png")}
    for rel in ("hyphen.png", "table.png"):
        (tmp_path / "in" / rel).unlink()
    _register(tmp_path, answers)
    async with EmbeddedServer(ServerConfig(engine="truth", tokens=(TOKEN,), truth_dir=str(tmp_path / "truth"))) as srv:
        code, report, _ = await run_pipeline(write_config(tmp_path, srv.base_url), TOKEN)
        assert code == ExitCode.OK, report
        jobs = srv.counters.jobs_created
        for f in (tmp_path / "out" / ".pipeline").glob("state.sqlite*"):
            f.unlink()
        cfg = write_config(tmp_path, srv.base_url, outputs=["txt", "json", "alto", "pdf"])
        code, report, _ = await run_pipeline(cfg, TOKEN)
        assert code == ExitCode.OK and report["this_run"] == {"adopted": 2}, report
        assert srv.counters.jobs_created == jobs
    extra = json.loads((tmp_path / "out" / "extra.png.json").read_text())["pages"][0]
    assert extra["placed"]["placed"] == extra["placed"]["words"] - 2
    assert "positions" not in extra
    assert "positions=none" not in (tmp_path / "out" / "extra.png.alto.xml").read_text()
    assert json.loads((tmp_path / "out" / "blank.png.json").read_text())["pages"][0]["positions"] is False
    code, said = await run_cli("verify", str(cfg))
    assert code == ExitCode.OK, said


async def test_words_of_two_answer_lines_set_side_by_side_stay_apart_in_the_pdf(tmp_path):
    """An answer can break a line where the page does not: here inside a word the page prints
    closed up ("harbourmen"), so the placement cuts that one recognised word between the two
    answer lines ("harbour" ends where "men" begins). The layer drew spaces only between the
    words of one line, and extractors, ordering a row's glyphs by position, read one word
    "harbourmen": ``verify`` reported "harbour" and "men" lost (seen on a 1668 scan: "Levirit.e").
    Every word is now followed by a space."""
    printed = ["The harbourmen signed the ledger", "before the council met that morning"]
    answer = "The harbour\nmen signed the ledger\nbefore the council met that morning"
    save(lines_page(printed), tmp_path / "in" / "split.png", dpi=(300, 300))
    _register(tmp_path, {"split.png": answer})
    async with EmbeddedServer(ServerConfig(engine="truth", tokens=(TOKEN,), truth_dir=str(tmp_path / "truth"))) as srv:
        cfg = write_config(tmp_path, srv.base_url, outputs=["txt", "json", "pdf"])
        code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK, report
    lines = json.loads((tmp_path / "out" / "split.png.json").read_text())["pages"][0]["placed"]["blocks"][0]["lines"]
    harbour, men = lines[0]["words"][-1], lines[1]["words"][0]
    assert (harbour["text"], men["text"]) == ("harbour", "men")
    assert harbour["box"][2] == men["box"][0], lines[:2]        # one recognised word, cut in two
    code, said = await run_cli("verify", str(cfg))
    assert code == ExitCode.OK and "0 problems" in said, said
