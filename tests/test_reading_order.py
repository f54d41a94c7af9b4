"""Reading order from line boxes alone (pure geometry, no OCR)."""

from pipeline.server.engines.layout import reading_order


def line(x0, y, x1, h=20):
    return (x0, y, x1, y + h)


def flatten(blocks):
    return [i for block in blocks for i in block]


def test_two_columns_under_a_full_width_title_read_column_by_column():
    boxes = [line(50, 10, 950, 30)]                      # 0: title across both columns
    for row in range(4):                                  # RapidOCR order: left, right, left, right...
        y = 80 + row * 30
        boxes += [line(50, y, 450), line(550, y, 950)]
    boxes.append(line(50, 300, 950))                     # footer across the page
    order = flatten(reading_order(boxes))
    left = [1, 3, 5, 7]
    right = [2, 4, 6, 8]
    assert order == [0, *left, *right, 9]
    assert len(reading_order(boxes)) == 4  # title, left column, right column, footer


def test_single_column_keeps_top_to_bottom_and_a_row_left_to_right():
    boxes = [line(300, 100, 600), line(50, 40, 900), line(50, 100, 250)]
    assert flatten(reading_order(boxes)) == [1, 2, 0]


def test_a_short_line_in_one_column_does_not_break_the_columns():
    boxes = [line(50, 80, 450), line(550, 80, 950), line(50, 110, 200), line(550, 110, 950),
             line(550, 140, 950), line(50, 170, 450), line(550, 170, 950)]
    order = flatten(reading_order(boxes))
    assert order == [0, 2, 5, 1, 3, 4, 6]


def test_a_table_with_many_columns_is_read_row_by_row():
    boxes = []
    for row in range(3):
        for col in range(7):
            boxes.append(line(50 + col * 200, 50 + row * 30, 150 + col * 200))
    assert flatten(reading_order(boxes)) == list(range(21))


def test_empty_page():
    assert reading_order([]) == []
