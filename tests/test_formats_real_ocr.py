"""Ground truth for the archival outputs: known words drawn at known positions, read by both
embedded engines through the real runner and server, found again in the ALTO, hOCR and PDF.

Each input exercises one transform of ``prepare``: a two-page TIFF (pages of different sizes),
an EXIF-rotated JPEG (stored sideways), and an image wider than the model's 4096 px limit (so
it is downscaled before upload). The true boxes are Pillow's ``textbbox`` of each word on the
page as a person sees it; at least 90 % of them must come back with the right text and an
IoU >= 0.5 in every format, and every ALTO file must validate against the ALTO 4.4 XSD.
"""

from __future__ import annotations

import json

import pytest
from PIL import Image, ImageDraw

from conftest import TOKEN
from formats_checks import (alto_words, hocr_words, matched_fraction, pdf_words, render_pdf_pages,
                            validate_alto)
from helpers import font, run_pipeline, save, write_config
from pipeline.exitcodes import ExitCode
from pipeline.server import EmbeddedServer, ServerConfig

pytestmark = pytest.mark.real_ocr

WORDS = ("archive record letter parish harbour winter garden market bridge castle river "
         "morning village council school station library mill chapel meadow").split()


def draw_words(size: tuple[int, int], px: int, seed: int, per_line: int = 4, lines: int = 3,
               margin: int = 60) -> tuple[Image.Image, list[tuple[str, tuple[float, float, float, float]]]]:
    """A white page with ``lines`` x ``per_line`` words; returns it with each word's true box."""
    img = Image.new("L", size, 255)
    draw = ImageDraw.Draw(img)
    f = font(px)
    truth = []
    k = seed
    y = margin
    for _ in range(lines):
        x = margin
        for _ in range(per_line):
            word = WORDS[k % len(WORDS)]
            k += 3
            draw.text((x, y), word, font=f, fill=0)
            truth.append((word, tuple(float(v) for v in draw.textbbox((x, y), word, font=f))))
            x += draw.textlength(word, font=f) + px * 0.8
        y += int(px * 2.2)
    return img, truth


def make_inputs(inp) -> dict[str, tuple[list, float]]:
    """Writes the inputs; returns rel -> (truth as (page, word, box) in source pixels, dpi)."""
    truth: dict[str, tuple[list, float]] = {}
    a, ta = draw_words((1100, 420), 40, 0)
    b, tb = draw_words((900, 520), 36, 1, per_line=3, lines=4)
    inp.mkdir(parents=True, exist_ok=True)
    a.save(inp / "pages.tif", save_all=True, append_images=[b], dpi=(300, 300), compression="tiff_lzw")
    truth["pages.tif"] = ([(1, w, bx) for w, bx in ta] + [(2, w, bx) for w, bx in tb], 300.0)

    c, tc = draw_words((1000, 420), 40, 2)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned 90 degrees counter-clockwise; shown upright
    save(c.convert("RGB").transpose(Image.Transpose.ROTATE_90), inp / "turned.jpg", exif=exif,
         quality=95, dpi=(200, 200))
    truth["turned.jpg"] = ([(1, w, bx) for w, bx in tc], 200.0)

    d, td = draw_words((4700, 560), 80, 3, per_line=6, lines=2, margin=120)
    save(d, inp / "wide.png", dpi=(400, 400))
    truth["wide.png"] = ([(1, w, bx) for w, bx in td], 400.0)
    return truth


@pytest.mark.parametrize("engine", ["tesseract", "rapidocr"])
async def test_known_words_land_on_their_boxes_in_alto_hocr_and_pdf(tmp_path, engine):
    truth = make_inputs(tmp_path / "in")
    async with EmbeddedServer(ServerConfig(engine=engine, tokens=(TOKEN,))) as srv:
        cfg = write_config(tmp_path, srv.base_url, api__format="json",
                           outputs=["txt", "json", "alto", "hocr", "pdf"], timeouts__job_s=300)
        code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK, report
    out = tmp_path / "out"
    # the transforms this test is about really happened before upload
    transforms = {rel: [t for p in json.loads((out / f"{rel}.json").read_text())["image"]["pages"]
                        for t in p["transforms"]] for rel in truth}
    assert any(t.startswith("downscale:") for t in transforms["wide.png"]), transforms
    assert "exif_transpose:6" in transforms["turned.jpg"], transforms
    scores = {}
    for rel, (words, dpi) in truth.items():
        alto = out / f"{rel}.alto.xml"
        validate_alto(alto)
        found_alto = alto_words(alto)
        assert all(w[3] is not None and 0 <= w[3] <= 1 for w in found_alto)  # WC on every String
        pdf = out / f"{rel}.pdf"
        pages = len({p for p, _, _ in words})
        assert len(render_pdf_pages(pdf, tmp_path / "png" / rel)) == pages
        scores[rel] = (matched_fraction(words, found_alto),
                       matched_fraction(words, hocr_words(out / f"{rel}.hocr")),
                       matched_fraction(words, pdf_words(pdf), scale=dpi / 72.0))
    assert all(min(s) >= 0.9 for s in scores.values()), scores
