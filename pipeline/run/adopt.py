"""Adopting results already on disk when the state store has no record of them.

Why: the state store is the memory of what was paid for, but it can be lost while the outputs
survive (a new machine, a deleted ``.pipeline/``, an output tree copied elsewhere). Every
result ``.json`` records the content hash of its source and the fingerprint of every setting
that changes a result, so a file whose ``.json`` matches both is done: it is taken over with
no API call, instead of being paid for a second time.

Adoption is strict, because a wrong adoption is silent data loss: the ``.json`` must parse and
hold a complete record (every page's text, the joined text equal to the pages'), record the
same content hash and settings fingerprint, and a ``.txt`` beside it must hold the same text.
Anything else is reported with its reason (``Refusal``) and the file is processed as new; its
outputs are then replaced atomically. ``.json`` files written before the fingerprint was
recorded cannot prove their settings and are refused too ("made by an older version").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.formats import SUFFIXES
from pipeline.formats.writer import ordered
from pipeline.formats.output import PAGE_SEPARATOR, output_path


@dataclass(frozen=True)
class Adoption:
    """Outputs on disk that are this file's results: ``present`` lists the configured outputs
    found (paths relative to the output root), ``missing`` the configured formats to render
    from the ``.json`` (free)."""

    document: dict[str, Any]
    present: list[str]
    missing: list[str]
    pages: int


@dataclass(frozen=True)
class Refusal:
    """Outputs on disk that cannot be taken over; the file is processed (and paid) again."""

    reason: str


def examine(output_root: Path, rel: str, sha256: str, fingerprint: str,
            outputs: list[str] | tuple[str, ...]) -> Adoption | Refusal | None:
    """What the output tree holds for ``rel``: None when it has no ``.json`` for it at all."""
    js = output_path(output_root, rel, SUFFIXES["json"])
    try:
        raw = js.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return Refusal(f"damaged: cannot read {js.name}: {exc.strerror or exc}")
    document = _parse(raw)
    if isinstance(document, Refusal):
        return document
    recorded_sha = (document.get("source") or {}).get("sha256")
    if recorded_sha != sha256:
        return Refusal(f"foreign: {js.name} records another content (sha256 {str(recorded_sha)[:12]}…, "
                       f"the file is {sha256[:12]}…)")
    recorded_fp = (document.get("settings") or {}).get("fingerprint")
    if recorded_fp is None:
        return Refusal(f"{js.name} was made by an older version that did not record its settings")
    if recorded_fp != fingerprint:
        return Refusal(f"{js.name} was made with other settings (fingerprint {recorded_fp}, now {fingerprint})")
    present, missing = [], []
    for name in ordered(outputs):
        path = output_path(output_root, rel, SUFFIXES[name])
        if not path.exists():
            missing.append(name)
            continue
        if name == "txt" and not _same_text(path, document["text"]):
            return Refusal(f"damaged: {path.name} does not hold the text its .json records")
        present.append(path.relative_to(output_root).as_posix())
    return Adoption(document, present, missing, len(document["pages"]))


def sound_record(output_root: Path, rel: str) -> dict[str, Any] | None:
    """The ``.json`` of ``rel`` when it is a complete record (``verify`` rewrites a lost or
    altered ``.txt`` from it, free), else None."""
    try:
        document = _parse(output_path(output_root, rel, SUFFIXES["json"]).read_bytes())
    except OSError:
        return None
    return None if isinstance(document, Refusal) else document


def _parse(raw: bytes) -> dict[str, Any] | Refusal:
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return Refusal(f"damaged: the .json does not parse ({exc.__class__.__name__})")
    if not isinstance(document, dict):
        return Refusal("damaged: the .json is not a result record")
    pages, text = document.get("pages"), document.get("text")
    if not isinstance(pages, list) or not pages or not isinstance(text, str):
        return Refusal("damaged: the .json has no pages or no text")
    for n, page in enumerate(pages):
        if not isinstance(page, dict) or page.get("index") != n or not isinstance(page.get("text"), str):
            return Refusal(f"damaged: page {n + 1} of the .json is incomplete")
    if PAGE_SEPARATOR.join(p["text"] for p in pages) != text:
        return Refusal("damaged: the .json's text is not the text of its pages")
    return document


def _same_text(path: Path, text: str) -> bool:
    try:
        return path.read_bytes() == text.encode("utf-8")
    except OSError:
        return False
