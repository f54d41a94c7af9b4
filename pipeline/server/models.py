"""The model catalogue the server offers, and its Laravel-style pagination (deapi-api.md §3).

Three OCR models share the documented pixel limits (the third, ``Nanonets_Ocr_S_Hosted``,
answers like the hosted model: ``hosted.py``); one text-to-image model exists so that
clients meet a model that does *not* support ``img2txt`` (and the 422 it earns).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

_OCR_LIMITS = {"min_width": 128, "max_width": 4096, "min_height": 127, "max_height": 4096}

MODELS: list[dict[str, Any]] = [
    {"name": "Nanonets OCR S F16", "slug": "Nanonets_Ocr_S_F16", "inference_types": ["img2txt"],
     "info": {"limits": dict(_OCR_LIMITS)}, "loras": None, "languages": None},
    {"name": "LightOnOCR 3 4B Q8", "slug": "LightOnOcr_3_4B_Q8", "inference_types": ["img2txt"],
     "info": {"limits": dict(_OCR_LIMITS)}, "loras": None, "languages": None},
    # Answers like the hosted Nanonets model (Markdown, no boxes, 5-20 s jobs): server/hosted.py.
    {"name": "Nanonets OCR S (hosted-like)", "slug": "Nanonets_Ocr_S_Hosted", "inference_types": ["img2txt"],
     "info": {"limits": dict(_OCR_LIMITS)}, "loras": None, "languages": None},
    {"name": "Flux 1 Schnell", "slug": "Flux1schnell", "inference_types": ["txt2img"],
     "info": {"limits": {"min_width": 256, "max_width": 2048, "min_height": 256, "max_height": 2048}},
     "loras": None, "languages": None},
]

# How validation messages name an inference type ("does not support Image To Text.").
TYPE_TITLES = {"img2txt": "Image To Text", "txt2img": "Text To Image"}

MAX_PER_PAGE = 100


def find_model(slug: str) -> dict[str, Any] | None:
    return next((m for m in MODELS if m["slug"] == slug), None)


def pixel_limits(model: dict[str, Any]) -> dict[str, int] | None:
    info = model.get("info")
    return info.get("limits") if isinstance(info, dict) else None


def filter_models(wanted: str | None, engine: str | None = None) -> list[dict[str, Any]]:
    """``filter[inference_types]=a,b``: models supporting any of the listed types.

    With ``engine`` given, each OCR model lists the languages that engine reads as installed
    (``[{"name": "German", "slug": "de"}, …]``, deAPI's ``languages`` shape less ``voices``), so a
    client can see what ``language`` it may send; deAPI's own OCR models list none.
    """
    kinds = {k.strip() for k in (wanted or "").split(",") if k.strip()}
    models = [m for m in MODELS if not kinds or kinds & set(m["inference_types"])]
    if engine not in ("rapidocr", "tesseract"):  # the test engine reads no language
        return list(models)
    from pipeline.ocr.languages import language_list

    langs = language_list(engine)
    return [{**m, "languages": [dict(x) for x in langs]} if "img2txt" in m["inference_types"] else m
            for m in models]


def paginate(items: list[dict[str, Any]], page: int, per_page: int, path_url: str,
             extra_query: dict[str, str]) -> dict[str, Any]:
    """The Laravel paginator envelope: ``data``, ``links`` and ``meta``."""
    last = max(1, -(-len(items) // per_page))
    chunk = items[(page - 1) * per_page: page * per_page]

    def link(p: int | None) -> str | None:
        return None if p is None else f"{path_url}?{urlencode({**extra_query, 'page': p, 'per_page': per_page})}"

    first_index = (page - 1) * per_page + 1
    return {
        "data": chunk,
        "links": {"first": link(1), "last": link(last), "prev": link(page - 1) if page > 1 else None,
                  "next": link(page + 1) if page < last else None},
        "meta": {"current_page": page, "from": first_index if chunk else None, "last_page": last,
                 "path": path_url, "per_page": per_page,
                 "to": first_index + len(chunk) - 1 if chunk else None, "total": len(items)},
    }
