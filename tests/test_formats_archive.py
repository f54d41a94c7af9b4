"""The archive deliverables through the real runner and server (fast engine): PDF/A, PAGE-XML,
METS, what a consumer reads in ALTO and hOCR, and ``verify`` on the PDF's text layer.

Every file is judged the way its consumer judges it: the XML by its official schema (offline,
../shared/schemas), the PDF/A by pikepdf's allowlist validator, the METS pointers by following
them to the files and hashing those, the text layer by poppler and pdfium.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pikepdf
import pikepdf.pdfa
import pytest
from PIL import Image

import pdfs
from conftest import TOKEN
from formats_checks import ALTO_NS, XHTML_NS, alto_words, hocr_pages, validate_alto, validate_mets, validate_page
from helpers import FONT, failures, run_pipeline, save, text_page, write_config
from pipeline.exitcodes import ExitCode
from pipeline.formats.writer import OutputOptions, render, write_outputs_sync

ALL = ["txt", "json", "alto", "hocr", "pdf", "page", "mets"]
METS = "{http://www.loc.gov/METS/}"
PAGE = "{http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15}"
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
SENTENCE = "Parish records of the harbour town"


def every_kind(tmp_path: Path) -> dict[str, int]:
    """One input of each kind a run meets; returns rel -> page count."""
    inp = tmp_path / "in"
    save(text_page("letter"), inp / "letters" / "letter.png")
    frames = [text_page("one", (600, 300)), text_page("two", (400, 700))]
    (inp / "reports").mkdir(parents=True, exist_ok=True)
    frames[0].save(inp / "reports" / "two.tif", save_all=True, append_images=frames[1:], dpi=(300, 300))
    exif = Image.Exif()
    exif[0x0112] = 6
    save(text_page("turned", (500, 200), "RGB"), inp / "photos" / "turned.jpg", exif=exif, dpi=(200, 200))
    pdfs.write(inp / "pdf" / "scanned.pdf", pdfs.build([("scan", "scanned"), ("scan", "second")], size=(400, 300)))
    pdfs.write(inp / "pdf" / "text.pdf", pdfs.build([("text", SENTENCE)], size=(400, 300), font=FONT))
    return {"letters/letter.png": 1, "reports/two.tif": 2, "photos/turned.jpg": 1, "pdf/scanned.pdf": 2,
            "pdf/text.pdf": 1}


def page_files(out: Path, rel: str, pages: int) -> list[Path]:
    return [out / f"{rel}.page.xml"] + [out / f"{rel}.page-{n}.xml" for n in range(2, pages + 1)]


def pdfa_findings(path: Path, flavour: str = "2b") -> list:
    return pikepdf.pdfa.validate_written(path, flavour).findings


def check_mets(mets: Path, rel: str, pages: int) -> dict[str, list[Path]]:
    """The METS points at real files with their true checksums; returns USE -> files."""
    root = ET.parse(mets).getroot()
    groups: dict[str, list[Path]] = {}
    for grp in root.iter(METS + "fileGrp"):
        for f in grp.iter(METS + "file"):
            target = (mets.parent / f.find(METS + "FLocat").get(XLINK_HREF)).resolve()
            assert target.is_file(), (rel, target)
            data = target.read_bytes()
            assert f.get("CHECKSUMTYPE") == "SHA-256" and f.get("CHECKSUM") == hashlib.sha256(data).hexdigest()
            assert int(f.get("SIZE")) == len(data)
            groups.setdefault(grp.get("USE"), []).append(target)
    divs = [d for d in root.iter(METS + "div") if d.get("TYPE") == "page"]
    assert [d.get("ORDER") for d in divs] == [str(n) for n in range(1, pages + 1)]
    agent = root.find(f"{METS}metsHdr/{METS}agent")
    assert agent.get("ROLE") == "CREATOR" and agent.find(METS + "name").text.startswith("pipeline")
    assert "OCR engine" in agent.find(METS + "note").text
    return groups


def page_words(path: Path) -> tuple[dict[str, str], list[str], list[tuple[int, int, int, int]]]:
    """(Page attributes, every Word's text, every Coords' bounding box) of a PAGE file."""
    root = ET.parse(path).getroot()
    page = root.find(PAGE + "Page")
    words = [w.find(f"{PAGE}TextEquiv/{PAGE}Unicode").text for w in page.iter(PAGE + "Word")]
    boxes = []
    for c in page.iter(PAGE + "Coords"):
        pts = [tuple(int(v) for v in p.split(",")) for p in c.get("points").split()]
        boxes.append((min(x for x, _ in pts), min(y for _, y in pts), max(x for x, _ in pts), max(y for _, y in pts)))
    order = [r.get("regionRef") for r in page.iter(PAGE + "RegionRefIndexed")]
    regions = [r.get("id") for r in page.iter(PAGE + "TextRegion")]
    assert order == regions                        # the reading order lists every region, in order
    return dict(page.attrib), words, boxes


async def test_every_kind_of_input_gives_valid_alto_mets_page_and_pdfa(tmp_path, server):
    kinds = every_kind(tmp_path)
    cfg = write_config(tmp_path, server.base_url, api__format="json", outputs=ALL, pdf__dpi=100)
    code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK, report
    assert report["output_notes"] == []
    out = tmp_path / "out"
    for rel, pages in kinds.items():
        record = json.loads((out / f"{rel}.json").read_text())
        engines = {p["result"]["engine"] for p in record["pages"] if p.get("result")}
        alto = out / f"{rel}.alto.xml"
        validate_alto(alto)
        desc = ET.parse(alto).getroot().find(ALTO_NS + "Description")
        assert desc.find(f"{ALTO_NS}sourceImageInformation/{ALTO_NS}fileName").text == rel
        processing = ET.tostring(desc.find(ALTO_NS + "OCRProcessing"), encoding="unicode")
        assert all(e in processing for e in engines) and "model" in processing, processing

        hocr = ET.parse(out / f"{rel}.hocr").getroot()
        system = next(m.get("content") for m in hocr.iter(XHTML_NS + "meta") if m.get("name") == "ocr-system")
        assert all(e in system for e in engines), system
        assert hocr.get("lang") == "en"
        assert {p["image"] for p in hocr_pages(out / f"{rel}.hocr")} == {f'"{rel}"'}

        files = page_files(out, rel, pages)
        strings = alto_words(alto)
        for n, path in enumerate(files, 1):
            validate_page(path)
            attrs, words, boxes = page_words(path)
            assert attrs["imageFilename"] == rel
            w, h = int(attrs["imageWidth"]), int(attrs["imageHeight"])
            assert all(0 <= b[0] < b[2] <= w + 1 and 0 <= b[1] < b[3] <= h + 1 for b in boxes), (rel, n, boxes, w, h)
            assert words == [t for p, t, _, _ in strings if p == n] and words, (rel, n)
        assert not (out / f"{rel}.page-{pages + 1}.xml").exists()

        mets = out / f"{rel}.mets.xml"
        validate_mets(mets)
        groups = check_mets(mets, rel, pages)
        assert groups["DEFAULT"] == [(tmp_path / "in" / rel).resolve()]
        assert groups["FULLTEXT"] == [alto.resolve()] and groups["DOWNLOAD"] == [(out / f"{rel}.pdf").resolve()]
        assert groups["PAGE"] == [p.resolve() for p in files]
        assert set(groups) == {"DEFAULT", "FULLTEXT", "DOWNLOAD", "TEXT", "HOCR", "PAGE"}

        assert pdfa_findings(out / f"{rel}.pdf") == [], rel
    # the original pages of a PDF input are kept: its image streams are in the PDF/A
    with pikepdf.open(tmp_path / "in" / "pdf" / "scanned.pdf") as src, pikepdf.open(out / "pdf" / "scanned.pdf.pdf") as dst:
        raw = lambda pdf: sorted(o.read_raw_bytes() for o in pdf.objects  # noqa: E731
                                 if isinstance(o, pikepdf.Stream) and o.get("/Subtype") == pikepdf.Name.Image)
        assert raw(src) == raw(dst)


async def test_adding_mets_and_page_to_a_done_tree_costs_no_api_call(tmp_path, server):
    kinds = every_kind(tmp_path)
    cfg = write_config(tmp_path, server.base_url, api__format="json",
                       outputs=["txt", "json", "alto", "pdf"], pdf__dpi=100)
    assert (await run_pipeline(cfg, TOKEN))[0] == ExitCode.OK
    before = server.counters.snapshot()
    cfg = write_config(tmp_path, server.base_url, api__format="json", outputs=ALL, pdf__dpi=100)
    code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK, report
    assert server.counters.snapshot() == before
    assert report["outputs_regenerated"] == len(kinds)
    out = tmp_path / "out"
    for rel, pages in kinds.items():
        for path in page_files(out, rel, pages):
            validate_page(path)
        validate_mets(out / f"{rel}.mets.xml")
        groups = check_mets(out / f"{rel}.mets.xml", rel, pages)   # the checksums of the files kept
        assert groups["FULLTEXT"] == [(out / f"{rel}.alto.xml").resolve()]


async def test_a_file_rewritten_under_its_mets_is_found_by_verify_and_the_mets_rewritten(tmp_path, server):
    from test_crash_safety import run_cli

    save(text_page("letter"), tmp_path / "in" / "letter.png")
    cfg = write_config(tmp_path, server.base_url, api__format="json", outputs=ALL)
    assert (await run_pipeline(cfg, TOKEN))[0] == ExitCode.OK
    assert (await run_cli("verify", str(cfg)))[0] == ExitCode.OK
    out = tmp_path / "out"
    alto = out / "letter.png.alto.xml"
    alto.write_bytes(alto.read_bytes().replace(b"<Layout>", b"<Layout>\n"))   # still valid ALTO
    code, text = await run_cli("verify", str(cfg), "--json")
    assert code == ExitCode.FILES_FAILED
    [problem] = json.loads(text)["problems"]
    assert "METS checksum of letter.png.alto.xml does not match" in problem["problem"]
    assert problem["remedy"] == "regenerate"
    # writing the ALTO again (as regeneration does) rewrites the METS beside it, unasked
    record = json.loads((out / "letter.png.json").read_text())
    written = write_outputs_sync(out, "letter.png", ["alto"], record, tmp_path / "in" / "letter.png")
    assert written == ["letter.png.alto.xml", "letter.png.mets.xml"]
    assert (await run_cli("verify", str(cfg)))[0] == ExitCode.OK
    check_mets(out / "letter.png.mets.xml", "letter.png", 1)


async def test_an_encrypted_pdf_gets_a_plain_pdf_and_a_note_or_fails_as_configured(tmp_path, server):
    data = pdfs.encrypted(pdfs.build([("scan", "locked")], size=(300, 200)), user="")
    pdfs.write(tmp_path / "in" / "locked.pdf", data)
    pdfs.write(tmp_path / "in" / "helvetica.pdf", pdfs.build([("text", SENTENCE)], size=(300, 200)))
    save(text_page("open"), tmp_path / "in" / "open.png")
    cfg = write_config(tmp_path, server.base_url, api__format="json", outputs=["txt", "json", "pdf"], pdf__dpi=100)
    code, report, stream = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK, report
    assert "2 outputs were written in a lesser form than configured" in stream
    notes = {n["path"]: n["note"] for n in report["output_notes"]}
    assert set(notes) == {"locked.pdf", "helvetica.pdf"}
    assert notes["locked.pdf"].startswith("searchable PDF written as plain PDF, not PDF/A-2b: the PDF is encrypted")
    assert "font" in notes["helvetica.pdf"] and "not embedded" in notes["helvetica.pdf"]   # the validator's finding
    with pikepdf.open(tmp_path / "out" / "locked.pdf.pdf") as doc:
        assert doc.is_encrypted                            # the plain PDF, as before
    assert pdfa_findings(tmp_path / "out" / "open.png.pdf") == []

    again = tmp_path / "again"                           # a fresh tree, the same inputs
    shutil.copytree(tmp_path / "in", again / "in")
    cfg = write_config(again, server.base_url, api__format="json", outputs=["txt", "json", "pdf"], pdf__dpi=100,
                       pdf__pdfa_fallback="fail")
    code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.FILES_FAILED
    assert set(failures(again)) == {"locked.pdf", "helvetica.pdf"}
    row = failures(again)["locked.pdf"]
    assert row["code"] == "output_error" and "PDF/A-2b" in row["reason"] and "pdf.pdfa_fallback" in row["reason"]


@pytest.mark.parametrize("flavour", ["3b", "off"])
def test_the_pdfa_flavour_is_the_configured_one(tmp_path, flavour):
    src = save(text_page("x"), tmp_path / "p.png", dpi=(72, 72))
    result = {"engine": "x", "blocks": [{"box": [50, 50, 400, 90], "lines": [
        {"text": "Archive copy", "box": [50, 50, 400, 90], "confidence": 0.9}]}]}
    doc = {"source": {"path": "p.png"}, "image": {"source_width": 600, "source_height": 200, "pages": [
        {"page_index": 0, "width": 600, "height": 200, "scale": 1.0, "transforms": []}]},
        "settings": {"model": "m", "language": "en", "format": "json"},
        "pages": [{"index": 0, "text": "Archive copy", "result": result}], "text": "Archive copy"}
    data = render(["pdf"], doc, src, OutputOptions(pdfa=flavour))["pdf"]
    (tmp_path / "p.pdf").write_bytes(data)
    if flavour == "off":
        assert pdfa_findings(tmp_path / "p.pdf", "2b")      # a plain PDF: the validator refuses it
    else:
        assert pdfa_findings(tmp_path / "p.pdf", flavour) == []
        with pikepdf.open(io.BytesIO(data)) as pdf:
            assert pdf.open_metadata().pdfa_status == flavour.upper()


async def test_verify_flags_a_pdf_whose_text_layer_lost_words(tmp_path, server):
    from test_crash_safety import run_cli

    save(text_page("kept"), tmp_path / "in" / "kept.png")
    save(text_page("lost"), tmp_path / "in" / "lost.png")
    cfg = write_config(tmp_path, server.base_url, api__format="json", outputs=["txt", "json", "pdf"])
    assert (await run_pipeline(cfg, TOKEN))[0] == ExitCode.OK
    assert (await run_cli("verify", str(cfg)))[0] == ExitCode.OK
    out = tmp_path / "out"
    # The PDF a writer that drops a line's words would make (the old font lost every word
    # beyond Latin-1 the same way): rendered from the record with the second line's words gone.
    record = json.loads((out / "lost.png.json").read_text())
    line = record["pages"][0]["result"]["blocks"][0]["lines"][1]
    lost = line["text"].split()
    line["text"], line["words"] = "", []
    (out / "lost.png.pdf").write_bytes(render(["pdf"], record, tmp_path / "in" / "lost.png")["pdf"])
    code, text = await run_cli("verify", str(cfg), "--json")
    assert code == ExitCode.FILES_FAILED
    [problem] = json.loads(text)["problems"]
    assert problem["path"] == "lost.png" and problem["remedy"] == "regenerate"
    assert f"lost {len(lost)} word(s)" in problem["problem"] and lost[0] in problem["problem"]
    await run_cli("verify", str(cfg), "--requeue")
    before = server.counters.snapshot()
    assert (await run_pipeline(cfg, TOKEN))[0] == ExitCode.OK
    assert server.counters.snapshot() == before
    assert (await run_cli("verify", str(cfg)))[0] == ExitCode.OK


async def test_a_changed_pdfa_flavour_is_found_by_verify_and_rewritten_for_free(tmp_path, server):
    from test_crash_safety import run_cli

    save(text_page("flavour"), tmp_path / "in" / "a.png")
    cfg = write_config(tmp_path, server.base_url, api__format="json", outputs=["txt", "json", "pdf"])
    assert (await run_pipeline(cfg, TOKEN))[0] == ExitCode.OK
    pdf_path = tmp_path / "out" / "a.png.pdf"
    for flavour, declared in (("3b", "3B"), ("off", "")):
        cfg = write_config(tmp_path, server.base_url, api__format="json", outputs=["txt", "json", "pdf"],
                           pdf__pdfa=flavour)
        before = server.counters.snapshot()
        written = pdf_path.read_bytes()
        assert (await run_pipeline(cfg, TOKEN))[0] == ExitCode.OK
        assert pdf_path.read_bytes() == written                 # a run alone does not rewrite it
        code, text = await run_cli("verify", str(cfg), "--json")
        assert code == ExitCode.FILES_FAILED
        [problem] = json.loads(text)["problems"]
        assert problem["remedy"] == "regenerate" and "pdf.pdfa" in problem["problem"]
        await run_cli("verify", str(cfg), "--requeue")
        code, report, _ = await run_pipeline(cfg, TOKEN)
        assert code == ExitCode.OK and report["outputs_regenerated"] == 1
        assert server.counters.snapshot() == before             # no API call
        with pikepdf.open(pdf_path) as pdf:
            assert pdf.open_metadata().pdfa_status == declared
        assert (await run_cli("verify", str(cfg)))[0] == ExitCode.OK


async def test_one_mets_a_folder_makes_its_files_one_object(tmp_path, server):
    inp = tmp_path / "in"
    for n in (1, 2, 3):
        save(text_page(f"page {n}"), inp / "volume" / f"p{n}.png")
    save(text_page("inner"), inp / "volume" / "sub" / "x.png")
    cfg = write_config(tmp_path, server.base_url, api__format="json", outputs=ALL)
    assert (await run_pipeline(cfg, TOKEN))[0] == ExitCode.OK
    out = tmp_path / "out"
    assert not (out / "volume" / "folder.mets.xml").exists()          # off by default
    before = server.counters.snapshot()
    cfg = write_config(tmp_path, server.base_url, api__format="json", outputs=ALL, mets_per_folder=True)
    assert (await run_pipeline(cfg, TOKEN))[0] == ExitCode.OK           # turned on for a done tree
    assert server.counters.snapshot() == before                        # no API call
    mets = out / "volume" / "folder.mets.xml"
    validate_mets(mets)
    groups = check_mets(mets, "volume", 3)
    assert groups["DEFAULT"] == [(inp / "volume" / f"p{n}.png").resolve() for n in (1, 2, 3)]
    assert groups["FULLTEXT"] == [(out / "volume" / f"p{n}.png.alto.xml").resolve() for n in (1, 2, 3)]
    labels = [d.get("ORDERLABEL") for d in ET.parse(mets).getroot().iter(METS + "div") if d.get("TYPE") == "page"]
    assert labels == ["p1.png 1", "p2.png 1", "p3.png 1"]
    inner = out / "volume" / "sub" / "folder.mets.xml"                 # a subfolder is its own object
    validate_mets(inner)
    assert check_mets(inner, "volume/sub", 1)["DEFAULT"] == [(inp / "volume" / "sub" / "x.png").resolve()]


def test_mets_per_folder_needs_mets_in_outputs(tmp_path):
    from pipeline.config import ConfigError, load_config

    cfg = write_config(tmp_path, "embedded", api__format="json", outputs=["txt", "json", "alto"], mets_per_folder=True)
    with pytest.raises(ConfigError, match="mets_per_folder: needs mets in outputs"):
        load_config(cfg)


def test_right_to_left_words_are_drawn_in_visual_order_and_read_back_in_reading_order(tmp_path):
    from pipeline.formats.bidi import visual_order

    assert visual_order("שלום") == "םולש" and visual_order("مرحبا") == "ابحرم"
    assert visual_order("שלום123") == "123םולש"          # a number keeps its own order
    assert visual_order("Łódź") == "Łódź" and visual_order("123") == "123"
    import pypdfium2 as pdfium

    src = save(text_page("x", (700, 200)), tmp_path / "p.png", dpi=(72, 72))
    words = ["שלום123", "مرحبا", "abc"]
    ws = [{"text": w, "box": [50 + 200 * i, 50, 200 + 200 * i, 90], "confidence": 0.9} for i, w in enumerate(words)]
    line = " ".join(words)
    result = {"engine": "x", "blocks": [{"box": [50, 50, 600, 90], "lines": [
        {"text": line, "box": [50, 50, 600, 90], "confidence": 0.9, "words": ws}]}]}
    doc = {"source": {"path": "p.png"}, "image": {"source_width": 700, "source_height": 200, "pages": [
        {"page_index": 0, "width": 700, "height": 200, "scale": 1.0, "transforms": []}]},
        "settings": {"model": "m", "language": "he", "format": "json"},
        "pages": [{"index": 0, "text": line, "result": result}], "text": line}
    data = render(["pdf"], doc, src)["pdf"]
    text = pdfium.PdfDocument(data)[0].get_textpage().get_text_range()
    assert sorted(text.split()) == sorted(words)             # pdfium: every word exactly
