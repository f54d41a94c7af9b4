"""The renderers' input: a file's pages with blocks, lines and words in source coordinates.

Why a separate model: the result ``.json`` is the stored record (boxes on the *submitted*
image, what prepare did, the settings); every archival renderer wants the same thing from it,
boxes on the *source* page. ``layout_from_document`` does that once, through
``pipeline.inputs.geometry``, so ALTO, hOCR and PDF are pure functions of a ``FileLayout``.

Where a result has line boxes but no word boxes (a structured answer from a server that only
gives lines), words are estimated by splitting the line box in proportion to character counts
and flagged ``estimated``. A text-only answer whose words were placed on the page's own
geometry (the page's ``placed`` record, ``ocr/placement.py``) gives those words, in the answer's
order, unplaced ones with ``box=None``. Where a page has no boxes at all, its lines carry
``box=None`` and the page says ``has_boxes=False``; each renderer documents what it writes then
(docs/formats.md, "Pages without boxes").
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from pipeline.inputs.geometry import Box, PageGeometry, is_box

# What XML 1.0 cannot carry: C0 controls but tab, newline and carriage return, lone surrogates,
# U+FFFE and U+FFFF. An answer, a PDF's own text layer or a file name holding one (a stray
# control character, a bell in an old file name) made ALTO, hOCR and PAGE-XML not well-formed.
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_safe(text: str, replacement: str = "") -> str:
    """``text`` without the characters XML cannot carry (or with ``replacement`` for each)."""
    return NOT_XML.sub(replacement, text)


@dataclass(frozen=True)
class Word:
    text: str
    box: Box | None
    confidence: float | None
    estimated: bool = False   # box split from the line's box, not reported by the engine

    def __post_init__(self) -> None:   # every renderer writes XML or a PDF text layer from it
        object.__setattr__(self, "text", xml_safe(self.text))


@dataclass(frozen=True)
class Line:
    text: str
    box: Box | None
    confidence: float | None
    words: tuple[Word, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", xml_safe(self.text))


@dataclass(frozen=True)
class Block:
    box: Box | None
    lines: tuple[Line, ...]


@dataclass(frozen=True)
class PageLayout:
    index: int
    width: float              # source page size in ``unit``
    height: float
    unit: str                 # "pixel" | "pt"
    blocks: tuple[Block, ...]
    has_boxes: bool
    engine: str | None = None
    text_angle: float = 0.0   # degrees counter-clockwise the text runs on the source (a page prepare turned)


@dataclass(frozen=True)
class FileLayout:
    """One input file: its name, its pages and how it was processed."""

    source_name: str          # the file name as in the input tree (``scan.tif``)
    source_rel: str
    pages: tuple[PageLayout, ...]
    settings: dict[str, Any] = field(default_factory=dict)
    tool: dict[str, Any] = field(default_factory=dict)
    processed_at: str | None = None

    def __post_init__(self) -> None:   # a character XML cannot carry shows as U+FFFD in the name
        object.__setattr__(self, "source_name", xml_safe(self.source_name, "\ufffd"))
        object.__setattr__(self, "source_rel", xml_safe(self.source_rel, "\ufffd"))

    @property
    def engines(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p.engine for p in self.pages if p.engine))


def items(value: Any) -> list:
    """An answer's list of parts (``blocks``, ``lines``, ``words``), or none when it holds
    something else (a string, a number: the API's JSON is not ours, deapi-api.md §1.4)."""
    return value if isinstance(value, list) else []


def has_positions(result: Any) -> bool:
    """Whether a page's structured result carries at least one line box (see module doc)."""
    if not isinstance(result, dict) or not isinstance(result.get("blocks"), list):
        return False
    return any(isinstance(ln, dict) and is_box(ln.get("box"))
               for b in result["blocks"] if isinstance(b, dict) for ln in items(b.get("lines")))


# Where a structured answer may keep its text, most specific first, and the lists of parts it may
# give instead (deAPI has not published its JSON shape, deapi-api.md §1.4).
_TEXT_KEYS = ("text", "markdown", "md", "content", "ocr_text", "transcription", "result", "output", "data")
_PART_KEYS = {"pages": "\n\n", "blocks": "\n\n", "paragraphs": "\n\n", "regions": "\n\n",
              "lines": "\n", "results": "\n", "items": "\n", "data": "\n", "words": " "}


def _encoded(value: str, depth: int) -> str:
    """A text that is itself a JSON document (``{"result": "{\\"text\\": ..}"}``, an answer encoded
    twice below its top, as ``process`` reads one encoded twice at it): the text that document
    holds; else the text as written (a page may print braces)."""
    try:
        inner = json.loads(value)
    except ValueError:
        return value
    # an object, or a list of objects: a document; a list of figures or words ("[1]", a footnote
    # mark) is text that happens to parse, and stays as printed
    document = isinstance(inner, dict) or (isinstance(inner, list) and bool(inner)
                                           and all(isinstance(v, dict) for v in inner))
    found = answer_text(inner, depth + 1) if document else None
    return value if found is None else found


def holds_nothing(value: Any) -> bool:
    """Whether an answer is only empty containers (``{}``, ``[]``, ``{"pages": []}``): nothing to
    keep. Why: an answer with no text found is kept as it came, lest an unknown shape's text be
    lost; one that holds nothing at all put ``{}`` in the ``.txt`` and as a word in ALTO."""
    if isinstance(value, dict):
        return all(holds_nothing(v) for v in value.values())
    if isinstance(value, list):
        return all(holds_nothing(v) for v in value)
    return value is None or (isinstance(value, str) and not value.strip())


def answer_text(result: Any, _depth: int = 0) -> str | None:
    """The text a structured (``format: json``) answer carries, whatever its shape.

    Why: the hosted model's JSON is unpublished. Our server puts the whole text under ``text``;
    another server may name it ``markdown`` or ``content``, nest it (``{"result": {"text": ..}}``)
    or give only parts (pages, blocks, lines, each with its text), which are joined in order
    (pages and blocks by a blank line, lines by a newline, words by a space); a text key may
    hold a list of parts too (``{"content": [{"type": "text", "text": ..}]}``, the content blocks
    of chat-style APIs), and an empty one (``"text": ""``, or ``null``) does not hide text under
    another key; alone, it says the page has none. A number where a text goes is its figures.
    ``None`` when no text is found anywhere: the caller keeps the raw answer rather than lose it.
    """
    if isinstance(result, str):
        return _encoded(result, _depth) if _depth and result.lstrip()[:1] in ("{", "[") else result
    if isinstance(result, (int, float)) and not isinstance(result, bool) and _depth:
        return str(result)   # a number where a text goes ({"text": 42}): the figures printed
    if _depth > 8:
        return None
    if isinstance(result, list):
        parts = [t for t in (answer_text(item, _depth + 1) for item in result) if t]
        return "\n".join(parts) if parts else None
    if not isinstance(result, dict):
        return None
    empty = False   # a text key said "" (no text): the answer, unless another key holds text
    for key in _TEXT_KEYS:
        if key not in result:
            continue
        value = result[key]
        found = answer_text(value, _depth + 1) if value is not None else ""   # "text": null said no text
        if found and found.strip():
            return found
        empty = empty or found is not None
    for key, separator in _PART_KEYS.items():
        value = result.get(key)
        if isinstance(value, list):
            parts = [t for t in (answer_text(item, _depth + 1) for item in value) if t]
            if parts:
                return separator.join(parts)
    for key, value in result.items():   # parts under a name of its own ({"elements": [..]}), in order
        if key not in _PART_KEYS and _parts_list(value):
            parts = [t for t in (answer_text(item, _depth + 1) for item in value) if t]
            if parts:
                return "\n".join(parts)
    return "" if empty else None


def _parts_list(value: Any) -> bool:
    """A list of objects under a key no shape we know names (``elements``, ``texts``,
    ``segments``): a page's parts, as unstructured's and docling's JSON give them. Only objects:
    a list of strings or figures under an unknown key (``"languages": ["en"]``) is metadata."""
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def union(boxes: list[Box]) -> Box | None:
    if not boxes:
        return None
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def _conf(value: Any) -> float | None:
    try:
        return min(1.0, max(0.0, float(value)))
    except (TypeError, ValueError):
        return None


def _split_line(text: str, box: Box, confidence: float | None) -> tuple[Word, ...]:
    """Words of a line with no word boxes: the line's box cut in proportion to characters."""
    tokens = text.split()
    if not tokens:
        return ()
    x0, y0, x1, y1 = box
    total = sum(len(t) for t in tokens) + (len(tokens) - 1)  # spaces count one character
    per = (x1 - x0) / max(1, total)
    words, pos = [], 0
    for t in tokens:
        a, b = x0 + pos * per, x0 + (pos + len(t)) * per
        words.append(Word(t, (round(a, 2), y0, round(b, 2), y1), confidence, estimated=True))
        pos += len(t) + 1
    return tuple(words)


def _text_words(text: str, words: tuple[Word, ...]) -> tuple[Word, ...]:
    """An engine's words of a line cut as the line's text is (its whitespace), when the words'
    characters are the text's but cut elsewhere: RapidOCR gives "ELECTIO" "N" for the line
    "ELECTION" and "DateM" "me" for "Release DateMme" (a wide gap inside a word). The ``.txt``
    holds the line's text, so ALTO, hOCR and the PDF's layer must hold its words too, else a
    search for "ELECTION" finds nothing in the PDF (``verify`` reported it lost). A word holding
    parts of two of the text's words gives each its share of the box, by characters (flagged
    ``estimated``). Words whose characters are not the text's are kept as the engine gave them."""
    tokens = text.split()
    if [w.text for w in words] == tokens:
        return words
    chars = "".join("".join(w.text.split()) for w in words)
    if chars != "".join(tokens) or any(w.box is None for w in words):
        return words
    spans, pos = [], 0                        # each word's characters in the joined text
    for w in words:
        n = len("".join(w.text.split()))
        spans.append((pos, pos + n))
        pos += n
    out, start = [], 0
    for token in tokens:
        end = start + len(token)
        boxes, confs, cut = [], [], False
        for w, (s, e) in zip(words, spans):
            if e <= start or s >= end or e == s:
                continue
            x0, y0, x1, y1 = w.box
            a, b = max(s, start), min(e, end)
            cut = cut or (a, b) != (s, e)
            boxes.append((x0 + (x1 - x0) * (a - s) / (e - s), y0, x0 + (x1 - x0) * (b - s) / (e - s), y1))
            if w.confidence is not None:
                confs.append(w.confidence)
        box = union(boxes)
        out.append(Word(token, tuple(round(v, 2) for v in box) if box else None, min(confs) if confs else None,
                        estimated=cut))
        start = end
    return tuple(out)


def result_line(ln: Any, to_source: Callable[[Any], Box] = tuple) -> Line | None:
    """A structured result's line as the outputs take it (``to_source`` maps its boxes), or None
    when it gives them nothing (no text or no box). ``check.pdf_lost_words`` reads the words the
    PDF's layer is written with from here, so it judges the layer by what it was given."""
    if not isinstance(ln, dict):
        return None
    text = str(ln.get("text") or "").strip()
    if not text or not is_box(ln.get("box")):
        return None
    lbox = to_source(ln["box"])
    lconf = _conf(ln.get("confidence"))
    words = tuple(Word(str(w.get("text", "")).strip(), to_source(w["box"]), _conf(w.get("confidence")))
                  for w in items(ln.get("words")) if isinstance(w, dict) and str(w.get("text", "")).strip()
                  and is_box(w.get("box")))
    return Line(text, lbox, lconf, _text_words(text, words) if words else _split_line(text, lbox, lconf))


def _placed_blocks(placed: dict[str, Any], geometry: PageGeometry) -> list[Block]:
    """A text-only answer placed on the page's own geometry (``ocr/placement.py``): the answer's
    lines and words in its order; a word that could not be placed keeps ``box=None``."""
    blocks = []
    for b in placed.get("blocks") or []:
        lines = []
        for ln in b.get("lines") or []:
            words = tuple(Word(str(w.get("text", "")), geometry.to_source(w["box"]) if isinstance(w.get("box"), list)
                               else None, _conf(w.get("confidence"))) for w in ln.get("words") or [])
            box = union([w.box for w in words if w.box is not None])
            lines.append(Line(str(ln.get("text") or ""), box, None, words))
        if lines:
            blocks.append(Block(union([ln.box for ln in lines if ln.box]), tuple(lines)))
    return blocks


def _unplaced_line(ln: Any) -> Line | None:
    """A line of a page with boxes whose own box is missing or no box (``is_box``), as its text
    with no position. Why: such a line was dropped from the layout, so its words were in the
    ``.txt`` but in no ALTO, hOCR or PAGE file (an answer mixing boxed and unboxed lines, found by
    the standin2 tour); the renderers write a line without a box as they do a text-only page's."""
    if not isinstance(ln, dict):
        return None
    text = str(ln.get("text") or "").strip()
    return _positionless_line(text, _conf(ln.get("confidence"))) if text else None


def _positionless_line(text: str, confidence: float | None = None) -> Line:
    """A line known by its text alone: no box, its words none either."""
    return Line(text, None, confidence, tuple(Word(w, None, None) for w in text.split()))


def _text_angle(geometry: PageGeometry) -> float:
    """Degrees counter-clockwise the text runs on the source: the page was read straightened
    (``deskew:A``, ``turn:Q``), so its words run at minus that on the page as stored. Placed
    words were found on the straightened upload too, so they run the same way."""
    return -(geometry.skew + geometry.turn) % 360.0


def _page_layout(page_doc: dict[str, Any], geometry: PageGeometry | None) -> PageLayout:
    result = page_doc.get("result")
    index = int(page_doc.get("index", 0))
    blocks: list[Block] = []
    engine = None
    placed = page_doc.get("placed")
    if not has_positions(result) and isinstance(placed, dict) and placed.get("placed") and geometry is not None:
        engine = f"placed:{placed.get('method')}"
        blocks = _placed_blocks(placed, geometry)
        return PageLayout(index, geometry.source_width, geometry.source_height, geometry.unit, tuple(blocks), True, engine,
                          _text_angle(geometry))
    if isinstance(result, dict) and isinstance(result.get("blocks"), list) and geometry is not None:
        engine = result.get("engine")
        for b in result["blocks"]:
            lines = []
            for ln in items(b.get("lines")) if isinstance(b, dict) else []:
                line = result_line(ln, geometry.to_source) or _unplaced_line(ln)
                if line is not None:
                    lines.append(line)
            if lines:
                blocks.append(Block(union([ln.box for ln in lines if ln.box]), tuple(lines)))
    if blocks:
        assert geometry is not None
        return PageLayout(index, geometry.source_width, geometry.source_height, geometry.unit, tuple(blocks), True, engine,
                          _text_angle(geometry))
    # Text only: paragraphs split at blank lines, no positions.
    text = str(page_doc.get("text") or "")
    for para in text.split("\n\n"):
        lines = tuple(_positionless_line(t.strip()) for t in para.split("\n") if t.strip())
        if lines:
            blocks.append(Block(None, lines))
    width = geometry.source_width if geometry else 0.0
    height = geometry.source_height if geometry else 0.0
    return PageLayout(index, width, height, geometry.unit if geometry else "pixel", tuple(blocks), False, engine)


def layout_from_document(document: dict[str, Any],
                         source_sizes: dict[int, tuple[float, float]] | None = None) -> FileLayout:
    """The result ``.json`` document (as ``process`` writes it) -> source-coordinate layout.

    ``source_sizes`` maps page index -> oriented source size read from the source file, when
    the caller has it (see ``PageGeometry.from_prepared``).
    """
    image = document.get("image") or {}
    pages = []
    for p in document.get("pages") or []:
        index = int(p.get("index", 0))
        try:
            geometry = PageGeometry.from_prepared(image, index, (source_sizes or {}).get(index))
        except (ValueError, KeyError, TypeError, ZeroDivisionError):
            geometry = None
        pages.append(_page_layout(p, geometry))
    rel = str((document.get("source") or {}).get("path") or "")
    return FileLayout(source_name=rel.rsplit("/", 1)[-1], source_rel=rel, pages=tuple(pages),
                      settings=dict(document.get("settings") or {}), tool=dict(document.get("tool") or {}),
                      processed_at=document.get("written_at"))
