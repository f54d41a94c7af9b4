"""``api.language`` as a BCP 47 language tag, for the ``lang`` attributes consumers read.

Why: ``api.language`` takes deAPI's codes (``en``, ``de+en``) and passes Tesseract names through
(``deu``, ``frk``, ``Fraktur``), none of which an XHTML ``lang`` or a PDF ``/Lang`` may hold as
they are. One language gives its ISO 639-1 code (a Tesseract name is mapped back: ``deu`` ->
``de``; Fraktur is German in Fraktur script, ``de-Latf``), several give ``mul`` (ISO 639-2
"multiple languages"), nothing or anything unknown gives ``und`` ("undetermined").
"""

from __future__ import annotations

import re

from pipeline.ocr.languages import ISO_TO_TESS

_FROM_TESS = {tess: iso for iso, tess in ISO_TO_TESS.items()}
_SPECIAL = {"frk": "de-Latf", "fraktur": "de-Latf", "script/fraktur": "de-Latf"}
_PLAIN = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


def bcp47(language: str | None) -> str:
    parts = [p.strip() for p in str(language or "").split("+") if p.strip()]
    if not parts:
        return "und"
    if len(parts) > 1:
        return "mul"
    code = parts[0]
    low = code.lower()
    if low in _SPECIAL:
        return _SPECIAL[low]
    if low in _FROM_TESS:
        return _FROM_TESS[low]
    if _PLAIN.match(low.replace("_", "-")) and "_" not in code:
        return low if "-" not in low else code
    return "und"
