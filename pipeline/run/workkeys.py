"""What makes two runs' work the same: the settings fingerprint, the work key (content hash +
fingerprint), and the content hash itself.

A file is done when its work key's results are; the key is computed from the config and the
bytes alone, so deciding that a file is already done needs no API call (``process.decide``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

from pipeline.config import Config
from pipeline.inputs.pages import is_pdf


def settings_fingerprint(config: Config) -> str:
    """Every setting that changes the result; part of the work key.

    It is computed from the config alone (the model's pixel limits come with the model name),
    so deciding that a file is already done needs no API call at all.
    """
    api, pre = config.api, config.precheck
    parts = {
        "model": api.model, "language": api.language, "format": api.format,
        "precheck": [pre.max_upload_bytes, pre.max_source_pixels, pre.jpeg_quality],
        "engine": api.embedded.engine if config.embedded else None,
    }
    if [pre.rotate_pages, pre.deskew] != ["auto", "auto"]:
        # Only a setting away from the default enters the key: the default keeps the work keys of
        # the versions before straightening, so an upgrade never pays for a finished archive again
        # (upright pages are sent byte for byte as before; docs/configuration.md).
        parts["straighten"] = [pre.rotate_pages, pre.deskew]
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def pdf_settings_fingerprint(config: Config) -> str:
    """The fingerprint of PDF files: the image settings plus the PDF ones (changing ``pdf.dpi``
    redoes the PDFs, not every image)."""
    pdf = config.pdf
    parts = [settings_fingerprint(config), pdf.dpi, pdf.text_layer, pdf.min_text_chars, pdf.trust_invisible_text]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def work_key(content_sha256: str, fingerprint: str) -> str:
    return f"{content_sha256[:32]}-{fingerprint}"


def fingerprint_of(key: str) -> str:
    """The settings fingerprint inside a work key (recorded in the ``.json`` for adoption)."""
    return key.rsplit("-", 1)[1]


class HashAbandoned(Exception):
    """The run was asked to stop while this file was being hashed."""


def hash_file(path: Path, stop: Callable[[], bool] = lambda: False) -> str:
    return hash_and_sniff(path, stop)[0]


def hash_and_sniff(path: Path, stop: Callable[[], bool] = lambda: False) -> tuple[str, bool]:
    """The content hash, and whether the content is a PDF (seen in the first chunk, for free).
    ``stop`` is checked between 1 MiB chunks, so that a stop never waits for a multi-gigabyte
    file to be read to its end."""
    h = hashlib.sha256()
    pdf = False
    with open(path, "rb") as fh:
        for n, chunk in enumerate(iter(lambda: fh.read(1 << 20), b"")):
            if stop():
                raise HashAbandoned(str(path))
            if n == 0:
                pdf = is_pdf(chunk)
            h.update(chunk)
    return h.hexdigest(), pdf
