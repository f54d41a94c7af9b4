"""Conformance of the deAPI-compatible server's routes over real HTTP: status codes, body shapes,
content types, auth, the result link, models, price and balance (fast engine)."""

from __future__ import annotations

import json

import aiohttp
import pytest

from pipeline.server import EmbeddedServer, ServerConfig
from test_server_support import AUTH, MODEL, OTHER_TOKEN, TOKEN, V1, form, get_status, png, submit, wait_done


@pytest.fixture
async def srv():
    async with EmbeddedServer(ServerConfig(engine="fast", tokens=(TOKEN, OTHER_TOKEN), allow_http_webhooks=True)) as s:
        yield s


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


async def test_submit_answers_only_a_uuid_and_status_carries_inline_text(http, srv):
    status, body = await submit(http, srv.base_url, image=png(), return_result_in_response="true", language="en")
    assert status == 200 and set(body) == {"data"} and set(body["data"]) == {"request_id"}
    rid = body["data"]["request_id"]
    assert len(rid) == 36 and rid.count("-") == 4
    data = await wait_done(http, srv.base_url, rid)
    assert set(data) == {"status", "progress", "result", "result_url", "preview", "results_alt_formats",
                         "error", "error_code"}
    assert data["status"] == "done" and data["progress"] == 100.0 and isinstance(data["progress"], float)
    assert data["result"].startswith("FAST-OCR 300x200") and "lang:en" in data["result"]
    assert data["preview"] is None and data["results_alt_formats"] is None and data["error"] is None
    assert data["result_url"].startswith(srv.base_url + "/results/")


@pytest.mark.parametrize("flag, inline", [("true", True), ("1", True), ("True", True), ("false", False),
                                          ("0", False), (None, False)])
async def test_return_result_in_response_accepts_every_documented_spelling(http, srv, flag, inline):
    status, body = await submit(http, srv.base_url, image=png(), return_result_in_response=flag)
    assert status == 200
    data = await wait_done(http, srv.base_url, body["data"]["request_id"])
    assert (data["result"] is not None) == inline and data["result_url"]


async def test_text_result_by_signed_link_needs_no_auth(http, srv):
    _, body = await submit(http, srv.base_url, image=png(), language="de")
    data = await wait_done(http, srv.base_url, body["data"]["request_id"])
    assert data["result"] is None
    async with http.get(data["result_url"]) as r:
        assert r.status == 200 and r.content_type == "text/plain" and r.charset == "utf-8"
        assert (await r.text()).startswith("FAST-OCR 300x200") and "lang:de" in await r.text()
    assert srv.counters.downloads == 1 and srv.counters.downloads_with_auth == 0
    async with http.get(data["result_url"], headers=AUTH) as r:  # a client must not do this; it is counted
        assert r.status == 200
    assert srv.counters.downloads_with_auth == 1


async def test_json_format_inline_is_a_json_string_of_the_ocr_page(http, srv):
    _, body = await submit(http, srv.base_url, image=png(), format="json", return_result_in_response="1")
    data = await wait_done(http, srv.base_url, body["data"]["request_id"])
    assert isinstance(data["result"], str)
    doc = json.loads(data["result"])
    assert set(doc) == {"engine", "width", "height", "text", "blocks"}
    assert doc["engine"] == "fast" and (doc["width"], doc["height"]) == (300, 200)
    line = doc["blocks"][0]["lines"][0]
    assert set(line) == {"text", "box", "confidence"} and len(line["box"]) == 4
    assert doc["text"].startswith("FAST-OCR")
    async with http.get(data["result_url"]) as r:
        assert r.status == 200 and r.content_type == "application/json"
        assert json.loads(await r.text()) == doc


async def test_tampered_or_foreign_links_are_refused_with_a_json_403(http, srv):
    _, body = await submit(http, srv.base_url, image=png())
    url = (await wait_done(http, srv.base_url, body["data"]["request_id"]))["result_url"]
    for bad in (url.replace("sig=", "sig=0"), url.replace("expires=", "expires=9"), url.split("?")[0]):
        async with http.get(bad) as r:
            assert r.status == 403 and r.content_type == "application/json"
            assert "invalid" in (await r.json())["message"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"},
                                     {"Authorization": "Bearer"}, {"Authorization": f"Token {TOKEN}"}])
async def test_bad_token_gets_the_401_envelope_on_every_api_route(http, srv, headers):
    for method, path in (("GET", V1 + "/models"), ("GET", V1 + "/balance"), ("GET", V1 + "/request-status/x"),
                         ("POST", V1 + "/img2txt"), ("POST", V1 + "/img2txt/price-calculation"),
                         ("POST", "/api/v2/images/ocr"), ("GET", "/api/v2/jobs/x")):
        async with http.request(method, srv.base_url + path, headers=headers) as r:
            assert r.status == 401 and r.content_type == "application/json"
            assert await r.json() == {"data": None, "message": "Unauthorized user.", "errors": [], "statusCode": 401}
    assert srv.counters.submits == 0 and srv.counters.auth_failures == 7


async def test_unknown_ids_other_tokens_jobs_and_unknown_routes_are_404_envelopes(http, srv):
    code, body = await get_status(http, srv.base_url, "c08a339c-73e5-4d67-a4d5-231302fbff9a")
    assert code == 404 and body == {"data": None, "message": "Request not found.", "errors": [], "statusCode": 404}
    _, sub = await submit(http, srv.base_url, image=png())
    other = {"Authorization": f"Bearer {OTHER_TOKEN}"}
    code, body = await get_status(http, srv.base_url, sub["data"]["request_id"], headers=other)
    assert code == 404  # a job belongs to the token that created it
    async with http.get(srv.base_url + "/api/v1/client/nope", headers=AUTH) as r:
        assert r.status == 404 and (await r.json())["statusCode"] == 404
    async with http.delete(srv.base_url + V1 + "/img2txt", headers=AUTH) as r:
        assert r.status == 405 and (await r.json())["statusCode"] == 405 and "POST" in r.headers["Allow"]
    async with http.get(srv.base_url + "/_admin/counters", headers=AUTH) as r:
        assert r.status == 404  # admin routes exist only with admin=True


async def test_models_paginate_filter_and_reject_bad_parameters(http, srv):
    async with http.get(srv.base_url + V1 + "/models", headers=AUTH) as r:
        body = await r.json()
    assert set(body) == {"data", "links", "meta"} and body["meta"]["per_page"] == 15
    assert body["meta"]["total"] == 4 and body["links"]["next"] is None
    async with http.get(srv.base_url + V1 + "/models", params={"per_page": "1", "page": "2"}, headers=AUTH) as r:
        body = await r.json()
    assert body["meta"]["current_page"] == 2 and body["meta"]["last_page"] == 4 and len(body["data"]) == 1
    assert "page=1" in body["links"]["prev"] and "page=3" in body["links"]["next"]
    assert body["meta"]["from"] == body["meta"]["to"] == 2
    async with http.get(srv.base_url + V1 + "/models", params={"filter[inference_types]": "img2txt"},
                        headers=AUTH) as r:
        body = await r.json()
    assert {m["slug"] for m in body["data"]} == {MODEL, "LightOnOcr_3_4B_Q8", "Nanonets_Ocr_S_Hosted"}
    for m in body["data"]:
        assert m["inference_types"] == ["img2txt"]
        assert m["info"]["limits"] == {"min_width": 128, "max_width": 4096, "min_height": 127, "max_height": 4096}
    async with http.get(srv.base_url + V1 + "/models", params={"filter[inference_types]": "txt2img,aud2txt"},
                        headers=AUTH) as r:
        assert [m["slug"] for m in (await r.json())["data"]] == ["Flux1schnell"]
    for bad in ({"per_page": "x"}, {"page": "0"}, {"page": "-1"}):
        async with http.get(srv.base_url + V1 + "/models", params=bad, headers=AUTH) as r:
            assert r.status == 422 and next(iter((await r.json())["errors"])) in bad
    assert srv.counters.models_calls == 7


async def test_price_by_image_by_form_size_and_by_json(http, srv):
    url = srv.base_url + V1 + "/img2txt/price-calculation"
    async with http.post(url, data=form(png()), headers=AUTH) as r:
        assert r.status == 200
        by_image = (await r.json())["data"]["price"]
    async with http.post(url, data={"model": MODEL, "width": "300", "height": "200"}, headers=AUTH) as r:
        by_size = (await r.json())["data"]["price"]
    async with http.post(url, json={"model": MODEL, "width": 300, "height": 200}, headers=AUTH) as r:
        by_json = (await r.json())["data"]["price"]
    async with http.post(url, data=form(None, width="300", height="200"), headers=AUTH) as r:
        by_multipart_size = (await r.json())["data"]["price"]
    assert by_image == by_size == by_json == by_multipart_size and isinstance(by_image, float) and by_image > 0
    async with http.post(url, json={"model": MODEL, "width": 3000, "height": 2000}, headers=AUTH) as r:
        assert (await r.json())["data"]["price"] > by_image  # bigger pages cost more
    assert srv.counters.price_calls == 5


@pytest.mark.parametrize("payload, field", [
    ({"model": MODEL}, "image"),
    ({"model": "No_Such", "width": 300, "height": 200}, "model"),
    ({"model": "Flux1schnell", "width": 300, "height": 200}, "model"),
    ({"width": 300, "height": 200}, "model"),
    ({"model": MODEL, "width": "wide", "height": 200}, "width"),
    ({"model": MODEL, "width": 300}, "height"),
    ({"model": MODEL, "width": 300, "height": 0}, "height"),
    ({"model": MODEL, "width": 9000, "height": 200}, "width"),
    ({"model": MODEL, "image": "placeholder.png"}, "image"),
])
async def test_price_validation_is_the_laravel_422(http, srv, payload, field):
    async with http.post(srv.base_url + V1 + "/img2txt/price-calculation", json=payload, headers=AUTH) as r:
        body = await r.json()
    assert r.status == 422 and field in body["errors"], body
    assert body["message"] == next(iter(body["errors"].values()))[0]


async def test_balance_is_charged_the_quote_refunded_on_failure_and_exhaustion_is_a_422(http):
    async with EmbeddedServer(ServerConfig(engine="fast", tokens=(TOKEN,), balance=0.0003)) as srv:
        async with http.get(srv.base_url + V1 + "/balance", headers=AUTH) as r:
            assert r.status == 200 and await r.json() == {"data": {"balance": 0.0003}}
        async with http.post(srv.base_url + V1 + "/img2txt/price-calculation", data=form(png()), headers=AUTH) as r:
            quote = (await r.json())["data"]["price"]
        _, body = await submit(http, srv.base_url, image=png())
        await wait_done(http, srv.base_url, body["data"]["request_id"])
        async with http.get(srv.base_url + "/api/v2/account/balance", headers=AUTH) as r:
            left = (await r.json())["data"]["balance"]
        assert left == pytest.approx(0.0003 - quote)
        from pipeline.server import FaultRule
        srv.faults.job_error = FaultRule(count=1)
        _, body = await submit(http, srv.base_url, image=png())
        assert (await wait_done(http, srv.base_url, body["data"]["request_id"]))["status"] == "error"
        async with http.get(srv.base_url + V1 + "/balance", headers=AUTH) as r:
            assert (await r.json())["data"]["balance"] == pytest.approx(left)  # failed job refunded
        status, body = await submit(http, srv.base_url, image=png((2000, 2000)))
        assert status == 422
        assert body == {"message": "Not enough balance.", "errors": {"balance": ["Not enough balance."]}}
        assert srv.counters.jobs_created == 2


async def test_v2_aliases_serve_the_same_handlers(http, srv):
    f = form(png(), return_result_in_response="true")
    async with http.post(srv.base_url + "/api/v2/images/ocr", data=f, headers=AUTH) as r:
        rid = (await r.json())["data"]["request_id"]
    for _ in range(2000):
        async with http.get(f"{srv.base_url}/api/v2/jobs/{rid}", headers=AUTH) as r:
            data = (await r.json())["data"]
        if data["status"] == "done":
            break
    assert data["result"].startswith("FAST-OCR")
    async with http.get(srv.base_url + "/api/v2/models", headers=AUTH) as r:
        assert (await r.json())["meta"]["total"] == 4
    async with http.post(srv.base_url + "/api/v2/images/ocr/price", data={"model": MODEL, "width": "300",
                                                                         "height": "200"}, headers=AUTH) as r:
        assert (await r.json())["data"]["price"] > 0


async def test_submit_counters_key_jobs_by_the_sha256_of_the_upload(http, srv):
    import hashlib
    a, b = png(text="a"), png(text="b")
    for image in (a, a, b):
        assert (await submit(http, srv.base_url, image=image))[0] == 200
    assert srv.counters.submits == 3 and srv.counters.jobs_created == 3
    assert srv.counters.submits_by_hash == {hashlib.sha256(a).hexdigest(): 2, hashlib.sha256(b).hexdigest(): 1}
    snap = srv.counters.snapshot()
    assert snap["api_calls"] == srv.counters.api_calls == 3 and snap["submits_by_hash"][hashlib.sha256(b).hexdigest()] == 1


async def test_the_upload_hash_counter_keeps_the_newest_uploads_only(http, srv):
    """A server that reads for months must not keep a key per page it ever read: past ``keep``
    distinct uploads the oldest hash is forgotten, and counted as forgotten."""
    import hashlib
    srv.counters.keep = 2
    images = [png(text=t) for t in "abc"]
    for image in images + images[-1:]:
        assert (await submit(http, srv.base_url, image=image))[0] == 200
    sha = [hashlib.sha256(i).hexdigest() for i in images]
    assert srv.counters.submits_by_hash == {sha[1]: 1, sha[2]: 2}
    assert srv.counters.hashes_forgotten == 1 and srv.counters.jobs_created == 4
    assert srv.counters.snapshot()["hashes_forgotten"] == 1 and "keep" not in srv.counters.snapshot()
