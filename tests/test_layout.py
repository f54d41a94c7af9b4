"""Reading order rebuilt from line boxes alone (``engines/layout.py``): pure geometry, no OCR.

RapidOCR hands lines over row by row across the page; these synthetic pages give the boxes in
that interleaved order and check the blocks and the order that come back.
"""

from pipeline.ocr.layout import reading_order


def line(x0, y, x1, h=20):
    return (x0, y, x1, y + h)


def flatten(blocks):
    return [i for block in blocks for i in block]


def two_column_page(rows=6, pitch=24):
    """Title, two text columns given in row order (left, right, left, ...), footer."""
    boxes = [line(300, 10, 700)]                                # 0: centred title over the gutter
    for r in range(rows):
        y = 60 + r * pitch
        boxes += [line(50, y, 470), line(530, y, 950)]
    boxes.append(line(480, 60 + rows * pitch + 40, 520))        # page number under the gutter
    return boxes


def test_two_columns_under_a_title_are_read_column_by_column():
    boxes = two_column_page()
    blocks = reading_order(boxes)
    left = list(range(1, 13, 2))
    right = list(range(2, 13, 2))
    assert flatten(blocks) == [0, *left, *right, 13]
    assert blocks == [[0], left, right, [13]]  # each column is one block


def test_a_footnote_stays_at_the_foot_of_its_own_column():
    boxes = two_column_page(rows=4)[:-1]
    boxes += [line(50, 200, 470, h=14), line(50, 216, 470, h=14),       # 9, 10: left footnote
              line(530, 200, 950, h=14)]                                # 11: right footnote
    order = flatten(reading_order(boxes))
    assert order == [0, 1, 3, 5, 7, 9, 10, 2, 4, 6, 8, 11]


def test_a_single_column_reads_top_to_bottom_and_a_row_left_to_right():
    boxes = [line(300, 100, 600), line(50, 40, 900), line(50, 100, 250), line(50, 130, 900)]
    assert flatten(reading_order(boxes)) == [1, 2, 0, 3]


def test_paragraphs_become_blocks_but_evenly_spaced_lines_do_not():
    boxes = [line(50, y, 900) for y in (0, 24, 48)] + [line(50, y, 900) for y in (120, 144)]
    assert reading_order(boxes) == [[0, 1, 2], [3, 4]]


def test_a_short_line_in_one_column_does_not_break_the_columns():
    boxes = [line(50, 80, 450), line(550, 80, 950), line(50, 110, 200), line(550, 110, 950),
             line(550, 140, 950), line(50, 170, 450), line(550, 170, 950)]
    assert flatten(reading_order(boxes)) == [0, 2, 5, 1, 3, 4, 6]


def test_a_table_is_read_row_by_row_each_cell_top_to_bottom():
    # name | phone | email, rows separated by padding; the middle row's name cell wraps onto two lines.
    # (Two records set without a gap, each with its own phone and email, read row by row: see below.)
    # Cells are short (a phone number is ~6 line heights long), unlike lines of running text.
    boxes = []
    rows = [(0, ["Ann Smith, Director"], ["555-0100"], ["ann@x.com"]),
            (60, ["Bob Jones, Associate", "and Carl Li"], ["555-0101"], ["bob@x.com"]),  # a wrapped cell
            (140, ["Dee Poe, Partner"], ["555-0103"], ["dee@x.com"])]
    expected = []
    for y, *cells in rows:
        for x0, x1, cell in zip((50, 700, 950), (600, 820, 1100), cells):
            for k, _ in enumerate(cell):
                expected.append(len(boxes))
                boxes.append(line(x0, y + k * 22, x1))
    # RapidOCR's row order interleaves the two-line cells; the table order keeps each cell whole
    order = flatten(reading_order(boxes))
    assert order == expected


def test_a_wide_table_with_touching_rows_is_read_row_by_row():
    boxes = [line(50 + col * 150, row * 20, 150 + col * 150) for row in range(3) for col in range(7)]
    assert flatten(reading_order(boxes)) == list(range(21))


def test_a_table_row_of_numbers_after_a_label_keeps_its_row():
    label = line(50, 100, 400)
    values = [line(500 + k * 120, 100, 580 + k * 120) for k in range(4)]
    assert flatten(reading_order([*values, label])) == [4, 0, 1, 2, 3]


def test_order_does_not_depend_on_the_input_order():
    boxes = two_column_page()
    shuffled = boxes[::-1]
    back = {i: len(boxes) - 1 - i for i in range(len(boxes))}
    assert [back[i] for i in flatten(reading_order(shuffled))] == flatten(reading_order(boxes))


def test_every_line_appears_exactly_once_on_a_messy_page():
    import random

    rnd = random.Random(7)
    boxes = []
    for _ in range(200):
        x0, y0 = rnd.uniform(0, 1800), rnd.uniform(0, 2500)
        boxes.append((x0, y0, x0 + rnd.uniform(5, 600), y0 + rnd.uniform(8, 60)))
    assert sorted(flatten(reading_order(boxes))) == list(range(200))


def test_empty_page_and_one_line():
    assert reading_order([]) == []
    assert reading_order([line(10, 10, 100)]) == [[0]]


# --- the synthetic development set (bench/devset.py): every class of layout, known order -----

import pytest  # noqa: E402

from bench import devset  # noqa: E402


def _rapid_row_order(boxes):
    """RapidOCR's own order: by top edge, neighbours within 10 px swapped left to right."""
    idx = sorted(range(len(boxes)), key=lambda i: (boxes[i][1], boxes[i][0]))
    for i in range(len(idx) - 1):
        for j in range(i, -1, -1):
            a, b = idx[j], idx[j + 1]
            if abs(boxes[b][1] - boxes[a][1]) < 10 and boxes[b][0] < boxes[a][0]:
                idx[j], idx[j + 1] = b, a
            else:
                break
    return idx


KNOWN_LIMITS: dict[str, str] = {}  # classes reported in docs/engines.md as not yet read right (none now)


@pytest.mark.skipif(not devset.fonts_available(), reason="apt-get install fonts-dejavu fonts-liberation")
@pytest.mark.parametrize("cls", [pytest.param(c, marks=pytest.mark.xfail(reason=KNOWN_LIMITS[c], strict=False))
                                 if c in KNOWN_LIMITS else c for c in devset.CLASSES])
def test_each_class_of_layout_reads_in_its_known_order(cls):
    """Receipt and form rows stay rows, tables read row by row, real columns stay columns."""
    for seed in range(3):
        page = devset.page(cls, 500 + seed)
        boxes, texts = [ln.box for ln in page.lines], [ln.text for ln in page.lines]
        given = _rapid_row_order(boxes)  # the engine hands lines over in row order
        order = flatten(reading_order([boxes[i] for i in given], [texts[i] for i in given]))
        got = [texts[given[i]] for i in order]
        from difflib import SequenceMatcher

        ours = SequenceMatcher(None, got, texts, autojunk=False).ratio()
        rows = SequenceMatcher(None, [texts[i] for i in given], texts, autojunk=False).ratio()
        if cls in devset.SINGLE_COLUMN:  # rows stay rows: never worse than the engine's row order
            assert ours >= max(rows, 0.95), f"{page.name}: {ours:.2f} of the lines in order (rows {rows:.2f})"
        else:  # columns stay columns: far better than the row order, which interleaves them
            assert ours >= 0.7 and ours >= rows + 0.2, f"{page.name}: {ours:.2f} in column order (rows {rows:.2f})"


def test_amounts_beside_labels_are_rows_but_a_sidebar_of_words_stays_a_column():
    labels = [line(50, 100 + 30 * r, 170) for r in range(6)]
    amounts = [line(480, 100 + 30 * r, 540) for r in range(6)]
    order = flatten(reading_order(labels + amounts, [f"Item {r}" for r in range(6)] + ["9.99"] * 6))
    assert order == [i for r in range(6) for i in (r, 6 + r)]
    text = [line(50, 100 + 30 * r, 600) for r in range(6)]  # running text, then a sidebar of words
    side = [line(700, 100 + 30 * r, 800) for r in range(6)]
    order = flatten(reading_order(text + side, ["long running text line"] * 6 + ["Analyst"] * 6))
    assert order == list(range(12))


def _sparse_beside_a_list(offsets):
    """A list of 20 short lines, and a sparse second column on 4 of its rows, ``offsets`` px lower.

    Two columns of short lines, five times as many on the left: not a table, not running text.
    """
    boxes = [line(50, 100 + 40 * r, 200) for r in range(20)]
    texts = [f"Item {r}" for r in range(20)]
    for k, r in enumerate((2, 7, 12, 17)):
        boxes.append(line(700, 100 + 40 * r + offsets[k], 820))
        texts.append(f"{r}/01/2020")
    return boxes, texts


def test_a_sparse_second_column_on_a_skewed_scan_stays_in_its_rows():
    # every value sits 5 px below its row's label (the scan's skew over 650 px): lines that
    # share a baseline are offset alike, so they are rows, not a column of their own
    boxes, texts = _sparse_beside_a_list([5, 5, 6, 5])
    order = [texts[i] for i in flatten(reading_order(boxes, texts))]
    assert order[order.index("Item 7"):order.index("Item 8")] == ["Item 7", "7/01/2020"]
    assert order.index("17/01/2020") == order.index("Item 17") + 1


def test_a_sparse_column_that_only_comes_near_the_rows_stays_a_column():
    # the same lines scattered up and down within the row tolerance: an independent column
    boxes, texts = _sparse_beside_a_list([-8, 7, 0, -6])
    order = [texts[i] for i in flatten(reading_order(boxes, texts))]
    assert order == [f"Item {r}" for r in range(20)] + [f"{r}/01/2020" for r in (2, 7, 12, 17)]


def test_a_key_value_block_under_two_text_columns_is_read_after_both_columns():
    left = [line(50, 100 + 30 * r, 470) for r in range(8)]
    right = [line(530, 100 + 30 * r, 950) for r in range(7)]  # the right column ends a line earlier
    kv = [b for r in range(4) for b in (line(50, 400 + 30 * r, 140), line(350, 400 + 30 * r, 440))]
    texts = ["running text of the left column"] * 8 + ["running text of the right column"] * 7 + ["Key", "value"] * 4
    rows = sorted(range(len(left + right + kv)), key=lambda i: ((left + right + kv)[i][1], (left + right + kv)[i][0]))
    boxes = [(left + right + kv)[i] for i in rows]
    order = [rows[i] for i in flatten(reading_order(boxes, [texts[i] for i in rows]))]
    assert order == list(range(len(boxes)))  # left column, right column, then the block row by row


def test_paragraphs_over_a_table_beside_a_sidebar_of_words_stay_columns():
    # The left column is 10 lines of running text over a table of 20 short rows (its median
    # line is short), the right one a sidebar of 20 labels on the same pitch: most lines pair
    # up by chance, but a column with paragraphs in it is running text, and a sidebar of words
    # beside running text is a column (multicol_06 levelled read them interleaved).
    text = [line(50, 100 + 30 * r, 600) for r in range(10)]
    table = [line(50, 430 + 30 * r, 200) for r in range(20)]
    side = [line(700, 100 + 30 * r + 3, 820) for r in range(20)]
    texts = ["long running text line"] * 10 + ["Net sales"] * 20 + ["Market value"] * 20
    order = flatten(reading_order(text + table + side, texts))
    assert order == list(range(50))


def test_a_narrow_gutter_is_a_gutter():
    # Two text columns 7 px apart on 20 px lines (0.35 line heights): a report's text beside its
    # sidebar, 0.46 line heights apart on the scan, 0.36 once the skewed scan is levelled (its
    # boxes grow with the resampling's blur); read column by column, not row by row.
    left = [line(50, 100 + 30 * r, 470) for r in range(8)]
    right = [line(477, 100 + 30 * r, 900) for r in range(8)]
    boxes = [b for pair in zip(left, right) for b in pair]       # RapidOCR's row order
    assert flatten(reading_order(boxes)) == list(range(0, 16, 2)) + list(range(1, 16, 2))


def _table_rows_without_a_gap(pitch=24):
    """A table's rows under its header, cut off (a strip of a tall page): name | phone | email |
    coverage, a record of two people on two lines and one coverage cell centred between them, so
    no blank row lies across the table anywhere. Returns boxes, texts and the order row by row
    (a centred cell after its record's first line, as the whole table is read)."""
    boxes, texts, expected = [], [], []
    y = 0
    for people, coverage in ((1, "Generalist, Distressed, High-Yield"), (1, "Generalist, Distressed, High-Yield"),
                             (2, "Media and Telecom"), (2, "Utilities")):
        for k in range(people):
            row = []
            for x0, x1, text in ((50, 560, f"Person {y} {k}, Managing Director"), (600, 710, "(203) 569-4337"),
                                 (820, 1100, f"p{y}{k}@example.com")):
                row.append(len(boxes))
                boxes.append(line(x0, y + k * pitch, x1))
                texts.append(text)
            if k == 0:   # on the row, or centred on the record's two lines: read after its first
                row.append(len(boxes))
                boxes.append(line(1150, y + (pitch // 2 if people == 2 else 0), 1700 if people == 1 else 1500))
                texts.append(coverage)
            expected += row
        y += people * pitch
    return boxes, texts, expected


def test_a_table_cut_below_its_header_whose_rows_touch_is_still_read_row_by_row():
    """A table's fragment with no row gap (its rows touch: two-line records, a cell centred
    between their lines) was no table, its three columns of long cells "text": the coverage
    column was read after all the others (scribe ``table_07``'s lower strip, +5.5 CER points
    against the whole page). Its lines share their rows' baselines: a table, read row by row."""
    boxes, texts, expected = _table_rows_without_a_gap()
    rows = sorted(range(len(boxes)), key=lambda i: (boxes[i][1], boxes[i][0]))   # RapidOCR's row order
    order = [rows[i] for i in flatten(reading_order([boxes[i] for i in rows], [texts[i] for i in rows]))]
    assert [texts[i] for i in order] == [texts[i] for i in expected]


def test_two_numbered_pages_side_by_side_without_a_row_gap_stay_columns():
    """Text, line numbers, text on every row (two transcript pages side by side on one
    baseline grid, the left page's numbers cut off: scribe ``deposition_01``): rows of three
    columns on one baseline too, but numbered lines; the right page is read after the left
    one, never across as a table's rows (the numbers go with the text on their left, as
    amounts beside running text do, as before)."""
    boxes, texts = [], []
    for r in range(12):
        y = r * 22   # 20 px lines 2 px apart: no row gap of a quarter line
        for x0, x1, text in ((50, 560, f"left page line {r} of the answer given"), (600, 630, str(r + 1)),
                             (660, 1160, f"right page line {r} of the question")):
            boxes.append(line(x0, y, x1))
            texts.append(text)
    order = [texts[i] for i in flatten(reading_order(boxes, texts))]
    assert order[-12:] == [f"right page line {r} of the question" for r in range(12)]
