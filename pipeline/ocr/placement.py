"""One page's answer placed on its own geometry: upload bytes + plain text -> a JSON record.

Why a module of its own: it is what the client's process pool runs (a top-level function,
picklable), and what the ``.json`` stores per page under ``placed``: the answer's blocks
(paragraphs at blank lines), lines and words in the answer's reading order, each word with its
box on the *uploaded* image (the same frame as an engine's boxes, mapped to the source by
``PageGeometry`` like them) or ``null`` when it could not be placed, plus how many words were
placed and by which method.
"""

from __future__ import annotations

import time
from typing import Any

from PIL import Image

from .align import PlacedWord, Placement, place_text
from .inkgeom import GeoLine, ink_lines, tesseract_lines
from .pool import decode_image

METHODS = ("read", "mix", "ink", "tesseract")


def geometry(image: Image.Image, method: str = "ink") -> list[GeoLine]:
    if method == "tesseract":
        return tesseract_lines(image)
    return ink_lines(image)


def place(image: Image.Image, text: str, method: str = "read", language: str | None = "en") -> tuple[Placement, str]:
    """The answer placed by ``method``: ``read`` (the default, ``read_and_match``) matches it
    by text to a cheap reading of the page; the others by widths alone: ``mix`` tries both
    geometries and keeps the placement
    the alignment itself trusts more (the sum of its word confidences): Tesseract's layout
    wins on real scans with rules, shading and tables, the ink analysis on clean or
    degraded plain text where Tesseract drops lines."""
    if method == "read":
        return read_and_match(image, text, language), "read"
    if method != "mix":
        return place_text(text, geometry(image, method)), method
    best: tuple[float, Placement, str] | None = None
    for name in ("tesseract", "ink"):
        placement = place_text(text, geometry(image, name))
        score = sum(w.confidence or 0.0 for ln in placement.lines for w in ln)
        if best is None or score > best[0]:
            best = (score, placement, name)
    assert best is not None
    return best[1], best[2]


READ_AGAIN_BELOW = 0.95   # a page with fewer of its words placed is read again


def read_and_match(image: Image.Image, text: str, language: str | None = "en") -> Placement:
    """The answer placed by its text on a cheap recognition pass (``readwords``, ``textmatch``).
    A page whose words are not nearly all placed is read again, and the rest placed on the new
    words (never on a box already given): first without its ruling lines, if it has any (a
    ruled table Tesseract's layout took for a picture), then, if still short, in Tesseract's
    sparse-text mode (chart labels, scattered cells)."""
    from .readwords import tesseract_words, without_rules
    from .textmatch import place_by_text
    read = tesseract_words(image, language)
    placement = place_by_text(text, read)
    lines = 1 + max((r.line for r in read), default=0)
    if placement.placed < READ_AGAIN_BELOW * placement.words:
        bare = without_rules(image)
        if bare is not None:
            read = tesseract_words(bare, language, first_line=lines)
            lines = 1 + max((r.line for r in read), default=lines)
            placement = place_by_text(text, read, before=placement)
    if placement.placed < READ_AGAIN_BELOW * placement.words:
        placement = place_by_text(text, tesseract_words(image, language, sparse=True, first_line=lines), before=placement)
    return placement


def _line(words: list[PlacedWord]) -> dict[str, Any]:
    boxes = [w.box for w in words if w.box is not None]
    box = [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
           max(b[3] for b in boxes)] if boxes else None
    return {"text": " ".join(w.text for w in words), "box": box,
            "words": [{"text": w.text, "box": list(w.box) if w.box else None, "confidence": w.confidence}
                      for w in words]}


def _split_by_page_line(words: tuple[PlacedWord, ...]) -> list[list[PlacedWord]]:
    """An answer line laid over several page lines (a reflowed paragraph) becomes one line each;
    an unplaced word stays with the words before it."""
    out: list[list[PlacedWord]] = []
    current = -2
    for w in words:
        if w.box is not None and w.line != current and out and any(x.box is not None for x in out[-1]):
            out.append([])
        if not out:
            out.append([])
        out[-1].append(w)
        if w.box is not None:
            current = w.line
    return out


def place_on_image(image: Image.Image, text: str, method: str = "read", language: str | None = "en") -> dict[str, Any]:
    started = time.process_time()
    placement, used = place(image, text, method, language)
    blocks: list[dict[str, Any]] = [{"lines": []}]
    answer_lines = iter(placement.lines)
    for raw in text.splitlines():
        if not raw.split():
            if blocks[-1]["lines"]:
                blocks.append({"lines": []})
            continue
        for part in _split_by_page_line(next(answer_lines)):
            blocks[-1]["lines"].append(_line(part))
    blocks = [b for b in blocks if b["lines"]]
    label = "read+text-match" if used == "read" else f"{used}+width-alignment"
    return {"method": label, "words": placement.words, "placed": placement.placed,
            "cpu_s": round(time.process_time() - started, 3), "blocks": blocks}


def place_upload(data: bytes, text: str, method: str = "read", language: str | None = "en") -> dict[str, Any]:
    """The process pool's task: decode the upload as the server does, place ``text`` on it."""
    return place_on_image(decode_image(data), text, method, language)
