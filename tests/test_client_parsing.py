"""Every documented answer shape, including those the project's server does not send (the
public sources conflict, deapi-api.md): the client's pure parsers and the error classes. The
pagination walk runs against the real server with one model per page."""

from __future__ import annotations

from email.utils import format_datetime
from datetime import datetime, timezone

import pytest

from pipeline.deapi import ClientSettings, DeapiClient, PixelLimits
from pipeline.deapi.bodies import parse_balance, parse_models_page, parse_retry_after, parse_status
from pipeline.deapi.errors import (DeapiError, JobFailedError, ServerError, SubmitOutcomeUnknown, ValidationError,
                                   normalize_errors)
from pipeline.formats.model import answer_text
from pipeline.server import EmbeddedServer, ServerConfig


@pytest.mark.parametrize("body", [{"balance": 19.72}, {"data": {"balance": 19.72}}, {"data": {"balance": "19.72"}}])
def test_balance_in_both_documented_shapes(body):
    assert parse_balance(body) == pytest.approx(19.72)


def test_a_balance_answer_without_a_balance_is_a_server_error():
    with pytest.raises(ServerError, match="no balance field"):
        parse_balance({"data": {"credits": 3}})


@pytest.mark.parametrize("status", ["pending", "processing", "queued", "in_queue", "waiting", "running",
                                    "in_progress", "PROCESSING", "something_new"])
def test_every_waiting_status_keeps_waiting(status):
    st = parse_status({"data": {"status": status, "progress": "45.50"}})
    assert not st.terminal and not st.ok and st.progress == pytest.approx(45.5)


@pytest.mark.parametrize("status, ok", [("done", True), ("error", False), ("failed", False), ("cancelled", False)])
def test_terminal_statuses(status, ok):
    st = parse_status({"data": {"status": status, "progress": 100.0, "result": None,
                                "result_url": "https://x/r", "error": "boom" if not ok else None}})
    assert st.terminal and st.ok is ok and st.failed is (not ok)


def test_status_fields_in_v1_and_v2_spellings():
    v1 = parse_status({"data": {"status": "error", "error": "Worker failed", "error_code": "WORKER_TIMEOUT"}})
    assert (v1.error, v1.error_code) == ("Worker failed", "WORKER_TIMEOUT")
    v2 = parse_status({"data": {"status": "error", "error_code": "INPUT_TOO_LARGE", "error_message": "too tall"}})
    assert (v2.error, v2.error_code) == ("too tall", "INPUT_TOO_LARGE")
    nested = parse_status({"data": {"status": "failed", "error": {"code": "INVALID_INPUT", "message": "bad"}}})
    assert (nested.error, nested.error_code) == ("bad", "INVALID_INPUT")
    bare = parse_status({"status": "done", "result": {"text": "hi"}})  # unwrapped; result as an object
    assert bare.ok and bare.result == '{"text": "hi"}' and bare.progress is None
    assert parse_status({"data": {"status": "done", "result_url": ""}}).result_url is None
    with pytest.raises(ServerError):
        parse_status({"data": None, "message": "?"})


def test_models_page_shapes():
    laravel = {"data": [
        {"name": "Nanonets", "slug": "Nanonets_Ocr_S_F16", "inference_types": ["img2txt"],
         "info": {"limits": {"min_width": 128, "max_width": 4096, "min_height": 127, "max_height": 4096}}},
        {"name": "Flux", "slug": "Flux1", "inference_types": {"txt2img": {}, "img2img": {}}, "info": []},
        {"name": "no slug"},
    ], "links": {"next": None}, "meta": {"current_page": 1, "last_page": 2}}
    models, more = parse_models_page(laravel, 1)
    assert [m.slug for m in models] == ["Nanonets_Ocr_S_F16", "Flux1"] and more
    assert models[0].limits == PixelLimits(128, 4096, 127, 4096)
    assert models[1].inference_types == ("txt2img", "img2img") and models[1].limits is None
    nested, more = parse_models_page({"data": {"data": laravel["data"][:1], "links": {"next": "https://x?page=2"}}})
    assert [m.slug for m in nested] == ["Nanonets_Ocr_S_F16"] and more
    bare, more = parse_models_page(laravel["data"][:1])
    assert len(bare) == 1 and not more
    with pytest.raises(ServerError):
        parse_models_page({"data": "nope"})


async def test_the_models_walk_follows_every_page_of_the_real_server():
    token = "parsing-test-token"
    async with EmbeddedServer(ServerConfig(engine="fast", tokens=(token,))) as srv:
        async with DeapiClient(srv.base_url, token, ClientSettings()) as api:
            one_per_page = await api.list_models(None, per_page=1)
            all_at_once = await api.list_models(None)
    assert [m.slug for m in one_per_page] == [m.slug for m in all_at_once] and len(all_at_once) >= 3
    assert srv.counters.models_calls == len(all_at_once) + 1


def test_both_422_shapes_become_field_to_messages():
    laravel = {"model": ["The selected model does not exist."]}
    listed = [{"field": "width", "messages": ["The width must be between 64 and 2048."]},
              {"field": "model", "messages": ["The selected model does not exist."]}]
    assert normalize_errors(laravel) == laravel
    assert normalize_errors(listed) == {"width": ["The width must be between 64 and 2048."],
                                        "model": ["The selected model does not exist."]}
    assert normalize_errors([]) == {} and normalize_errors(None) == {}
    err = ValidationError("Validation failed", listed)
    assert err.errors["width"] and "width: The width must be between 64 and 2048." in err.reason
    assert err.failure_class == "permanent"


def test_retry_after_in_seconds_or_as_an_http_date():
    assert parse_retry_after("60") == 60.0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after(None) == 1.0 and parse_retry_after("soon") == 1.0
    when = datetime(2030, 1, 1, 0, 0, 30, tzinfo=timezone.utc)
    now = datetime(2030, 1, 1, 0, 0, 0, tzinfo=timezone.utc).timestamp()
    assert parse_retry_after(format_datetime(when, usegmt=True), now=lambda: now) == pytest.approx(30.0)
    assert parse_retry_after(format_datetime(when, usegmt=True), now=lambda: now + 100) == 0.0  # in the past


@pytest.mark.parametrize("code, klass", [(None, "transient"), ("", "transient"), ("WORKER_TIMEOUT", "transient"),
                                         ("UNKNOWN_ERROR", "transient"), ("INVALID_INPUT", "permanent"),
                                         ("INPUT_TOO_LARGE", "permanent"), ("AGE_RESTRICTED", "permanent")])
def test_job_failure_class_follows_its_code(code, klass):
    err = JobFailedError(code, None, request_id="r-1")
    assert err.failure_class == klass and err.code == (code or "UNKNOWN_ERROR")
    assert "r-1" in err.reason and "no details given" in err.reason


def test_error_basics():
    err = DeapiError("something", status=418, failure_class="permanent")
    assert str(err) == "something" and err.failure_class == "permanent" and err.code == "DeapiError"
    assert DeapiError("x").failure_class == "transient" and not DeapiError("x").possible_duplicate
    assert SubmitOutcomeUnknown("lost").possible_duplicate
    with pytest.raises(ValueError):
        DeapiError("x", failure_class="maybe")


async def test_the_submit_body_parses_back_field_for_field_in_aiohttp():
    """The one-piece multipart body (``deapi/multipart.py``) read by aiohttp's own form parser,
    the one the project's server uses: names, values, bytes, a file name with a quote, a line
    break and non-ASCII letters, and the part's content type."""
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from pipeline.deapi.multipart import MultipartForm

    seen = {}

    async def echo(request: web.Request) -> web.Response:
        form = await request.post()
        image = form["image"]
        seen.update(model=form["model"], flag=form["return_result_in_response"], filename=image.filename,
                    content_type=image.content_type, data=image.file.read())
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/", echo)
    data = bytes(range(256)) * 40 + b"\r\n--not-a-boundary\r\n"
    form = MultipartForm()
    form.add_field("image", data, filename='scan "č"\n.png', content_type="image/png")
    form.add_field("model", "Nanonets_Ocr_S_F16")
    form.add_field("return_result_in_response", "true")
    async with TestClient(TestServer(app)) as client:
        resp = await client.post("/", data=form.payload())
        assert resp.status == 200
    assert seen == {"model": "Nanonets_Ocr_S_F16", "flag": "true", "filename": 'scan %22č%22%0A.png',
                    "content_type": "image/png", "data": data}


@pytest.mark.parametrize("answer, text", [
    ({"text": "# Title\nbody", "blocks": [{"lines": [{"text": "ignored"}]}]}, "# Title\nbody"),  # our server's
    ({"markdown": "# Title"}, "# Title"),
    ({"content": "a line"}, "a line"),
    ({"result": {"text": "nested"}}, "nested"),
    ({"data": {"pages": [{"text": "page one"}, {"text": "page two"}]}}, "page one\n\npage two"),
    ({"blocks": [{"lines": [{"text": "l1"}, {"text": "l2"}]}, {"lines": [{"text": "l3"}]}]}, "l1\nl2\n\nl3"),
    ({"lines": [{"words": [{"text": "two"}, {"text": "words"}]}]}, "two words"),
    ([{"text": "a"}, {"text": "b"}], "a\nb"),
    # chat-style content blocks under a text key (was None: the .txt held the raw JSON)
    ({"content": [{"type": "text", "text": "# Title"}, {"type": "text", "text": "body"}]}, "# Title\nbody"),
    # an empty text beside the parts that hold it (was "": the page's text lost)
    ({"text": "", "pages": [{"markdown": "page one"}]}, "page one"),
    ({"text": ""}, ""),                                            # no text, said so: a blank page
    # null and numbers where the text goes (before: None, the .txt held the raw JSON)
    ({"text": None}, ""),                                          # said so too
    ({"text": None, "markdown": "# Found"}, "# Found"),
    ({"text": 1952}, "1952"),
    ({"lines": [{"text": 12}, None, {"text": "a"}, 2.5]}, "12\na\n2.5"),
    # a JSON document encoded again below the top (before: the .txt held '{"markdown": "# T"}')
    ({"result": '{"markdown": "# T"}'}, "# T"),
    ({"pages": [{"text": '[{"text": "a"}, {"text": "b"}]'}]}, "a\nb"),
    ({"text": "{braces} as printed"}, "{braces} as printed"),
    ({"text": '{"width": 3}'}, '{"width": 3}'),                   # JSON with no text in it: as written
    # printed text that happens to parse as JSON (a footnote mark, a list of figures): as printed
    ({"text": "[1]"}, "[1]"),
    ({"pages": [{"text": "[12, 13]"}]}, "[12, 13]"),
    ({"text": '["quoted"]'}, '["quoted"]'),
    # parts under a name of no shape we know, in order (before: None, the .txt held the raw JSON)
    ({"elements": [{"type": "Title", "text": "T"}, {"type": "NarrativeText", "text": "body"}]}, "T\nbody"),
    ({"languages": ["en"], "texts": [{"label": "title", "text": "T"}], "tables": []}, "T"),
    ({"segments": [{"lines": [{"text": "a"}, {"text": "b"}]}, {"content": "c"}]}, "a\nb\nc"),
])
def test_the_text_of_a_json_answer_whatever_its_shape(answer, text):
    """deAPI's ``format: json`` shape is unpublished (deapi-api.md §1.4): the text is found
    under the usual names, nested or in parts, so a ``.txt`` never holds the JSON itself."""
    assert answer_text(answer) == text


@pytest.mark.parametrize("answer", [{"engine": "x", "width": 3}, [], {"pages": []}, 7,
                                    {"languages": ["en", "de"], "sizes": [3, 4]}, {"elements": [{"type": "Image"}]}])
def test_a_json_answer_without_text_says_so(answer):
    assert answer_text(answer) is None


@pytest.mark.parametrize("error,code", [
    ("INPUT_TOO_LARGE", "INPUT_TOO_LARGE"), ("CONTEXT_LENGTH_EXCEEDED: 9000 tokens", "CONTEXT_LENGTH_EXCEEDED"),
    (" INVALID_INPUT - bad image", "INVALID_INPUT"), ("Worker failed to respond", None), ("GPU out of memory", None),
    ("see INPUT_TOO_LARGE docs", None), ("INPUT_TOO_LARGEness", None),
])
def test_a_v1_error_string_that_starts_with_a_code_gives_the_code(error, code):
    st = parse_status({"data": {"status": "failed", "error": error}})
    assert st.error_code == code and st.error == error
    assert parse_status({"data": {"status": "error", "error": error, "error_code": "WORKER_TIMEOUT"}}).error_code \
        == "WORKER_TIMEOUT"   # a real code field always wins
