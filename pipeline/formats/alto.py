"""ALTO 4.4 XML: one file per input, one ``Page`` per page, every word a ``String`` with its box.

What a digitisation spec checks, and where it comes from here:

* ``MeasurementUnit`` ``pixel`` (pixels of the source image as displayed, after EXIF rotation);
  PDF pages, whose coordinate system is points, use ``inch1200`` (1 pt = 1200/72 units), since
  ALTO has no point unit.
* ``sourceImageInformation/fileName``: the input's path relative to the input tree (a file
  taken out of the output tree still says which image it describes).
* ``OCRProcessing``: software name and version, the OCR engine, model, language and the
  other settings that change the result, and when the result was written.
* ``Page`` (``WIDTH``/``HEIGHT``/``PHYSICAL_IMG_NR``) > ``PrintSpace`` > ``TextBlock`` >
  ``TextLine`` > ``String`` (``WC`` = word confidence 0-1) with ``SP`` between words; blocks in
  the engine's reading order.
* Pages without boxes (a text-only result): ``TextBlock``/``TextLine``/``String`` carry no
  position attributes (all optional in the schema), and the page's ``PrintSpace`` covers the
  whole page; ``processingStepSettings`` says ``positions=none`` for those pages.

A pure function: layout in, bytes out.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from .model import Box, FileLayout, PageLayout

NS = "http://www.loc.gov/standards/alto/ns-v4#"
XLINK = "http://www.w3.org/1999/xlink"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
SCHEMA_LOCATION = f"{NS} http://www.loc.gov/alto/v4/alto-4-4.xsd"
INCH1200_PER_PT = 1200 / 72


def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}".rstrip("0").rstrip(".")


class _Units:
    def __init__(self, page: PageLayout) -> None:
        self.factor = INCH1200_PER_PT if page.unit == "pt" else 1.0

    def pos(self, el: ET.Element, box: Box | None) -> None:
        if box is None:
            return
        f = self.factor
        el.set("HPOS", _num(round(box[0] * f, 2)))
        el.set("VPOS", _num(round(box[1] * f, 2)))
        el.set("WIDTH", _num(round((box[2] - box[0]) * f, 2)))
        el.set("HEIGHT", _num(round((box[3] - box[1]) * f, 2)))


def settings_text(layout: FileLayout) -> str:
    """``key=value`` pairs for ``processingStepSettings`` (the settings that change the text)."""
    s = layout.settings
    parts = [f"engine={'+'.join(layout.engines) or 'unknown'}", f"model={s.get('model')}",
             f"language={s.get('language')}", f"format={s.get('format')}"]
    no_pos = [str(p.index + 1) for p in layout.pages if not p.has_boxes]
    if no_pos:
        parts.append(f"positions=none(pages {','.join(no_pos)})")
    return "; ".join(parts)


def render_alto(layout: FileLayout) -> bytes:
    ET.register_namespace("", NS)
    ET.register_namespace("xlink", XLINK)
    ET.register_namespace("xsi", XSI)
    root = ET.Element(_q("alto"), {f"{{{XSI}}}schemaLocation": SCHEMA_LOCATION, "SCHEMAVERSION": "4.4"})
    desc = ET.SubElement(root, _q("Description"))
    unit = "inch1200" if any(p.unit == "pt" for p in layout.pages) else "pixel"
    ET.SubElement(desc, _q("MeasurementUnit")).text = unit
    src = ET.SubElement(desc, _q("sourceImageInformation"))
    ET.SubElement(src, _q("fileName")).text = layout.source_rel or layout.source_name
    proc = ET.SubElement(desc, _q("OCRProcessing"), {"ID": "OCR_0"})
    step = ET.SubElement(proc, _q("ocrProcessingStep"))
    if layout.processed_at:
        ET.SubElement(step, _q("processingDateTime")).text = layout.processed_at
    ET.SubElement(step, _q("processingStepSettings")).text = settings_text(layout)
    soft = ET.SubElement(step, _q("processingSoftware"))
    ET.SubElement(soft, _q("softwareName")).text = str(layout.tool.get("name") or "pipeline")
    ET.SubElement(soft, _q("softwareVersion")).text = str(layout.tool.get("version") or "")
    ET.SubElement(soft, _q("applicationDescription")).text = (
        f"batch OCR through deAPI img2txt; OCR engine {'+'.join(layout.engines) or 'of the API'}, "
        f"model {layout.settings.get('model')}")

    lay = ET.SubElement(root, _q("Layout"))
    for page in layout.pages:
        u = _Units(page)
        n = page.index + 1
        pel = ET.SubElement(lay, _q("Page"), {"ID": f"P{n}", "PHYSICAL_IMG_NR": str(n), "PROCESSING": "OCR_0"})
        pel.set("WIDTH", _num(round(page.width * u.factor, 2)))
        pel.set("HEIGHT", _num(round(page.height * u.factor, 2)))
        space = ET.SubElement(pel, _q("PrintSpace"), {"ID": f"P{n}_PS"})
        u.pos(space, (0.0, 0.0, page.width, page.height))
        for bi, block in enumerate(page.blocks, 1):
            bel = ET.SubElement(space, _q("TextBlock"), {"ID": f"P{n}_B{bi}"})
            u.pos(bel, block.box)
            for li, line in enumerate(block.lines, 1):
                lel = ET.SubElement(bel, _q("TextLine"), {"ID": f"P{n}_B{bi}_L{li}"})
                u.pos(lel, line.box)
                for wi, word in enumerate(line.words, 1):
                    if wi > 1:
                        sp = ET.SubElement(lel, _q("SP"))
                        prev = line.words[wi - 2]
                        if prev.box is not None and word.box is not None and word.box[0] > prev.box[2]:
                            sp.set("WIDTH", _num(round((word.box[0] - prev.box[2]) * u.factor, 2)))
                            sp.set("HPOS", _num(round(prev.box[2] * u.factor, 2)))
                            sp.set("VPOS", _num(round(min(prev.box[1], word.box[1]) * u.factor, 2)))
                    sel = ET.SubElement(lel, _q("String"), {"ID": f"P{n}_B{bi}_L{li}_W{wi}", "CONTENT": word.text})
                    u.pos(sel, word.box)
                    if word.confidence is not None:
                        sel.set("WC", f"{word.confidence:.3f}")
    ET.indent(root, space=" ")
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True) + b"\n"
