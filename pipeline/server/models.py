"""The model catalogue the server offers (shapes from deapi-api.md §3)."""

from __future__ import annotations

from typing import Any

_OCR_LIMITS = {"min_width": 128, "max_width": 4096, "min_height": 127, "max_height": 4096}

MODELS: list[dict[str, Any]] = [
    {"name": "Nanonets OCR S F16", "slug": "Nanonets_Ocr_S_F16", "inference_types": ["img2txt"],
     "info": {"limits": dict(_OCR_LIMITS)}, "loras": None, "languages": None},
    {"name": "LightOnOCR 3 4B Q8", "slug": "LightOnOcr_3_4B_Q8", "inference_types": ["img2txt"],
     "info": {"limits": dict(_OCR_LIMITS)}, "loras": None, "languages": None},
    {"name": "Flux 1 Schnell", "slug": "Flux1schnell", "inference_types": ["txt2img"],
     "info": {"limits": {"min_width": 256, "max_width": 2048, "min_height": 256, "max_height": 2048}},
     "loras": None, "languages": None},
]


def find_model(slug: str) -> dict[str, Any] | None:
    return next((m for m in MODELS if m["slug"] == slug), None)
