"""PAGE-XML 2019 (the format OCR-D and Transkribus read): one ``PcGts`` document per page.

PAGE holds exactly one ``Page`` per document, so an input of several pages (a TIFF, a PDF)
gives one file per page (``writer`` names them). What each file holds:

* ``Metadata``: ``Creator`` names the software, the engine that really read the page and the
  model asked for; ``Created``/``LastChange`` when the result was written.
* ``Page``: ``imageFilename`` is the input's path relative to the input tree (a file taken out
  of the output tree still says which image it describes), ``imageWidth``/``imageHeight`` its
  size in pixels as displayed (after EXIF rotation).
* ``ReadingOrder``: one ``OrderedGroup`` listing the text regions in the engine's reading order.
* ``TextRegion`` > ``TextLine`` > ``Word``, each with ``Coords`` (a rectangle in the source's
  pixels) and ``TextEquiv`` (``conf`` 0-1 where the engine gave one, and ``Unicode``).
* PDF pages have no pixels of their own; their coordinates are points times ``PDF_PX_PER_PT``
  (the page rendered at 300 dpi), said in a ``MetadataItem``.
* A page without boxes (a text-only result) has one ``TextRegion`` covering the page, with the
  page's text in its ``TextEquiv`` and no lines (a ``TextLine`` must have coordinates).

A pure function: layout in, bytes out.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from .model import Box, FileLayout, PageLayout

NS = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
SCHEMA_LOCATION = f"{NS} {NS}/pagecontent.xsd"
PDF_DPI = 300
PDF_PX_PER_PT = PDF_DPI / 72


def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def _points(box: Box, factor: float) -> str:
    x0, y0, x1, y1 = (max(0, int(round(v * factor))) for v in box)
    x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)   # a word one pixel wide is still an area
    return f"{x0},{y0} {x1},{y0} {x1},{y1} {x0},{y1}"


def _text(parent: ET.Element, text: str, conf: float | None = None) -> None:
    equiv = ET.SubElement(parent, _q("TextEquiv"), {} if conf is None else {"conf": f"{conf:.3f}"})
    ET.SubElement(equiv, _q("Unicode")).text = text


def creator(layout: FileLayout, page: PageLayout) -> str:
    """Software, the engine that read this page, and the model asked for."""
    version = layout.tool.get("version") or ""
    return (f"{layout.tool.get('name') or 'pipeline'} {version}".strip()
            + f" (engine {page.engine or 'of the API'}, model {layout.settings.get('model')})")


def render_page(layout: FileLayout, page: PageLayout) -> bytes:
    """The PAGE document of one page of ``layout``."""
    ET.register_namespace("", NS)
    ET.register_namespace("xsi", XSI)
    n = page.index + 1
    root = ET.Element(_q("PcGts"), {f"{{{XSI}}}schemaLocation": SCHEMA_LOCATION, "pcGtsId": f"pc_p{n}"})
    meta = ET.SubElement(root, _q("Metadata"))
    ET.SubElement(meta, _q("Creator")).text = creator(layout, page)
    when = layout.processed_at or "1970-01-01T00:00:00Z"
    ET.SubElement(meta, _q("Created")).text = when
    ET.SubElement(meta, _q("LastChange")).text = when
    factor = PDF_PX_PER_PT if page.unit == "pt" else 1.0
    if page.unit == "pt":
        ET.SubElement(meta, _q("MetadataItem"), {"type": "other", "name": "coordinates",
                                                 "value": f"PDF points at {PDF_DPI} dpi"})
    pel = ET.SubElement(root, _q("Page"), {
        "imageFilename": layout.source_rel or layout.source_name,
        "imageWidth": str(int(round(page.width * factor))), "imageHeight": str(int(round(page.height * factor)))})
    whole = (0.0, 0.0, max(1.0, page.width), max(1.0, page.height))
    regions = [(f"r{n}_{bi}", block) for bi, block in enumerate(page.blocks, 1)]
    if not regions:
        return _done(root)
    order = ET.SubElement(ET.SubElement(pel, _q("ReadingOrder")), _q("OrderedGroup"),
                          {"id": f"ro{n}", "caption": "reading order of the OCR engine"})
    if not page.has_boxes:
        ET.SubElement(order, _q("RegionRefIndexed"), {"index": "0", "regionRef": f"r{n}_1"})
        region = ET.SubElement(pel, _q("TextRegion"), {"id": f"r{n}_1", "type": "paragraph"})
        ET.SubElement(region, _q("Coords"), {"points": _points(whole, factor)})
        _text(region, "\n\n".join("\n".join(ln.text for ln in b.lines) for b in page.blocks))
        return _done(root)
    for i, (rid, _) in enumerate(regions):
        ET.SubElement(order, _q("RegionRefIndexed"), {"index": str(i), "regionRef": rid})
    for rid, block in regions:
        region = ET.SubElement(pel, _q("TextRegion"), {"id": rid, "type": "paragraph"})
        ET.SubElement(region, _q("Coords"), {"points": _points(block.box or whole, factor)})
        for li, line in enumerate(block.lines, 1):
            lid = f"{rid}_l{li}"
            lel = ET.SubElement(region, _q("TextLine"), {"id": lid})
            ET.SubElement(lel, _q("Coords"), {"points": _points(line.box or block.box or whole, factor)})
            for wi, word in enumerate(line.words, 1):
                if word.box is None:
                    continue
                wel = ET.SubElement(lel, _q("Word"), {"id": f"{lid}_w{wi}"})
                ET.SubElement(wel, _q("Coords"), {"points": _points(word.box, factor)})
                _text(wel, word.text, word.confidence)
            _text(lel, line.text, line.confidence)
        _text(region, "\n".join(ln.text for ln in block.lines))
    return _done(root)


def _done(root: ET.Element) -> bytes:
    ET.indent(root, space=" ")
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True) + b"\n"


def render_pages(layout: FileLayout) -> list[bytes]:
    """One PAGE document per page, in page order."""
    return [render_page(layout, page) for page in layout.pages]
