"""Word positions for text-only answers: the ``truth`` engine answers the known text of each
page (no boxes, as the hosted model does), the client finds the page's own lines and words and
puts the answer's words on them; ALTO, hOCR and the searchable PDF must carry them at the true
boxes (Pillow's ``textbbox`` of each drawn word), through every transform of ``prepare``.

Inputs: a two-page TIFF, an EXIF-rotated JPEG, an image over the 4096 px limit (downscaled),
a page inside a PDF, and a page of two text columns. Truth: >= 95 % of the words at IoU >= 0.5
in every format; with 2 % of the answer's characters wrong, >= 95 % of the correctly answered
words still placed and no word placed on another word's box.
"""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest
from PIL import Image, ImageDraw

from conftest import TOKEN
from formats_checks import alto_words, hocr_words, iou, matched_fraction, pdf_words, validate_alto
from helpers import font, run_pipeline, save, write_config
from pipeline.exitcodes import ExitCode
from pipeline.inputs.pages import open_source
from pipeline.inputs.prepare import PrecheckLimits
from pipeline.config import PdfConfig
from pipeline.ocr.pool import decode_image
from pipeline.ocr.truth import corrupt_text, register
from pipeline.server import EmbeddedServer, ServerConfig

VOCAB = ("the of and archive parish register harbour a council minutes in shipment 1952 letter to "
         "railway district committee it treasury volume folio by estate museum collection was report "
         "county library on survey record morning village school station mill chapel meadow").split()


def draw_page(size: tuple[int, int], px: int, seed: int, columns: int = 1, lines: int = 8,
              margin: int = 60) -> tuple[Image.Image, str, list[tuple[str, tuple]]]:
    """A page of ``columns`` text columns; its answer text (columns in turn, a blank line
    between them) and every word's true box, in the answer's order."""
    rng = random.Random(seed)
    img = Image.new("L", size, 255)
    draw = ImageDraw.Draw(img)
    f = font(px)
    col_w = (size[0] - 2 * margin - (columns - 1) * 3 * px) / columns
    paragraphs, truth = [], []
    for c in range(columns):
        x0 = margin + c * (col_w + 3 * px)
        y = margin
        text_lines = []
        for _ in range(lines):
            x, words = x0, []
            while True:
                word = rng.choice(VOCAB)
                if x + draw.textlength(word, font=f) > x0 + col_w:
                    break
                draw.text((x, y), word, font=f, fill=0)
                truth.append((word, tuple(float(v) for v in draw.textbbox((x, y), word, font=f))))
                words.append(word)
                x += draw.textlength(word + " ", font=f)
            text_lines.append(" ".join(words))
            y += int(px * 1.6)
        paragraphs.append("\n".join(text_lines))
    return img, "\n\n".join(paragraphs), truth


def make_inputs(inp):
    """Writes the inputs; returns rel -> (per page (text, truth in source units), dpi)."""
    inp.mkdir(parents=True, exist_ok=True)
    out = {}
    a, ta_text, ta = draw_page((1200, 600), 36, 1, lines=6)
    b, tb_text, tb = draw_page((1000, 700), 30, 2, lines=9)
    a.save(inp / "pages.tif", save_all=True, append_images=[b], dpi=(300, 300), compression="tiff_lzw")
    out["pages.tif"] = ([(ta_text, ta), (tb_text, tb)], 300.0)
    c, tc_text, tc = draw_page((1100, 500), 34, 3, lines=5)
    exif = Image.Exif()
    exif[0x0112] = 6
    save(c.convert("RGB").transpose(Image.Transpose.ROTATE_90), inp / "turned.jpg", exif=exif, quality=95,
         dpi=(200, 200))
    out["turned.jpg"] = ([(tc_text, tc)], 200.0)
    d, td_text, td = draw_page((4700, 900), 70, 4, lines=5, margin=120)
    save(d, inp / "wide.png", dpi=(400, 400))
    out["wide.png"] = ([(td_text, td)], 400.0)
    e, te_text, te = draw_page((1700, 1400), 30, 5, columns=2, lines=20)
    save(e, inp / "columns.png", dpi=(300, 300))
    out["columns.png"] = ([(te_text, te)], 300.0)
    g, tg_text, tg = draw_page((1275, 900), 32, 6, lines=10)   # 150 dpi: 612 x 432 pt
    g.save(inp / "page.pdf", resolution=150.0)
    pt = 72 / 150
    out["page.pdf"] = ([(tg_text, [(w, tuple(v * pt for v in bx)) for w, bx in tg])], 1.0)
    return out


def register_truth(folder, inp, inputs) -> dict[str, list[str]]:
    """Every page's text filed under the pixels the server will decode (prepare's real upload)."""
    digests = {}
    for rel, (pages, _) in inputs.items():
        source = open_source(inp / rel, PrecheckLimits(), PdfConfig())
        try:
            digests[rel] = [register(folder, decode_image(source.page(i).data), text)
                            for i, (text, _) in enumerate(pages)]
        finally:
            source.close()
    return digests


def flat_truth(pages) -> list[tuple[int, str, tuple]]:
    return [(n, w, box) for n, (_, truth) in enumerate(pages, 1) for w, box in truth]


async def _run(tmp_path, corrupt: float = 0.0):
    inputs = make_inputs(tmp_path / "in")
    digests = register_truth(tmp_path / "truth", tmp_path / "in", inputs)
    async with EmbeddedServer(ServerConfig(engine="truth", tokens=(TOKEN,), truth_dir=str(tmp_path / "truth"),
                                           truth_corrupt=corrupt)) as srv:
        cfg = write_config(tmp_path, srv.base_url, api__format="text",
                           outputs=["txt", "json", "alto", "hocr", "pdf"], geometry__workers=2)
        code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK, report
    return inputs, digests, tmp_path / "out"


async def test_text_only_answers_get_word_boxes_in_alto_hocr_and_pdf(tmp_path):
    inputs, _, out = await _run(tmp_path)
    transforms = {rel: [t for p in json.loads((out / f"{rel}.json").read_text())["image"]["pages"]
                        for t in p.get("transforms") or []] for rel in inputs}
    assert any(t.startswith("downscale:") for t in transforms["wide.png"]), transforms
    assert "exif_transpose:6" in transforms["turned.jpg"], transforms
    scores = {}
    for rel, (pages, dpi) in inputs.items():
        truth = flat_truth(pages)
        doc = json.loads((out / f"{rel}.json").read_text())
        for p in doc["pages"]:   # the record says how many words were placed and how
            assert p["placed"]["method"] == "read+text-match"
            assert p["placed"]["words"] == len(pages[p["index"]][1])
            assert "positions" not in p
        alto = out / f"{rel}.alto.xml"
        validate_alto(alto)
        found = alto_words(alto)
        assert [w[1] for w in found] == [w for _, w, _ in truth]           # the answer's order
        assert all(w[3] is not None and 0 < w[3] <= 1 for w in found if w[2] is not None)
        alto_scale = 72 / 1200 if rel.endswith(".pdf") else 1.0             # inch1200 -> pt
        pdf_scale = 1.0 if rel.endswith(".pdf") else dpi / 72.0             # pt -> source px
        scores[rel] = (matched_fraction(truth, found, scale=alto_scale),
                       matched_fraction(truth, hocr_words(out / f"{rel}.hocr")),
                       matched_fraction(truth, pdf_words(out / f"{rel}.pdf"), scale=pdf_scale))
    assert all(min(s) >= 0.95 for s in scores.values()), scores


async def test_two_percent_wrong_characters_still_place_the_right_words_and_misplace_none(tmp_path):
    inputs, digests, out = await _run(tmp_path, corrupt=0.02)
    right_total = right_placed = wrong_words = 0
    for rel, (pages, _) in inputs.items():
        found = alto_words(out / f"{rel}.alto.xml")
        scale = 72 / 1200 if rel.endswith(".pdf") else 1.0
        k = 0
        for n, (text, truth) in enumerate(pages, 1):
            answered = corrupt_text(text, 0.02, digests[rel][n - 1]).split()
            for i, (word, box) in enumerate(truth):
                _, content, got, _ = found[k]
                k += 1
                assert content == answered[i]
                got = tuple(v * scale for v in got) if got else None
                if got is not None:   # never on another word's box
                    others = [iou(got, b) for j, (_, b) in enumerate(truth) if j != i]
                    assert max(others, default=0) < 0.5, (rel, content, got)
                if answered[i] == word:
                    right_total += 1
                    right_placed += got is not None and iou(got, box) >= 0.5
                else:
                    wrong_words += 1
    assert wrong_words > 0   # the corruption really happened
    assert right_placed / right_total >= 0.95, (right_placed, right_total)


def test_alto_hocr_and_pdf_are_accepted_with_text_only_answers(tmp_path):
    from pipeline.config import ConfigError, load_config
    cfg = load_config(write_config(tmp_path, "embedded", api__format="text", outputs=["txt", "json", "alto", "hocr", "pdf"],
                                   geometry__workers=3))
    assert cfg.outputs[2:] == ("alto", "hocr", "pdf") and cfg.geometry.workers == 3
    assert cfg.geometry.method == "read"                                  # recognition anchors by default
    assert load_config(write_config(tmp_path, "embedded", geometry__method="mix")).geometry.method == "mix"
    with pytest.raises(ConfigError, match="geometry.method"):
        load_config(write_config(tmp_path, "embedded", geometry__method="guess"))


async def test_alto_added_to_a_done_text_only_tree_is_placed_without_an_api_call(tmp_path):
    inputs = {rel: v for rel, v in make_inputs(tmp_path / "in").items() if rel in ("turned.jpg", "page.pdf")}
    for extra in ("pages.tif", "wide.png", "columns.png"):
        (tmp_path / "in" / extra).unlink()
    register_truth(tmp_path / "truth", tmp_path / "in", inputs)
    async with EmbeddedServer(ServerConfig(engine="truth", tokens=(TOKEN,), truth_dir=str(tmp_path / "truth"))) as srv:
        code, report, _ = await run_pipeline(write_config(tmp_path, srv.base_url, api__format="text"), TOKEN)
        assert code == ExitCode.OK, report
        jobs = srv.counters.jobs_created
        assert "placed" not in json.loads((tmp_path / "out" / "turned.jpg.json").read_text())["pages"][0]
        code, report, _ = await run_pipeline(write_config(tmp_path, srv.base_url, api__format="text",
                                                          outputs=["txt", "json", "alto"]), TOKEN)
        assert code == ExitCode.OK, report
        assert srv.counters.jobs_created == jobs      # regenerated from the .json and the source
    for rel, (pages, _) in inputs.items():
        doc = json.loads((tmp_path / "out" / f"{rel}.json").read_text())
        assert doc["pages"][0]["placed"]["placed"] == len(pages[0][1])
        scale = 72 / 1200 if rel.endswith(".pdf") else 1.0
        assert matched_fraction(flat_truth(pages), alto_words(tmp_path / "out" / f"{rel}.alto.xml"), scale=scale) >= 0.95


async def test_a_placement_whose_worker_died_is_reported_and_placed_again_when_rewritten(tmp_path, monkeypatch):
    """A geometry worker killed mid-page (the OOM killer's way) costs the page its positions, not
    the run; the run report says which page and why (it said nothing: the ALTO just had no
    positions), and the placement is tried again when the ALTO is written again (no API call)."""
    from pipeline.config import load_config
    from pipeline.run.audit import verify
    from pipeline.run.state import StateStore

    inputs = {rel: v for rel, v in make_inputs(tmp_path / "in").items() if rel == "turned.jpg"}
    for extra in ("pages.tif", "wide.png", "columns.png", "page.pdf"):
        (tmp_path / "in" / extra).unlink()
    register_truth(tmp_path / "truth", tmp_path / "in", inputs)
    out = tmp_path / "out"
    async with EmbeddedServer(ServerConfig(engine="truth", tokens=(TOKEN,), truth_dir=str(tmp_path / "truth"))) as srv:
        cfg = write_config(tmp_path, srv.base_url, api__format="text", outputs=["txt", "json", "alto"])
        monkeypatch.setenv("PIPELINE_CRASHPOINT", "in_placement:1")   # read by the spawned worker
        code, report, _ = await run_pipeline(cfg, TOKEN)
        monkeypatch.delenv("PIPELINE_CRASHPOINT")
        assert code == ExitCode.OK, report
        page = json.loads((out / "turned.jpg.json").read_text())["pages"][0]
        assert "died" in page["placed"]["error"] and page["positions"] is False
        assert [n["path"] for n in report["output_notes"]] == ["turned.jpg"]
        assert "page 1: its words could not be placed" in report["output_notes"][0]["note"]
        assert all(w[2] is None for w in alto_words(out / "turned.jpg.alto.xml"))
        jobs = srv.counters.jobs_created
        (out / "turned.jpg.alto.xml").unlink()   # as the note says: delete, verify --requeue, rerun
        config = load_config(cfg)
        state = StateStore(config.state_file)
        try:
            assert verify(config, state, requeue=True).regenerate == 1
        finally:
            state.close()
        code, report, _ = await run_pipeline(cfg, TOKEN)
        assert code == ExitCode.OK and report["output_notes"] == [], report
        assert srv.counters.jobs_created == jobs
    page = json.loads((out / "turned.jpg.json").read_text())["pages"][0]
    assert "error" not in page["placed"] and "positions" not in page
    pages, _ = inputs["turned.jpg"]
    assert page["placed"]["placed"] == len(pages[0][1])
    assert matched_fraction(flat_truth(pages), alto_words(out / "turned.jpg.alto.xml")) >= 0.95


def _scribe_page(root, name: str, corrupt: float = 0.0):
    """(answered words, placed words, truth boxes) of one scribe scan, its truth text as the
    answer (``corrupt``: that share of its characters replaced)."""
    from PIL import Image

    from pipeline.ocr.placement import place

    image = Image.open(next((root / "img").glob(name + ".*")))
    truth = json.loads((root / "gt_txt" / f"{name}.boxes.json").read_text())
    answer = corrupt_text((root / "gt_txt" / f"{name}.txt").read_text(), corrupt, name)
    placement, _ = place(image, answer)
    return answer.split(), [w for ln in placement.lines for w in ln], truth


def _on_another_words_box(box, k: int, truth) -> bool:
    return any(iou(box, t[:4]) >= 0.5 for j, t in enumerate(truth) if j != k)


@pytest.mark.real_ocr
def test_scribe_scans_with_their_truth_text_as_the_answer(shared_data):
    """Two real scans of the classes width alignment failed on (a chart with its labels and
    axis text, a white-on-dark slide; under 10 % placed by widths alone), answer = their truth
    text, judged on the truth word boxes: the default (a cheap reading, words matched by text)
    places >= 90 % at IoU >= 0.5 and none on another word's box. All 29 scans: the bench
    (``python -m bench.word_geometry``, docs/formats.md)."""
    root = shared_data / "scribeocr-benchmark"
    for name in ("chart_01", "slide_01"):
        answer, words, truth = _scribe_page(root, name)
        assert [w.text for w in words] == answer == [t[4] for t in truth]   # the answer's words, in its order
        right = sum(1 for w, t in zip(words, truth) if w.box is not None and iou(w.box, t[:4]) >= 0.5)
        assert right / len(truth) >= 0.9, (name, right / len(truth))
        assert not [w.text for k, w in enumerate(words) if w.box and _on_another_words_box(w.box, k, truth)], name


@pytest.mark.real_ocr
def test_two_percent_wrong_characters_on_a_scribe_scan(shared_data):
    """The chart scan with 2 % of the answer's characters wrong: >= 95 % of the words answered
    right land on their boxes as they do with a clean answer, and no word (right or wrong) is
    placed on another word's box."""
    root = shared_data / "scribeocr-benchmark"
    _, clean, truth = _scribe_page(root, "chart_01")
    answer, words, _ = _scribe_page(root, "chart_01", corrupt=0.02)
    assert sum(a != t[4] for a, t in zip(answer, truth)) >= 3        # the corruption really happened
    right = [k for k, (a, t) in enumerate(zip(answer, truth)) if a == t[4]
             and clean[k].box is not None and iou(clean[k].box, t[:4]) >= 0.5]
    kept = sum(1 for k in right if words[k].box is not None and iou(words[k].box, truth[k][:4]) >= 0.5)
    assert kept / len(right) >= 0.95, (kept, len(right))
    assert not [w.text for k, w in enumerate(words) if w.box and _on_another_words_box(w.box, k, truth)]


def test_a_reflowed_answer_is_laid_over_the_page_lines():
    """A model that joins a paragraph's lines into one (Markdown answers do): each paragraph
    runs over many page lines, two columns of them; every word still lands on its box."""
    from pipeline.ocr.placement import place

    img, text, truth = draw_page((1700, 1400), 30, 5, columns=2, lines=20)
    joined = "\n\n".join(p.replace("\n", " ") for p in text.split("\n\n"))
    placement, _ = place(img, joined)
    words = [w for ln in placement.lines for w in ln]
    assert [w.text for w in words] == [w for w, _ in truth]
    right = sum(1 for w, (_, box) in zip(words, truth) if w.box is not None and iou(w.box, box) >= 0.5)
    assert right / len(truth) >= 0.95, right / len(truth)


def test_a_long_thin_page_is_read_for_placement_at_a_size_its_letters_survive():
    """A till receipt 400 x 6000 px (a page the run cuts into strips, placed whole): read scaled
    to 2600 px long its letters were 8 px tall and most words found no box; read at the pixels an
    A4 page gets (``inkgeom.analysis_factor``), nearly all land on their own."""
    from pipeline.ocr.placement import place_on_image

    img, text, truth = draw_page((400, 6000), 18, 5, lines=205, margin=20)
    record = place_on_image(img, text)
    boxes = [w["box"] for b in record["blocks"] for ln in b["lines"] for w in ln["words"]]
    assert len(boxes) == len(truth)
    right = sum(1 for box, (_, want) in zip(boxes, truth) if box is not None and iou(box, want) >= 0.5)
    assert right / len(truth) >= 0.95, right / len(truth)


@pytest.mark.parametrize("language", ["de", "ja"])
def test_the_recognition_pass_reads_in_the_answers_language_or_english_without_its_data(language):
    """``de`` (German data ships) is read with it; ``ja`` (no Tesseract data here; a hosted model
    reads it) falls back to English rather than failing the page's positions: the answer's
    text is the truth, the reading only has to say which box holds a word."""
    from pipeline.ocr.placement import place_on_image

    img, text, truth = draw_page((1400, 900), 30, 11, lines=10)
    record = place_on_image(img, text, "read", language)
    assert record["method"] == "read+text-match" and "error" not in record
    boxes = [w["box"] for b in record["blocks"] for ln in b["lines"] for w in ln["words"]]
    assert len(boxes) == len(truth)
    right = sum(1 for box, (_, want) in zip(boxes, truth) if box is not None and iou(box, want) >= 0.5)
    assert right / len(truth) >= 0.95, right / len(truth)


def test_answers_with_boxes_keep_them_and_text_layer_pages_are_not_placed():
    from pipeline.run.placing import needs_placement

    boxed = {"text": "a b", "blocks": [{"lines": [{"text": "a b", "box": [0, 0, 10, 5]}]}]}
    every = ("txt", "json", "alto")
    assert not needs_placement(every, "ocr", boxed, "a b")                # the engine's boxes stay
    assert needs_placement(every, "ocr", {"text": "a b"}, "a b")           # json without boxes
    assert needs_placement(every, "ocr", None, "a b")                     # format: text
    assert not needs_placement(every, "text_layer", None, "a b")          # the PDF's own words
    assert not needs_placement(("txt", "json"), "ocr", None, "a b")       # nothing wants boxes
    assert not needs_placement(every, "ocr", None, "  ")                  # a blank page


@pytest.mark.real_ocr
async def test_the_hosted_like_models_markdown_answer_is_placed_without_markup(tmp_path):
    """The model we exist for: Markdown answers with no boxes (``server/hosted.py``, a real engine
    reading) and an 850 px limit, so this 1100 px page (its text 880 px tall: blank paper alone
    would be left out, not cut) goes as strips; the placed words are the
    stitched ``.txt``'s, placed on the whole page: no markup reaches ALTO, and the words land on
    their drawn boxes."""
    from pipeline.server.hosted import HostedSettings

    img, _, truth = draw_page((1400, 1100), 34, 7, columns=2, lines=14, margin=160)
    draw = ImageDraw.Draw(img)
    title = "Harbour Register"
    draw.text((160, 40), title, font=font(72), fill=0)
    x, title_truth = 160.0, []
    for word in title.split():
        title_truth.append((word, tuple(float(v) for v in draw.textbbox((x, 40), word, font=font(72)))))
        x += draw.textlength(word + " ", font=font(72))
    save(img, tmp_path / "in" / "register.png", dpi=(300, 300))
    async with EmbeddedServer(ServerConfig(engine="tesseract", tokens=(TOKEN,),
                                           hosted=HostedSettings(job_s=(0.01, 0.05)))) as srv:
        cfg = write_config(tmp_path, srv.base_url, api__model="Nanonets_Ocr_S_Hosted", api__format="json",
                           outputs=["txt", "json", "md", "alto", "hocr", "pdf"], timeouts__job_s=300)
        code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK, report
    out = tmp_path / "out"
    doc = json.loads((out / "register.png.json").read_text())
    assert len(doc["image"]["pages"][0]["strips"]) >= 2     # too tall for the model: cut, then placed
    page = doc["pages"][0]
    assert page["placed"]["placed"] >= 0.95 * page["placed"]["words"], page["placed"]
    words = [(1, w, b) for w, b in title_truth + truth]
    found = alto_words(out / "register.png.alto.xml")
    validate_alto(out / "register.png.alto.xml")
    assert not [w for w in found if "#" in w[1] or "<" in w[1]], found
    scores = (matched_fraction(words, found), matched_fraction(words, hocr_words(out / "register.png.hocr")),
              matched_fraction(words, pdf_words(out / "register.png.pdf"), scale=300 / 72))
    # Of the words the engine read right (an OCR slip such as "a to" read "ato" is not the
    # placer's to place), >= 95 % on their drawn boxes.
    answered, drawn = Counter((out / "register.png.txt").read_text().split()), Counter(w for _, w, _ in words)
    read_right = sum(min(n, answered[w]) for w, n in drawn.items())
    assert read_right >= 0.9 * len(words)
    placed = [round(f * len(words)) / read_right for f in scores]
    assert min(placed) >= 0.95, (placed, scores)


async def test_a_fax_page_with_oblong_pixels_is_placed_in_its_own_frame(tmp_path):
    """A fax at its standard 204 x 98 dpi stores pixels twice as tall as they are wide: its text
    is half as tall in pixels as it is wide. Sent as stored, the placement of a text-only answer
    found 26 of 97 words of a made fax page read by the hosted-like model (96 of 96 at 204 x 196
    dpi), 215 of 223 of this one. Now prepare makes the pixels square first (``square_pixels:``)
    and every box is mapped back to the fax's own frame, in ALTO, hOCR and the searchable PDF
    (whose page is the fax's size by its two resolutions)."""
    square, text, truth = draw_page((1728, 1400), 26, 8, lines=12)
    squash = 98 / 204
    fax = square.resize((1728, round(1400 * squash)), Image.Resampling.LANCZOS).point(lambda v: 255 * (v > 160))
    ky = fax.height / square.height
    inp = tmp_path / "in"
    inp.mkdir()
    fax.convert("1").save(inp / "fax.tif", compression="group4", dpi=(204, 98))
    truth = [(w, (b[0], b[1] * ky, b[2], b[3] * ky)) for w, b in truth]
    inputs = {"fax.tif": ([(text, truth)], None)}
    register_truth(tmp_path / "truth", inp, inputs)
    async with EmbeddedServer(ServerConfig(engine="truth", tokens=(TOKEN,), truth_dir=str(tmp_path / "truth"))) as srv:
        cfg = write_config(tmp_path, srv.base_url, api__format="text", outputs=["txt", "json", "alto", "hocr", "pdf"])
        code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK, report
    out = tmp_path / "out"
    doc = json.loads((out / "fax.tif.json").read_text())
    page = doc["image"]["pages"][0]
    assert doc["pages"][0]["placed"]["placed"] == len(truth), doc["pages"][0]["placed"]
    assert page["transforms"][1].startswith("square_pixels:1.0000x2.08"), page["transforms"]
    assert (page["width"], page["height"]) == (1728, round(fax.height * 204 / 98))
    words = flat_truth(inputs["fax.tif"][0])
    validate_alto(out / "fax.tif.alto.xml")
    in_px = [(n, w, None if b is None else (b[0] * 204 / 72, b[1] * 98 / 72, b[2] * 204 / 72, b[3] * 98 / 72))
             for n, w, b in pdf_words(out / "fax.tif.pdf")]
    scores = (matched_fraction(words, alto_words(out / "fax.tif.alto.xml")),
              matched_fraction(words, hocr_words(out / "fax.tif.hocr")), matched_fraction(words, in_px))
    assert min(scores) >= 0.95, scores
