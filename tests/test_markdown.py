"""The Markdown rule (``pipeline/formats/markdown.py``): a hosted model's raw answer -> plain text,
and the ``md`` output that keeps the raw answers."""

from __future__ import annotations

import json

import pytest

from pipeline.formats.markdown import markdown_document, plain_text, table_rows

ANSWER = """# Harbour Report

## Arrivals, **March** 1952

The *Anna* came in at dawn; __all__ crews were ~~absent~~ present.
> A note quoted from the log.

<table><tr><th>Vessel</th><th>Tons</th></tr><tr><td>Anna &amp; Co</td><td>1<br>200</td></tr></table>

| Port | Days |
|:-----|-----:|
| Kiel | 3 |

<img>A photograph of a harbour crane.</img>
<watermark>COPY</watermark>
Signed at the office.
<page_number>12</page_number>"""


def test_a_markdown_answer_reads_as_plain_text():
    assert plain_text(ANSWER) == (
        "Harbour Report\n\n"
        "Arrivals, March 1952\n\n"
        "The Anna came in at dawn; all crews were absent present.\n"
        "A note quoted from the log.\n\n"
        "Vessel\tTons\n"
        "Anna & Co\t1 200\n\n"
        "Port\tDays\n"
        "Kiel\t3\n\n"
        "COPY\n\n"
        "Signed at the office.\n\n"
        "12")


@pytest.mark.parametrize("printed", [
    "snake_case_name and file_v2_final",
    "2 * 3 = 6 and 4 * 5 = 20",
    "Price: $5 and $x^2$ stays as LaTeX source",
    "A line with # inside is no heading",
    "#hashtag without a space",
    "a_b_c",
])
def test_plain_text_passes_through_unchanged(printed):
    assert plain_text(printed) == printed


def test_the_tags_follow_one_rule_printed_text_stays_descriptions_go():
    text = plain_text("before <img src='x.png' alt='a chart'/> after\n<img>a drawing of a ship</img>\n"
                      "<page_number>- 7 -</page_number>\n<watermark>  CONFIDENTIAL  </watermark>")
    assert "chart" not in text and "drawing" not in text and "ship" not in text
    assert "- 7 -" in text.split("\n") and "CONFIDENTIAL" in text.split("\n")
    assert "<" not in text and ">" not in text


def test_entities_are_decoded_once_inside_tables_and_out():
    assert plain_text("<table><tr><td>&amp;lt;b&amp;gt;</td></tr></table>") == "&lt;b&gt;"
    assert plain_text("fish &amp; chips") == "fish & chips"


def test_table_rows_reads_cells_and_skips_empty_rows():
    rows = table_rows("<table><thead><tr><th>A</th><th> B  x </th></tr></thead><tr></tr>"
                      "<tbody><tr><td>1</td><td></td></tr></tbody></table>")
    assert rows == [["A", "B x"], ["1", ""]]


def test_spanning_cells_keep_every_row_under_its_columns_heads():
    """A cell over two columns or two rows leaves empty cells where it lies, so the tab-separated
    rows stay on the table's grid (before: the row under a colspan or beside a rowspan was
    shifted one column left, its figures under the wrong heads)."""
    html = ('<table><tr><th rowspan="2">Parish</th><th colspan="2">Baptisms</th><th>Burials</th></tr>'
            '<tr><th>male</th><th>female</th><th>all</th></tr>'
            '<tr><td>St Mary</td><td>12</td><td>9</td><td>14</td></tr></table>')
    assert table_rows(html) == [["Parish", "Baptisms", "", "Burials"], ["", "male", "female", "all"],
                                ["St Mary", "12", "9", "14"]]
    lines = plain_text(html).split("\n")
    assert [ln.split("\t")[3] for ln in lines] == ["Burials", "all", "14"]
    assert table_rows('<table><tr><td colspan="x">a</td><td colspan=99999>b</td></tr></table>')[0][:2] == ["a", "b"]


def test_the_md_output_keeps_each_page_answer_and_marks_pages():
    doc = {"pages": [{"index": 0, "text": "Title", "answer": "# Title"},
                     {"index": 1, "text": "plain page"},
                     {"index": 2, "text": "Part", "answer": "\ufeff## Part"}]}   # a BOM hid the heading
    md = markdown_document(doc)
    assert md == "# Title\n\n<!-- page 2 -->\n\nplain page\n\n<!-- page 3 -->\n\n## Part\n"


def test_verify_checks_the_md_output_has_one_mark_per_page(tmp_path):
    from pipeline.formats.check import check_md

    doc = {"pages": [{"index": k, "text": f"page {k}", "answer": f"# page {k}"} for k in range(3)]}
    path = tmp_path / "a.png.md"
    path.write_text(markdown_document(doc), encoding="utf-8")
    assert check_md(path, doc) is None
    assert check_md(path, {"pages": doc["pages"][:2]}) == "the Markdown output has 3 pages, the result has 2"
    path.write_bytes(b"\xff\xfe broken")
    assert "UTF-8" in check_md(path, doc)


# Answers the hosted model may give that a careless reading loses text of, each answered by the
# project's own server (the ``truth`` engine answers the text registered for a page's pixels) to
# the real client: (answer, the page's .txt).
ODD_ANSWERS = {
    # cut off inside a table (the answer ran out): before, the open cells were glued ("ash7")
    "cut.png": ("Stock list\n\n<table><tr><td>oak</td><td>12</td></tr><tr><td>ash</td><td>7",
                "Stock list\n\noak\t12\nash\t7"),
    # a </table> left out, text after it: it stays, after the table's rows
    "unclosed.png": ("<table><tr><td>oak</td><td>12</td></tr>\n\nSigned at the office.",
                     "oak\t12\nSigned at the office."),
    # a table's <caption> is printed text outside its cells: before, it was lost
    "caption.png": ("<table><caption>Table 1: Births</caption><tr><th>Year</th><th>Count</th></tr>"
                    "<tr><td>1901</td><td>12</td></tr></table>", "Table 1: Births\nYear\tCount\n1901\t12"),
    # end tags left out, as HTML allows: before, the whole table was lost
    "loose.png": ("<table><tr><td>Name<td>Born<tr><td>Anna<td>1901</table>", "Name\tBorn\nAnna\t1901"),
    # a table inside a cell: before, the outer cell's own words were lost
    "nested.png": ("<table><tr><td>Total<table><tr><td>net</td><td>40</td></tr></table></td><td>52</td></tr></table>",
                   "Total net 40\t52"),
    # backslash escapes: the character alone (before: "\\only\\", the marks read as emphasis), but
    # LaTeX keeps its backslashes, and an escaped "|" is no pipe table's cell separator
    "escaped.png": ("Total \\$5.00, \\*only\\* today; $\\{x\\}$ as written\n\n| a \\| b | c |",
                    "Total $5.00, *only* today; $\\{x\\}$ as written\n\na | b\tc"),
    # super- and subscripts of figures: their Unicode forms (before: "m2", "10-3", a footnote mark glued on)
    "scripts.png": ("Area 12 m<sup>2</sup>, 10<sup>-3</sup> mol of H<sub>2</sub>O<sup>1</sup>, the 5<sup>th</sup>"
                    "\n\n<table><tr><td>10<sup>3</sup></td></tr></table>",
                    "Area 12 m\u00b2, 10\u207b\u00b3 mol of H\u2082O\u00b9, the 5th\n\n10\u00b3"),
    # emphasis over the lines of one paragraph (a bold title wrapped as printed): before, "**" left in the .txt
    "wrapped.png": ("**ANNUAL REPORT\nOF THE COUNCIL**\n\nBody *quoted\npassage* ends; a *star\n\nstays.",
                    "ANNUAL REPORT\nOF THE COUNCIL\n\nBody quoted\npassage ends; a *star\n\nstays."),
    # a <br> inside a pipe table's cell: before, the row was torn in two, its bars left in the .txt
    "pipes.png": ("| Name | Notes |\n|---|---|\n| Anna | born 1901<br>died 1950 |\n| Ben | none |",
                  "Name\tNotes\nAnna\tborn 1901 died 1950\nBen\tnone"),
    # links are their text, autolinks their address, an image's alt text a description (dropped):
    # before, the .txt held "[the register](http://..)" and "<https://..>"
    "links.png": ("See [the register](http://example.org/reg) and <https://example.org/a?b=1>, "
                  "write to <clerk@example.org>; a[i](j) stays.\n\n![a crane](crane.png)\n\nEnd",
                  "See the register and https://example.org/a?b=1, write to clerk@example.org; a[i](j) stays.\n\nEnd"),
    # only a picture's description: nothing printed, so a page with no text (before: no "no_text")
    "picture.png": ("<img>A photograph of a harbour crane.</img>", ""),
}


async def test_odd_answers_lose_no_text_through_the_real_client(tmp_path):
    from conftest import TOKEN
    from helpers import run_pipeline, save, text_page, write_config
    from pipeline.exitcodes import ExitCode
    from pipeline.ocr.truth import register
    from pipeline.server import EmbeddedServer, ServerConfig

    for n, (name, (answer, _)) in enumerate(ODD_ANSWERS.items()):
        page = save(text_page(f"page {n}", size=(300, 140)), tmp_path / "in" / name, "PNG")
        register(tmp_path / "truth", page_pixels(page), answer)
    async with EmbeddedServer(ServerConfig(engine="truth", tokens=(TOKEN,), truth_dir=str(tmp_path / "truth"))) as srv:
        cfg = write_config(tmp_path, srv.base_url, outputs=["txt", "json", "md"])
        code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK, report
    out = tmp_path / "out"
    for name, (answer, text) in ODD_ANSWERS.items():
        assert (out / f"{name}.txt").read_text(encoding="utf-8") == text, name
        assert (out / f"{name}.md").read_text(encoding="utf-8") == answer + "\n", name   # the raw answer, kept
        page = json.loads((out / f"{name}.json").read_text(encoding="utf-8"))["pages"][0]
        assert page["answer"] == answer and page.get("no_text", False) == (text == ""), name


def page_pixels(path):
    """The image as the server decodes the upload (a small PNG is sent as it is)."""
    from pipeline.ocr.pool import decode_image

    return decode_image(path.read_bytes())


async def test_control_characters_in_an_answer_or_a_file_name_leave_every_output_well_formed(tmp_path):
    """A stray control character in an answer (a form feed, a bell, a NUL), a noncharacter, or a
    bell in an old file name: before, ALTO, hOCR, PAGE-XML and METS were not well-formed XML (verify
    said so after a run that exited 0), the answer's form feed split the .txt into two pages,
    and the file name failed the upload (the server refused a multipart header holding it)."""
    import xml.etree.ElementTree as ET

    from conftest import TOKEN
    from formats_checks import validate_alto, validate_mets, validate_page
    from pipeline.formats.check import check_mets
    from helpers import run_pipeline, save, text_page, write_config
    from pipeline.exitcodes import ExitCode
    from pipeline.ocr.truth import register
    from pipeline.server import EmbeddedServer, ServerConfig

    answers = {"ctrl.png": "Hello\x0cWorld\x07 bell\x00ringer \uffff end",
               "bell\x07name.png": "# Parish\n\nA plain line"}
    for n, (name, answer) in enumerate(answers.items()):
        page = save(text_page(f"page {n}", size=(300, 140)), tmp_path / "in" / name, "PNG")
        register(tmp_path / "truth", page_pixels(page), answer)
    async with EmbeddedServer(ServerConfig(engine="truth", tokens=(TOKEN,), truth_dir=str(tmp_path / "truth"))) as srv:
        cfg = write_config(tmp_path, srv.base_url, outputs=["txt", "json", "alto", "hocr", "page", "mets"])
        code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK, report
    out = tmp_path / "out"
    assert (out / "ctrl.png.txt").read_text(encoding="utf-8") == "Hello\nWorld bellringer  end"   # one page
    assert json.loads((out / "bell\x07name.png.json").read_text(encoding="utf-8"))["text"] == "Parish\n\nA plain line"
    for name in answers:
        validate_alto(out / f"{name}.alto.xml")
        validate_page(out / f"{name}.page.xml")
        ET.parse(out / f"{name}.hocr")                      # well-formed XHTML
        validate_mets(out / f"{name}.mets.xml")
        doc = json.loads((out / f"{name}.json").read_text(encoding="utf-8"))
        assert check_mets(out / f"{name}.mets.xml", doc) is None, name   # its hrefs lead to the files
    assert "bell\ufffdname.png" in (out / "bell\x07name.png.alto.xml").read_text(encoding="utf-8")
    assert 'href="bell%07name.png.txt"' in (out / "bell\x07name.png.mets.xml").read_text(encoding="utf-8")


# format=json answers in shapes not our server's (deAPI's is unpublished), each registered with
# the truth engine as the job's JSON answer: (answer, the page's .txt)
JSON_ANSWERS = {
    # chat-style content blocks (before: no text found, the .txt held the raw JSON)
    "blocks.png": ({"content": [{"type": "text", "text": "# Title"}, {"type": "text", "text": "Body **b**"}]},
                   "Title\nBody b"),
    # an empty text beside the parts holding it (before: the page came out blank)
    "empty.png": ({"text": "", "pages": [{"markdown": "Page *one*"}]}, "Page one"),
    # a JSON string: the Markdown itself (before: kept with its quotes and \n escapes)
    "string.png": ("# Title\n\nBody", "Title\n\nBody"),
    # a JSON document encoded twice, as a string (before: the .txt held the JSON)
    "twice.png": (json.dumps({"markdown": "## Two"}), "Two"),
    # ... and below the top, under a key (before: the .txt held the inner JSON)
    "nested.png": ({"status": "done", "result": json.dumps({"markdown": "## Nested"})}, "Nested"),
    # an answer of empty containers: a page with no text (before: "{}" in the .txt, a word in ALTO)
    "nothing.png": ({}, ""),
    "no pages.png": ({"pages": [], "meta": {}}, ""),
}


async def test_json_answers_of_other_shapes_give_their_text(tmp_path):
    from conftest import TOKEN
    from helpers import run_pipeline, save, text_page, write_config
    from pipeline.exitcodes import ExitCode
    from pipeline.ocr.truth import register
    from pipeline.server import EmbeddedServer, ServerConfig

    for n, (name, (answer, _)) in enumerate(JSON_ANSWERS.items()):
        page = save(text_page(f"json {n}", size=(300, 140)), tmp_path / "in" / name, "PNG")
        register(tmp_path / "truth", page_pixels(page), "unused: the JSON answer is given", json_answer=answer)
    async with EmbeddedServer(ServerConfig(engine="truth", tokens=(TOKEN,), truth_dir=str(tmp_path / "truth"))) as srv:
        cfg = write_config(tmp_path, srv.base_url, api__format="json", outputs=["txt", "json"])
        code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK, report
    out = tmp_path / "out"
    for name, (answer, text) in JSON_ANSWERS.items():
        assert (out / f"{name}.txt").read_text(encoding="utf-8") == text, name
        page = json.loads((out / f"{name}.json").read_text(encoding="utf-8"))["pages"][0]
        if isinstance(answer, dict):
            assert page["result"] == answer, name                 # the raw answer, kept


# format=json answers of shapes the stitching of a tall page's strips and the outputs met badly
# (found by feeding each strip of a tall page its JSON through the truth engine, helper
# "standin2"): (the answer of strip n, the page's .txt). Each failed before the fix beside it.
STRIP_JSON_ANSWERS = {
    # boxed lines and no "text" beside them: the strips were joined from their "text" alone, so
    # the page came out blank (no_text) though every line had its text
    "boxed.png": (lambda n: {"blocks": [{"lines": [{"text": f"boxed {n}", "box": [4, 4, 200, 30]}]}]},
                  "boxed 0\nboxed 1\nboxed 2"),
    # boxes that are no boxes (strings, nulls, too short): ALTO/hOCR/PDF failed the file with an
    # internal error (float("a")); the lines are the text, placed as a text-only answer's
    "badbox.png": (lambda n: {"blocks": [{"lines": [{"text": f"bad {n}", "box": ["a", None, 3, 4]},
                                                    {"text": f"short {n}", "box": [1, 2, 3]}]}, "loose"]},
                   "bad 0\nshort 0\n\nloose\nbad 1\nshort 1\n\nloose\nbad 2\nshort 2\n\nloose"),
    # null and a number where the text goes: the .txt held the JSON, '{"text": null}'
    "null.png": (lambda n: {"text": None} if n != 1 else {"text": 1952, "confidence": None}, "1952"),
}


async def test_json_answers_of_odd_shapes_through_strips_give_their_text_and_clean_outputs(tmp_path):
    from conftest import TOKEN
    from helpers import run_pipeline, save, write_config
    from PIL import Image, ImageDraw
    from helpers import font
    from pipeline.config import load_config
    from pipeline.exitcodes import ExitCode
    from pipeline.inputs.strips import plan_strips
    from pipeline.ocr.truth import register
    from pipeline.run.audit import verify
    from pipeline.run.state import StateStore
    from pipeline.server import EmbeddedServer, ServerConfig

    for k, (name, (answer, _)) in enumerate(STRIP_JSON_ANSWERS.items()):
        img = Image.new("L", (420, 760), 255)
        draw = ImageDraw.Draw(img)
        for i in range(8):
            draw.text((20, 20 + 90 * i), f"Page {k} line {i}", font=font(26), fill=0)
        save(img, tmp_path / "in" / name)
        regions = plan_strips(img, 300)
        assert len(regions) == 3, regions
        for n, r in enumerate(regions):
            register(tmp_path / "truth", img.crop((r.x0, r.y0, r.x1, r.y1)), "unused", json_answer=answer(n))
    async with EmbeddedServer(ServerConfig(engine="truth", tokens=(TOKEN,), truth_dir=str(tmp_path / "truth"))) as srv:
        cfg = write_config(tmp_path, srv.base_url, api__format="json", api__max_input_height=300,
                           outputs=["txt", "json", "md", "alto", "hocr", "pdf"])
        code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK, report
    out = tmp_path / "out"
    for name, (_, text) in STRIP_JSON_ANSWERS.items():
        assert (out / f"{name}.txt").read_text(encoding="utf-8") == text, name
    config = load_config(cfg)
    assert verify(config, StateStore(config.state_file)).problems == []   # ALTO, hOCR, PDF and md sound


# Answer classes a reviewer's stand-in of the hosted model gives that ours never did (found by
# feeding given Markdown through the truth engine, helper "standin"): (answer, its plain text).
# Each failed before the fix named beside it.
MARKUP_CLASSES = {
    # a BOM before the answer: before, it stayed and hid the heading mark ("\ufeff# Head")
    "bom": ("\ufeff# Head\nbody", "Head\nbody"),
    # HTML comments are never shown: before, "<!-- a note -->" was in the .txt (and ALTO words)
    "comment": ("text <!-- a note --> more", "text  more"),
    # HTML's block elements end lines: before, "</div><p>para" glued two lines ("Cpara")
    "blocks": ("<div><center>C</center></div><p>para</p><h2>Head</h2><ul><li>one</li><li>two</li></ul>",
               "C\n\npara\n\nHead\n\none\n\ntwo"),
    "cell blocks": ("<table><tr><td><p>a</p><p>b</p></td></tr></table>", "a b"),
    # a form's blanks are printed: before, "________" shrank to "__" (read as emphasis of "____")
    "blanks": ("Name: ________ Date: ____\n\nTotal***\n***", "Name: ________ Date: ____\n\nTotal***\n***"),
    # nested quotes: before, "> > a" kept one ">"
    "quotes": ("> a\n> > b\n>\n> c", "a\nb\n\nc"),
    # inline code is its text, literal: before, the backticks stayed
    "code": ("run `make *all*` now, ``a `b` c``\n\n```python\nx = 1\n```", "run make *all* now, a `b` c\n\nx = 1"),
    # ... a fence line is ``` and a language's name at most: one going on with text is text (found
    # by fuzzing: "```Wort ist hier" was dropped whole as a fence's info string)
    "fence text": ("```Wort ist hier\nnext", "```Wort ist hier\nnext"),
    # ... but backticks inside words are OCR's apostrophes, no code (they stay)
    "ticks": ("don`t know what`s `here`", "don`t know what`s here"),
    # footnotes: the mark as printed (a superscript, as <sup>1</sup>): before, "[^1]" in the .txt
    "footnote": ("Text[^1] and[^2].\n\n[^1]: The note.", "Text\u00b9 and\u00b2.\n\n\u00b9 The note."),
    # a pipe table without its outer bars (GFM allows it): before, the bars stayed and no cells
    "bare pipes": ("a | b\n--- | ---\n1 | 2\n\nafter", "a\tb\n1\t2\n\nafter"),
    # printed text in angle brackets is no tag: before, "<Name of person>" was lost
    "angle text": ("Sign here: <Name of person> <b>now</b> <x y=\"1\">z</x> <Unterschrift>; if a<b and c>d",
                   "Sign here: <Name of person> now z <Unterschrift>; if a<b and c>d"),
    # ... in a table's cell too, where the HTML parser took it for a tag (before: "ad"); a table's
    # own tags keep any attribute (<td data-x>)
    "cell brackets": ("<table><tr><td>a<b and c>d</td><td data-x nowrap>e</td></tr></table>", "a<b and c>d\te"),
    # an HTML checkbox or a task list's box is its state, as the model's own marks (before:
    # "<input type=checkbox checked>" left nothing, "- [x]" stayed as brackets)
    "checkbox": ('<input type="checkbox" checked> Yes <input type=checkbox> No\n\n- [x] done\n- [ ] open\n\nsee [x] here',
                 "\u2611 Yes \u2610 No\n\n- \u2611 done\n- \u2610 open\n\nsee [x] here"),
    # a picture's printed caption, which the model's prompt puts in <img> when there is one: before,
    # dropped with the descriptions (the caption printed on the page was lost)
    "caption": ("<img>A photo of a crane.</img>\n<img>Figure 2: The harbour crane</img>\nText <img>a hook</img> on",
                "Figure 2: The harbour crane\n\nText  on"),
    # a page number or watermark inside a line: its own line, without the spaces around it
    "printed inline": ("Body <page_number>3</page_number> more", "Body\n3\nmore"),
}


@pytest.mark.parametrize("name", MARKUP_CLASSES)
def test_markdown_classes_read_as_a_renderer_shows_them(name):
    answer, text = MARKUP_CLASSES[name]
    assert plain_text(answer) == text


async def test_a_markdown_answer_of_every_class_leaves_no_markup_in_any_output(tmp_path):
    """One page whose answer has a BOM, CRLF line ends, a heading, an HTML comment, block elements, a nested quote, inline code and a form's blanks, answered by the
    truth engine to the real client: the .txt is the plain rule's, the .json keeps the answer byte
    for byte (CRLF too: before, the truth engine's read_text turned it into LF, so no test sent
    one), the md keeps it (less its BOM), ALTO is valid and carries no markup as a word, and the words printed
    on the page are placed."""
    from conftest import TOKEN
    from formats_checks import alto_words, hocr_words, validate_alto
    from helpers import font, run_pipeline, save, write_config
    from PIL import Image, ImageDraw
    from pipeline.exitcodes import ExitCode
    from pipeline.ocr.truth import register
    from pipeline.server import EmbeddedServer, ServerConfig

    answer = ("\ufeff# Harbour Report\r\n\r\nThe board met <!-- illegible --> on Monday.\r\n\r\n"
              "<p>First item</p><p>Second item</p>\r\n> > Quoted from `the log`\r\n\r\nName: ________")
    printed = ["Harbour Report", "The board met on Monday.", "First item", "Second item",
               "Quoted from the log", "Name: ________"]
    img = Image.new("L", (640, 40 + 36 * len(printed)), 255)
    draw = ImageDraw.Draw(img)
    for k, line in enumerate(printed):
        draw.text((20, 20 + 36 * k), line, font=font(24), fill=0)
    page = save(img, tmp_path / "in" / "page.png", "PNG")
    register(tmp_path / "truth", page_pixels(page), answer)
    async with EmbeddedServer(ServerConfig(engine="truth", tokens=(TOKEN,), truth_dir=str(tmp_path / "truth"))) as srv:
        cfg = write_config(tmp_path, srv.base_url, outputs=["txt", "json", "md", "alto", "hocr"])
        code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK, report
    out = tmp_path / "out"
    txt = (out / "page.png.txt").read_text(encoding="utf-8")
    assert txt == plain_text(answer)
    assert txt.split() == " ".join(printed).split()            # every printed word, in order, nothing else
    assert json.loads((out / "page.png.json").read_text(encoding="utf-8"))["pages"][0]["answer"] == answer
    assert (out / "page.png.md").read_bytes().decode("utf-8") == answer.replace("\ufeff", "") + "\n"   # but its BOM
    validate_alto(out / "page.png.alto.xml")
    words = alto_words(out / "page.png.alto.xml")
    assert [w for _, w, _, _ in words] == txt.split() == [w for _, w, _, _ in hocr_words(out / "page.png.hocr")]
    assert sum(box is not None for _, _, box, _ in words) >= 0.8 * len(words)


def test_markup_in_any_order_loses_no_printed_word():
    """Markup that hides nothing (tags, marks, tables, escapes, math, quotes, entities, BOMs, CRLF),
    thrown together in random order with three words, seeded: every word comes out as often as it
    went in (a fence line here is one alone: "``` Wort" is a fence named Wort). Written from a fuzz
    run that found a fence line eating the text after it, and the table's HTML parser eating
    printed text in angle brackets ("<td>a<b and c>d</td>" read "ad")."""
    import random

    tokens = ["<table>", "</table>", "<tr>", "<td>", "</td>", "<th colspan=2>", "<td rowspan='3'>", "<br>",
              "<watermark>", "</watermark>", "<page_number>", "</page_number>", "**", "*", "__", "_", "~~", "`",
              "\n```\n", "$$", "$", "\\(", "\\)", "\\*", "&amp;", "&nbsp;", "#", "## ", "> ", "|", "---", "===",
              "\n", "\r\n", "\n\n", "<p>", "</p>", "<div>", "<Name of x>", "<b ", "and>", "[^1]", "\ufeff", "\t", " ",
              "<input type=checkbox checked>", "- [x] ", "1. ", "<signature>", "</signature>", "<x y=1>", "</x>",
              "<sup>2</sup>"] + [" Wort ", "zehn", "Quay"] * 6
    rnd = random.Random(7)
    for _ in range(1500):
        answer = "".join(rnd.choice(tokens) for _ in range(rnd.randint(0, 40)))
        text = plain_text(answer)
        assert [text.count(w) for w in ("Wort", "zehn", "Quay")] == \
            [answer.count(w) for w in ("Wort", "zehn", "Quay")], (answer, text)
