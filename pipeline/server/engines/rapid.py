"""RapidOCR 3 on ONNX Runtime: the default real engine, with our own reading order.

Only the models bundled in the ``rapidocr`` wheel are used (PP-OCRv6 small det/rec and the
angle classifier): any other ``lang_type``/``model_type``/``model_root_dir`` would download at
run time and fail offline. One instance per worker process (it is not thread-safe).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .base import Engine, OcrBlock, OcrLine, OcrPage
from .layout import reading_order


class RapidOcrEngine(Engine):
    name = "rapidocr"

    def __init__(self) -> None:
        from rapidocr import RapidOCR

        self._ocr = RapidOCR(params={"Global.log_level": "warning"})

    def recognize(self, image: Image.Image, language: str | None = None) -> OcrPage:
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        result = self._ocr(np.asarray(rgb)[:, :, ::-1])  # RapidOCR wants BGR like OpenCV
        texts = result.txts or ()
        polys = result.boxes if result.boxes is not None else []
        scores = result.scores or ()
        lines = []
        for text, poly, score in zip(texts, polys, scores):
            xs, ys = [p[0] for p in poly], [p[1] for p in poly]
            lines.append(OcrLine(text=str(text), box=(int(min(xs)), int(min(ys)), int(max(xs)), int(max(ys))),
                                 confidence=float(score)))
        blocks = tuple(OcrBlock(lines=tuple(lines[i] for i in block))
                       for block in reading_order([ln.box for ln in lines]))
        return OcrPage(engine=self.name, width=image.width, height=image.height, blocks=blocks)
