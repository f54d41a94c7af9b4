"""img2txt validation (Laravel's 422 form), accepted image formats by content, and a small fuzz of
malformed requests: the server answers each with a clear JSON error and keeps serving."""

from __future__ import annotations

import io
import os

import aiohttp
import pytest

from pipeline.server import EmbeddedServer, ServerConfig
from test_server_support import AUTH, MODEL, TOKEN, V1, encoded, png, submit, wait_done


@pytest.fixture
async def srv():
    async with EmbeddedServer(ServerConfig(engine="fast", tokens=(TOKEN,), allow_http_webhooks=True)) as s:
        yield s


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.mark.parametrize("fields, field, message", [
    (dict(image=None), "image", "The image field is required."),
    (dict(image=b"just text, not an image"), "image", "must be a file of type: jpg, jpeg, png, gif, bmp, webp"),
    (dict(image=b""), "image", "The image field must be a file."),
    (dict(image=png(), model="No_Such"), "model", "The selected model does not exist."),
    (dict(image=png(), model="Flux1schnell"), "model", "The selected model does not support Image To Text."),
    (dict(image=png(), model=""), "model", "The model field is required."),
    (dict(image=png(), format="pdf"), "format", "The selected format is invalid."),
    (dict(image=png(), return_result_in_response="maybe"), "return_result_in_response", "true or false"),
    (dict(image=png(), return_result_in_response="yes"), "return_result_in_response", "true or false"),
    (dict(image=png((100, 200))), "image", "between 128x127 and 4096x4096"),
    (dict(image=png((300, 126))), "image", "got 300x126"),
    (dict(image=png((4097, 200))), "image", "dimensions"),
    (dict(image=png(), language="x" * 40), "language", "32 characters"),
    (dict(image=png(), webhook_url="http://example.org/hook"), "webhook_url", "HTTPS"),
    (dict(image=png(), webhook_url="ftp://127.0.0.1/hook"), "webhook_url", "HTTPS"),
    (dict(image=png(), webhook_url="https://"), "webhook_url", "valid URL"),
    (dict(image=png(), webhook_url="https://example.org/" + "a" * 2048), "webhook_url", "2048"),
])
async def test_validation_errors_use_the_laravel_422_form(http, srv, fields, field, message):
    status, body = await submit(http, srv.base_url, **fields)
    assert status == 422 and set(body) == {"message", "errors"}
    assert field in body["errors"] and message in " ".join(body["errors"][field]), body
    assert body["message"] == next(iter(body["errors"].values()))[0]
    assert srv.counters.jobs_created == 0 and srv.counters.validation_errors == 1


async def test_every_error_is_reported_at_once_in_rule_order(http, srv):
    status, body = await submit(http, srv.base_url, image=b"nope", model="No_Such", format="pdf")
    assert status == 422 and list(body["errors"]) == ["image", "model", "format"]
    assert body["message"] == body["errors"]["image"][0]


@pytest.mark.parametrize("fmt, kw", [("JPEG", {}), ("GIF", {}), ("BMP", {}), ("WEBP", {}), ("PNG", {})])
async def test_each_accepted_format_is_recognised_by_content_not_name(http, srv, fmt, kw):
    data = encoded(fmt, **kw)
    status, body = await submit(http, srv.base_url, image=data, filename="misnamed.txt",
                                return_result_in_response="true")
    assert status == 200, body
    assert (await wait_done(http, srv.base_url, body["data"]["request_id"]))["result"].startswith("FAST-OCR 300x200")


async def test_tiff_is_refused_even_when_named_png(http, srv):
    status, body = await submit(http, srv.base_url, image=encoded("TIFF"), filename="page.png")
    assert status == 422 and "must be a file of type" in body["errors"]["image"][0]


async def test_a_truncated_image_passes_the_header_check_and_the_job_fails_with_invalid_input(http, srv):
    data = encoded("JPEG", (600, 400))
    status, body = await submit(http, srv.base_url, image=data[: len(data) // 3])
    assert status == 200
    job = await wait_done(http, srv.base_url, body["data"]["request_id"])
    assert job["status"] == "error" and job["error_code"] == "INVALID_INPUT" and job["error"]


async def test_oversize_upload_is_a_422_not_a_crash(http, srv):
    status, body = await submit(http, srv.base_url, image=os.urandom(10 * 1024 * 1024 + 1))
    assert status == 422 and body["errors"]["image"] == ["The image must not be greater than 10240 kilobytes."]
    assert srv.counters.jobs_created == 0


async def test_image_sent_as_a_text_field_must_be_a_file(http, srv):
    f = aiohttp.FormData()
    f.add_field("image", "aGVsbG8=")  # base64 text, no filename: not a file part
    f.add_field("model", MODEL)
    async with http.post(srv.base_url + V1 + "/img2txt", data=f, headers=AUTH) as r:
        body = await r.json()
    assert r.status == 422 and body["errors"]["image"] == ["The image field must be a file."]


@pytest.mark.parametrize("data, ctype", [
    (b"{}", "application/json"),
    (b'{"image": "x", "model": 5}', "application/json"),
    (b"{not json", "application/json"),
    (b"[1, 2]", "application/json"),
    (b"model=Nanonets_Ocr_S_F16", "application/x-www-form-urlencoded"),
    (b"\x00\xff" * 100, "multipart/form-data; boundary=x"),
    (b"--x\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n\x89PNG", "multipart/form-data; boundary=x"),
    (b"whatever", "multipart/form-data"),
    (b"", "text/plain"),
    (b"\xff\xfe garbage", "application/octet-stream"),
])
async def test_malformed_bodies_get_a_422_with_errors(http, srv, data, ctype):
    async with http.post(srv.base_url + V1 + "/img2txt", data=data, headers={**AUTH, "Content-Type": ctype}) as r:
        assert r.status == 422 and r.content_type == "application/json"
        body = await r.json()
    assert body["errors"] and isinstance(body["message"], str) and body["message"]
    assert srv.counters.jobs_created == 0 and srv.counters.internal_errors == 0


async def test_a_huge_text_field_is_refused(http, srv):
    status, body = await submit(http, srv.base_url, image=png(), language="x" * (70 * 1024))
    assert status == 422 and "too long" in body["errors"]["language"][0]


async def test_after_a_fuzz_burst_the_server_still_serves(http, srv):
    junk = [(b"\x00" * 5000, "multipart/form-data; boundary=zz"), (b"{", "application/json"),
            (os.urandom(3000), "image/png")]
    for data, ctype in junk:
        async with http.post(srv.base_url + V1 + "/img2txt", data=data, headers={**AUTH, "Content-Type": ctype}) as r:
            assert r.status == 422
        async with http.post(srv.base_url + V1 + "/img2txt/price-calculation", data=data,
                             headers={**AUTH, "Content-Type": ctype}) as r:
            assert r.status == 422
    status, body = await submit(http, srv.base_url, image=png(), return_result_in_response="true")
    assert status == 200
    assert (await wait_done(http, srv.base_url, body["data"]["request_id"]))["status"] == "done"
    assert srv.counters.internal_errors == 0


async def test_loopback_http_webhooks_only_when_allowed(http, srv):
    for url in ("http://127.0.0.1:9/hook", "http://localhost:9/hook", "http://[::1]:9/hook", "http://127.0.0.2/h"):
        assert (await submit(http, srv.base_url, image=png(), webhook_url=url))[0] == 200, url
    status, body = await submit(http, srv.base_url, image=png(), webhook_url="http://10.0.0.1/hook")
    assert status == 422 and "loopback" in body["errors"]["webhook_url"][0]
    async with EmbeddedServer(ServerConfig(engine="fast", tokens=(TOKEN,))) as strict:
        status, body = await submit(http, strict.base_url, image=png(), webhook_url="http://127.0.0.1:9/hook")
        assert status == 422 and "HTTP URLs will be rejected" in body["errors"]["webhook_url"][0]
        assert (await submit(http, strict.base_url, image=png(), webhook_url="https://example.org/hook"))[0] == 200


def test_sniff_reads_content_and_survives_garbage():
    from pipeline.server.validation import sniff_image
    assert sniff_image(png())[:3] == ("PNG", 300, 200)
    assert sniff_image(b"\x89PNG\r\n\x1a\n" + b"\x00" * 10)[0] is None
    buf = io.BytesIO()
    assert sniff_image(buf.getvalue()) == (None, 0, 0, None)
