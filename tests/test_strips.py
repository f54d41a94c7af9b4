"""Pages too tall for the model: cut at line gaps into strips, stitched, learned limits (issue 27 B).

Every test here runs the real runner against the project's own server with a height limit
(``ServerConfig.max_input_height``, the hosted model's ``INPUT_TOO_LARGE``); the fast engine's
answer names the pixels each job saw, so the server's counters and answers say which strips were
sent and how often.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from conftest import TOKEN
from helpers import font, read_result, run_pipeline, save, write_config
from pipeline.inputs.strips import ink_mask, plan_strips
from pipeline.run.stitch import Piece, seam_lines, stitch
from pipeline.inputs.strips import Region
from pipeline.server import EmbeddedServer, ServerConfig

LIMIT = 850
NAIVE_CUTS = (850, 1700, 2550)


def lined_page(size=(1240, 2900), pitch=64, size_pt=34, words=None) -> tuple[Image.Image, list[tuple]]:
    """A page of text lines, one of them lying across every naive cut height (850, 1700, 2550):
    returns the image and each line's (text, ink box)."""
    img = Image.new("L", size, 255)
    draw = ImageDraw.Draw(img)
    f = font(size_pt)
    lines = []
    ys = list(range(70, size[1] - 80, pitch))
    for cut in NAIVE_CUTS:   # move the nearest line so that it straddles the naive cut
        if cut < size[1]:
            i = min(range(len(ys)), key=lambda k: abs(ys[k] - cut))
            ys[i] = cut - size_pt // 2
    for n, y in enumerate(ys):
        text = words(n) if callable(words) else (words or "Line {n} carries words across the page").format(n=n)
        draw.text((60, y), text, fill=0, font=f)
        lines.append((text, draw.textbbox((60, y), text, font=f)))
    return img, lines


def test_strips_are_cut_at_line_gaps_never_through_a_line():
    img, lines = lined_page()
    regions = plan_strips(img, LIMIT)
    assert len(regions) >= 4 and all(r.height <= LIMIT for r in regions)
    assert regions[0].y0 == 0 and all(a.y1 == b.y0 for a, b in zip(regions, regions[1:]))  # no overlap, no hole
    for text, (x0, y0, x1, y1) in lines:
        inside = [r for r in regions if r.y0 <= y0 and y1 <= r.y1]
        assert len(inside) == 1, (text, (y0, y1), regions)   # every line whole in exactly one strip
    straddling = [b for _, b in lines if any(b[1] < c < b[3] for c in NAIVE_CUTS)]
    assert len(straddling) == 3   # the page really has lines where naive cuts would fall


def two_column_page(size=(1600, 2400)) -> tuple[Image.Image, list[str], list[str]]:
    img = Image.new("L", size, 255)
    draw = ImageDraw.Draw(img)
    f = font(30)
    draw.text((size[0] // 2, 40), "A TITLE ACROSS THE PAGE", fill=0, font=f, anchor="mt")  # centred
    left, right = [], []
    for n, y in enumerate(range(160, size[1] - 60, 52)):
        left.append(f"left {n} alpha")
        right.append(f"right {n} beta")
        draw.text((60, y), left[-1], fill=0, font=f)
        draw.text((880, y + 13), right[-1], fill=0, font=f)   # rows offset: the columns do not pause together
    return img, left, right


def test_a_two_column_page_is_cut_into_its_columns_first():
    img, _, _ = two_column_page()
    regions = plan_strips(img, LIMIT)
    assert all(r.height <= LIMIT for r in regions)
    title, *body = regions
    assert (title.x0, title.x1) == (0, img.width) and title.y0 == 0
    lefts = [r for r in body if r.x0 == 0 and 250 < r.x1 < 880]     # the left text ends near x 250
    rights = [r for r in body if 250 < r.x0 < 880 and r.x1 == img.width]  # the right text starts at x 880
    assert lefts and rights and len(lefts) + len(rights) == len(body)
    assert body == lefts + rights   # column 1 top to bottom, then column 2: reading order


def _columns_apart(regions, left_boxes, right_boxes, width):
    """Every line whole in one strip, no strip holding lines of both columns, and the strips
    of the left column all before those of the right one (reading order)."""
    order = []
    for boxes in (left_boxes, right_boxes):
        for box in boxes:
            holders = _holders(regions, box)
            assert len(holders) == 1, (box, regions)
            order.append(regions.index(holders[0]))
    lefts = {regions.index(_holders(regions, b)[0]) for b in left_boxes}
    rights = {regions.index(_holders(regions, b)[0]) for b in right_boxes}
    assert not lefts & rights and max(lefts) < min(rights), regions


def test_columns_under_a_heading_set_close_above_them_are_still_cut_apart():
    """Two columns (transcript pages side by side, each line numbered) under a heading that
    crosses the gutter, set closer to them than a band gap: the heading and the columns are one
    band, and the heading's letters across the gutter hid it (the page was cut across, both
    columns' lines interleaved in every strip). Below the heading's lines the columns are found."""
    img = Image.new("L", (1600, 2400), 255)
    draw = ImageDraw.Draw(img)
    f = font(30)
    draw.text((800, 30), "Deposition of a witness, pages 12 and 13", fill=0, font=f, anchor="mt")
    title = draw.textbbox((800, 30), "Deposition of a witness, pages 12 and 13", font=f, anchor="mt")
    assert title[0] < 760 and title[2] > 840      # it crosses the gutter (x 760-840)
    left, right = [], []
    for n, y in enumerate(range(title[3] + 12, 2340, 50)):    # 12 px under it: less than a band gap
        for x, boxes, text in ((40, left, f"{n % 25 + 1}"), (120, left, f"left {n} words of line"),
                               (860, right, f"{n % 25 + 1}"), (940, right, f"right {n} words here")):
            draw.text((x, y + (0 if boxes is left else 9)), text, fill=0, font=f)
            boxes.append(draw.textbbox((x, y + (0 if boxes is left else 9)), text, font=f))
    regions = plan_strips(img, LIMIT)
    assert all(r.height <= LIMIT for r in regions)
    assert len(_holders(regions, title)) == 1
    _columns_apart(regions, left, right, img.width)


def test_columns_in_a_frame_under_a_heading_are_cut_apart_below_the_frames_top_edge():
    """A heading, then two transcript pages side by side in frames whose sides run from the top
    edge (a rule across the gutter) down past every line: each row holds a speck of the sides'
    ink, so the rule and the lines under it were one "line", the heading could be parted off
    only with the rule, which crosses the gutter, and the page was cut across (scribe
    ``deposition_01``: each page's number and first line in the heading's strip). Lines are found
    without the frame's sides: the heading and the rule are parted off, the columns cut apart."""
    img = Image.new("L", (1600, 2400), 255)
    draw = ImageDraw.Draw(img)
    f = font(30)
    heading = "Deposition of a witness, pages 12 and 13"
    draw.text((800, 30), heading, fill=0, font=f, anchor="mt")
    title = draw.textbbox((800, 30), heading, font=f, anchor="mt")
    top = title[3] + 12                               # closer than a band gap
    # drawn askew, as scanned: no one row or pixel column of the frame is inked over half the
    # page, so ``ink_mask`` keeps it (a straight frame is left out as the scan's border)
    draw.line((30, top, 1570, top + 8), fill=0, width=3)    # the frames' top edge, across the gutter
    for x in (30, 790, 1570):                               # their sides, joined to it
        draw.line((x, top + x * 8 // 1540, x + 7, 2360), fill=0, width=2)
    assert title[0] < 790 < title[2]                  # the heading crosses the gutter too
    left, right = [], []
    for n, y in enumerate(range(top + 10, 2320, 50)):
        for x, boxes, text in ((60, left, f"left {n} words of line"), (830, right, f"right {n} words here")):
            at = (x, y + (0 if boxes is left else 9))   # out of step: text columns, no table
            draw.text(at, text, fill=0, font=f)
            boxes.append(draw.textbbox(at, text, font=f))
    regions = plan_strips(img, LIMIT)
    assert all(r.height <= LIMIT for r in regions)
    assert len(_holders(regions, title)) == 1
    _columns_apart(regions, left, right, img.width)


def test_a_ruled_table_is_not_parted_below_its_header_into_columns():
    """A ruled table (rules drawn askew, as scanned, so ``ink_mask`` keeps them) whose first
    column holds part numbers: with its rules down the page left out, its rows are lines, and
    below its header the columns are clear of the rules across. Its header's cells lie in its
    columns, no text crosses a gutter: it is not parted off, and the table is cut across, each row
    whole in one strip (scribe ``table_05``), never into its columns."""
    img = Image.new("L", (1600, 2400), 255)
    draw = ImageDraw.Draw(img)
    f = font(30)
    xs = (100, 450, 800, 1150, 1500)
    for y in (80, 150):                                     # the rules over and under the header
        draw.line((xs[0], y, xs[-1], y + 8), fill=0, width=4)
    for x in xs:                                            # the rules down, joining every row
        draw.line((x, 80, x + 8, 2330), fill=0, width=2)
    for x, label in zip(xs, ("Part No.", "Table No.", "Part No.", "Table No.")):
        draw.text((x + 40, 100), label, fill=0, font=f)
    rows = []
    for n, y in enumerate(range(175, 2300, 46)):
        cells = (f"{n + 1}", "13 A", f"{n + 88}", "14 B")
        for x, cell in zip(xs, cells):
            draw.text((x + 40, y), cell, fill=0, font=f)
        rows.append((xs[0] + 40, y, draw.textbbox((xs[3] + 40, y), cells[3], font=f)[2], y + 32))
    regions = plan_strips(img, LIMIT)
    assert all(r.height <= LIMIT for r in regions)
    assert all((r.x0, r.x1) == (0, img.width) for r in regions), regions
    for row in rows:
        assert _holders(regions, row), (row, regions)


def test_a_rule_set_close_over_two_columns_is_parted_off():
    """A rule across the gutter (drawn askew, as scanned) set closer over two text columns than a
    band gap: no text crosses the gutter, yet the rule hides it; it is parted off as before
    (the lines as they are), and the columns are cut apart."""
    img = Image.new("L", (1600, 2400), 255)
    draw = ImageDraw.Draw(img)
    f = font(30)
    draw.line((60, 40, 1540, 48), fill=0, width=4)
    left, right = [], []
    for n, y in enumerate(range(62, 2340, 50)):
        for x, boxes, text in ((60, left, f"left {n} words of line"), (830, right, f"right {n} words here")):
            at = (x, y + (0 if boxes is left else 9))
            draw.text(at, text, fill=0, font=f)
            boxes.append(draw.textbbox(at, text, font=f))
    regions = plan_strips(img, LIMIT)
    assert all(r.height <= LIMIT for r in regions)
    _columns_apart(regions, left, right, img.width)


def test_a_figure_beside_a_text_column_does_not_hide_the_gutter():
    """A column that ends in a figure (a chart in a sidebar) beside a text column: the figure's
    ink runs down many rows on end, and a gutter beside such a "line" was taken for the word
    space of a huge title (no columns: the page was cut across, figure and text mixed). A word
    space has the title's letters on both sides; here the text's lines are as tall as they are."""
    img = Image.new("L", (1600, 2400), 255)
    draw = ImageDraw.Draw(img)
    f = font(30)
    left, right = [], []
    for n, y in enumerate(range(60, 1100, 50)):
        draw.text((60, y), f"side {n} figures", fill=0, font=f)
        left.append(draw.textbbox((60, y), f"side {n} figures", font=f))
    draw.rectangle((60, 1160, 660, 1900), outline=0, width=4)     # the chart: a frame and bars
    for k in range(10):
        draw.rectangle((100 + 55 * k, 1860 - 100 * (k % 6 + 1), 130 + 55 * k, 1890), fill=0)
    left.append((60, 1160, 661, 1901))
    for n, y in enumerate(range(1960, 2340, 50)):
        draw.text((60, y), f"note {n} under it", fill=0, font=f)
        left.append(draw.textbbox((60, y), f"note {n} under it", font=f))
    for n, y in enumerate(range(60, 2340, 50)):
        draw.text((760, y + 9), f"body {n} runs on in its column", fill=0, font=f)
        right.append(draw.textbbox((760, y + 9), f"body {n} runs on in its column", font=f))
    regions = plan_strips(img, LIMIT)
    assert all(r.height <= LIMIT for r in regions)
    _columns_apart(regions, left, right, img.width)


def test_numbered_lines_inside_a_skewed_frame_are_read_numbers_then_text():
    """A transcript page: numbered lines, a frame's side drawn a few pixels askew down the page
    (no one pixel column of it is inked down half the page, so it is no frame to ``ink_mask``).
    Its pixels beside each number made every number look five line heights wide, the numbers no
    line numbers, their rows a table's: the page was cut across. A stroke inked down more than
    two lines on end is no part of a number: the numbers are read, then the text, as whole."""
    img = Image.new("L", (1600, 2400), 255)
    draw = ImageDraw.Draw(img)
    f = font(30)
    draw.line((120, 60, 127, 2340), fill=0, width=3)      # the frame's side, 7 px askew
    numbers, text = [], []
    for n, y in enumerate(range(80, 2320, 50)):
        label, line = f"{n % 25 + 1}", f"line {n} of the witness answering"
        draw.text((240, y), label, fill=0, font=f, anchor="ra")
        numbers.append(draw.textbbox((240, y), label, font=f, anchor="ra"))
        draw.text((330, y), line, fill=0, font=f)
        text.append(draw.textbbox((330, y), line, font=f))
    regions = plan_strips(img, LIMIT)
    assert all(r.height <= LIMIT for r in regions)
    _columns_apart(regions, numbers, text, img.width)


def _holders(regions, box) -> list:
    x0, y0, x1, y1 = box
    return [r for r in regions if r.x0 <= x0 and x1 <= r.x1 and r.y0 <= y0 and y1 <= r.y1]


def test_a_table_is_cut_across_its_full_width_between_its_rows_never_into_its_columns():
    """A table's gutters run its whole height like text columns', but its cells start on the same
    rows: cut into its columns it would be read column by column, so it is cut across the full
    width, each row whole in one strip (its cells together)."""
    img = Image.new("L", (1600, 2400), 255)
    draw = ImageDraw.Draw(img)
    f = font(30)
    rows = []
    for n, y in enumerate(range(60, 2340, 48)):
        cells = [(x, f"{word} {n}") for x, word in ((60, "item"), (620, "12.50"), (1150, "north"))]
        for x, text in cells:
            draw.text((x, y), text, fill=0, font=f)
        rows.append([draw.textbbox((x, y), text, font=f) for x, text in cells])
    regions = plan_strips(img, LIMIT)
    assert len(regions) >= 3 and all(r.height <= LIMIT for r in regions)
    assert all((r.x0, r.x1) == (0, img.width) for r in regions)
    for cells in rows:
        holders = [_holders(regions, c) for c in cells]
        assert all(len(h) == 1 for h in holders) and holders[0] == holders[1] == holders[2], cells


def test_prose_columns_on_one_baseline_grid_are_cut_into_their_columns_not_across():
    """An article set on a baseline grid: its two columns' lines lie on the same rows, as a
    table's cells do, but each column is prose (long lines, word spaces only). Cut across, every
    strip would be read line by line over both columns; so it is cut into its columns (a rendered
    two-column article read in strips scored +36 CER points this way)."""
    img = Image.new("L", (1600, 2400), 255)
    draw = ImageDraw.Draw(img)
    f = font(30)
    rng = random.Random(7)
    words = ("archive", "register", "parish", "folio", "committee", "museum", "county", "letter")
    left, right = [], []
    for y in range(60, 2340, 48):
        for x, boxes in ((60, left), (860, right)):
            text = " ".join(rng.choice(words) for _ in range(5))
            if (y // 48) % 9 != 8:   # a paragraph break now and then, in both columns at once
                draw.text((x, y), text, fill=0, font=f)
                boxes.append(draw.textbbox((x, y), text, font=f))
    assert max(b[2] for b in left) < 820   # a white gutter between the columns
    regions = plan_strips(img, LIMIT)
    assert all(r.height <= LIMIT for r in regions)
    _columns_apart(regions, left, right, img.width)


def test_a_block_under_the_first_column_after_both_columns_end_is_read_after_them():
    """Two columns, then (after a break of a few lines) a key/value block set under column 1
    only: it is read after column 2, as the whole page is; while the tail of column 1 that
    follows it at a paragraph gap, with column 2 already ended, stays column 1's (read before
    column 2)."""
    def page(block_gap: int):
        img = Image.new("L", (1600, 2600), 255)
        draw = ImageDraw.Draw(img)
        f = font(30)
        left, right, block = [], [], []
        for n, y in enumerate(range(60, 1900, 48)):
            for x, boxes, word in ((60, left, "left"), (880, right, "right")):
                if x == 60 or y < 1500:   # column 2 ends first
                    text = f"{word} column line {n} of prose"
                    draw.text((x, y + (13 if x == 880 else 0)), text, fill=0, font=f)
                    boxes.append(draw.textbbox((x, y + (13 if x == 880 else 0)), text, font=f))
        y = 1900 - 48 + block_gap
        for n in range(8):
            for x, text in ((60, f"Key {n}"), (400, f"value {n}")):
                draw.text((x, y), text, fill=0, font=f)
                block.append(draw.textbbox((x, y), text, font=f))
            y += 48
        return img, left, right, block

    img, left, right, block = page(block_gap=48 + 4 * 36)    # a break of about five line heights
    regions = plan_strips(img, LIMIT)
    assert all(r.height <= LIMIT for r in regions)
    _columns_apart(regions, left, right, img.width)
    last_right = max(regions.index(_holders(regions, b)[0]) for b in right)
    assert all(regions.index(_holders(regions, b)[0]) > last_right for b in block), regions

    img, left, right, block = page(block_gap=48 + 12)   # a paragraph gap: column 1 goes on
    regions = plan_strips(img, LIMIT)
    _columns_apart(regions, left + block, right, img.width)


def test_a_short_form_on_a_tall_page_is_kept_whole_not_cut_into_its_columns():
    """A form of labels and values (columns under one gutter, rows not quite on one pitch, so no
    table) fills 700 px of a 1750 px page: its section reaches the page's foot in blank paper,
    but its ink fits the limit, so it is one strip, read row by row as the whole page is (cut
    into its columns, each label column was read before its values: +60 CER points on rendered
    forms)."""
    img = Image.new("L", (1240, 1750), 255)
    draw = ImageDraw.Draw(img)
    f = font(28)
    cells = []
    for n, y in enumerate(range(80, 760, 44)):
        for x, text in ((80, f"Label {n}"), (420, f"value {n} here"), (760, f"Field {n}"), (1000, f"{n}/03")):
            draw.text((x, y + (n % 3) * 4 * (x > 400)), text, fill=0, font=f)
            cells.append(draw.textbbox((x, y + (n % 3) * 4 * (x > 400)), text, font=f))
    regions = plan_strips(img, LIMIT)
    assert len(regions) == 1 and regions[0].height <= LIMIT, regions
    assert all(len(_holders(regions, c)) == 1 for c in cells)


def test_a_table_with_a_quantity_column_is_still_cut_across_not_into_its_columns():
    """A column of small numbers (quantities) is as narrow as a column of line numbers, but the
    cells after it are short (prices), not running text: it is a table's column, and the table is
    cut across its full width between its rows, each row whole in one strip."""
    img = Image.new("L", (1600, 2400), 255)
    draw = ImageDraw.Draw(img)
    f = font(30)
    rows = []
    for n, y in enumerate(range(60, 2340, 48)):
        cells = [(x, text) for x, text in ((60, f"item {n}"), (560, f"{n % 9 + 1}"), (860, f"{n}.50"), (1250, "north"))]
        for x, text in cells:
            draw.text((x, y), text, fill=0, font=f)
        rows.append([draw.textbbox((x, y), text, font=f) for x, text in cells])
    regions = plan_strips(img, LIMIT)
    assert len(regions) >= 3 and all(r.height <= LIMIT for r in regions)
    assert all((r.x0, r.x1) == (0, img.width) for r in regions), regions
    for cells in rows:
        holders = [_holders(regions, c) for c in cells]
        assert all(len(h) == 1 for h in holders) and len({id(h[0]) for h in holders}) == 1, cells


def test_a_tall_form_with_a_second_field_on_a_few_rows_is_cut_across_between_its_rows():
    """A form of labels and values, a second field beside them on only three rows (its label and
    value a little taller: an address with descenders), and a key/value block over an item table
    with a quantity column: each a table by its rows, whose sparse column is too short to judge a
    gutter by but lies on its rows. Cut across, each row whole in one strip (cut into its
    columns, rendered forms at 300 dpi scored +60 CER points)."""
    img = Image.new("L", (2400, 2700), 255)
    draw = ImageDraw.Draw(img)
    f = font(44)
    rows = []
    for n, y in enumerate(range(80, 1500, 72)):
        cells = [(100, f"Label {n}"), (700, f"value {n}")]
        if n in (3, 9, 15):
            cells += [(1400, "Email"), (1800, f"q{n}@example.org")]
        rows.append(cells)
    for n, y in enumerate(range(1600, 2620, 72)):
        rows.append([(100, f"item {n}"), (900, f"{n % 9 + 1}"), (1400, f"{n}.50"), (1900, f"{n * 3}.00")])
    boxes = []
    for cells, y in zip(rows, list(range(80, 1500, 72)) + list(range(1600, 2620, 72))):
        boxes.append([])
        for x, text in cells:
            draw.text((x, y), text, fill=0, font=f)
            boxes[-1].append(draw.textbbox((x, y), text, font=f))
    regions = plan_strips(img, LIMIT)
    assert all(r.height <= LIMIT for r in regions) and all((r.x0, r.x1) == (0, img.width) for r in regions), regions
    for cells in boxes:
        holders = [_holders(regions, c) for c in cells]
        assert all(len(h) == 1 for h in holders) and len({id(h[0]) for h in holders}) == 1, cells


def test_a_strip_ends_at_a_paragraph_break_before_a_table_rather_than_between_its_rows():
    """Text, a break, a table of tight rows, a break, text: two strips are needed either way, and
    the cut falls at the break above the table (the lowest line gap within the limit would be a
    gap between two of its rows), so the table is read whole in one strip."""
    img = Image.new("L", (1240, 1500), 255)
    draw = ImageDraw.Draw(img)
    f = font(30)
    for y in range(40, 640, 48):
        draw.text((60, y), "running text of a paragraph that fills the line", fill=0, font=f)
    table = []
    for n, y in enumerate(range(720, 1150, 38)):
        for x, text in ((60, f"row {n}"), (500, f"{n * 7}.00"), (900, "east")):
            draw.text((x, y), text, fill=0, font=f)
            table.append(draw.textbbox((x, y), text, font=f))
    for y in range(1220, 1460, 48):
        draw.text((60, y), "more running text after the table ends here", fill=0, font=f)
    regions = plan_strips(img, LIMIT)
    assert len(regions) == 2 and all(r.height <= LIMIT for r in regions)
    holders = {id(h[0]) for h in (_holders(regions, b) for b in table) if len(h) == 1}
    assert all(len(_holders(regions, b)) == 1 for b in table) and len(holders) == 1, regions


def dense_page(size=(900, 2000)) -> Image.Image:
    """Text lines whose ascenders and descenders touch (no blank row anywhere): a tight scan."""
    img = Image.new("L", size, 255)
    draw = ImageDraw.Draw(img)
    f = font(34)
    rnd = random.Random(7)
    syllables = ["Jg", "pH", "qk", "yT", "gb", "jd", "Qp", "fy"]   # each with an ascender and a descender
    for y in range(10, size[1] - 30, 26):   # words of random length: no gutter lines up by chance
        words = ["".join(rnd.choices(syllables, k=rnd.randint(1, 5))) for _ in range(12)]
        draw.text((20, y), " ".join(words), fill=0, font=f)
    return img


def test_a_page_without_gaps_is_cut_at_its_least_inked_rows_with_an_overlap():
    page = dense_page()
    rows = ink_mask(page).sum(axis=1)
    blank = [-1, *(rows <= 2).nonzero()[0].tolist(), len(rows)]
    assert max(b - a for a, b in zip(blank, blank[1:])) > LIMIT   # a stretch taller than the limit without a gap
    regions = plan_strips(page, LIMIT)
    assert all(r.height <= LIMIT for r in regions) and len(regions) >= 3
    seams = [(a, b) for a, b in zip(regions, regions[1:]) if b.overlap]
    assert seams and all(b.y0 == a.y1 - b.overlap for a, b in seams)
    assert regions[-1].y1 == 2000


def test_text_read_twice_across_a_seam_is_kept_once():
    upper = ["one", "two", "three", "four", "fi"]           # "five" cut at the strip's bottom edge
    lower = ["thr", "four", "five", "six"]                  # "three" cut at its top edge, "four" read twice
    kept_upper, kept_lower = seam_lines(upper, lower)
    assert kept_upper + kept_lower == ["one", "two", "three", "four", "five", "six"]
    # nothing shared (an overlap shorter than a line): nothing dropped on a guess
    assert seam_lines(["a b c"], ["d e f"]) == (["a b c"], ["d e f"])
    # lines alike by their markup only are not one line read twice: a strip of a table ending
    # in page number 16 and the next strip's table ending in 57 (the lower strip was dropped whole)
    upper = ["<table><tr><td>5</td><td>13 A</td></tr></table>", "", "<page_number>16</page_number>"]
    lower = ["<table><tr><td>14</td><td>13 B</td></tr></table>", "", "<page_number>57</page_number>"]
    assert seam_lines(upper, lower) == (upper, lower)


def test_a_seam_drops_no_more_than_the_part_lines_beside_the_lines_read_twice():
    """Found with the look-alike's strips (tests/test_lookalike.py): alike lines well inside
    the strips (a ledger's totals differ by one digit) are no seam. Before, the lower strip lost
    every line up to its match, and the upper strip every line after it."""
    upper = ["Total: 1,234.00", "Rent 400.00", "Coal 12.50", "Wages 80.00"]
    lower = ["Bread 3.10", "Milk 1.20", "Total: 1,284.00", "Signed"]
    assert seam_lines(upper, lower) == (upper, lower)
    # the part-line at each edge may still go, beside a run read twice ("" lines are no text)
    assert seam_lines(["one", "two", "three", "", "thr"], ["tw", "three", "four"]) == (
        ["one", "two", "three"], ["four"])


def test_a_seam_between_boxed_strips_keeps_lines_whose_box_is_no_box():
    """``format: json`` answers are the API's to shape: a line whose ``box`` is no box (a string,
    nulls) beside boxed ones cannot be judged by where it lies, so it stays; before, the seam's
    test read its centre (``float(box[1])``) and the page failed with an internal error. The
    boxed lines read twice across the seam are kept once, as before."""
    def answer(n):
        return {"blocks": [{"lines": [{"text": f"top {n}", "box": [5, 5, 300, 30]},
                                      {"text": f"odd {n}", "box": "x" if n else [None, None, 1, 2]},
                                      {"text": f"end {n}", "box": [5, 200, 300, 225]}]}]}
    text, structured = stitch([Piece(Region(0, 0, 800, 240), "", answer(0)),
                               Piece(Region(0, 190, 800, 430, overlap=50), "", answer(1))], 800, 430)
    # "top 1" lies on the upper strip's side of the seam (centre 207.5 < 215): read twice, it goes
    assert text.splitlines() == ["top 0", "odd 0", "end 0", "odd 1", "end 1"]
    assert [ln["text"] for b in structured["blocks"] for ln in b["lines"]] == text.splitlines()


def test_a_table_read_twice_across_a_seam_keeps_each_row_once_in_one_table():
    """Text only, a table is one line of the answer (HTML): its rows read twice across a seam
    are compared row by row, kept once, and the two strips' tables are one table."""
    from pipeline.formats.markdown import plain_text

    def table(rows):
        return "<table>" + "".join(f"<tr><td>{n}</td><td>{w}</td></tr>" for n, w in rows) + "</table>"
    upper = "Stock list\n\n" + table([(1, "oak"), (2, "ash"), (3, "elm")])
    lower = table([(2, "ash"), (3, "elm"), (4, "yew")]) + "\n\nEnd of list"
    text, _ = stitch([Piece(Region(0, 0, 800, 500), upper, None),
                      Piece(Region(0, 400, 800, 900, overlap=100), lower, None)], 800, 900)
    assert text.count("<table>") == 1 and text.count("</table>") == 1
    assert plain_text(text).splitlines() == ["Stock list", "", "1\toak", "2\tash", "3\telm", "4\tyew", "", "End of list"]


async def _run_strips_answered(tmp_path: Path, img: Image.Image, regions: list, answers: list[str]) -> None:
    """Run ``in/`` with a 300 px limit against the ``truth`` engine answering each strip's pixels
    its text from ``answers`` (txt, json and md out); the run must exit 0."""
    from pipeline.ocr.truth import register

    for region, answer in zip(regions, answers):
        register(tmp_path / "truth", img.crop((region.x0, region.y0, region.x1, region.y1)), answer)
    async with EmbeddedServer(ServerConfig(engine="truth", tokens=(TOKEN,), truth_dir=str(tmp_path / "truth"))) as srv:
        cfg = write_config(tmp_path, srv.base_url, api__max_input_height=300, outputs=["txt", "json", "md"])
        code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == 0, report


async def test_a_strip_ending_in_a_table_is_followed_by_a_blank_line_in_the_md(tmp_path):
    """Markdown's HTML block (a ``<table>``) runs on to the next blank line: strips joined by one
    newline put the next strip's heading and emphasis inside the table's block, shown as raw
    text in the ``md`` output. Each strip is answered its Markdown by the ``truth`` engine (its
    text registered for the strip's pixels), through the real client."""
    from pipeline.formats.markdown import plain_text

    img = Image.new("L", (700, 560), 255)
    draw = ImageDraw.Draw(img)
    for k in range(4):
        draw.text((40, 30 + 50 * k), f"Table row {k} with figures {k * 7}", font=font(30), fill=0)
    for k in range(3):
        draw.text((40, 360 + 50 * k), f"Section text line {k} after the gap", font=font(30), fill=0)
    save(img, tmp_path / "in" / "page.png")
    answers = ["<table><tr><td>Roof</td><td>12</td></tr><tr><td>Bell</td><td>3</td></tr></table>",
               "## Burials\n\nSigned **by** the wardens."]
    regions = plan_strips(img, 300)
    assert len(regions) == 2 and all(r.overlap == 0 for r in regions)
    await _run_strips_answered(tmp_path, img, regions, answers)
    text, doc = read_result(tmp_path, "page.png")
    assert len(doc["image"]["pages"][0]["strips"]) == 2
    md = (tmp_path / "out" / "page.png.md").read_text(encoding="utf-8")
    assert md == answers[0] + "\n\n" + answers[1] + "\n"           # the heading starts a block of its own
    assert text == plain_text(answers[0] + "\n\n" + answers[1]) == "Roof\t12\nBell\t3\n\nBurials\n\nSigned by the wardens."


def _paragraph_page(line_gap: int, paragraph_gap: int, indent: int = 0) -> Image.Image:
    """Two paragraphs of five lines (``line_gap`` px between them), ``paragraph_gap`` px apart;
    the second paragraph's first line indented by ``indent`` px."""
    img = Image.new("L", (700, 2 * 5 * (30 + line_gap) + paragraph_gap + 40), 255)
    draw = ImageDraw.Draw(img)
    y = 20
    for para in range(2):
        for k in range(5):
            draw.text((40 + (indent if para and not k else 0), y), f"Paragraph {para} says line {k} here",
                      font=font(26), fill=0)
            y += 30 + line_gap
        y += paragraph_gap - line_gap
    return img


@pytest.mark.parametrize("spacing", ["single", "double"])
async def test_a_cut_at_a_paragraph_break_keeps_the_blank_line_between_the_paragraphs(tmp_path, spacing):
    """A strip that begins a paragraph is joined to the one above by a blank line, as the model
    separates paragraphs within one image: joined by a newline, the two paragraphs ran into one in
    the ``md`` output (and in the ``.txt``). Double-spaced typescript, whose paragraphs are marked
    by an indent and whose every line gap is tall, is joined by a newline: a line gap is not a
    paragraph break. Each strip is answered by the ``truth`` engine, through the real client."""
    img = _paragraph_page(8, 60) if spacing == "single" else _paragraph_page(34, 34, indent=60)
    save(img, tmp_path / "in" / "page.png")
    regions = plan_strips(img, 300)
    assert len(regions) >= 2 and all(r.overlap == 0 for r in regions)
    assert [r.paragraph for r in regions[1:]].count(True) == (1 if spacing == "single" else 0), regions
    answers = [f"Strip {n} first line\nStrip {n} last line" for n in range(len(regions))]
    await _run_strips_answered(tmp_path, img, regions, answers)
    expected = answers[0]
    for region, answer in zip(regions[1:], answers[1:]):
        expected += ("\n\n" if region.paragraph else "\n") + answer
    text, _doc = read_result(tmp_path, "page.png")
    assert (tmp_path / "out" / "page.png.md").read_text(encoding="utf-8") == expected + "\n"
    assert text == expected
    assert ("\n\n" in text) == (spacing == "single")


def test_a_kept_cut_plan_reads_back_its_paragraph_breaks_and_an_older_plan_has_none():
    region = Region(0, 300, 700, 600, 0, paragraph=True)
    assert Region.from_row(region.row()) == region
    assert Region.from_row([0, 300, 700, 600, 0]) == Region(0, 300, 700, 600)   # kept before paragraph


def test_boxes_are_moved_onto_the_page_and_a_seam_keeps_each_line_once():
    def answer(lines):
        return {"engine": "x", "width": 100, "height": 100, "text": "\n".join(t for t, _ in lines),
                "blocks": [{"box": [0, 0, 100, 100], "lines": [{"text": t, "box": b} for t, b in lines]}]}
    upper = Region(0, 0, 500, 400)
    lower = Region(0, 340, 500, 700, overlap=60)   # shares rows 340-400; the seam is at 370
    pieces = [Piece(upper, "", answer([("a", [10, 300, 90, 330]), ("b", [10, 350, 90, 380]),
                                       ("half", [10, 390, 90, 400])])),
              Piece(lower, "", answer([("b", [10, 10, 90, 40]), ("c", [10, 45, 90, 75])]))]
    text, structured = stitch(pieces, 500, 700)
    assert text.split("\n") == ["a", "b", "c"]
    boxes = [ln["box"] for b in structured["blocks"] for ln in b["lines"]]
    assert boxes == [[10, 300, 90, 330], [10, 350, 90, 380], [10, 385, 90, 415]]   # "c" moved by 340


def _recut_seam_pieces(boxed: bool, lower_whole: bool) -> tuple[list[Piece], list[str]]:
    """A page first cut across its two columns with a seam (strips X: rows 100-705 and Y: rows
    555-1200, sharing rows 555-705: lines 10 and 11 whole in both), X refused and cut finer into
    its two columns, and Y too (``lower_whole``: Y read whole, its left column then its right, as
    the model reads a strip of two columns). Returns the pieces in the order they are read and
    every line of the page once, in the order wanted: each column has a line every 50 rows; a
    line crossing a strip's edge is read in part there (as the model reads a cut line) and whole
    in the other strip. Text only, the upper strip keeps the lines read twice; with boxes the
    middle of the shared rows (630) parts them."""
    def line(side, k):
        return f"{side} column line {k} of the deposition transcript"

    def lines(x0, x1, y0, y1, side):
        ks = [k for k in range(22) if y0 <= 100 + 50 * k and 100 + 50 * k + 30 <= y1]
        read = [(line(side, k), [x0 + 10, 100 + 50 * k - y0, x1 - 10, 130 + 50 * k - y0]) for k in ks]
        edge = [k for k in range(22) if 100 + 50 * k < y1 < 130 + 50 * k]     # a line cut at the bottom edge
        read += [(line(side, k)[:9], [x0 + 10, 100 + 50 * k - y0, x0 + 200, y1 - y0]) for k in edge]
        top = [k for k in range(22) if 100 + 50 * k < y0 < 130 + 50 * k]      # ... and at the top edge
        return [("umn line", [x0 + 10, 0, x0 + 200, 130 + 50 * k - y0]) for k in top] + read

    def piece(x0, x1, y0, y1, overlap, read):
        read = [(t, [b[0] - x0, b[1], b[2] - x0, b[3]]) for t, b in read]   # boxes on the strip
        answer = {"engine": "x", "width": x1 - x0, "height": y1 - y0, "text": "\n".join(t for t, _ in read),
                  "blocks": [{"box": [0, 0, x1 - x0, y1 - y0], "lines": [{"text": t, "box": b} for t, b in read]}]}
        return Piece(Region(x0, y0, x1, y1, overlap), answer["text"], answer if boxed else None)

    pieces = [piece(0, 400, 100, 705, 0, lines(0, 400, 100, 705, "Left")),
              piece(400, 800, 100, 705, 0, lines(400, 800, 100, 705, "Right"))]
    if lower_whole:
        pieces.append(piece(0, 800, 555, 1200, 150, lines(0, 400, 555, 1200, "Left") + lines(400, 800, 555, 1200, "Right")))
    else:
        pieces += [piece(0, 400, 555, 1200, 150, lines(0, 400, 555, 1200, "Left")),
                   piece(400, 800, 555, 1200, 150, lines(400, 800, 555, 1200, "Right"))]
    split = 11 if boxed else 12
    wanted = ([line("Left", k) for k in range(split)] + [line("Right", k) for k in range(split)]
              + [line("Left", k) for k in range(split, 22)] + [line("Right", k) for k in range(split, 22)])
    return pieces, wanted


@pytest.mark.parametrize("lower_whole", [False, True], ids=["both cut finer", "lower read whole"])
@pytest.mark.parametrize("boxed", [False, True], ids=["text only", "with boxes"])
def test_a_seam_between_strips_cut_finer_into_columns_keeps_each_line_once(boxed, lower_whole):
    """The rows two strips shared are read in a column of each once one or both were cut finer
    into columns: the seam is found across the strips read between them, and in the middle of a
    strip read whole (before: the shared lines came twice; a condensed transcript, scribe
    deposition_01 levelled, read by the hosted-like model that refused its first cut)."""
    pieces, wanted = _recut_seam_pieces(boxed, lower_whole)
    text, _ = stitch(pieces, 800, 1200)
    got = text.splitlines()
    if lower_whole and not boxed:   # the part-line cut at the top edge of Y's right column stays
        assert got.count("umn line") == 1
        got.remove("umn line")
    assert got == wanted          # every line once, whole: the part-lines cut at the edges are gone
    # a short line alike by chance ("A. Yes.") is no seam: nothing is dropped on it
    short = [Piece(Region(0, 0, 400, 500), "A. Yes.\nQ. Go on.", None),
             Piece(Region(400, 0, 800, 500), "right", None),
             Piece(Region(0, 450, 400, 900, 50), "A. Yes.\nnext", None)]
    assert stitch(short, 800, 900)[0].splitlines() == ["A. Yes.", "Q. Go on.", "right", "A. Yes.", "next"]


def test_the_hosted_models_known_limit_is_taken_on_the_real_service_when_none_is_set(tmp_path):
    """On api.deapi.ai the hosted model's known limit (800 px) cuts pages before the first is
    sent (no refused job, no 0.75-times learned limit: up to a third more strips); a configured
    limit, a lower learned one, another model or another server (ours answers any size) win."""
    from pipeline.config import load_config
    from pipeline.run.state import StateStore
    from pipeline.run.strips import current_limit

    (tmp_path / "in").mkdir()
    state = StateStore(tmp_path / "s.sqlite")

    def limit(base_url, **kw):
        return current_limit(load_config(write_config(tmp_path, base_url, **kw)), state)

    hosted = "Nanonets_Ocr_S_F16"
    assert limit("https://api.deapi.ai", api__model=hosted) == 800
    assert limit("https://api.deapi.ai", api__model=hosted, api__max_input_height=700) == 700
    assert limit("https://api.deapi.ai", api__model="LightOnOcr_3_4B_Q8") is None
    assert limit("http://127.0.0.1:8000", api__model=hosted) is None
    assert limit("embedded", api__model=hosted) is None
    state.learn_height(hosted, 640)
    assert limit("https://api.deapi.ai", api__model=hosted) == 640


def test_ink_mask_sees_grey_text_on_grey_paper():
    img = Image.new("L", (200, 100), 200)
    ImageDraw.Draw(img).rectangle((60, 40, 120, 50), fill=90)   # (a rule across the page would be a frame)
    ink = ink_mask(img)
    assert ink[45, 100] and not ink[10, 100] and not ink[45, 150]


async def limited_server(**kw):
    return EmbeddedServer(ServerConfig(engine="fast", tokens=(TOKEN,), profile="unlimited", admin=True,
                                       max_input_height=LIMIT, **kw))


async def test_the_server_refuses_too_tall_images_and_too_long_answers_as_job_errors_and_refunds(tmp_path):
    import aiohttp
    import io as _io

    def png(h):
        buf = _io.BytesIO()
        Image.new("L", (400, h), 255).save(buf, "PNG")
        return buf.getvalue()

    async with await limited_server(max_answer_chars=30) as srv:
        headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
        async with aiohttp.ClientSession(headers=headers) as http:
            async def job(data):
                form = aiohttp.FormData()
                form.add_field("image", data, filename="p.png", content_type="image/png")
                form.add_field("model", "Nanonets_Ocr_S_F16")
                async with http.post(f"{srv.base_url}/api/v1/client/img2txt", data=form) as r:
                    rid = (await r.json())["data"]["request_id"]
                while True:
                    async with http.get(f"{srv.base_url}/api/v1/client/request-status/{rid}") as r:
                        data = (await r.json())["data"]
                    if data["status"] in ("done", "error"):
                        return data
            async with http.get(f"{srv.base_url}/api/v1/client/balance") as r:
                before = (await r.json())["data"]["balance"]
            tall = await job(png(LIMIT + 1))
            assert tall["status"] == "error" and tall["error_code"] == "INPUT_TOO_LARGE"
            # the fast engine's answer is ~60 characters: above 30, the context is exceeded
            long = await job(png(LIMIT))
            assert long["status"] == "error" and long["error_code"] == "CONTEXT_LENGTH_EXCEEDED"
            async with http.get(f"{srv.base_url}/api/v1/client/balance") as r:
                assert (await r.json())["data"]["balance"] == before   # both refunded
    async with await limited_server() as srv:
        assert srv.state.config.max_answer_chars is None


def _strip_jobs(srv) -> int:
    return srv.counters.jobs_created


async def test_a_tall_page_is_cut_learned_and_the_next_run_is_cut_before_sending(tmp_path):
    page, lines = lined_page()
    save(page, tmp_path / "in" / "a.png")
    async with await limited_server() as srv:
        cfg = write_config(tmp_path, srv.base_url, api__format="json", outputs=["txt", "json", "alto"])
        code, report, _ = await run_pipeline(cfg, TOKEN)
        assert code == 0, report
        strips = report["api_calls"]["strips"]
        assert strips["pages_cut"] == 1 and strips["refused_jobs"] >= 1
        learned = strips["learned_max_input_height"]
        assert learned is not None and learned < page.height   # all we know: the page itself was too tall
        assert srv.counters.jobs_failed == strips["refused_jobs"]
        text, doc = read_result(tmp_path, "a.png")
        recs = doc["image"]["pages"][0]["strips"]
        assert len(recs) >= 4 and all(r["height"] <= LIMIT for r in recs)
        assert all(r["request_id"] and r["submits"] == 1 for r in recs)
        # the refused jobs were submits too: the page's count and its facts say so (they left them out)
        refused = doc["image"]["pages"][0]["refused"]
        assert len(refused) == strips["refused_jobs"] and refused[0] == {"height": page.height, "code": "INPUT_TOO_LARGE"}
        assert doc["pages"][0]["submits"] == len(recs) + len(refused) == srv.counters.jobs_created
        ys = sorted((r["source_y"][0], r["source_y"][1]) for r in recs)
        assert ys[0][0] == 0 and ys[-1][1] == page.height
        assert all(a[1] == b[0] for a, b in zip(ys, ys[1:]))       # the strips tile the page
        # one fast-engine answer per strip ("FAST-OCR WxH"), in order, with boxes moved onto the page
        assert text.count("FAST-OCR") == len(recs)
        tops = [ln["box"][1] for b in doc["pages"][0]["result"]["blocks"] for ln in b["lines"]]
        assert tops == sorted(tops) and max(tops) > 2 * LIMIT
        # a second page in a later run: cut before sending, no refusal
        page2, _ = lined_page(words="Second page line {n} other words")
        save(page2, tmp_path / "in" / "b.png")
        failed_before = srv.counters.jobs_failed
        code, report, _ = await run_pipeline(cfg, TOKEN)
        assert code == 0 and report["api_calls"]["strips"]["refused_jobs"] == 0
        assert srv.counters.jobs_failed == failed_before
        assert all(n == 1 for n in srv.counters.submits_by_hash.values())


async def test_a_configured_limit_cuts_before_the_first_page_is_sent(tmp_path):
    img, _, _ = two_column_page()
    save(img, tmp_path / "in" / "cols.png")
    async with await limited_server() as srv:
        cfg = write_config(tmp_path, srv.base_url, api__max_input_height=LIMIT)
        code, report, _ = await run_pipeline(cfg, TOKEN)
        assert code == 0 and report["api_calls"]["strips"]["refused_jobs"] == 0 and srv.counters.jobs_failed == 0
        _, doc = read_result(tmp_path, "cols.png")
        recs = doc["image"]["pages"][0]["strips"]
        assert srv.counters.jobs_created == len(recs) == len(plan_strips(img, LIMIT))
        code, _, _ = await run_pipeline(cfg, TOKEN)             # unchanged: nothing sent
        assert code == 0 and srv.counters.jobs_created == len(recs)
        code, _, _ = await run_pipeline(cfg, TOKEN, force=True)  # --force redoes the strips too
        assert code == 0 and srv.counters.jobs_created == 2 * len(recs)


def _uploads_at_crash(tmp_path: Path) -> tuple[set[str], set[str]]:
    """sha256 of strips (and pages) with a recorded request id, and of those whose submit was
    in flight (intent written, no answer) when the process died."""
    import sqlite3

    db = sqlite3.connect(tmp_path / "out" / ".pipeline" / "state.sqlite")
    try:
        rows = db.execute("SELECT upload_sha256, state, request_id FROM pages").fetchall()
    finally:
        db.close()
    return {h for h, _, rid in rows if rid}, {h for h, state, _ in rows if state == "submitting"}


@pytest.mark.parametrize("point,configured", [("before_submit:3", LIMIT), ("after_submit:2", LIMIT),
                                              ("after_submit:5", LIMIT), ("after_poll:3", LIMIT),
                                              ("after_submit:4", None), ("after_poll:4", None)])
async def test_sigkill_during_a_strip_run_then_rerun_pays_for_no_strip_twice(tmp_path, point, configured):
    import signal

    from test_crash_safety import run_cli
    from pipeline.exitcodes import ExitCode

    for n in range(2):
        page, _ = lined_page(words=f"File {n} line {{n}} words here")
        save(page, tmp_path / "in" / f"p{n}.png")
    async with await limited_server() as srv:
        cfg = write_config(tmp_path, srv.base_url, concurrency__jobs_in_flight=2,
                           **({"api__max_input_height": configured} if configured else {}))
        code, out = await run_cli("run", str(cfg), crashpoint=point)
        assert code == -signal.SIGKILL, out
        recorded, unknown = _uploads_at_crash(tmp_path)
        assert recorded or unknown
        code, out = await run_cli("run", str(cfg))
        assert code == ExitCode.OK, out
        for n in range(2):
            text, doc = read_result(tmp_path, f"p{n}.png")
            recs = doc["image"]["pages"][0]["strips"]
            assert text.count("FAST-OCR") == len(recs) >= 4 and all(r["height"] <= LIMIT for r in recs)
            if configured is None:   # the whole page's refusal, made by the killed run, is still told
                refused = doc["image"]["pages"][0]["refused"]
                assert refused and {r["code"] for r in refused} == {"INPUT_TOO_LARGE"}
                assert doc["pages"][0]["submits"] >= len(recs) + len(refused)
        # once each; twice only for a strip whose POST was in flight at the kill (it may or may
        # not have reached the server), never for one whose request id was recorded
        allowed = {sha: 2 if sha in unknown and sha not in recorded else 1 for sha in srv.counters.submits_by_hash}
        assert {sha: n for sha, n in srv.counters.submits_by_hash.items() if n > allowed[sha]} == {}
        code, out = await run_cli("verify", str(cfg))
        assert code == ExitCode.OK, out


async def test_a_resumed_page_keeps_the_cut_it_began_with(tmp_path):
    """The cut is written ahead of the first strip: a page resumed after a crash is read in the
    strips it began with (its stored answers are those strips' pages), not in whatever today's
    cutting would make of it. The kept cut is altered between the runs (as a cut made by another
    version would be): the rerun follows it."""
    import json
    import signal
    import sqlite3

    from test_crash_safety import run_cli
    from pipeline.exitcodes import ExitCode

    for n in range(2):
        page, _ = lined_page(words=f"File {n} line {{n}} words here")
        save(page, tmp_path / "in" / f"p{n}.png")
    async with await limited_server() as srv:
        cfg = write_config(tmp_path, srv.base_url, concurrency__jobs_in_flight=2, api__max_input_height=LIMIT)
        code, out = await run_cli("run", str(cfg), crashpoint="after_submit:2")
        assert code == -signal.SIGKILL, out
        db = sqlite3.connect(tmp_path / "out" / ".pipeline" / "state.sqlite")
        try:
            kept = {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM meta WHERE key LIKE 'cut:%'")}
            work = dict(db.execute("SELECT rel, work_key FROM files"))
            assert kept, "no cut written ahead of the strips sent"
            for key, rows in kept.items():
                rows[-1][3] -= 1     # the last strip one row shorter: not what today's cut makes
                db.execute("UPDATE meta SET value=? WHERE key=?", (json.dumps(rows), key))
            db.commit()
        finally:
            db.close()
        code, out = await run_cli("run", str(cfg))
        assert code == ExitCode.OK, out
    followed = 0
    for n in range(2):
        _, doc = read_result(tmp_path, f"p{n}.png")
        boxes = [r["box"] for r in doc["image"]["pages"][0]["strips"]]
        altered = [rows for key, rows in kept.items() if key.startswith(f"cut:{work[f'p{n}.png']}#p0h")]
        if altered:
            assert boxes == [row[:4] for row in altered[0]], (boxes, altered)
            followed += 1
    assert followed == len(kept)
    db = sqlite3.connect(tmp_path / "out" / ".pipeline" / "state.sqlite")
    try:   # both files done: their kept cuts went with their stored texts (compact_work)
        assert db.execute("SELECT key FROM meta WHERE key LIKE 'cut:%'").fetchall() == []
    finally:
        db.close()


async def test_plan_counts_and_prices_strips_as_the_run_sends_them(tmp_path):
    import os

    from pipeline.config import load_config
    from pipeline.run.plan import Planner

    page, _ = lined_page()
    save(page, tmp_path / "in" / "tall.png")
    save(Image.new("L", (600, 400), 255), tmp_path / "in" / "small.png")
    async with await limited_server() as srv:
        cfg = write_config(tmp_path, srv.base_url, api__max_input_height=LIMIT)
        os.environ["PIPELINE_TEST_TOKEN"] = TOKEN
        code, report, error = await Planner(load_config(cfg)).plan()
        c = report["counted"]
        assert c["pages_to_send"] == 2 and c["strips_to_send"] == len(plan_strips(page, LIMIT))
        assert sum(c["size_buckets"].values()) == c["strips_to_send"] + 1   # each strip priced in its bucket
        code, run_report, _ = await run_pipeline(cfg, TOKEN)
        assert code == 0 and srv.counters.jobs_created == c["strips_to_send"] + 1   # the plan was right
        assert run_report["cost"]["quoted_cost"] == pytest.approx(c["estimated_cost"])


# -- real OCR: the same engine reading the page whole and in strips ------------------------------

UNIQUE = ("apple", "bridge", "candle", "dragon", "engine", "forest", "garden", "harbor", "island", "jungle",
          "kettle", "lantern", "meadow", "needle", "orange", "pepper", "quarry", "rocket", "silver", "temple",
          "umbrella", "valley", "window", "yellow", "zipper", "anchor", "basket", "castle", "dollar", "feather",
          "ginger", "hammer", "jacket", "ladder", "magnet", "napkin", "oyster", "pillow", "rabbit", "saddle",
          "tunnel", "velvet", "walnut", "almond", "bottle", "cotton", "desert", "falcon")


async def _whole_page(data: bytes):
    """The engine's reading of the whole page (an ``OcrPage``), with no height limit."""
    from pipeline.ocr.pool import EngineRunner

    runner = EngineRunner("rapidocr")
    await runner.start()
    try:
        return await runner.recognize(data, "en")
    finally:
        await runner.close()


def _cer(reference: str, hypothesis: str) -> float:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.metrics import cer_counts

    edits, length = cer_counts(reference, hypothesis)
    return edits / length


@pytest.mark.real_ocr
async def test_lines_across_every_naive_cut_come_back_exactly_once_and_as_read_whole(tmp_path):
    """No configured limit: the server's refusals teach it; each line has a word no other line has,
    and the lines lying across 850, 1700 and 2550 px (where naive cuts would fall) come back once."""
    import io as _io

    page, lines = lined_page(words=lambda n: f"The {UNIQUE[n]} stands on line {n + 1}")
    truth = [(text, text.split()[1], box) for text, box in lines]
    assert sum(any(b[1] < c < b[3] for c in NAIVE_CUTS) for _, _, b in truth) == 3
    save(page, tmp_path / "in" / "lines.png")
    async with EmbeddedServer(ServerConfig(engine="rapidocr", tokens=(TOKEN,), max_input_height=LIMIT)) as srv:
        cfg = write_config(tmp_path, srv.base_url, timeouts__job_s=300)
        code, report, _ = await run_pipeline(cfg, TOKEN)
        assert code == 0, report
        assert report["api_calls"]["strips"]["refused_jobs"] >= 1 and srv.counters.jobs_failed >= 1
    text, doc = read_result(tmp_path, "lines.png")
    assert all(r["height"] <= LIMIT for r in doc["image"]["pages"][0]["strips"])
    words = text.lower().split()
    assert {w: words.count(w) for _, w, _ in truth if words.count(w) != 1} == {}   # every line once, none cut
    buf = _io.BytesIO()
    page.save(buf, "PNG")
    whole = (await _whole_page(buf.getvalue())).text
    reference = "\n".join(line for line, _, _ in truth)
    assert abs(_cer(reference, text) - _cer(reference, whole)) <= 0.005, (text, whole)


# Real multi-column scans (scribe) under an 850 px limit, measured page by page by
# ``python -m bench.strip_cer`` (docs/client.md, "Pages too tall for the model", with the pages
# not pinned and why), judged by the hosted-like model's Markdown. Two pages, not more: each
# is RapidOCR reading a 2550 x 3300 scan twice (in strips, then whole), 30-60 s a page on two
# cores. multicol_11, read by the default model (the engine's own text: that model's whole page
# is ruined by its renderer, a table beside text rendered as one table) took 65-120 s alone and
# left the suite over its time budget; bench.strip_cer reads it and the other 25 tall pages in
# both modes (docs/benchmarks.md), and test_lines_across_every_naive_cut_... reads the default
# model's strips here.
HOSTED = "Nanonets_Ocr_S_Hosted"
PINNED_SCANS = (("multicol_05", HOSTED), ("multicol_08", HOSTED))


@pytest.mark.real_ocr
@pytest.mark.shared_data
@pytest.mark.parametrize("name,model", PINNED_SCANS)
async def test_a_real_multi_column_scan_read_in_strips_is_as_good_as_read_whole(tmp_path, shared_data, name, model):
    """The whole way (``pipeline run`` against the server with an 850 px limit, jobs of ~0 s):
    the ``.txt`` of the stitched strips scores within 0.5 CER points of the same engine reading
    the whole page (for the hosted-like model, its Markdown made plain by the same rule)."""
    import shutil

    from pipeline.formats.markdown import plain_text
    from pipeline.inputs.prepare import PrecheckLimits, prepare_file
    from pipeline.server.hosted import HostedSettings, render_markdown

    root = shared_data / "scribeocr-benchmark"
    image = next((root / "img").glob(name + ".*"))
    (tmp_path / "in").mkdir()
    shutil.copy(image, tmp_path / "in" / image.name)
    truth = (root / "gt_txt" / f"{name}.txt").read_text(encoding="utf-8")
    hosted = HostedSettings(job_s=(0.0, 0.01), max_input_height=LIMIT)
    config = ServerConfig(engine="rapidocr", tokens=(TOKEN,), hosted=hosted, max_input_height=LIMIT)
    async with EmbeddedServer(config) as srv:
        cfg = write_config(tmp_path, srv.base_url, api__max_input_height=LIMIT, timeouts__job_s=300,
                           **({"api__model": model} if model else {}))
        code, report, _ = await run_pipeline(cfg, TOKEN)
        assert code == 0 and srv.counters.jobs_failed == 0, {k: report.get(k) for k in (
            "exit_code", "stop_reason", "this_run", "files_by_state", "failures", "duration_s")}
    text, doc = read_result(tmp_path, image.name)
    strips = doc["image"]["pages"][0]["strips"]
    assert len(strips) >= 2 and all(s["height"] <= LIMIT for s in strips)
    whole_page = await _whole_page(prepare_file(image, PrecheckLimits()).pages[0].data)
    whole = plain_text(render_markdown(whole_page)) if model else whole_page.text
    assert _cer(truth, text) - _cer(truth, whole) <= 0.005, (_cer(truth, text), _cer(truth, whole))


async def test_an_answer_too_long_at_every_size_ends_as_a_permanent_failure_naming_the_code(tmp_path):
    """The fast engine answers ~60 characters whatever the size: above a 30-character context no
    cut helps. Each refusal cuts finer, down to the API's 127 px minimum, then the file fails for
    good with the code (nothing loops, nothing is retried next run)."""
    page, _ = lined_page(size=(600, 1100))
    save(page, tmp_path / "in" / "dense.png")
    async with await limited_server(max_answer_chars=30) as srv:
        cfg = write_config(tmp_path, srv.base_url)
        code, report, _ = await run_pipeline(cfg, TOKEN)
        assert code == 1, report   # FILES_FAILED
        from helpers import failures

        row = failures(tmp_path)["dense.png"]
        assert row["code"] == "CONTEXT_LENGTH_EXCEEDED" and "cannot be cut finer" in row["reason"]
        assert report["api_calls"]["strips"]["refused_jobs"] == srv.counters.jobs_failed > 1
        assert srv.counters.jobs_done == 0


async def test_a_page_sent_whole_before_a_limit_was_set_is_re_attached_not_cut_and_paid_again(tmp_path):
    """Killed after a tall page was submitted whole to a server that takes it; the rerun now has a
    limit: the page's request id is collected, nothing is cut or sent again."""
    import signal

    from test_crash_safety import run_cli

    page, _ = lined_page()
    save(page, tmp_path / "in" / "tall.png")
    async with EmbeddedServer(ServerConfig(engine="fast", tokens=(TOKEN,), profile="unlimited")) as srv:
        cfg = write_config(tmp_path, srv.base_url)
        code, out = await run_cli("run", str(cfg), crashpoint="after_submit:1")
        assert code == -signal.SIGKILL, out
        cfg = write_config(tmp_path, srv.base_url, api__max_input_height=LIMIT)
        code, out = await run_cli("run", str(cfg))
        assert code == 0, out
        assert srv.counters.jobs_created == 1
        _, doc = read_result(tmp_path, "tall.png")
        assert "strips" not in doc["image"]["pages"][0] and doc["pages"][0]["request_id"]


def test_no_line_is_cut_on_a_page_with_a_title_across_the_gutter_and_a_dark_sidebar():
    """A left-aligned title wider than the left column (its letters cross the gutter: no gutter
    there), and a dark sidebar with light text (the panel's light pixels are its ink): every line,
    dark or light, lies whole inside exactly one strip."""
    img = Image.new("L", (1800, 2600), 255)
    draw = ImageDraw.Draw(img)
    f = font(30)
    boxes = []

    def line(xy, text, fill):
        draw.text(xy, text, fill=fill, font=f)
        boxes.append(draw.textbbox(xy, text, font=f))

    line((60, 40), "A LEFT-ALIGNED TITLE THAT RUNS ACROSS THE COLUMN GUTTER", 0)
    draw.rectangle((1250, 0, 1800, 2600), fill=40)   # the sidebar, full height
    for n, y in enumerate(range(160, 2540, 52)):
        line((60, y), f"left {n} alpha", 0)
        line((660, y + 13), f"middle {n} beta", 0)
        line((1300, y + 26), f"side {n} gamma", 235)
    regions = plan_strips(img, LIMIT)
    assert all(r.height <= LIMIT for r in regions)
    for x0, y0, x1, y1 in boxes:
        holders = [r for r in regions if r.x0 <= x0 and x1 <= r.x1 and r.y0 <= y0 and y1 <= r.y1]
        assert len(holders) == 1, ((x0, y0, x1, y1), regions)


def test_serve_takes_the_size_limits_for_every_model_and_per_model():
    import argparse

    from pipeline.server.cli import add_serve_arguments, config_from_args
    from pipeline.server.size_limits import SizeLimits

    p = argparse.ArgumentParser()
    add_serve_arguments(p)
    cfg = config_from_args(p.parse_args(["--token", "t", "--max-input-height", "850", "--max-answer-chars", "9000",
                                         "--model-limit", "Other_Model=1200", "--model-limit", "Third=:500"]))
    limits = cfg.size_limits()
    assert isinstance(limits, SizeLimits)
    assert limits.for_model("Nanonets_Ocr_S_F16") == (850, 9000)
    assert limits.for_model("Other_Model") == (1200, None) and limits.for_model("Third") == (None, 500)
    with pytest.raises(ValueError, match="MODEL=PX"):
        config_from_args(p.parse_args(["--token", "t", "--model-limit", "NoEquals"]))


@pytest.mark.parametrize("kind", ["png", "pdf"])
async def test_a_page_taller_than_the_models_4096_px_is_cut_not_shrunk(tmp_path, kind):
    """No height limit set, the model's own is 4096 px (``/models``): a long receipt of 520 x 9000 px
    used to go whole, shrunk to 237 x 4096 (letters a third of their size). Now it keeps its scale
    and goes as strips no taller than 4096 px, each job seeing the page's own width; ``plan``
    prices exactly those strips. A PDF page as tall is rendered at ``pdf.dpi`` and cut the same way."""
    import os

    from pipeline.config import load_config
    from pipeline.run.plan import Planner

    page, _ = lined_page(size=(520, 9000), pitch=60, size_pt=22, words="receipt line {n} 9.99")
    if kind == "png":
        save(page, tmp_path / "in" / "receipt.png")
    else:   # 520 x 9000 px at 300 dpi: the page size in points, the scan as its image
        from fpdf import FPDF

        pdf = FPDF(unit="pt", format=(520 * 72 / 300, 9000 * 72 / 300))
        pdf.add_page()
        pdf.image(page, x=0, y=0, w=pdf.w, h=pdf.h)
        (tmp_path / "in").mkdir(parents=True)
        pdf.output(str(tmp_path / "in" / "receipt.pdf"))
    name = f"receipt.{kind}"
    async with EmbeddedServer(ServerConfig(engine="fast", tokens=(TOKEN,), profile="unlimited")) as srv:
        cfg = write_config(tmp_path, srv.base_url, pdf__dpi=300, pdf__text_layer="ocr")
        os.environ["PIPELINE_TEST_TOKEN"] = TOKEN
        _, plan_report, _ = await Planner(load_config(cfg)).plan()
        code, report, _ = await run_pipeline(cfg, TOKEN)
        assert code == 0, report
    text, doc = read_result(tmp_path, name)
    facts = doc["image"]["pages"][0]
    assert facts["height"] >= 8990 and not any(t.startswith("downscale:") for t in facts.get("transforms", ()))
    strips = facts["strips"]
    assert len(strips) >= 3 and all(r["height"] <= 4096 for r in strips)
    assert srv.counters.jobs_created == len(strips) == plan_report["counted"]["uploads_to_send"]
    seen = [line.split()[1] for line in text.splitlines() if line.startswith("FAST-OCR")]
    assert len(seen) == len(strips) and all(int(s.split("x")[0]) >= 500 for s in seen), seen  # full width


async def test_a_strip_whose_png_would_pass_the_upload_limit_goes_as_a_jpeg_never_shrunk(tmp_path):
    """A colour photograph of a page 1400 x 5000 px (taller than the model's 4096 px) is cut into
    strips; lossless PNG strips of its grain would be over 10 MB each and refused. A strip goes
    as PNG when it fits the byte limit, else as JPEG down the quality ladder, at the page's scale."""
    from helpers import noise_image

    save(noise_image((1400, 5000), seed=3), tmp_path / "in" / "photo.jpg", "JPEG", quality=95)
    async with EmbeddedServer(ServerConfig(engine="fast", tokens=(TOKEN,), profile="unlimited")) as srv:
        cfg = write_config(tmp_path, srv.base_url)
        code, report, _ = await run_pipeline(cfg, TOKEN)
        assert code == 0, report
        assert srv.counters.jobs_failed == 0
    _, doc = read_result(tmp_path, "photo.jpg")
    strips = doc["image"]["pages"][0]["strips"]
    assert len(strips) == 2 == srv.counters.jobs_created
    assert all(r["height"] <= 4096 and r["width"] == 1400 for r in strips)   # the page's own scale


def test_a_watermark_every_strip_shows_is_in_the_page_text_once():
    """A watermark stamped across the page is in every strip it crosses: text only, each strip's
    answer gave it again, and the page's text said it once a strip (three times here, where the
    page read whole says it once). A watermark the model gave twice within one strip stays."""
    from pipeline.formats.markdown import plain_text

    texts = ["<watermark>DRAFT</watermark>\nFirst part of the letter.",
             "Second part <watermark>draft</watermark> of the letter.\n<watermark>COPY</watermark> <watermark>COPY</watermark>",
             "<watermark>DRAFT</watermark>\nThird part.\n<watermark>COPY</watermark>"]
    regions = [Region(0, 0, 800, 300), Region(0, 300, 800, 600), Region(0, 600, 800, 900)]
    text, _ = stitch([Piece(r, t, None) for r, t in zip(regions, texts)], 800, 900)
    assert [ln for ln in plain_text(text).split("\n") if ln] == [
        "DRAFT", "First part of the letter.", "Second part  of the letter.", "COPY", "COPY", "Third part."]
