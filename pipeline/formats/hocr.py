"""hOCR 1.2: XHTML with ``ocr_page`` > ``ocr_carea`` > ``ocr_par`` > ``ocr_line`` > ``ocrx_word``.

Every element's ``title`` carries ``bbox x0 y0 x1 y1`` in the source's pixels (integers, as hOCR
requires; PDF pages: points of the page's coordinate system); words add ``x_wconf`` (0-100).
``ocr_page`` has ``image`` (the input's path relative to the input tree) and ``ppageno``
(0-based); ``lang`` is a BCP 47 tag (``langtag``). The ``ocr-system`` meta tag names the
software, the engine that really read the pages and the model asked for; ``ocr-capabilities``
which elements the file uses.

Pages without boxes (a text-only result) keep the same elements with no ``bbox`` (the page's
own bbox stays), so a consumer sees the text and knows it has no positions; the page's
``title`` then adds ``x_positions none``.

A pure function: layout in, bytes out.
"""

from __future__ import annotations

from html import escape

from .langtag import bcp47
from .model import Box, FileLayout

CAPABILITIES = "ocr_page ocr_carea ocr_par ocr_line ocrx_word ocrp_wconf"


def _bbox(box: Box | None) -> str:
    if box is None:
        return ""
    return "bbox " + " ".join(str(int(round(v))) for v in box)


def _title(*parts: str) -> str:
    return escape("; ".join(p for p in parts if p), quote=True)


def render_hocr(layout: FileLayout) -> bytes:
    version = layout.tool.get("version") or ""
    engines = "+".join(layout.engines) or "deAPI"
    lang = bcp47(layout.settings.get("language"))
    system = f"pipeline {version} ({engines}, model {layout.settings.get('model')})"
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" '
        '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">',
        f'<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="{escape(lang)}" lang="{escape(lang)}">',
        "<head>",
        f"<title>{escape(layout.source_name)}</title>",
        '<meta http-equiv="Content-Type" content="text/html;charset=utf-8"/>',
        f'<meta name="ocr-system" content="{escape(system)}"/>',
        f'<meta name="ocr-capabilities" content="{CAPABILITIES}"/>',
        f'<meta name="ocr-number-of-pages" content="{len(layout.pages)}"/>',
        "</head>",
        "<body>",
    ]
    image = escape(layout.source_rel or layout.source_name).replace('"', "")
    for page in layout.pages:
        n = page.index + 1
        title = _title(f'image "{image}"', _bbox((0, 0, page.width, page.height)), f"ppageno {page.index}",
                       "" if page.has_boxes else "x_positions none")
        out.append(f'<div class="ocr_page" id="page_{n}" title="{title}">')
        for bi, block in enumerate(page.blocks, 1):
            out.append(f' <div class="ocr_carea" id="block_{n}_{bi}" title="{_title(_bbox(block.box))}">')
            out.append(f'  <p class="ocr_par" id="par_{n}_{bi}" lang="{escape(lang)}" title="{_title(_bbox(block.box))}">')
            for li, line in enumerate(block.lines, 1):
                out.append(f'   <span class="ocr_line" id="line_{n}_{bi}_{li}" title="{_title(_bbox(line.box))}">')
                words = []
                for wi, word in enumerate(line.words, 1):
                    conf = "" if word.confidence is None else f"x_wconf {round(word.confidence * 100)}"
                    words.append(f'<span class="ocrx_word" id="word_{n}_{bi}_{li}_{wi}" '
                                 f'title="{_title(_bbox(word.box), conf)}">{escape(word.text)}</span>')
                out.append("    " + " ".join(words))
                out.append("   </span>")
            out.append("  </p>")
            out.append(" </div>")
        out.append("</div>")
    out += ["</body>", "</html>", ""]
    return "\n".join(out).encode("utf-8")
