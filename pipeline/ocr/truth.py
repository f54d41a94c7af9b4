"""A stand-in for a perfect text-only model: the text registered for an image's pixels.

Why: word placement for text-only answers (``ocr/align.py``) is judged on pages whose words
and boxes are known. A test (or a benchmark) registers the true text of each page it will
send in a folder (``register``), and the server's ``truth`` engine answers, for an upload,
the text filed under the digest of its decoded pixels (``fast.pixel_digest``): the hosted
model's kind of answer (text, no boxes) with the right words, through the real server. It
is no mock: the image goes the whole way (prepare, upload, decode), and an upload whose
pixels nobody registered fails its job with ``INVALID_INPUT``.

``corrupt`` (a share, 0-1) replaces that share of the letters and digits with others,
deterministically from the digest, so "the model got 2 % of the characters wrong" is a
reproducible answer; word count and lengths stay as they were, so a test knows which words
were answered correctly by comparing word for word.
"""

from __future__ import annotations

import hashlib
import json
import string
from pathlib import Path
from typing import Any

from PIL import Image

from .base import Engine, EngineError, OcrPage
from .fast import pixel_digest

SUFFIX = ".txt"
JSON_SUFFIX = ".json"   # a format=json answer of another shape (``register``)


def register(folder: Path, image: Image.Image, text: str, json_answer: Any = None) -> str:
    """File ``text`` as the answer for ``image`` (as the server will decode it); its digest.
    ``json_answer`` (any JSON value), when given, is the job's answer with ``format=json``
    instead of the server's own shape: a test makes the server answer a JSON shape deAPI might
    (its shape is unpublished) to the real client."""
    folder.mkdir(parents=True, exist_ok=True)
    digest = pixel_digest(image)
    (folder / (digest + SUFFIX)).write_text(text, encoding="utf-8")
    if json_answer is not None:
        (folder / (digest + JSON_SUFFIX)).write_text(json.dumps(json_answer), encoding="utf-8")
    return digest


def corrupt_text(text: str, share: float, seed: str) -> str:
    """``share`` of the letters and digits replaced by another of their kind (deterministic)."""
    if share <= 0:
        return text
    out = []
    for k, ch in enumerate(text):
        if not ch.isalnum():
            out.append(ch)
            continue
        h = hashlib.sha256(f"{seed}:{k}".encode()).digest()
        if int.from_bytes(h[:4], "big") / 2**32 >= share:
            out.append(ch)
            continue
        pool = string.digits if ch.isdigit() else (string.ascii_uppercase if ch.isupper() else string.ascii_lowercase)
        choice = pool[h[4] % len(pool)]
        if choice == ch:
            choice = pool[(h[4] + 1) % len(pool)]
        out.append(choice)
    return "".join(out)


class TruthEngine(Engine):
    name = "truth"
    boxes = False

    def __init__(self, folder: str | Path | None = None, corrupt: float = 0.0) -> None:
        if not folder:
            raise EngineError("the truth engine needs a folder of registered texts (truth_dir)",
                              code="ENGINE_UNAVAILABLE")
        self.folder = Path(folder)
        self.corrupt = float(corrupt)

    def recognize(self, image: Image.Image, language: str | None = None) -> OcrPage:
        digest = pixel_digest(image)
        try:
            # bytes, not read_text: its universal newlines turned a registered "\r\n" into "\n",
            # so no test could send an answer with CRLF line ends
            text = (self.folder / (digest + SUFFIX)).read_bytes().decode("utf-8")
        except OSError:
            raise EngineError(f"no text registered for pixels {digest}", code="INVALID_INPUT") from None
        w, h = image.size
        try:
            answer = json.loads((self.folder / (digest + JSON_SUFFIX)).read_text(encoding="utf-8"))
        except OSError:
            answer = None
        return OcrPage(engine=self.name, width=w, height=h, text_only=corrupt_text(text, self.corrupt, digest),
                       answer_json=answer)
