"""Conformance of the deAPI-compatible server: routes, status codes, bodies, headers, limits,
webhook signatures (checked independently with ``hmac``) and every fault, over real HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from PIL import Image

from helpers import text_page
from pipeline.server import EmbeddedServer, FaultRule, ServerConfig

TOKEN = "conformance-token"
V1 = "/api/v1/client"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}


def png(size=(300, 200), text="hello") -> bytes:
    buf = io.BytesIO()
    text_page(text, size).save(buf, "PNG")
    return buf.getvalue()


def form(image: bytes | None = None, **fields) -> aiohttp.FormData:
    f = aiohttp.FormData()
    if image is not None:
        f.add_field("image", image, filename="page.png", content_type="image/png")
    fields.setdefault("model", "Nanonets_Ocr_S_F16")
    for k, v in fields.items():
        if v is not None:
            f.add_field(k, v)
    return f


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def srv():
    async with EmbeddedServer(ServerConfig(engine="fast", tokens=(TOKEN,), allow_http_webhooks=True,
                                           webhook_secret="s" * 40, webhook_time_scale=0.0001)) as s:
        yield s


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


async def submit(http, srv, **fields) -> tuple[int, dict]:
    async with http.post(srv.base_url + V1 + "/img2txt", data=form(**fields), headers=AUTH) as r:
        return r.status, await r.json()


async def wait_done(http, srv, rid: str) -> dict:
    for _ in range(500):
        async with http.get(f"{srv.base_url}{V1}/request-status/{rid}", headers=AUTH) as r:
            body = await r.json()
        if body["data"]["status"] in ("done", "error"):
            return body["data"]
        await asyncio.sleep(0.01)
    raise AssertionError("job never finished")


async def test_submit_then_status_inline_text(http, srv):
    status, body = await submit(http, srv, image=png(), return_result_in_response="true", language="en")
    assert status == 200 and set(body) == {"data"} and set(body["data"]) == {"request_id"}
    data = await wait_done(http, srv, body["data"]["request_id"])
    assert data["status"] == "done" and data["progress"] == 100.0
    assert data["result"].startswith("FAST-OCR 300x200") and "lang:en" in data["result"]
    assert set(data) >= {"status", "progress", "result", "result_url", "preview", "results_alt_formats"}


@pytest.mark.parametrize("flag", ["true", "1", "True", "false", "0"])
async def test_booleans_accept_every_documented_spelling(http, srv, flag):
    status, body = await submit(http, srv, image=png(), return_result_in_response=flag)
    assert status == 200
    data = await wait_done(http, srv, body["data"]["request_id"])
    inline = flag.lower() in ("true", "1")
    assert (data["result"] is not None) == inline and data["result_url"]


async def test_result_by_signed_link_needs_no_auth_and_expires(http, srv):
    _, body = await submit(http, srv, image=png(), format="json")
    data = await wait_done(http, srv, body["data"]["request_id"])
    assert data["result"] is None
    async with http.get(data["result_url"]) as r:
        doc = json.loads(await r.text())
    assert r.status == 200 and doc["engine"] == "fast" and doc["blocks"][0]["lines"][0]["confidence"] == 1.0
    assert srv.counters.downloads_with_auth == 0
    srv.faults.expire_result_link = FaultRule(count=1)
    _, body = await submit(http, srv, image=png(text="other"))
    data = await wait_done(http, srv, body["data"]["request_id"])
    async with http.get(data["result_url"]) as r:
        assert r.status == 403 and "expired" in await r.text()
    fresh = await wait_done(http, srv, body["data"]["request_id"])  # a new poll gives a fresh link
    async with http.get(fresh["result_url"]) as r:
        assert r.status == 200
    async with http.get(fresh["result_url"].replace("sig=", "sig=0")) as r:
        assert r.status == 403


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}])
async def test_bad_token_gets_the_401_envelope_on_every_route(http, srv, headers):
    for method, path in (("GET", "/models"), ("GET", "/balance"), ("GET", "/request-status/x"),
                         ("POST", "/img2txt"), ("POST", "/img2txt/price-calculation")):
        async with http.request(method, srv.base_url + V1 + path, headers=headers) as r:
            assert r.status == 401
            assert await r.json() == {"data": None, "message": "Unauthorized user.", "errors": [], "statusCode": 401}


@pytest.mark.parametrize("fields, field, message", [
    (dict(image=None), "image", "The image field is required."),
    (dict(image=b"just text, not an image"), "image", "must be a file of type"),
    (dict(image=b""), "image", "must be a file"),
    (dict(image=png(), model="No_Such"), "model", "The selected model does not exist."),
    (dict(image=png(), model="Flux1schnell"), "model", "does not support Image To Text"),
    (dict(image=png(), model=""), "model", "The model field is required."),
    (dict(image=png(), format="pdf"), "format", "invalid"),
    (dict(image=png(), return_result_in_response="maybe"), "return_result_in_response", "true or false"),
    (dict(image=png((100, 100))), "image", "dimensions"),
    (dict(image=png((5000, 200))), "image", "dimensions"),
    (dict(image=png(), webhook_url="http://example.org/hook"), "webhook_url", "HTTPS"),
    (dict(image=png(), webhook_url="https://example.org/" + "a" * 2048), "webhook_url", "2048"),
])
async def test_validation_errors_use_the_laravel_422_form(http, srv, fields, field, message):
    status, body = await submit(http, srv, **fields)
    assert status == 422 and field in body["errors"] and message in " ".join(body["errors"][field])
    assert body["message"] == next(iter(body["errors"].values()))[0]
    assert srv.counters.jobs_created == 0


async def test_oversize_upload_is_rejected(http, srv):
    big = os.urandom(11 * 1024 * 1024)
    status, body = await submit(http, srv, image=big)
    assert status == 422 and "10240 kilobytes" in body["errors"]["image"][0]


async def test_non_multipart_and_garbage_bodies_never_crash(http, srv):
    for data, ctype in ((b"{}", "application/json"), (b"\x00\xff" * 100, "multipart/form-data; boundary=x"),
                        (b"", "text/plain")):
        async with http.post(srv.base_url + V1 + "/img2txt", data=data,
                             headers={**AUTH, "Content-Type": ctype}) as r:
            assert r.status == 422 and "errors" in await r.json()
    status, _ = await submit(http, srv, image=png())
    assert status == 200  # still serving


async def test_status_404_envelope_and_lost_ids(http, srv):
    async with http.get(f"{srv.base_url}{V1}/request-status/not-a-job", headers=AUTH) as r:
        assert r.status == 404
        assert await r.json() == {"data": None, "message": "Request not found.", "errors": [], "statusCode": 404}
    srv.faults.lose_request_id = FaultRule(count=1)
    _, body = await submit(http, srv, image=png())
    async with http.get(f"{srv.base_url}{V1}/request-status/{body['data']['request_id']}", headers=AUTH) as r:
        assert r.status == 404


async def test_models_paginate_and_filter(http, srv):
    async with http.get(srv.base_url + V1 + "/models", params={"per_page": "1", "page": "2"}, headers=AUTH) as r:
        body = await r.json()
    assert body["meta"]["current_page"] == 2 and body["meta"]["total"] == 3 and len(body["data"]) == 1
    assert body["links"]["prev"] and body["links"]["next"]
    async with http.get(srv.base_url + V1 + "/models", params={"filter[inference_types]": "img2txt"},
                        headers=AUTH) as r:
        body = await r.json()
    slugs = {m["slug"] for m in body["data"]}
    assert slugs == {"Nanonets_Ocr_S_F16", "LightOnOcr_3_4B_Q8"}
    limits = body["data"][0]["info"]["limits"]
    assert limits == {"min_width": 128, "max_width": 4096, "min_height": 127, "max_height": 4096}


async def test_price_by_image_by_size_and_as_json(http, srv):
    async with http.post(srv.base_url + V1 + "/img2txt/price-calculation", data=form(png()), headers=AUTH) as r:
        by_image = (await r.json())["data"]["price"]
    async with http.post(srv.base_url + V1 + "/img2txt/price-calculation",
                         data={"model": "Nanonets_Ocr_S_F16", "width": "300", "height": "200"}, headers=AUTH) as r:
        by_size = (await r.json())["data"]["price"]
    async with http.post(srv.base_url + V1 + "/img2txt/price-calculation",
                         json={"model": "Nanonets_Ocr_S_F16", "width": 300, "height": 200}, headers=AUTH) as r:
        by_json = (await r.json())["data"]["price"]
    assert by_image == by_size == by_json > 0
    async with http.post(srv.base_url + V1 + "/img2txt/price-calculation", json={"model": "x"}, headers=AUTH) as r:
        assert r.status == 422


async def test_balance_is_consumed_and_exhaustion_is_the_documented_422(http):
    async with EmbeddedServer(ServerConfig(engine="fast", tokens=(TOKEN,), balance=0.0002)) as srv:
        async with http.get(srv.base_url + V1 + "/balance", headers=AUTH) as r:
            assert (await r.json())["data"]["balance"] == 0.0002
        status, body = await submit(http, srv, image=png())
        await wait_done(http, srv, body["data"]["request_id"])
        async with http.get(srv.base_url + V1 + "/balance", headers=AUTH) as r:
            assert (await r.json())["data"]["balance"] < 0.0002
        status, body = await submit(http, srv, image=png((2000, 2000)))
        assert status == 422 and body == {"message": "Not enough balance.", "errors": {"balance": ["Not enough balance."]}}


async def test_basic_profile_limits_per_minute_and_per_day_with_headers(http):
    clock = Clock()
    async with EmbeddedServer(ServerConfig(engine="fast", tokens=(TOKEN,), profile="basic", clock=clock)) as srv:
        for i in range(5):
            async with http.post(srv.base_url + V1 + "/img2txt", data=form(png()), headers=AUTH) as r:
                assert r.status == 200
                assert r.headers["X-RateLimit-Limit"] == "5" and r.headers["X-RateLimit-Remaining"] == str(4 - i)
        async with http.post(srv.base_url + V1 + "/img2txt", data=form(png()), headers=AUTH) as r:
            assert r.status == 429 and await r.json() == {"message": "Too Many Attempts."}
            assert r.headers["X-RateLimit-Type"] == "minute" and 0 < int(r.headers["Retry-After"]) <= 61
            assert r.headers["X-RateLimit-Daily-Limit"] == "50" and r.headers["X-RateLimit-Daily-Remaining"] == "45"
        for minute in range(9):  # 45 more over nine minutes: the day's 50 are spent
            clock.now += 60
            for _ in range(5):
                async with http.post(srv.base_url + V1 + "/img2txt", data=form(png()), headers=AUTH) as r:
                    assert r.status == 200
        clock.now += 60
        async with http.post(srv.base_url + V1 + "/img2txt", data=form(png()), headers=AUTH) as r:
            assert r.status == 429 and r.headers["X-RateLimit-Type"] == "daily"
            assert int(r.headers["Retry-After"]) > 60
        async with http.get(srv.base_url + V1 + "/models", headers=AUTH) as r:
            assert r.status == 200  # models and balance are never limited


async def test_injected_429_5xx_and_drops(http, srv):
    srv.faults.http_429 = FaultRule(count=1)
    srv.faults.retry_after = 7
    status, body = await submit(http, srv, image=png())
    assert status == 429 and body == {"message": "Too Many Attempts."}
    srv.faults.http_5xx = FaultRule(count=1)
    async with http.post(srv.base_url + V1 + "/img2txt", data=form(png()), headers=AUTH) as r:
        assert r.status in (500, 502, 503) and r.content_type == "text/html"
    for fault, jobs in (("drop_before_create", 0), ("drop_after_create", 1)):
        before = srv.counters.jobs_created
        setattr(srv.faults, fault, FaultRule(count=1))
        with pytest.raises(aiohttp.ClientError):
            await submit(http, srv, image=png())
        assert srv.counters.jobs_created - before == jobs
    assert srv.counters.dropped == 2 and srv.counters.rate_limited == 1 and srv.counters.server_errors == 1


async def test_job_error_and_never_finishing_jobs(http, srv):
    srv.faults.job_error = FaultRule(count=1)
    srv.faults.job_error_code = "CONTEXT_LENGTH_EXCEEDED"
    _, body = await submit(http, srv, image=png())
    data = await wait_done(http, srv, body["data"]["request_id"])
    assert data["status"] == "error" and data["error_code"] == "CONTEXT_LENGTH_EXCEEDED" and data["error"]
    srv.faults.job_never_finish = FaultRule(count=1)
    _, body = await submit(http, srv, image=png(text="stuck"))
    rid = body["data"]["request_id"]
    for _ in range(20):
        async with http.get(f"{srv.base_url}{V1}/request-status/{rid}", headers=AUTH) as r:
            assert (await r.json())["data"]["status"] == "processing"
    srv.release_stuck_jobs()
    assert (await wait_done(http, srv, rid))["status"] == "done"


async def test_webhooks_are_signed_exactly_as_documented_and_retried(http, srv):
    received: list[tuple[dict, bytes]] = []
    answers = iter([500, 200, 200, 200, 200, 200])
    got_completed = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        raw = await request.read()
        received.append((dict(request.headers), raw))
        seen = [h["X-DeAPI-Event"] for h, _ in received]
        if "job.completed" in seen and seen.count("job.processing") >= 2:  # completed, and the retry came
            got_completed.set()
        return web.Response(status=next(answers))

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        _, body = await submit(http, srv, image=png(), return_result_in_response="true",
                               webhook_url=f"http://127.0.0.1:{port}/hook")
        await asyncio.wait_for(got_completed.wait(), 10)
    finally:
        await runner.cleanup()
    events = [h["X-DeAPI-Event"] for h, _ in received]
    assert events.count("job.processing") == 2 and events.count("job.completed") == 1
    for headers, raw in received:
        expected = "sha256=" + hmac.new(b"s" * 40, headers["X-DeAPI-Timestamp"].encode() + b"." + raw,
                                        hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-DeAPI-Signature"], expected)
        assert abs(int(headers["X-DeAPI-Timestamp"]) - time.time()) < 60
        assert headers["User-Agent"] == "DeAPI-Webhook/1.0" and headers["X-DeAPI-Delivery-Id"]
        payload = json.loads(raw)
        assert payload["delivery_id"] == headers["X-DeAPI-Delivery-Id"]
        assert payload["data"]["job_request_id"] == body["data"]["request_id"]
    completed = json.loads(next(raw for h, raw in received if h["X-DeAPI-Event"] == "job.completed"))
    assert completed["data"]["status"] == "done" and completed["data"]["result"].startswith("FAST-OCR")
    assert completed["data"]["job_type"] == "img2txt" and completed["timestamp"].endswith("Z")
    processing_ids = [h["X-DeAPI-Delivery-Id"] for h, _ in received if h["X-DeAPI-Event"] == "job.processing"]
    assert processing_ids[0] == processing_ids[1]  # the retry re-sends the same delivery


async def test_admin_routes_set_faults_and_read_counters(http, srv):
    async with http.post(srv.base_url + "/_admin/faults", json={"job_error": {"count": 2}, "latency": 0.0}) as r:
        assert r.status == 200 and (await r.json())["job_error"]["count"] == 2
    async with http.post(srv.base_url + "/_admin/faults", json={"no_such_fault": 1}) as r:
        assert r.status == 400
    await submit(http, srv, image=png())
    async with http.get(srv.base_url + "/_admin/counters") as r:
        counters = await r.json()
    assert counters["submits"] == 1 and counters["jobs_created"] == 1 and len(counters["submits_by_hash"]) == 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_python_m_pipeline_serve_answers_the_documented_curl(tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "serve", "--port", str(port), "--engine", "fast",
                             "--token", "dev-token"], cwd=Path(__file__).resolve().parents[1],
                            stderr=subprocess.PIPE, text=True)
    try:
        assert "deAPI-compatible server on" in proc.stderr.readline()
        page = tmp_path / "page.png"
        page.write_bytes(png())
        out = subprocess.run(["curl", "-s", "-H", "Authorization: Bearer dev-token", "-H", "Accept: application/json",
                              "-F", f"image=@{page}", "-F", "model=Nanonets_Ocr_S_F16",
                              "-F", "return_result_in_response=true",
                              f"http://127.0.0.1:{port}/api/v1/client/img2txt"], capture_output=True, text=True)
        rid = json.loads(out.stdout)["data"]["request_id"]
        for _ in range(200):
            out = subprocess.run(["curl", "-s", "-H", "Authorization: Bearer dev-token",
                                  f"http://127.0.0.1:{port}/api/v1/client/request-status/{rid}"],
                                 capture_output=True, text=True)
            data = json.loads(out.stdout)["data"]
            if data["status"] == "done":
                break
            time.sleep(0.02)
        assert data["result"].startswith("FAST-OCR")
    finally:
        proc.terminate()
        proc.wait(10)


def test_serve_refuses_to_start_without_a_token():
    env = {k: v for k, v in os.environ.items() if k != "DEAPI_API_KEY"}
    proc = subprocess.run([sys.executable, "-m", "pipeline", "serve", "--port", "0"], env=env,
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 2 and "--token" in proc.stderr
