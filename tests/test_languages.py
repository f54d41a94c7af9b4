"""Languages: deAPI's ISO codes mapped to each engine's, Tesseract's data search paths, and the
errors a language no installed data covers earns (a 422 from the server, exit 2 for an embedded
run) instead of a silent English fallback. Real engines, real server, real data files."""

from __future__ import annotations

import shutil

import aiohttp
import pytest

from helpers import distinct_png, run_pipeline, text_page, write_config
from pipeline.ocr import languages
from pipeline.exitcodes import ExitCode
from pipeline.ocr.languages import LanguageError, check_language, resolve_tesseract, tesseract_data
from pipeline.server import EmbeddedServer, ServerConfig
from test_server_support import AUTH, TOKEN, V1, submit, wait_done


def test_iso_codes_map_to_tesseract_names_and_combine_with_plus():
    data = tesseract_data()
    path, lang = resolve_tesseract("de+en", data)
    assert lang == "deu+eng"
    assert resolve_tesseract("deu", data) == (path, "deu")      # a traineddata name passes through
    assert resolve_tesseract(None, data)[1] == "eng"             # no language: English
    assert languages.tesseract_name("FR") == "fra" and languages.iso_code("eng") == "en"


def test_the_shipped_wheels_cover_english_and_german():
    assert {"en", "de"} <= set(languages.installed("tesseract"))
    assert "osd" not in languages.installed("tesseract")       # orientation data is no language
    check_language("tesseract", "de")
    check_language("rapidocr", "de+en")
    check_language("fast", "xx")                                # the test engine takes anything


def test_an_uninstalled_language_names_itself_and_how_to_install_it():
    with pytest.raises(LanguageError) as exc:
        resolve_tesseract("fr", [(d, n) for d, n in tesseract_data() if "fra" not in n])
    message = str(exc.value)
    assert "'fr'" in message and "fra.traineddata" in message and "apt-get install tesseract-ocr-fra" in message
    with pytest.raises(LanguageError) as exc:   # only the missing part is named as missing
        resolve_tesseract("de+fr", [(d, n) for d, n in tesseract_data() if "fra" not in n])
    assert "language 'fr' (of 'de+fr') is not installed" in str(exc.value), str(exc.value)
    with pytest.raises(LanguageError, match=r"'ru' \(Russian\).*rapidocr.*Latin-script.*tesseract-ocr-rus"):
        check_language("rapidocr", "en+ru")


def test_a_languages_name_instead_of_its_code_is_told_the_code_not_to_change_engine():
    # A new user's first try, `language: english`: rapidocr reads English, so "use the tesseract
    # engine" was the wrong advice; the code is the right one, for either engine.
    for engine in ("rapidocr", "tesseract"):
        with pytest.raises(LanguageError) as exc:
            check_language(engine, "English")
        assert "write 'en'" in str(exc.value), str(exc.value)
        assert "tesseract engine with" not in str(exc.value)
    with pytest.raises(LanguageError, match=r"'xyz' is not a language") as exc:
        check_language("rapidocr", "de+xyz")
    assert "tesseract engine with" not in str(exc.value)


def test_tessdata_prefix_and_script_subfolders_are_searched(tmp_path, monkeypatch):
    # A folder laid out as Debian lays Fraktur out: script/Fraktur.traineddata (a real model file).
    deu = next(d for d, names in tesseract_data() if "deu" in names)
    (tmp_path / "script").mkdir()
    shutil.copy(f"{deu}/deu.traineddata", tmp_path / "script" / "Fraktur.traineddata")
    shutil.copy(f"{deu}/eng.traineddata", tmp_path / "eng.traineddata")
    monkeypatch.setenv("TESSDATA_PREFIX", str(tmp_path))
    assert str(tmp_path) in languages.data_dirs()
    assert resolve_tesseract("Fraktur") == (str(tmp_path), "script/Fraktur")
    assert resolve_tesseract("eng+Fraktur") == (str(tmp_path), "eng+script/Fraktur")
    assert "Fraktur" in languages.installed("tesseract") or "script/Fraktur" in languages.installed("tesseract")


def test_a_missing_folder_in_tessdata_prefix_is_skipped(tmp_path, monkeypatch):
    monkeypatch.setenv("TESSDATA_PREFIX", str(tmp_path / "nowhere"))
    assert str(tmp_path / "nowhere") not in languages.data_dirs()
    assert resolve_tesseract("en")[1] == "eng"


@pytest.mark.real_ocr
async def test_tesseract_server_reads_german_lists_its_languages_and_refuses_others():
    cfg = ServerConfig(engine="tesseract", tokens=(TOKEN,))
    page = text_page("Straße und Brücke", (700, 160))
    import io

    buf = io.BytesIO()
    page.save(buf, "PNG")
    async with EmbeddedServer(cfg) as srv, aiohttp.ClientSession() as http:
        async with http.get(srv.base_url + V1 + "/models", headers=AUTH) as r:
            body = await r.json()
        ocr = next(m for m in body["data"] if "img2txt" in m["inference_types"])
        assert {"name": "German", "slug": "de"} in ocr["languages"]
        assert "fr" not in {x["slug"] for x in ocr["languages"]}

        status, refused = await submit(http, srv.base_url, image=buf.getvalue(), language="fr")
        assert status == 422
        assert refused["message"] == "The selected language is invalid."
        assert "tesseract-ocr-fra" in refused["errors"]["language"][1]

        status, accepted = await submit(http, srv.base_url, image=buf.getvalue(), language="de",
                                        return_result_in_response="true")
        assert status == 200
        done = await wait_done(http, srv.base_url, accepted["data"]["request_id"])
        assert "Straße" in done["result"] or "Brücke" in done["result"]


async def test_an_embedded_run_with_an_uncovered_language_exits_2_before_reading(tmp_path):
    cfg = write_config(tmp_path, "embedded", api__language="fr", api__embedded={"engine": "tesseract"})
    distinct_png(tmp_path / "in" / "a.png", 1)
    code, _, out = await run_pipeline(cfg, None)
    assert code == ExitCode.CONFIG_ERROR
    assert "api.language" in out and "'fr'" in out and "tesseract-ocr-fra" in out
    assert not (tmp_path / "out" / "a.png.txt").exists()
