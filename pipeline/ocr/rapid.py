"""RapidOCR 3 on ONNX Runtime: the default real engine, with our own reading order.

Only the models bundled in the ``rapidocr`` wheel are used (PP-OCRv6 small det/rec; the angle
classifier is off, see ``DEFAULT_SETTINGS``): any other ``lang_type``/``model_type``/
``model_root_dir`` would download at run time and fail offline, so none of them is ever set
here. ``max_side_len`` stays at its default (2000 px): raising it costs 4-5x time and memory
without gaining accuracy, lowering it to 1600 costs accuracy (``bench/ocr_speed.py``).

RapidOCR returns lines row by row across the whole page (columns interleaved); ``layout``
rebuilds columns and blocks from the line boxes. One instance per worker process: a RapidOCR
instance is not thread-safe (models load lazily, ``__call__`` mutates shared state).
"""

from __future__ import annotations

import logging
import os

import numpy as np
from PIL import Image

from .base import Engine, EngineError, OcrBlock, OcrLine, OcrPage, OcrWord
from .layout import reading_order
from .words import tighten

#: ONNX Runtime threads per engine; unset means "all cores". The pool sets it to
#: ``cores // workers`` when it runs several RapidOCR workers side by side (the default, two:
#: on 2 idle cores 8 % more pages than one worker on two threads, more under other load;
#: docs/engines.md "Speed").
THREADS_ENV = "PIPELINE_OCR_THREADS"


#: RapidOCR parameters the embedded engine sets on top of RapidOCR's own defaults, measured side
#: by side on scribe pages by ``bench/ocr_speed.py`` (figures in docs/engines.md "Speed"):
#: * no angle classifier: pages arrive upright (EXIF applied) and the classifier turned some
#:   upright lines upside down (CER 18.5 -> 17.2 % without it), for ~2 % of the time.
#: * the detector never enlarges an image (``Det.limit_type: max`` at the 2000 px the page is
#:   already fitted to), where RapidOCR's default raises the shorter side to 736 px: a strip of a
#:   page cut for the hosted model's height limit (2000 x 564 px) went to the detector at 1.3x and
#:   half its lines were not found (scribe form_01 read in strips: 42.2 % CER against 20.9 % whole;
#:   24.2 % now, the whole page unchanged); small pages read as well (``bench/strip_cer.py``,
#:   docs/engines.md "Speed").
#: Threads: see ``THREADS_ENV`` (two workers of one thread each on 2 cores).
#: Not taken: ONNX Runtime's CPU memory arena (~13 % less CPU a page, but a worker's peak RSS
#: 1.1 -> 2.0 GB), larger recognition batches (slower: more padding), ``max_side_len`` 1600
#: (CER +0.5), a detector input capped at 1280 px (CER 18.5 -> 26.4 %).
DEFAULT_SETTINGS: dict = {
    "Global.log_level": "warning",
    "Global.use_cls": False,
    "Det.limit_type": "max",
    "Det.limit_side_len": 2000,
}


def _params(overrides: dict | None = None) -> dict:
    """``DEFAULT_SETTINGS``, the thread count the pool asked for, then ``overrides`` (benchmarks)."""
    params: dict = dict(DEFAULT_SETTINGS)
    threads = os.environ.get(THREADS_ENV, "").strip()
    if threads.isdigit() and int(threads) > 0:
        params["EngineConfig.onnxruntime.intra_op_num_threads"] = int(threads)
        params["EngineConfig.onnxruntime.inter_op_num_threads"] = 1
    params.update(overrides or {})
    return params


def polygon_to_box(poly) -> tuple[int, int, int, int]:
    """Axis-aligned bounds (x0, y0, x1, y1) of a 4-point polygon, clamped at 0."""
    xs = [float(p[0]) for p in poly]
    ys = [float(p[1]) for p in poly]
    return (max(0, int(min(xs))), max(0, int(min(ys))), int(round(max(xs))), int(round(max(ys))))


def order_lines(lines: list[OcrLine]) -> tuple[OcrBlock, ...]:
    """Group row-ordered lines into blocks in reading order (see ``layout``)."""
    return tuple(OcrBlock(lines=tuple(lines[i] for i in block))
                 for block in reading_order([ln.box for ln in lines], [ln.text for ln in lines]))


def line_words(entries, gray) -> tuple[OcrWord, ...]:
    """RapidOCR's ``word_results`` for one line -> words with boxes tightened to the ink.

    Each entry is ``(text, score, polygon)``; with ``return_word_box`` RapidOCR splits Latin
    lines at spaces (CJK lines per character), and the polygon spans the line's full height.
    """
    words = []
    for entry in entries or ():
        try:
            text, score, poly = entry
        except (TypeError, ValueError):
            continue
        text = str(text).strip()
        if not text:
            continue
        box = polygon_to_box(poly)
        if gray is not None:
            box = tighten(gray, box)
        words.append(OcrWord(text=text, box=box, confidence=min(1.0, max(0.0, float(score)))))
    return tuple(words)


def _not_an_empty_page(record: logging.LogRecord) -> bool:
    """RapidOCR logs "The text detection result is empty" (and its classifier's and recogniser's
    like it) as a warning, in colour, on stderr, for every page or strip without text: under cron a
    line naming no file for each blank page, photo and margin strip of a run. That page's empty
    text is in its outputs and ``.json``; RapidOCR's other warnings (e.g. about its ONNX
    providers) still print."""
    from rapidocr.main import RapidOCRError

    return not isinstance(record.msg, RapidOCRError)


class RapidOcrEngine(Engine):
    name = "rapidocr"

    def __init__(self, overrides: dict | None = None) -> None:
        from rapidocr import RapidOCR

        #: the RapidOCR parameters this engine was built with (reported, and checked by the tests)
        self.settings = _params(overrides)
        self._ocr = RapidOCR(params=dict(self.settings))
        rapid_log = logging.getLogger("RapidOCR")
        if _not_an_empty_page not in rapid_log.filters:
            rapid_log.addFilter(_not_an_empty_page)
        self.last_elapse: tuple = ()  # (detection, classifier, recognition) seconds of the last page

    def read_lines(self, image: Image.Image) -> list[OcrLine]:
        """RapidOCR's lines in its own (row) order, boxes made axis-aligned."""
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        bgr = np.ascontiguousarray(np.asarray(rgb)[:, :, ::-1])  # RapidOCR expects OpenCV's BGR
        try:
            result = self._ocr(bgr, return_word_box=True)
        except Exception as exc:  # an engine failure is this page's error, not the worker's
            raise EngineError(f"rapidocr failed on a {image.width}x{image.height} image: {exc}") from exc
        self.last_elapse = tuple(getattr(result, "elapse_list", None) or ())
        texts = result.txts or ()
        polys = result.boxes if result.boxes is not None else ()
        scores = result.scores or ()
        word_results = getattr(result, "word_results", None) or ()
        gray = np.asarray(rgb.convert("L")) if word_results else None
        lines = []
        for i, (text, poly, score) in enumerate(zip(texts, polys, scores)):
            text = str(text).strip()
            if text:
                words = line_words(word_results[i], gray) if i < len(word_results) else ()
                lines.append(OcrLine(text=text, box=polygon_to_box(poly),
                                     confidence=min(1.0, max(0.0, float(score))), words=words))
        return lines

    def recognize(self, image: Image.Image, language: str | None = None) -> OcrPage:
        # ``language`` is not used: the bundled PP-OCRv6 model reads ~45 Latin-script languages,
        # en, zh and ja at once, and any other model would need a download.
        lines = self.read_lines(image)
        return OcrPage(engine=self.name, width=image.width, height=image.height, blocks=order_lines(lines))
