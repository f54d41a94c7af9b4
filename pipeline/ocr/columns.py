"""Where a page's text columns are, from its ink alone: dark pixels, bands, white gutters.

Why here, on the lowest floor: two readers need the same columns. The strip cutter
(``pipeline.inputs.strips``) cuts a page too tall for the hosted model column by column, and the
Tesseract engine (``tesseract.py``) reads a page set in columns one column at a time
(``text_columns``), because Tesseract's own column finding changes under a half-pixel shift of
the page (docs/configuration.md, "Turned and skewed pages"). Pillow + numpy, at the page's own
resolution, no OCR.

* **Ink**: dark pixels (Otsu's threshold on the grey histogram, never above mid-grey, so a clean
  white page is not split on paper texture), without the scan's frame; in a dark panel (a
  coloured sidebar) the light pixels are the ink. A row is *blank* when it holds at most a speck
  of ink (``speck`` pixels: dust, not a descender), and each row's ink counts for its neighbours
  (a row through the middle of thin type may hold only grey: no gap). A gutter may hold dust, never a run of
  consecutive inked rows down its middle (a title crossing it).
* **Bands and columns**: the page is split at full-width blank
  runs into bands; a band with a vertical white gutter (no ink over the band's height, wide at
  least ``GUTTER_FRACTION`` of the page, with ink on both sides) is cut into its columns. A band
  with no columns whose first (last) few lines alone hide its gutter (a heading across the
  gutter set closer to the columns than a band gap) is parted below (above) them
  (``spanning``). A gutter is no title's word space unless the lines on both its sides are
  twice as tall as it is wide (a figure beside a text column is on one side only). A table's
  gutters are no text columns' (``rows_aligned``: its cells lie on the same rows): it is cut
  across the full width, between its rows, never into its columns (read column by column, every
  row would be torn apart), unless every column is prose (``_prose``: an article on a baseline
  grid). Bands under the first column(s) only, after a break, below the columns are a block of
  their own, read after them (``_before_a_block_below``). A dark banner's edges count as ink, so
  a banner over two columns is a band of its own, read whole.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .layout import TEXT_ASPECT   # running text, as the reading order judges it from line boxes

GUTTER_FRACTION = 0.015     # a column gutter is at least this share of the page width wide
MIN_BAND_GAP_FRACTION = 0.008  # a full-width blank run this share of the page height splits bands
ALIGNED_ROWS = 0.7          # columns whose lines lie on the same rows this often are a table's
ALIGNED_MIN_LINES = 5       # ... judged on at least this many lines a side, unless one is line numbers:
BLOCK_BREAK_LINES = 1.5     # a block under column 1 after both columns end follows a blank this many lines tall
PROSE_GAP_LINES = 1.0       # ... or prose: no blank inside its lines this many line heights wide (cells')
LINE_SHARE = 0.1            # a row inked under this share of a full row's ink is between lines (tables' rows)
NUMBERS_LINES = 2.0         # ink at most this many line heights wide (two or three digits)
FRAME_SHARE = 0.5           # a row/column inked over more than this share of the page is a frame
PANEL_FRACTION = 0.05       # dark columns (rows) at least this share of the page wide (tall) are a panel
EDGE_FRACTION = 0.06        # ... and within this share of the page from a side edge, over EDGE_SHARE
EDGE_SHARE = 0.1
GUTTER_INK = 0.02           # a gutter column may hold this share of inked rows (dust, bleed-through) ...
CROSSING_ROWS = 6           # ... but no run of this many consecutive inked rows (text crossing it)
SPANNING_LINES = 3          # a band's first (last) lines this many at most may span its columns (a heading)
MIN_COLUMN_FRACTION = 0.1   # a "column" narrower than this share of the page (a rule, a margin) joins its neighbour
COLUMN_PAGE_SHARE = 0.5     # a page is set in columns when one section of columns is this share of its height


def ink_mask(image: Image.Image) -> np.ndarray:
    """Dark pixels as a boolean array (rows, columns), without the scan's frame: a row or column
    inked over more than ``FRAME_SHARE`` of the page is a black border, a fold or a rule, not text,
    and would hide every gap it crosses."""
    grey_image = image.convert("L")
    grey = np.asarray(grey_image, dtype=np.uint8)
    ink = grey < _otsu(np.asarray(grey_image.histogram(), dtype=np.float64))
    height, width = ink.shape
    _panels(ink)      # dark columns: a sidebar, or a border
    _panels(ink.T, edges=True)    # dark rows: a banner, or a rule (a view: the same pixels)
    # Each row's ink reaches ``reach`` rows up and down: a row through the middle of a line of
    # thin type can hold no dark pixel at all (only grey stroke edges), and a "gap" that thin is
    # inside a line; gaps between lines are taller and survive, ``2 * reach`` rows shorter.
    reach = max(1, height // 1000)
    grown = ink.copy()
    for shift in range(1, reach + 1):
        grown[shift:] |= ink[:-shift]
        grown[:-shift] |= ink[shift:]
    ink = grown
    # near the left and right edges a scan's shadow or torn border inks fewer rows: a lower bar
    # there (not at the top and bottom, where a running head's line inks rows just as densely)
    edge_x = int(width * EDGE_FRACTION)
    cols = ink.sum(axis=0) > EDGE_SHARE * height
    cols[edge_x:width - edge_x] = False
    ink[:, cols] = False
    return ink


def _panels(ink: np.ndarray, edges: bool = False) -> None:
    """Columns inked over more than ``FRAME_SHARE`` of the rows, in place: a run of them at least
    ``PANEL_FRACTION`` of the width is a dark panel (a coloured sidebar) whose text is light on
    dark, so there the light pixels become the ink, in the rows the panel covers; a narrower run
    is a border or a rule, not text, and is left out (it would hide every gap it crosses).
    ``edges``: the panel's first and last columns stay ink over ``CROSSING_ROWS`` (called on the
    page turned, for a banner: its top and bottom edges cross any gutter under its text, so a
    banner over two columns is read whole, as one band, not cut with the columns below it)."""
    height, width = ink.shape
    for a, b in true_runs(ink.sum(axis=0) > FRAME_SHARE * height):
        if b - a >= width * PANEL_FRACTION:
            rows = ink[:, a:b].mean(axis=1) > FRAME_SHARE
            ink[rows, a:b] = ~ink[rows, a:b]
            if edges:
                k = max(CROSSING_ROWS, height // 400)
                ink[rows, a:a + k] = True
                ink[rows, b - k:b] = True
        else:
            ink[:, a:b] = False


def _otsu(hist: np.ndarray) -> int:
    """Otsu's threshold from a 256-bin grey histogram (Pillow's, computed in C)."""
    total = hist.sum()
    if total == 0:
        return 128
    levels = np.arange(256)
    w0 = np.cumsum(hist)
    m0 = np.cumsum(hist * levels)
    w1 = total - w0
    mean_all = m0[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mean_all * w0 / total - m0) ** 2 / (w0 * w1 / total)
    between = np.nan_to_num(between)
    threshold = int(np.argmax(between)) + 1
    return min(threshold, 128) if between.max() > 0 else 128


def sections(ink: np.ndarray, x0: int, x1: int, y0: int, y1: int, speck: int,
             page_width: int, tables: list | None = None, on_print: bool = False):
    """``(s0, s1, columns)`` for the box's sections, top to bottom: the bands (split at full-width
    blank runs, a heading spanning the columns parted off) grouped into the longest runs of
    consecutive bands under one gutter (a two-column body with its footnotes); ``columns`` are
    the section's text columns (x ranges relative to ``x0``), [] for a section of one column, a
    centred title, or a table (its cells lie on the same rows: read across, row by row; its
    ``(s0, s1, columns)`` appended to ``tables`` when given). ``on_print``: a title is centred on
    the printed width (``centred``; the column reading), else on the box (the strip cutter, whose
    cuts were measured so)."""
    bands = [(y0 + a, y0 + b) for a, b in split_bands(ink[y0:y1, x0:x1], speck)]
    bands = [part for a, b in bands for part in spanning(ink[:, x0:x1], a, b, speck, page_width)]
    span = ink_span(ink[y0:y1, x0:x1]) if on_print else None
    i = 0
    while i < len(bands):
        j = section_end(ink, x0, x1, bands, i, page_width, span)
        s0, s1 = bands[i][0], bands[j][1]
        box = ink[s0:s1, x0:x1]
        columns = find_columns(box, page_width) if j > i or not centred(box, span) else []
        if columns and rows_aligned(box, columns, speck) and not _prose(box, columns, speck):
            if tables is not None:
                tables.append((s0, s1, columns))
            columns = []   # a table's columns (or numbered lines): read across the full width
        yield s0, s1, columns
        i = j + 1


def text_columns(image: Image.Image) -> list[tuple[str, tuple[int, int, int, int]]] | None:
    """The regions a page set in columns is read by, in reading order: ``("column", box)`` for
    each column of a section of columns (left to right), ``("across", box)`` for the full-width
    stretch between such sections (a title, a full-width paragraph, a table); boxes
    ``(x0, y0, x1, y1)`` in pixels. None for a page not set in columns: no section of columns at
    least ``COLUMN_PAGE_SHARE`` of the page tall with ``ALIGNED_MIN_LINES`` lines or more in
    each column (a form or a chart whose heading has two parts, a table, a single column, a few
    lines of words set far apart), which is read whole, as Tesseract lays it out.

    Why: Tesseract's own column finding decides a multi-column page's reading order, and a
    half-pixel shift of the page changes it (multicol_04: 7.1 % CER, 10.6-60.3 % shifted);
    these gutters, found from white space alone, stay where they are."""
    return page_layout(image)[0]


def page_layout(image: Image.Image) -> tuple[list[tuple[str, tuple[int, int, int, int]]] | None, str | None]:
    """``text_columns(image)``, and what columns the page holds (a table's included; one ink
    mask for both): ``"text"`` when any section's columns are running text (``_column_kind``),
    else ``"cells"`` when some section's are a form's, a receipt's or a table's (5 lines or more
    each, short), else None (one column, or no columns found). What a page read whole needs to
    know (``tesseract.py``): cells are read as lines across the page (a label with its value, a
    row with its cells), anything else in Tesseract's own layout (a levelled page whose gutter
    was not found must not be read across it; rendered articles whose columns share one baseline
    grid are prose, no table, ``_prose``, and are read in their columns)."""
    ink = ink_mask(image)
    height, width = ink.shape
    out, tallest, kinds = _regions(ink, (0, 0, width, height), max(2, width // 500), width)
    kind = "text" if "text" in kinds else "cells" if "cells" in kinds else None
    return (out if tallest >= COLUMN_PAGE_SHARE * height else None), kind


def _regions(ink: np.ndarray, box: tuple[int, int, int, int], speck: int,
             page_width: int) -> tuple[list[tuple[str, tuple[int, int, int, int]]], int, set]:
    """``text_columns`` of one box, the height of its tallest section of columns (0: none), and
    the kinds of its sections' columns, a table's included (``_column_kind``, ``page_layout``)."""
    x0, y0, x1, y1 = box
    out: list[tuple[str, tuple[int, int, int, int]]] = []
    across: int | None = None
    tallest = 0
    tables: list = []
    kinds: set = set()
    for s0, s1, columns in sections(ink, x0, x1, y0, y1, speck, page_width, tables, on_print=True):
        if not columns:
            across = s0 if across is None else across
            continue
        if across is not None:
            out.append(("across", (x0, across, x1, s0)))
            across = None
        kind = _column_kind(ink[s0:s1, x0:x1], columns, speck)
        kinds.add(kind)
        if kind == "text":
            tallest = max(tallest, s1 - s0)    # columns of text, not words set apart on a few lines
        out += [("column", (x0 + c0, s0, x0 + c1, s1)) for c0, c1 in columns]
    if across is not None:
        out.append(("across", (x0, across, x1, y1)))
    kinds |= {_column_kind(ink[s0:s1, x0:x1], columns, speck) for s0, s1, columns in tables}
    return out, tallest, kinds


def spanning(ink: np.ndarray, a: int, b: int, speck: int, page_width: int) -> list[tuple[int, int]]:
    """The band [a, b) parted below its first lines or above its last ones when they alone keep
    its columns from being found: a heading across the gutter set closer to the columns than a
    band gap (two transcript pages side by side under the deposition's title), a rule over them,
    a footer line under them. Up to ``SPANNING_LINES`` lines are parted off a side, at the first
    blank run that leaves columns (of at least ``ALIGNED_MIN_LINES`` lines) on the other side;
    the band is kept whole when it has columns already or no such run exists.

    The lines are looked for first without the band's rules down the page (``_text_lines``: a
    frame's sides join the frame's top edge to the columns' first lines, and the parting fell
    under those), and a parting so found below the first lines is taken when a line of text
    among them crosses a gutter below (``_text_across``: a heading); else (a ruled table's
    header row lies in its columns: the table stays whole, cut across; a rule alone over the
    columns) the lines are the runs of inked rows as they are."""
    band = ink[a:b]
    if find_columns(band, page_width):
        return [(a, b)]
    parted = _parted(band, _text_lines(band, speck), page_width, top_only=True)
    if parted is not None and not _text_across(band[:parted], find_columns(band[parted:], page_width), speck, page_width):
        parted = None
    if parted is None:
        parted = _parted(band, true_runs(band.sum(axis=1) > speck), page_width)
    if parted is None:
        return [(a, b)]
    if find_columns(band[parted:], page_width):      # parted below a heading: the rest may hold another
        return [(a, a + parted), *spanning(ink, a + parted, b, speck, page_width)]
    return [(a, a + parted), (a + parted, b)]


def _parted(band: np.ndarray, lines: list[tuple[int, int]], page_width: int, top_only: bool = False) -> int | None:
    """The row parting the band below its first lines (up to ``SPANNING_LINES``) or, failing
    that, above its last ones, the first that leaves columns on the other side (None: none)."""
    if len(lines) < SPANNING_LINES + ALIGNED_MIN_LINES:
        return None
    for k in range(1, SPANNING_LINES + 1):
        cut = (lines[k - 1][1] + lines[k][0]) // 2           # below the first k lines
        if find_columns(band[cut:], page_width):
            return cut
    if top_only:
        return None
    for k in range(1, SPANNING_LINES + 1):
        cut = (lines[-k - 1][1] + lines[-k][0]) // 2         # above the last k lines
        if find_columns(band[:cut], page_width):
            return cut
    return None


def _text_across(part: np.ndarray, columns: list[tuple[int, int]], speck: int, page_width: int) -> bool:
    """Whether a line of text in ``part`` crosses a gutter between ``columns``: ink within half a
    gutter's width of the gutter's middle, on a line that is no rule (no row of it inked on end
    over ``MIN_COLUMN_FRACTION`` of the page; letters leave gaps). A heading across the gutter is
    parted off the columns under it; a table's header row, whose cells lie in the table's
    columns, is not: its rules alone hid the columns (a ruled table is one section, cut across)."""
    reach = max(4, int(page_width * GUTTER_FRACTION) // 2)
    longest = MIN_COLUMN_FRACTION * page_width
    lines = [(a, b) for a, b in _text_lines(part, speck) if _longest_down(part[a:b].T).max() < longest]
    return any(part[a:b, max(0, x - reach):x + reach].any() for a, b in lines for _, x in columns[:-1])


def _text_lines(band: np.ndarray, speck: int) -> list[tuple[int, int]]:
    """The band's lines as runs of inked rows, its rules down the page left out
    (``_without_rules``): the sides of a frame drawn round the columns join a rule over them
    (the frame's top edge) to the lines under it with no blank row between, so the heading above
    the rule could not be parted off with the rule, which crosses the gutter, and the columns'
    first lines went with the heading. A cut between two such lines goes through the frame's
    sides only."""
    return true_runs(_without_rules(band).sum(axis=1) > speck)


def _without_rules(band: np.ndarray) -> np.ndarray:
    """The band without its pixel columns inked down more than two lines on end (as in
    ``_numbers``; a line's height taken from the glyphs, the tallest runs down most pixel
    columns): the sides of a frame, a table's column rules. They are no text, and they join
    the lines they pass into one run of inked rows."""
    strokes = _longest_down(band)
    if not strokes.any():
        return band
    rule = strokes > 2 * float(np.percentile(strokes[strokes > 0], 90))
    return band & ~rule if rule.any() else band


def rows_aligned(band: np.ndarray, columns: list[tuple[int, int]], speck: int) -> bool:
    """Whether the lines on both sides of every gutter lie on the same rows: a table's cells do
    (and numbered lines beside their numbers), text columns rarely do (their headings, paragraph
    spaces and figures put them out of step). At least ``ALIGNED_ROWS`` of the lines of the side
    with fewer lines (of at least ``ALIGNED_MIN_LINES``) have their middle within a quarter of a
    line height of a line's middle in another column; a sparser column's lines each lie within
    half a line of one, and at least one gutter is judged on enough lines. A table cut into its
    columns is read column by column, every row torn apart; cut across its full width at the
    gaps between its rows, it is read row by row.

    Middles, not tops: a cell of lower-case words without ascenders ("east") starts a quarter of
    a line lower than the figures beside it, on the same row. Lines at least half a text line
    tall only: a dash, a dot or the tail of a name clipped by the page's edge (``ink_mask`` leaves
    out the ink close to a side edge) is a "line" of its own, anywhere in its row."""
    runs = [_line_runs(band[:, c0:c1], speck) for c0, c1 in columns]
    if not any(runs):
        return False
    text_line = max(float(np.median([b - a for a, b in rs])) for rs in runs if rs)   # thin digits break up
    if any(_numbers(band[:, c0:c1], rs, text_line) and _numbering(band, columns[k + 1:k + 2], speck)
           for k, ((c0, c1), rs) in enumerate(zip(columns, runs))):
        return False
    runs = [[(a, b) for a, b in rs if b - a >= 0.5 * text_line] for rs in runs]
    heights = [b - a for column in runs for a, b in column]
    if not heights:
        return False
    near = max(3.0, 0.25 * float(np.median(heights)))
    middles = [np.asarray([(a + b) / 2 for a, b in column]) for column in runs]
    if any(m.size == 0 for m in middles):
        return False
    judged = 0
    for k in range(len(middles) - 1):
        i = min((k, k + 1), key=lambda j: len(middles[j]))
        fewer = middles[i]
        # a row of the table: a line of some other column on it (a key/value block over a
        # table's item rows leaves the quantities' neighbour empty on the key/value rows)
        others = np.concatenate([m for j, m in enumerate(middles) if j != i])
        if len(fewer) < ALIGNED_MIN_LINES:
            # a sparse column (a form's second field, on a few of its rows): too few lines to
            # judge the gutter by, but each lies on a row (within half a line: its line may
            # hold a taller value than its label's)
            if any(np.abs(others - m).min() > 2 * near for m in fewer):
                return False
            continue
        hits = sum(1 for m in fewer if np.abs(others - m).min() <= near)
        if hits < ALIGNED_ROWS * len(fewer):
            return False
        judged += 1
    return judged > 0


def _column_kind(section: np.ndarray, columns: list[tuple[int, int]], speck: int) -> str | None:
    """``"text"`` for columns of text: each of ``ALIGNED_MIN_LINES`` lines or more, and at least
    half of them running text, their median line ``TEXT_ASPECT`` times as long as it is tall (line
    numbers beside a transcript's text count). ``"cells"`` for columns of as many lines, fewer
    than half of them running text (a form's labels and values, a receipt's items and prices, a
    table's cells: Tesseract reads those across, as rows, and read column by column they lost
    words). None when a column holds fewer lines (words set apart, or a "column" that is a page
    edge's remnant)."""
    shapes = _line_shapes(section, columns, speck)
    if shapes is None:
        return None
    return "text" if 2 * sum(aspect >= TEXT_ASPECT for aspect, _ in shapes) >= len(columns) else "cells"


def _prose(section: np.ndarray, columns: list[tuple[int, int]], speck: int) -> bool:
    """Whether every column is prose: running text (median line ``TEXT_ASPECT`` times as long as
    tall) whose widest blank inside a line is a word space (the median line's under
    ``PROSE_GAP_LINES`` line heights), not the space between a table's cells.

    Why: an article set on a baseline grid has its columns' lines on the same rows, as a table's
    cells are (``rows_aligned``), and read across the full width it would interleave its columns
    line by line. A gutter of a table separates groups of cells, and a line of such a group still
    holds cell gaps (the scribe tables: 1.5-8 line heights; rendered two- and three-column
    articles: 0.5-0.8)."""
    # a sparse column (under ALIGNED_MIN_LINES lines) is judged by its neighbours
    shapes = [shape for shape in _column_shapes(section, columns, speck) if shape is not None]
    return bool(shapes) and all(aspect >= TEXT_ASPECT and gap < PROSE_GAP_LINES for aspect, gap in shapes)


def _line_shapes(section: np.ndarray, columns: list[tuple[int, int]], speck: int) -> list[tuple[float, float]] | None:
    """``_column_shapes``, or None when a column has fewer than ``ALIGNED_MIN_LINES`` lines."""
    shapes = _column_shapes(section, columns, speck)
    return None if None in shapes else shapes


def _column_shapes(section: np.ndarray, columns: list[tuple[int, int]],
                   speck: int) -> list[tuple[float, float] | None]:
    """For each column, its median line's length and widest inner blank, both in line heights;
    None for a column of fewer than ``ALIGNED_MIN_LINES`` lines."""
    shapes: list[tuple[float, float] | None] = []
    for c0, c1 in columns:
        column = section[:, c0:c1]
        lines = _line_runs(column, speck)
        if len(lines) < ALIGNED_MIN_LINES:
            shapes.append(None)
            continue
        aspects, gaps = [], []
        for a, b in lines:
            xs = np.flatnonzero(column[a:b].any(axis=0))
            height = max(b - a, 1)
            aspects.append((xs[-1] + 1 - xs[0]) / height if xs.size else 0.0)
            gaps.append(float(np.diff(xs).max() - 1) / height if xs.size > 1 else 0.0)
        shapes.append((float(np.median(aspects)), float(np.median(gaps))))
    return shapes


def _line_runs(column: np.ndarray, speck: int) -> list[tuple[int, int]]:
    """The column's text lines as runs of rows holding more than ``LINE_SHARE`` of a full row's
    ink (its 90th percentile): a descender or a parenthesis reaching into the row gap of a tight
    table inks it with a speck or two, so counting every inked row would merge rows into one."""
    rows = column.sum(axis=1)
    inked = rows[rows > speck]
    if inked.size == 0:
        return []
    return true_runs(rows > max(speck, LINE_SHARE * float(np.percentile(inked, 90))))


def _numbering(band: np.ndarray, following: list[tuple[int, int]], speck: int) -> bool:
    """Whether a column of numbers numbers lines: the column after it is running text (a
    transcript's lines). A table's quantities are numbers too, but the cells after them are
    short (a price, an amount), and read column by column the table would be torn apart (a
    rendered invoice at 300 dpi, whose item table was cut into columns: +57 CER points)."""
    shapes = _line_shapes(band, following, speck) if following else None
    return bool(shapes) and shapes[0][0] >= TEXT_ASPECT


def _numbers(column: np.ndarray, lines: list[tuple[int, int]], line: float) -> bool:
    """A column of line numbers: its lines' ink (the median) at most ``NUMBERS_LINES`` line
    heights wide. Numbered lines start on the same rows as their numbers, as a table's cells do,
    but the page is read column by column (the numbers, then the text), as a list of two columns is.
    A pixel column inked down more than two lines on end is a rule, not a glyph, and is no part
    of any line's width: the side of a frame drawn round a transcript page (on a skewed scan no
    one pixel column of it is inked down half the page, and ``ink_mask`` keeps it)."""
    rule = _longest_down(column) > 2 * line
    widths = []
    for a, b in lines:
        xs = np.flatnonzero(column[a:b].any(axis=0) & ~rule)
        widths.append(int(xs[-1] + 1 - xs[0]) if xs.size else 0)
    return bool(widths) and float(np.median(widths)) <= NUMBERS_LINES * line


def _longest_down(ink: np.ndarray) -> np.ndarray:
    """For each pixel column, its longest run of consecutive inked rows (vectorised: the rises
    and falls of all runs, column after column, their lengths' maximum taken per column)."""
    padded = np.zeros((ink.shape[1], ink.shape[0] + 2), dtype=np.int8)
    padded[:, 1:-1] = ink.T
    edges = np.diff(padded, axis=1).ravel()      # columns one after the other, never joined: 0s between
    rises, falls = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    longest = np.zeros(ink.shape[1], dtype=np.int64)
    if rises.size:
        columns = rises // (ink.shape[0] + 1)
        first = np.flatnonzero(np.r_[True, columns[1:] != columns[:-1]])
        longest[columns[first]] = np.maximum.reduceat(falls - rises, first)
    return longest


def ink_span(box: np.ndarray) -> tuple[int, int]:
    """The first and last inked pixel columns of the box, + 1 (the whole box when it holds no ink)."""
    inked = np.flatnonzero(box.any(axis=0))
    return (int(inked[0]), int(inked[-1]) + 1) if inked.size else (0, box.shape[1])


def centred(band: np.ndarray, span: tuple[int, int] | None = None) -> bool:
    """Ink narrower than half the box and centred on the printed width ``span`` (``ink_span``
    of the page or box the band lies in; the box when None), within a tenth of that width: a
    title or a page number, which spans the columns (its letter gaps are no gutter). The printed
    width, not the canvas: a levelled page's canvas grows by white margins, and a transcript's
    line that was off centre on the scan (its centre 201 px from the middle, a tenth of the 2000 px
    canvas is 200) came out "centred" once levelled (a tenth of 2068 px) and ended its section of
    columns (deposition_02: the page cut into seven regions instead of three)."""
    inked = np.flatnonzero(band.sum(axis=0))
    if inked.size == 0:
        return False
    a, b = span or (0, band.shape[1])
    left, right = int(inked[0]), int(inked[-1]) + 1
    return right - left < band.shape[1] * 0.5 and abs((left + right) / 2 - (a + b) / 2) < (b - a) * 0.1


def section_end(ink: np.ndarray, x0: int, x1: int, bands: list[tuple[int, int]], i: int, page_width: int,
                span: tuple[int, int] | None = None) -> int:
    """The last band j >= i such that a gutter runs over all of bands i..j (i when none): a band
    of one column only (a footnote under its column) extends the section, a centred page number
    or title stops it (``centred`` within ``span``)."""
    best = i
    if centred(ink[bands[i][0]:bands[i][1], x0:x1], span):
        return i
    for j in range(i + 1, len(bands)):
        if centred(ink[bands[j][0]:bands[j][1], x0:x1], span) or not find_columns(ink[bands[i][0]:bands[j][1], x0:x1],
                                                                                  page_width):
            break
        best = j
    return _before_a_block_below(ink, x0, x1, bands, i, best, page_width)


def _before_a_block_below(ink: np.ndarray, x0: int, x1: int, bands: list[tuple[int, int]], i: int, j: int,
                          page_width: int) -> int:
    """The section's last band once a block set below its columns is left out: the section's
    last bands hold ink under its first column(s) only (none under the last), and the first of
    them starts after a blank at least ``BLOCK_BREAK_LINES`` of the section's line heights tall.

    Why: such bands extend the section as the tail of column 1 (read before column 2) when they
    follow it at a line or paragraph gap (the scribe pages: 0.3-1.0 line heights), but a block
    set under column 1 after both columns end (a key/value list, a footer set left: 1.6-4.9) is
    read after the columns, as the whole page is."""
    if j == i:
        return j
    columns = find_columns(ink[bands[i][0]:bands[j][1], x0:x1], page_width)
    if not columns:
        return j
    last = slice(x0 + columns[-1][0], x0 + columns[-1][1])
    k = j
    while k > i and not ink[bands[k][0]:bands[k][1], last].any():
        k -= 1
    if k == j:
        return j
    body = ink[bands[i][0]:bands[k][1], x0:x1]
    heights = [b - a for a, b in _line_runs(body, 0)]
    if not heights:
        return j
    line = float(np.median(heights))
    for m in range(k + 1, j + 1):
        rows = np.flatnonzero(ink[bands[m][0]:bands[m][1], x0:x1].any(axis=1))
        if rows.size and rows[0] >= BLOCK_BREAK_LINES * line:
            return m - 1
    return j


def blank_runs(rows_ink: np.ndarray, speck: int) -> list[tuple[int, int]]:
    """Runs [a, b) of rows holding at most a speck of ink."""
    return true_runs(rows_ink <= speck)


def true_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """The runs [a, b) of consecutive True in a 1-d mask."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


def split_bands(ink: np.ndarray, speck: int) -> list[tuple[int, int]]:
    """The page cut at full-width blank runs at least ``MIN_BAND_GAP_FRACTION`` of its height:
    consecutive bands cover the page, each boundary in the middle of such a run."""
    height = ink.shape[0]
    min_gap = max(8, int(height * MIN_BAND_GAP_FRACTION))
    cuts = [(a + b) // 2 for a, b in blank_runs(ink.sum(axis=1), speck)
            if b - a >= min_gap and a > 0 and b < height]
    bounds = [0, *cuts, height]
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def _tallest_line(band: np.ndarray, page_width: int) -> int:
    """The tallest run of consecutive rows holding more than a speck of ink: a line's height
    (or several touching lines')."""
    return max((b - a for a, b in true_runs(band.sum(axis=1) > max(2, page_width // 500))), default=0)


def _word_space(band: np.ndarray, a: int, b: int, page_width: int) -> bool:
    """Whether the blank run [a, b) is narrower than half the height of the lines on both its
    sides: a big title's word space is as wide as a body's gutter, but never half as wide as its
    letters are tall (the lines are measured next to the run, so the other column's lines, on
    other baselines, do not join them). Both sides: the title's letters are on both; a figure
    beside a text column (a chart in a sidebar) inks many rows on end on its side only, and the
    gutter beside it is one."""
    reach = 3 * (b - a)
    tallest = min(_tallest_line(band[:, max(0, a - reach):a], page_width),
                  _tallest_line(band[:, b:b + reach], page_width))
    return b - a < tallest // 2


def _crossed(middle: np.ndarray, page_width: int) -> bool:
    """Whether ink runs down the middle third of a gutter over consecutive rows, as a title or a
    line of text crossing it does (dust and bleed-through are specks, scattered): such a "gutter"
    is no gutter, and a cut there would go through that text."""
    longest = max((b - a for a, b in true_runs(middle.any(axis=1))), default=0)
    return longest >= max(CROSSING_ROWS, page_width // 400)


def find_columns(band: np.ndarray, page_width: int) -> list[tuple[int, int]]:
    """The band's columns [x0, x1) split at white gutters with ink on both sides; [] if none."""
    cols_ink = band.sum(axis=0)
    inked = np.flatnonzero(cols_ink > 0)
    if inked.size == 0:
        return []
    left, right = int(inked[0]), int(inked[-1]) + 1
    min_gutter = max(8, int(page_width * GUTTER_FRACTION))
    tolerance = int(band.shape[0] * GUTTER_INK)
    gutters = [(a, b) for a, b in blank_runs(cols_ink[left:right], tolerance)
               if b - a >= min_gutter and a > 0 and b < right - left
               and not _crossed(band[:, left + a + (b - a) // 3:left + b - (b - a) // 3], page_width)
               and not _word_space(band, left + a, left + b, page_width)]
    if not gutters:
        return []
    bounds = [0] + [left + (a + b) // 2 for a, b in gutters] + [band.shape[1]]
    columns = list(zip(bounds, bounds[1:]))
    narrow = max(16, int(page_width * MIN_COLUMN_FRACTION))
    merged: list[tuple[int, int]] = []
    for x0, x1 in columns:   # a rule between two columns is no column: it joins the one on its left
        if merged and (x1 - x0 < narrow or merged[-1][1] - merged[-1][0] < narrow):
            merged[-1] = (merged[-1][0], x1)
        else:
            merged.append((x0, x1))
    return merged if len(merged) >= 2 else []
