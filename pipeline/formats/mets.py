"""METS 1.12 (what Goobi, Kitodo and the DFG-Viewer take): one document per input file that
points at its source image and at each of its outputs, page by page.

* ``metsHdr``: when, and the processing agent: the software (name and version) as ``CREATOR``,
  with a note naming the engine that really read the pages, the model and language asked for.
* ``fileSec``: one ``fileGrp`` per kind of file, with the ``USE`` names the DFG-Viewer and
  Kitodo look for (``USE_NAMES``; docs/formats.md lists them); every ``file`` has its
  ``MIMETYPE``, ``SIZE`` and a SHA-256 ``CHECKSUM``, and an ``FLocat`` with a relative URL from
  the METS file (the outputs are its siblings; the source image is reached through the input
  tree, as the two trees lie on disk).
* ``structMap TYPE="PHYSICAL"``: a ``physSequence`` with one ``page`` div per page in order
  (``ORDER`` 1..n); each page points at its image, at its ALTO ``Page`` (an ``area`` by
  ``IDREF``, since ALTO holds every page of a file) and at its PAGE-XML file; the whole-object
  files (PDF, text, hOCR) hang on the sequence.

A pure function: the layout and the files' facts in, bytes out (``writer`` gathers the facts).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from .model import FileLayout

NS = "http://www.loc.gov/METS/"
XLINK = "http://www.w3.org/1999/xlink"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
SCHEMA_LOCATION = f"{NS} http://www.loc.gov/standards/mets/mets.xsd"

#: format name -> fileGrp USE: DEFAULT (the page image the DFG-Viewer shows), FULLTEXT (ALTO,
#: DFG-Viewer and Kitodo full text), DOWNLOAD (the PDF the DFG-Viewer offers), and our own
#: names for the others (no viewer standard exists for them).
USE_NAMES = {"image": "DEFAULT", "alto": "FULLTEXT", "pdf": "DOWNLOAD", "txt": "TEXT", "hocr": "HOCR",
             "page": "PAGE"}
MIMETYPES = {"alto": "text/xml", "pdf": "application/pdf", "txt": "text/plain",
             "hocr": "application/xhtml+xml", "page": "application/vnd.prima.page+xml"}
POINTS_AT = ("alto", "pdf", "txt", "hocr", "page")   # the outputs a METS records (with checksums)


@dataclass(frozen=True)
class MetsFile:
    kind: str                 # "image" or a format name
    href: str                 # relative URL from the METS file
    mimetype: str
    sha256: str | None
    size: int | None
    page: int | None = None   # a per-page file (PAGE-XML): its 0-based page index


def _q(tag: str, ns: str = NS) -> str:
    return f"{{{ns}}}{tag}"


def agent_note(layout: FileLayout) -> str:
    s = layout.settings
    return (f"OCR engine {'+'.join(layout.engines) or 'of the API'}; model {s.get('model')}; "
            f"language {s.get('language')}; batch OCR through the deAPI img2txt API")


def url_path(path: str) -> str:
    """A relative path as an ``href`` holds it: ``%`` and the control characters (which neither
    a URL nor XML may carry: a bell in an old file name made the METS not well-formed)
    percent-encoded, the rest as it is; ``check_mets`` reads it back with ``unquote``."""
    return re.sub(r"[\x00-\x1f\x7f%]", lambda m: f"%{ord(m.group()):02X}", path)


def render_mets(layout: FileLayout, files: list[MetsFile]) -> bytes:
    """The METS of one input file."""
    return render_mets_parts(layout.source_rel or layout.source_name, layout.source_name, [(layout, files)])


def render_mets_parts(objid: str, label: str, parts: list[tuple[FileLayout, list[MetsFile]]]) -> bytes:
    """One METS for ``parts`` (an input file each, in order): a folder's files as one object
    when there are several, their pages one physical sequence. File IDs carry the part's number
    (``F0002_FILE_FULLTEXT``) when there is more than one part."""
    ET.register_namespace("mets", NS)
    ET.register_namespace("xlink", XLINK)
    ET.register_namespace("xsi", XSI)
    first = parts[0][0]
    root = ET.Element(_q("mets"), {f"{{{XSI}}}schemaLocation": SCHEMA_LOCATION, "OBJID": objid, "LABEL": label})
    created = max((layout.processed_at or "" for layout, _ in parts), default="") or "1970-01-01T00:00:00Z"
    hdr = ET.SubElement(root, _q("metsHdr"), {"CREATEDATE": created})
    agent = ET.SubElement(hdr, _q("agent"), {"ROLE": "CREATOR", "TYPE": "OTHER", "OTHERTYPE": "SOFTWARE"})
    ET.SubElement(agent, _q("name")).text = (
        f"{first.tool.get('name') or 'pipeline'} {first.tool.get('version') or ''}".strip())
    ET.SubElement(agent, _q("note")).text = "; ".join(dict.fromkeys(agent_note(layout) for layout, _ in parts))

    sec = ET.SubElement(root, _q("fileSec"))
    ids: dict[tuple[int, str, int | None], str] = {}
    for kind in USE_NAMES:
        grp = None
        for k, (_, files) in enumerate(parts):
            prefix = f"F{k + 1:04d}_" if len(parts) > 1 else ""
            for f in (f for f in files if f.kind == kind):
                if grp is None:
                    grp = ET.SubElement(sec, _q("fileGrp"), {"USE": USE_NAMES[kind]})
                fid = f"{prefix}FILE_{USE_NAMES[kind]}" + ("" if f.page is None else f"_{f.page + 1:04d}")
                ids[(k, kind, f.page)] = fid
                attrs = {"ID": fid, "MIMETYPE": f.mimetype}
                if f.size is not None:
                    attrs["SIZE"] = str(f.size)
                if f.sha256:
                    attrs.update(CHECKSUM=f.sha256, CHECKSUMTYPE="SHA-256")
                el = ET.SubElement(grp, _q("file"), attrs)
                ET.SubElement(el, _q("FLocat"), {"LOCTYPE": "URL", _q("href", XLINK): url_path(f.href)})

    smap = ET.SubElement(root, _q("structMap"), {"TYPE": "PHYSICAL"})
    seq = ET.SubElement(smap, _q("div"), {"ID": "PHYS_0000", "TYPE": "physSequence", "LABEL": label})
    for k in range(len(parts)):
        for kind in ("pdf", "txt", "hocr"):
            if (k, kind, None) in ids:
                ET.SubElement(seq, _q("fptr"), {"FILEID": ids[(k, kind, None)]})
    order = 0
    for k, (layout, _) in enumerate(parts):
        for page in layout.pages:
            order += 1
            n = page.index + 1
            div = ET.SubElement(seq, _q("div"), {"ID": f"PHYS_{order:04d}", "TYPE": "page", "ORDER": str(order),
                                                 "ORDERLABEL": str(n) if len(parts) == 1 else f"{layout.source_name} {n}"})
            if (k, "image", None) in ids:
                ET.SubElement(div, _q("fptr"), {"FILEID": ids[(k, "image", None)]})
            if (k, "alto", None) in ids:
                fptr = ET.SubElement(div, _q("fptr"))
                ET.SubElement(fptr, _q("area"), {"FILEID": ids[(k, "alto", None)], "BETYPE": "IDREF", "BEGIN": f"P{n}"})
            if (k, "page", page.index) in ids:
                ET.SubElement(div, _q("fptr"), {"FILEID": ids[(k, "page", page.index)]})
    ET.indent(root, space=" ")
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True) + b"\n"
