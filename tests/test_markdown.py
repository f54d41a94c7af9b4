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
                     {"index": 1, "text": "plain page"}]}
    md = markdown_document(doc)
    assert md == "# Title\n\n<!-- page 2 -->\n\nplain page\n"


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
