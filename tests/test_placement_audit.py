"""Text-only answers whose words cannot all be placed, through the real runner, the ``truth``
engine (the known text of each page, no boxes, as the hosted model answers) and ``verify``.

What an archive meets: a line broken with a hyphen (pdfium reads the layer's "dis-" at a line's
end as one U+FFFE joining it to the next line), an answer word printed nowhere on the page (it
gets no box, so no place in the PDF's text layer), a ruled table Tesseract's sparse-text mode
reads no word of (tesserocr raises "No text returned"; the placement of the words the earlier
readings placed must survive it), and a blank page (nothing placed: ``"positions": false``, also
when ALTO/PDF are added to a done tree later). A fresh tree's ``verify`` must find nothing wrong.
"""

from __future__ import annotations

import json

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
