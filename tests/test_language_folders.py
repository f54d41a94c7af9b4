"""Languages as a real archive needs them (issue 25.4): a combination whose parts sit in
different tessdata folders, advice that names real Debian packages, and ``overrides:`` giving a
subtree its own language, entering those files' work key only.

No Fraktur data is installed here, so the second folder holds the real German model under the
name ``frk``: Tesseract loads it as it would load Debian's ``frk.traineddata`` (a real model
file in a second folder is what is under test, not what it recognises)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import TOKEN
from helpers import distinct_png, run_pipeline, save, text_page, write_config
from pipeline.config import ConfigError, load_config
from pipeline.exitcodes import ExitCode
from pipeline.ocr.languages import LanguageError, resolve_tesseract, tesseract_data, what_engine_does


@pytest.fixture
def frk_elsewhere(tmp_path, monkeypatch) -> Path:
    """A second tessdata folder ($TESSDATA_PREFIX) holding frk only; deu stays in the pip wheel's."""
    wheel = next(d for d, names in tesseract_data() if "deu" in names)
    second = tmp_path / "debian-tessdata"
    second.mkdir()
    shutil.copy(f"{wheel}/deu.traineddata", second / "frk.traineddata")
    monkeypatch.setenv("TESSDATA_PREFIX", str(second))
    assert "frk" not in {n for d, names in tesseract_data() if d != str(second) for n in names}
    return second


def test_de_plus_frk_from_two_folders_resolves_to_one_folder_of_links(frk_elsewhere):
    path, lang = resolve_tesseract("de+frk")
    assert lang == "deu+frk"
    folder = Path(path)
    assert sorted(p.name for p in folder.iterdir()) == ["deu.traineddata", "frk.traineddata"]
    assert (folder / "frk.traineddata").resolve() == (frk_elsewhere / "frk.traineddata").resolve()
    assert resolve_tesseract("de+frk") == (path, lang)              # made once, then reused


async def test_an_embedded_tesseract_run_reads_de_plus_frk_with_frk_in_a_second_folder(tmp_path, frk_elsewhere):
    save(text_page("Protokoll der Sitzung\nvom Montag"), tmp_path / "in" / "p1.png", "PNG")
    cfg = write_config(tmp_path, "embedded", api__language="de+frk", api__embedded__engine="tesseract",
                       api__embedded__workers=1)
    code, report, out = await run_pipeline(cfg, None)
    assert code == ExitCode.OK, out
    doc = json.loads((tmp_path / "out" / "p1.png.json").read_text())
    assert doc["settings"]["language"] == "de+frk"
    assert "Protokoll" in doc["pages"][0]["text"] or "Sitzung" in doc["pages"][0]["text"], doc["pages"][0]["text"]


@pytest.mark.parametrize("typed, advice, never", [
    ("ger", "write 'deu' or 'de' (package tesseract-ocr-deu)", "tesseract-ocr-ger"),
    ("fre", "write 'fra' or 'fr' (package tesseract-ocr-fra)", "tesseract-ocr-fre"),
    ("ita", "apt-get install tesseract-ocr-ita", None),
    ("chi_sim", "apt-get install tesseract-ocr-chi-sim", None),
    ("xyz", "'xyz' is not a language Tesseract knows", "tesseract-ocr-xyz"),
])
def test_a_language_typo_gets_the_real_debian_package_or_is_called_unknown(typed, advice, never):
    data = [(d, n - {"ita", "chi_sim"}) for d, n in tesseract_data()]
    with pytest.raises(LanguageError) as exc:
        resolve_tesseract(f"de+{typed}", data)
    assert advice in str(exc.value)
    if never:
        assert never not in str(exc.value)


def test_the_start_line_phrase_says_what_each_engine_does_with_the_language():
    assert "chooses no model" in what_engine_does("rapidocr", "de")
    assert "traineddata" in what_engine_does("tesseract", "de+frk")
    assert "ignored" in what_engine_does("fast", "en")


async def test_an_override_gives_a_subtree_its_language_and_changing_it_redoes_only_that_subtree(tmp_path, server):
    distinct_png(tmp_path / "in" / "letters" / "a.png", 1)
    distinct_png(tmp_path / "in" / "fraktur" / "b.png", 2)
    distinct_png(tmp_path / "in" / "fraktur" / "sub" / "c.png", 3)

    def configure(language: str) -> Path:
        return write_config(tmp_path, server.base_url, overrides=[{"glob": "fraktur/**", "api": {"language": language}}])

    code, report, _ = await run_pipeline(configure("de"), TOKEN)
    assert code == 0 and report["this_run"]["done"] == 3
    texts = {rel: (tmp_path / "out" / f"{rel}.txt").read_text() for rel in ("letters/a.png", "fraktur/b.png",
                                                                            "fraktur/sub/c.png")}
    assert "lang:en" in texts["letters/a.png"]                       # the fast engine echoes the language
    assert "lang:de" in texts["fraktur/b.png"] and "lang:de" in texts["fraktur/sub/c.png"]
    assert json.loads((tmp_path / "out" / "fraktur/b.png.json").read_text())["settings"]["language"] == "de"
    jobs = server.counters.jobs_created

    code, report, _ = await run_pipeline(configure("de"), TOKEN)     # unchanged: nothing redone
    assert report["this_run"].get("skipped") == 3 and server.counters.jobs_created == jobs

    code, report, _ = await run_pipeline(configure("de+en"), TOKEN)  # the override changed: its files only
    assert report["this_run"].get("done") == 2 and report["this_run"].get("skipped") == 1
    assert server.counters.jobs_created == jobs + 2
    assert "lang:de+en" in (tmp_path / "out" / "fraktur/b.png.txt").read_text()


def test_overrides_are_checked_naming_the_entry_and_key(tmp_path):
    (tmp_path / "in").mkdir()
    base = {"input": "in", "output": "out"}
    for entry, message in (
            ({"glob": "a/**", "api": {"model": "x"}}, "overrides[0].api.model: cannot be set for part of the tree"),
            ({"api": {"language": "de"}}, "overrides[0]: expected a mapping with a glob"),
            ({"glob": "a/**"}, "overrides[0]: sets nothing"),
            ({"glob": "a/**", "api": {"language": 3}}, "overrides[0].api.language: expected text")):
        (tmp_path / "c.yaml").write_text(yaml.safe_dump({**base, "overrides": [entry]}))
        with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
            load_config(tmp_path / "c.yaml")


async def test_an_override_language_no_engine_reads_is_exit_2_naming_the_override(tmp_path):
    distinct_png(tmp_path / "in" / "a.png", 1)
    cfg = write_config(tmp_path, "embedded", api__embedded__engine="tesseract",
                       overrides=[{"glob": "old/**", "api": {"language": "ger"}}])
    code, _, out = await run_pipeline(cfg, None)
    assert code == ExitCode.CONFIG_ERROR
    assert "overrides[0].api.language" in out and "'deu'" in out
