"""The deAPI client against the project's own server over loopback: the happy paths, the
answers that end a run (401, balance), validation errors, and the token-safety rules."""

from __future__ import annotations

import hashlib
import io
import logging

import pytest
from PIL import Image

from pipeline.deapi import ClientSettings, DeapiClient, JobStatus, ModelInfo, PixelLimits
from pipeline.deapi.errors import AuthError, InsufficientBalanceError, ValidationError
from pipeline.server import EmbeddedServer, ServerConfig

TOKEN = "client-test-token-9f8e7d"
FAST = ClientSettings(backoff_initial_s=0.01, backoff_max_s=0.05, max_retry_after_s=0.05, first_poll_s=0.02,
                      poll_min_interval_s=0.01, poll_max_interval_s=0.1)


def png(seed: int = 0, size: tuple[int, int] = (200, 150)) -> bytes:
    img = Image.new("L", size, 255)
    img.putpixel((seed % size[0], (seed // size[0]) % size[1]), 0)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
async def srv():
    async with EmbeddedServer(ServerConfig(engine="fast", tokens=(TOKEN,), profile="unlimited")) as s:
        yield s


async def test_models_lists_the_ocr_models_with_their_pixel_limits(srv):
    async with DeapiClient(srv.base_url, TOKEN, FAST) as api:
        models = await api.list_models("img2txt")
        everything = await api.list_models(None)
    slugs = {m.slug for m in models}
    assert slugs == {"Nanonets_Ocr_S_F16", "LightOnOcr_3_4B_Q8", "Nanonets_Ocr_S_Hosted"}
    assert all(isinstance(m, ModelInfo) and "img2txt" in m.inference_types for m in models)
    assert models[0].limits == PixelLimits(128, 4096, 127, 4096)
    assert len(everything) > len(models)  # the non-OCR models come back when not filtered
    assert any("img2txt" not in m.inference_types for m in everything)


async def test_balance_is_a_number(srv):
    async with DeapiClient(srv.base_url, TOKEN, FAST) as api:
        assert await api.balance() == pytest.approx(srv.config.balance)
        quote = await api.price(model="Nanonets_Ocr_S_F16", width=1000, height=1000)
        quote_by_image = await api.price(model="Nanonets_Ocr_S_F16", data=png())
    assert quote > 0 and quote_by_image > 0
    assert srv.counters.balance_calls == 1 and srv.counters.price_calls == 2


async def test_happy_path_with_the_text_inline_costs_one_submit_and_one_poll(srv):
    data = png(1)
    async with DeapiClient(srv.base_url, TOKEN, FAST) as api:
        rid = await api.submit_ocr(data, "page.png", "image/png", model="Nanonets_Ocr_S_F16", language="en",
                                   format="text", return_result_in_response=True)
        st = await api.wait_for_job(rid, deadline_s=10)
        text = await api.fetch_result(rid, st)
        stats = api.stats.snapshot()
    assert isinstance(st, JobStatus) and st.status == "done" and st.ok and st.terminal
    assert text.startswith("FAST-OCR 200x150 L\npixels:") and text.endswith("lang:en")
    assert srv.counters.submits_by_hash == {hashlib.sha256(data).hexdigest(): 1}
    assert srv.counters.downloads == 0  # the text came inline
    assert stats["submits"] == 1 and stats["status_calls"] == srv.counters.status_polls >= 1


async def test_result_by_download_never_sends_the_token(srv):
    async with DeapiClient(srv.base_url, TOKEN, FAST) as api:
        rid = await api.submit_ocr(png(2), "page.png", "image/png", model="Nanonets_Ocr_S_F16",
                                   return_result_in_response=False)
        st = await api.wait_for_job(rid, deadline_s=10)
        assert st.result is None and st.result_url
        text = await api.fetch_result(rid, st)
    assert text.startswith("FAST-OCR 200x150 L")
    assert srv.counters.downloads == 1
    assert srv.counters.downloads_with_auth == 0


async def test_json_format_comes_back_as_a_json_document(srv):
    async with DeapiClient(srv.base_url, TOKEN, FAST) as api:
        rid = await api.submit_ocr(png(3), "p.png", "image/png", model="Nanonets_Ocr_S_F16", format="json",
                                   return_result_in_response=True)
        text = await api.fetch_result(rid, await api.wait_for_job(rid, 10))
    import json
    doc = json.loads(text)
    assert isinstance(doc, dict) and "FAST-OCR" in json.dumps(doc)


async def test_bad_token_is_a_fatal_auth_error_naming_the_variable_not_the_token(srv):
    bad = "wrong-token-123456"
    async with DeapiClient(srv.base_url, bad, FAST) as api:
        with pytest.raises(AuthError) as info:
            await api.list_models("img2txt")
        with pytest.raises(AuthError):
            await api.submit_ocr(png(), "p.png", "image/png", model="Nanonets_Ocr_S_F16")
    err = info.value
    assert err.failure_class == "fatal" and err.status == 401
    assert "DEAPI_API_KEY" in err.reason and "Unauthorized user." in err.reason
    assert bad not in err.reason and bad not in repr(err)
    assert srv.counters.auth_failures == 2 and srv.counters.jobs_created == 0  # never retried


async def test_exhausted_balance_is_fatal():
    async with EmbeddedServer(ServerConfig(engine="fast", tokens=(TOKEN,), balance=0.0)) as srv:
        async with DeapiClient(srv.base_url, TOKEN, FAST) as api:
            with pytest.raises(InsufficientBalanceError) as info:
                await api.submit_ocr(png(), "p.png", "image/png", model="Nanonets_Ocr_S_F16")
    assert info.value.failure_class == "fatal" and info.value.status == 422
    assert "top it up" in info.value.reason
    assert srv.counters.submits == 1 and srv.counters.jobs_created == 0


async def test_unknown_model_and_non_image_are_permanent_validation_errors_with_the_servers_words(srv):
    async with DeapiClient(srv.base_url, TOKEN, FAST) as api:
        with pytest.raises(ValidationError) as model_err:
            await api.submit_ocr(png(), "p.png", "image/png", model="No_Such_Model")
        with pytest.raises(ValidationError) as image_err:
            await api.submit_ocr(b"this is plain text, not a picture", "p.png", "image/png",
                                 model="Nanonets_Ocr_S_F16")
    for err in (model_err.value, image_err.value):
        assert err.failure_class == "permanent" and err.status == 422
        assert err.message and err.message in err.reason
    assert "model" in model_err.value.errors
    assert "image" in image_err.value.errors
    assert srv.counters.submits == 2 and srv.counters.jobs_created == 0  # a 422 is never retried


async def test_the_token_never_appears_in_reprs_messages_or_logs(srv, caplog):
    caplog.set_level(logging.DEBUG)
    srv.faults.http_5xx.count = 1
    async with DeapiClient(srv.base_url, TOKEN, FAST) as api:
        rid = await api.submit_ocr(png(4), "p.png", "image/png", model="Nanonets_Ocr_S_F16")
        text = await api.fetch_result(rid, await api.wait_for_job(rid, 10))
        shown = [repr(api), str(vars(api)), repr(api.settings), repr(api.stats)]
    assert text and api.stats.retries == 1  # the 5xx was logged and retried
    assert any("retried" in r.getMessage() for r in caplog.records)
    for line in shown + [r.getMessage() for r in caplog.records]:
        assert TOKEN not in line


def test_a_token_with_a_line_break_or_an_empty_one_is_refused_without_echoing_it():
    with pytest.raises(ValueError) as info:
        DeapiClient("https://api.deapi.ai", "abc\r\nX-Evil: 1")
    assert "abc" not in str(info.value)
    with pytest.raises(ValueError):
        DeapiClient("https://api.deapi.ai", "  ")
    with pytest.raises(ValueError):
        DeapiClient("api.deapi.ai", "token")  # no scheme: a clear error, not a confusing failure later
