"""The hosted model's Markdown answer -> plain text: the one rule every text output follows.

Why a module of its own: deAPI's OCR model (Nanonets-OCR-s) answers Markdown-like text
(``#`` headings, emphasis, tables as HTML ``<table>`` or Markdown pipes, ``<page_number>``,
``<watermark>``, ``<img>``, LaTeX). The ``.txt``, the text-only ALTO/hOCR and, later, the word
alignment of issue 22 all need the same plain reading of it, so it is written once, here, as a
pure function of the raw answer. The ``.json`` keeps the raw answer and the ``md`` output
writes it as it came.

The rule (docs/formats.md, "Markdown answers"):

* heading marks (``#`` .. ``######`` and a space at the start of a line) are removed, the
  heading's words stay; so are block quote marks (``> ``, nested ``> > ``); a line of ``---``,
  ``***``, ``===`` or a ``#`` alone stays as written: typescripts print such lines (underlines,
  dividers), and the model writes no empty heading;
* emphasis marks are removed: ``**b**``, ``__b__``, ``*i*``, ``_i_``, ``~~s~~`` (only when they
  pair up around text, so a lone ``*``, ``snake_case`` or a form's blank ``________`` stays
  as printed), also over the lines of one paragraph, never across a blank line; inline code is
  its text, literal, without the backticks, and code fence lines go;
* a table (HTML ``<table>`` or Markdown ``| a | b |`` rows) becomes one line per row, cells
  separated by a tab, a spanning cell's other places left empty (on the table's grid); the
  ``|---|`` separator row is dropped (a pipe table may leave out its outer bars). An HTML
  table is read as a browser reads it, losing no cell: end tags left out (``<td>a<td>b``), a
  table never closed (an answer cut off in it: the rest of the answer is the table, its text
  outside cells a row of its own), a table inside a cell (read into that cell);
* the model's own tags follow **one rule: keep what is printed on the page, drop what
  describes it**. ``<page_number>12</page_number>`` and ``<watermark>DRAFT</watermark>`` are
  printed text: their content stays, on a line of its own. ``<img>a photo of ...</img>`` is
  the model's description of a picture, not text on the page: dropped whole, unless it is the
  picture's printed caption (the model's prompt puts it there when there is one: "Figure 2: ..",
  a label and a number), kept on a line of its own. Any other tag
  (``<br>``, ``<sup>``, ``<u>`` ...) is removed and its content kept (``<br>`` ends a line),
  a ``<sup>`` or ``<sub>`` of figures and signs in its Unicode form (``m²``, ``10⁻³``, ``H₂O``);
  HTML's block elements (``<p>``, ``<div>``, ``<li>`` ...) end a line (in a cell: a space);
  HTML comments go; text in angle brackets that is no tag (``<Name of person>``, ``a<b and c>d``)
  stays, in a table's cell too;
* a footnote's mark (``[^1]``, and ``[^1]:`` starting its note) is the mark as printed: ``¹``;
* a Markdown link is its text (``[the register](http://..)`` -> ``the register``), an
  autolink or address in angle brackets its address; a Markdown image (``![a crane](x.png)``)
  describes a picture, as ``<img>`` does: dropped;
* HTML entities are decoded (``&amp;`` -> ``&``); LaTeX is kept as its source text (``$x^2$``):
  it is what the page says, in the only plain form there is;
* a backslash escape (``\\*``, ``\\$``, ``\\#``: a backslash before ASCII punctuation) is the
  character alone, never read as a mark; inside LaTeX the backslashes are its source and stay;
* control characters (and a BOM) are no text on the page: a vertical tab or form feed (the
  ``.txt``'s page separator) ends a line, the others go, and so do lone surrogates, U+FFFE and
  U+FFFF;
* runs of blank lines shrink to one, trailing spaces go.

Plain text with no markup passes through unchanged (apart from trailing spaces), so the rule
is applied to every answer, whichever model gave it.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

PRINTED_TAGS = ("page_number", "watermark")   # content is text on the page: kept, own line
DESCRIBING_TAGS = ("img",)                    # content describes the page: dropped

_TABLE_TAG = re.compile(r"<(/?)table\b[^>]*>", re.I)
_DESCRIBING = re.compile(r"<(%s)\b[^>]*>.*?</\1\s*>|<(%s)\b[^>]*/?>" % ("|".join(DESCRIBING_TAGS),
                                                                       "|".join(DESCRIBING_TAGS)), re.I | re.S)
# A picture's printed caption begins with its label and number ("Figure 2", "Fig. 3a", "Abb. 4",
# "Plate IV", "Table 1"): docling keeps captions in its text and leaves descriptions out
_CAPTION = re.compile(r"(?:fig(?:ure)?|abb(?:ildung)?|bild|illustration|plate|tafel|table|tab|photo|map|karte|chart|"
                      r"diagram|exhibit|image|planche|figura|tabla)\.?\s*(?:no\.?\s*)?(?:\d+[a-z]?|[ivxlc]+)\b", re.I)
_PRINTED = re.compile(r"[ \t]*<(%s)\b[^>]*>(.*?)</\1\s*>[ \t]*" % "|".join(PRINTED_TAGS), re.I | re.S)
_BR = re.compile(r"<br\s*/?>", re.I)
_TAG = re.compile(r"</?([A-Za-z][A-Za-z0-9_:-]*)(\s[^<>]*)?/?>")
# HTML's block elements: each starts and ends a line of its own (``<p>a</p><p>b</p>`` is two
# lines, not "ab"); inside a table's cell, a space
BLOCK_TAGS = ("p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "li", "ul", "ol", "dl", "dt", "dd", "blockquote",
              "center", "pre", "hr", "section", "article", "header", "footer", "figure", "figcaption", "address",
              "aside", "nav", "main")
_BLOCK = re.compile(r"</?(?:%s)\b[^<>]*>" % "|".join(BLOCK_TAGS), re.I)
# A tag is markup only when what follows its name reads as attributes (``a="b"``, or one of
# HTML's few bare ones: ``<input type=checkbox checked>``), so "a<b and c>d" is printed text; and
# a name no HTML element or model tag has is a tag only when the answer closes it too
# (``<x>..</x>``) or gives it attributes: "<Name of person>", a form's "<Unterschrift>", stay
_HTML_NAMES = frozenset(("a abbr b big body br caption cite code col colgroup del dfn em font head html i img "
                         "input ins kbd label mark q s samp small span strike strong sub sup table tbody td tfoot "
                         "th thead tr tt u var signature checkbox").split()) | frozenset(BLOCK_TAGS) | frozenset(PRINTED_TAGS)
_BARE_ATTRIBUTES = "checked|disabled|selected|hidden|nowrap|readonly|multiple|required|open|compact|noshade"
_ATTRIBUTES = re.compile(r"""(?:\s+(?:[A-Za-z_:][\w:.-]*\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+)|(?:%s)\b))*\s*/?"""
                         % _BARE_ATTRIBUTES, re.I)
# An HTML checkbox is its state, as the model's preferred marks show it (``☐``, ``☑``)
_CHECKBOX = re.compile(r"<input\b[^<>]*\btype\s*=\s*[\"']?checkbox\b[^<>]*>", re.I)
# ... and so is a task list's box (GFM: "- [x] done", "1. [ ] open"), after its list marker only
_TASK = re.compile(r"^([ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]+)\[([ xX])\](?=[ \t])", re.M)
# A table's own tags take any attributes, bare ones too (``<td data-x>``): no printed text is
# written "<td ...>"
_STRUCTURE = frozenset("table tr td th thead tbody tfoot caption col colgroup".split())
_ANY_ATTRIBUTES = re.compile(r"""(?:\s+[A-Za-z_:][\w:.-]*(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+))?)*\s*/?""")
_CLOSED = re.compile(r"</([A-Za-z][A-Za-z0-9_:-]*)\s*>")
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_HEADING = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_QUOTE = re.compile(r"^(?:[ \t]{0,3}>[ \t]?)+")
# A code fence (a line of ``` or ~~~, a language's name after it): no text; the code between
# stays. A line going on with other text ("```Wort ...") is text: it stays
_FENCE = re.compile(r"^ {0,3}(?:`{3,}|~{3,})[ \t]*[\w+#.-]*[ \t]*$", re.M)
# An inline code span: its text, literal (no mark, tag or entity read in it), without the backticks;
# its backticks not inside a word, as OCR's apostrophes are ("don`t know what`s" is no code)
_CODE = re.compile(r"(?<![`\w])(`+)(?!`)((?:[^\n]|\n(?![ \t]*\n))+?)(?<!`)\1(?![`\w])")
# A footnote's mark (``[^1]``) and its note (``[^1]: text`` at a line's start): the mark as
# printed, a superscript (``¹``, as ``<sup>1</sup>`` reads) or its label
_FOOTNOTE = re.compile(r"\[\^([^\[\]\s]{1,20})\](:[ \t]*)?")
_PIPE_ROW = re.compile(r"^\s*\|(.*)\|\s*$")
_PIPE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
# A backslash escape (CommonMark: a backslash before ASCII punctuation makes it literal: ``\*``,
# ``\$``, ``\#``, ``\|``), and LaTeX math, where a backslash belongs to the LaTeX source
# (``$\{x\}$``, ``\(a\)``, ``$$..$$``) and is kept as written.
_PUNCTUATION = r"[!-/:-@\[-`{-~]"
_ESCAPE = re.compile(r"\\(%s)" % _PUNCTUATION)
_MATH = re.compile(r"\$\$.+?\$\$|\\\(.+?\\\)|\\\[.+?\\\]|(?<![\\$])\$(?=\S)[^$\n]*?(?<![\s\\])\$", re.S)
# Markdown links and images: a link's text is what the page prints ("[www.kiel.de](http://www.kiel.de)"
# printed once), an image's alt text describes a picture (dropped, as <img>); an autolink or an
# address in angle brackets is its text (not a tag)
_LINK = re.compile(r"(!?)\[([^\[\]\n]*)\]\(\s*<?([^()<>\s]*(?:\([^()\s]*\)[^()<>\s]*)*)>?(?:\s+(?:\"[^\"\n]*\"|'[^'\n]*'))?\s*\)")
_AUTOLINK = re.compile(r"<((?:https?|ftp|mailto):[^\s<>]+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+)>", re.I)
# <sup>/<sub> of figures and signs: their Unicode forms, so "10<sup>-3</sup>" does not read "10-3"
_SCRIPT = re.compile(r"<(sup|sub)\b[^>]*>([^<]*)</\1\s*>", re.I)
_SCRIPTS = {"sup": str.maketrans("0123456789+-\u2212=()", "\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079\u207a\u207b\u207b\u207c\u207d\u207e"),
            "sub": str.maketrans("0123456789+-\u2212=()", "\u2080\u2081\u2082\u2083\u2084\u2085\u2086\u2087\u2088\u2089\u208a\u208b\u208b\u208c\u208d\u208e")}
# No text on a page: control characters (a form feed is the .txt's page separator), lone
# surrogates, U+FFFE/U+FFFF (and XML cannot carry them: ALTO, hOCR, PAGE-XML)
_CONTROL = re.compile("[\x00-\x08\x0e-\x1f\x7f\ud800-\udfff\ufeff\ufffe\uffff]")   # and a BOM
_HELD = 0xE000   # escaped characters wait in the Private Use Area (U+E000 + code) until the end
# Emphasis: the marks must hug text on both sides (CommonMark's flanking rule, simplified);
# underscores only at word boundaries, so snake_case and file_name_v2 stay as printed. A span
# is at most EMPHASIS_CHARS long: each mark that opens none was searched to the end of its line
# (its paragraph, across lines), so a looping answer of "*word *word ..." cost time growing with
# its square (30 kB: 1.6 CPU-s); bounded, it grows with its length.
EMPHASIS_CHARS = 1000
_SPAN = "(.{1,%d}?)" % EMPHASIS_CHARS
_EMPHASIS = tuple(re.compile(p.replace("(.+?)", _SPAN)) for p in (
    r"\*\*(?=\S)(.+?)(?<=\S)\*\*",
    r"(?<!\w)__(?=\S)(.+?)(?<=\S)__(?!\w)",
    r"~~(?=\S)(.+?)(?<=\S)~~",
    r"(?<![\*\w])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\*\w])",
    r"(?<!\w)_(?=[^\s_])(.+?)(?<=[^\s_])_(?!\w)",
))
# The same marks around text running over lines of one paragraph (a bold title wrapped as
# printed: "**ANNUAL REPORT\nOF THE COUNCIL**"), never across a blank line: looked for after
# each line's own pairs are gone.
_EMPHASIS_ACROSS = tuple(re.compile(p.pattern.replace(_SPAN, r"((?:[^\n]|\n(?![ \t]*\n)){1,%d}?)" % EMPHASIS_CHARS))
                         for p in _EMPHASIS)


class _Cells(HTMLParser):
    """An HTML table's rows of cells, each ``(text, colspan, rowspan)`` (``<br>`` inside a cell
    becomes a space).

    The answer's HTML is taken as a browser would take it, never losing text: a ``<td>`` or
    ``<tr>`` opened while a cell is open closes it (HTML lets ``</td>`` and ``</tr>`` be left out),
    a cell still open at the end (an answer cut off in a table) is kept, a table inside a cell is
    read into that cell (its cells separated by spaces), and text outside any cell (after a
    ``<table>`` never closed, the rest of the answer) is a row of its own."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[tuple[str, int, int]]] = []
        self._cell: list[str] | None = None
        self._span = (1, 1)
        self._inner = 0   # tables open inside the open cell: their cells are that cell's text

    def handle_starttag(self, tag: str, attrs) -> None:
        if self._cell is not None and (self._inner or tag == "table"):
            self._inner += tag == "table"
            if tag in ("table", "td", "th", "tr", "br"):
                self._cell.append(" ")
            return
        if tag == "tr":
            self._end_cell()
            self.rows.append([])
        elif tag in ("td", "th"):
            self._end_cell()
            if not self.rows:
                self.rows.append([])
            self._cell = []
            found = dict(attrs)
            self._span = (_span(found.get("colspan")), _span(found.get("rowspan")))
        elif (tag == "br" or tag in BLOCK_TAGS) and self._cell is not None:
            self._cell.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if self._inner:
            self._inner -= tag == "table"
            self._cell.append(" ")
        elif tag in ("td", "th", "tr", "table"):
            self._end_cell()
        elif tag in BLOCK_TAGS and self._cell is not None:
            self._cell.append(" ")

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        elif data.strip():
            self.rows += [[(" ".join(data.split()), 1, 1)], []]   # its own row; later cells on a new one

    def close(self) -> None:
        super().close()
        self._end_cell()

    def _end_cell(self) -> None:
        if self._cell is not None:
            self.rows[-1].append((" ".join("".join(self._cell).split()), *self._span))
            self._cell = None
            self._inner = 0


MAX_SPAN = 100   # a span beyond this is a typo in the answer, not a table that wide


def _span(value: str | None) -> int:
    try:
        return min(MAX_SPAN, max(1, int(str(value).strip())))
    except ValueError:
        return 1


def table_rows(table_html: str) -> list[list[str]]:
    """The rows of one HTML ``<table>``, each a list of cell texts (empty rows dropped), laid on
    the table's grid: a cell spanning columns (``colspan``) or rows (``rowspan``) is followed by,
    or stands above, empty cells in the places it covers, so that every row's cells stay under
    their column's head (a tab-separated ``.txt`` read as columns, or pasted into a sheet)."""
    parser = _Cells()
    parser.feed(_printed_brackets(table_html))
    parser.close()
    out: list[list[str]] = []
    below: dict[int, int] = {}   # column -> rows a cell above still covers
    for row in parser.rows:
        if not row:
            continue
        cells: list[str] = []
        todo = iter(row)
        while True:
            col = len(cells)
            if below.get(col, 0) > 0:          # a place a cell above spans: left empty
                below[col] -= 1
                cells.append("")
                continue
            cell = next(todo, None)
            if cell is None:
                break
            text, colspan, rowspan = cell
            for k in range(colspan):
                if rowspan > 1:
                    below[col + k] = rowspan - 1
                cells.append(text if k == 0 else "")
        out.append(cells)
    return out


def _table_text(table_html: str) -> str:
    rows = table_rows(table_html)
    # cells come unescaped; escape them again so the one unescape at the end is not a second one
    return "\n" + "\n".join("\t".join(html.escape(_inline(c), quote=False) for c in row) for row in rows) + "\n"


def _tables_as_text(text: str) -> str:
    """Each outermost HTML table replaced by its rows as text. A table nested in a cell belongs to
    the table around it (a non-greedy ``<table>.*?</table>`` stopped at the inner end and lost the
    outer cell's text), and a table never closed (an answer cut off inside it) runs to the end of
    the answer (before, its cells were glued together: ``alphabeta``)."""
    out, depth, start, pos = [], 0, 0, 0
    for tag in _TABLE_TAG.finditer(text):
        if not tag.group(1):
            if depth == 0:
                out.append(text[pos:tag.start()])
                start = tag.start()
            depth += 1
        elif depth > 0:
            depth -= 1
            if depth == 0:
                out.append(_table_text(text[start:tag.end()]))
                pos = tag.end()
    if depth > 0:
        out.append(_table_text(text[start:]))
    else:
        out.append(text[pos:])
    return "".join(out)


def _unmark(match: re.Match) -> str:
    """A pair of marks around text: the text. Around marks alone (a form's blank ``________``,
    ``****``) they are what is printed, not emphasis (before: the blank shrank to ``__``)."""
    return match.group(1) if match.group(1).strip("*_~ \t\n") else match.group(0)


def _inline(text: str, patterns: tuple[re.Pattern, ...] = _EMPHASIS) -> str:
    for pattern in patterns:
        previous = None
        while previous != text:  # nested marks (***b***) peel one layer a pass
            previous, text = text, pattern.sub(_unmark, text)
    return text


def _line(line: str) -> str:
    if _PIPE_RULE.match(line) and "-" in line and "|" in line:
        return "\0"  # a pipe table's separator row: dropped below
    row = _PIPE_ROW.match(line)
    if row:
        return "\t".join(_inline(c.strip()) for c in row.group(1).split("|"))
    line = _QUOTE.sub("", line)   # a quote's marks, nested ones too ("> > a"), then what it holds
    heading = _HEADING.match(line)
    if heading:
        line = heading.group(1)
    return _inline(line).rstrip()


def _pipe_tables(lines: list[str]) -> list[str]:
    """A pipe table's rows written without the outer bars (``a | b`` over ``--- | ---``, as GFM
    allows) given them, so each row reads as a row of cells (``_PIPE_ROW``): the header above the
    separator row and the lines with a bar below it, up to the first without one."""
    out = list(lines)
    for k in range(1, len(out)):
        if not (_PIPE_RULE.match(out[k]) and "|" in out[k] and "-" in out[k] and "|" in out[k - 1]):
            continue
        j = k + 1
        while j < len(out) and "|" in out[j] and not _PIPE_RULE.match(out[j]):
            j += 1
        for i in [k - 1, *range(k + 1, j)]:
            if not _PIPE_ROW.match(out[i]):
                row = out[i].strip()
                out[i] = ("" if row.startswith("|") else "| ") + row + ("" if row.endswith("|") else " |")
    return out


def _hold(text: str) -> str:
    return re.sub(_PUNCTUATION, lambda m: chr(_HELD + ord(m.group(0))), text)


def _code(match: re.Match) -> str:
    """An inline code span's text, every punctuation character in it held (``_hold``): literal."""
    code = match.group(2).replace("\n", " ")
    if len(code) > 2 and code[0] == code[-1] == " " and code.strip():
        code = code[1:-1]     # CommonMark: one space each side is padding ("`` `x` ``")
    return _hold(code)


def _hold_escapes(text: str) -> str:
    """Each backslash-escaped character outside LaTeX math set aside (no mark, tag or table
    separator is read in it), to come back as the character alone (``_release``); so is the
    text of an inline code span, its backticks gone."""
    def held(part: str) -> str:
        return _ESCAPE.sub(lambda m: chr(_HELD + ord(m.group(1))), _CODE.sub(_code, part))

    out, pos = [], 0
    for math in _MATH.finditer(text):
        out += [held(text[pos:math.start()]), math.group(0)]
        pos = math.end()
    out.append(held(text[pos:]))
    return "".join(out)


def _is_tag(match: re.Match, closed: set[str]) -> bool:
    """Whether a ``_TAG`` match is markup, not printed text in angle brackets (``_ATTRIBUTES``);
    ``closed``: the names the answer closes somewhere."""
    name, attributes = match.group(1).lower(), match.group(2) or ""
    if name in _STRUCTURE:
        return bool(_ANY_ATTRIBUTES.fullmatch(attributes))
    if not _ATTRIBUTES.fullmatch(attributes):
        return False
    return (name in _HTML_NAMES or name in closed or attributes.strip() not in ("", "/")
            or match.group(0).endswith("/>"))


def _closed(text: str) -> set[str]:
    return {name.lower() for name in _CLOSED.findall(text)}


def _untag(text: str) -> str:
    """Tags gone (their content stays); printed text in angle brackets stays."""
    closed = _closed(text)
    return _TAG.sub(lambda m: "" if _is_tag(m, closed) else m.group(0), text)


def _printed_brackets(table_html: str) -> str:
    """Each ``<`` that begins no tag by ``_is_tag`` escaped, so the HTML parser reads it as text:
    it took "a<b and c>d" in a cell for a tag (the cell read "ad"), and "<b zehn" before a cell's
    end for a tag never closed (its words lost)."""
    closed, out, pos = _closed(table_html), [], 0
    while (at := table_html.find("<", pos)) >= 0:
        tag = _TAG.match(table_html, at)
        if tag and _is_tag(tag, closed):
            out.append(table_html[pos:tag.end()])
            pos = tag.end()
        else:
            out.append(table_html[pos:at] + "&lt;")
            pos = at + 1
    return "".join(out) + table_html[pos:]


def _described(match: re.Match) -> str:
    """An ``<img>``'s content: the picture's printed caption ("Figure 2: the harbour", which the
    model puts there when the page has one) on a line of its own, else (a description) nothing."""
    inner = re.sub(r"^<[^>]*>|</[^>]*>$", "", match.group(0)).strip()
    return "\n" + inner + "\n" if _CAPTION.match(inner) else ""


def _footnote(match: re.Match) -> str:
    label = match.group(1)
    mark = label.translate(_SCRIPTS["sup"]) if label.isdigit() else label
    return mark + (" " if match.group(2) is not None else "")


def _script(match: re.Match) -> str:
    """A superscript or subscript of figures and signs in its Unicode form (``m²``, ``10⁻³``,
    ``H₂O``); any other (``x<sup>th</sup>``) keeps its content as printed, as every tag does."""
    content = match.group(2).strip()
    if content and all(c in "0123456789+-\u2212=()" for c in content):
        return content.translate(_SCRIPTS[match.group(1).lower()])
    return match.group(2)


def _link(match: re.Match) -> str:
    if not re.search(r"[./:#]", match.group(3)):
        return match.group(0)                       # "a[i](j)": no address, so no link
    if match.group(1):
        return ""                                   # an image: its alt text describes it
    return match.group(2) or match.group(3)        # the text, or the address when it has none


def _release(text: str) -> str:
    return re.sub("[\uE021-\uE07E]", lambda m: chr(ord(m.group(0)) - _HELD), text)


def plain_text(answer: str) -> str:
    """A raw answer (Markdown or plain) as plain text, by the rule in the module docstring."""
    if not answer:
        return ""
    text = answer.replace("\r\n", "\n").replace("\r", "\n").replace("\v", "\n").replace("\f", "\n")
    text = _FENCE.sub("", _CONTROL.sub("", text))
    text = _hold_escapes(_COMMENT.sub("", text))
    text = _DESCRIBING.sub(_described, text)
    text = _SCRIPT.sub(_script, text)
    text = _tables_as_text(text)
    text = _PRINTED.sub(lambda m: "\n" + " ".join(m.group(2).split()) + "\n", text)
    text = _AUTOLINK.sub(r"\1", _LINK.sub(_link, _FOOTNOTE.sub(_footnote, text)))
    # a <br> in a pipe table's row is a line break inside its cell (the only one a pipe table
    # has): a space, as in an HTML table's cell, not the end of the row (its cells were torn)
    text = "\n".join(_BR.sub(" ", ln) if _PIPE_ROW.match(ln) else ln for ln in text.split("\n"))
    text = _BR.sub("\n", _BLOCK.sub("\n", text))
    text = _CHECKBOX.sub(lambda m: "\u2611" if re.search(r"\schecked\b", m.group(0), re.I) else "\u2610", text)
    text = _TASK.sub(lambda m: m.group(1) + ("\u2610" if m.group(2) == " " else "\u2611"), text)
    text = _untag(text)
    lines = [_line(ln) for ln in _pipe_tables(text.split("\n"))]
    text = _inline("\n".join(ln for ln in lines if ln != "\0"), _EMPHASIS_ACROSS)
    text = _release(html.unescape(text))
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip("\n")


def markdown_document(document: dict) -> str:
    """The ``md`` output: each page's raw answer as the model gave it (``answer`` in the ``.json``
    when it differs from the plain text, else the text), pages after the first marked by an HTML
    comment (``<!-- page 2 -->``), which Markdown viewers do not show."""
    parts = []
    for n, page in enumerate(document.get("pages") or []):
        # a BOM (a strip's or a page's answer may begin with one) would hide the heading after it
        answer = str(page.get("answer", page.get("text")) or "").replace("\ufeff", "").strip("\n")
        parts.append(answer if n == 0 else f"<!-- page {int(page.get('index', n)) + 1} -->\n\n{answer}")
    return "\n\n".join(parts) + "\n"


__all__ = ["DESCRIBING_TAGS", "PRINTED_TAGS", "markdown_document", "plain_text", "table_rows"]
