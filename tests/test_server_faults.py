"""Every injectable fault, driven through real HTTP: 429 bursts, HTML 5xx, dropped connections
before and after the job exists, failing / never-finishing jobs, lost ids, expired links,
latency; the seeded rule semantics; and the admin routes that flip faults at run time."""

from __future__ import annotations

import random

import aiohttp
import pytest

from pipeline.server import EmbeddedServer, FaultConfig, FaultRule, ServerConfig
from test_server_support import AUTH, TOKEN, V1, form, get_status, png, submit, wait_done, wait_for


@pytest.fixture
async def srv():
    async with EmbeddedServer(ServerConfig(engine="fast", tokens=(TOKEN,), admin=True)) as s:
        yield s


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


def test_rule_fires_count_times_then_by_seeded_rate():
    rule = FaultRule(count=2, rate=0.5)
    rng = random.Random(7)
    first = [rule.fire(rng) for _ in range(40)]
    assert first[:2] == [True, True] and rule.count == 0
    assert 5 < sum(first[2:]) < 33  # the rate part is neither always nor never
    rule_a, rule_b = FaultRule(rate=0.3), FaultRule(rate=0.3)
    rng_a, rng_b = random.Random(1), random.Random(1)
    assert [rule_a.fire(rng_a) for _ in range(50)] == [rule_b.fire(rng_b) for _ in range(50)]  # reproducible
    assert not any(FaultRule().fire(rng) for _ in range(100))


@pytest.mark.parametrize("doc", [{"nope": 1}, {"http_5xx": {"count": -1}}, {"http_5xx": {"rate": 2}},
                                 {"http_5xx": "x"}, {"latency": "slow"}, {"endpoints": ["submit", "moon"]},
                                 {"http_429_daily": "perhaps"}, [1, 2]])
def test_fault_documents_are_checked_and_applied_all_or_nothing(doc):
    faults = FaultConfig()
    with pytest.raises(ValueError):
        faults.update({"job_error": 3, **doc} if isinstance(doc, dict) else doc)
    assert faults.job_error == FaultRule()  # nothing applied


def test_fault_documents_accept_every_rule_spelling():
    faults = FaultConfig()
    faults.update({"job_error": 3, "http_5xx": "0:0.25", "drop_after_create": {"count": 1, "rate": 0.5},
                   "endpoints": "submit,download", "retry_after": "9", "http_429_daily": "true", "latency": 0.5})
    assert faults.job_error == FaultRule(3) and faults.http_5xx == FaultRule(0, 0.25)
    assert faults.drop_after_create == FaultRule(1, 0.5) and faults.endpoints == ("submit", "download")
    assert faults.retry_after == 9 and faults.http_429_daily is True and faults.latency == 0.5


async def test_injected_429_burst_has_the_documented_body_and_headers(http, srv):
    srv.faults.http_429 = FaultRule(count=2)
    srv.faults.retry_after = 7
    for _ in range(2):
        async with http.post(srv.base_url + V1 + "/img2txt", data=form(png()), headers=AUTH) as r:
            assert r.status == 429 and await r.json() == {"message": "Too Many Attempts."}
            assert r.headers["Retry-After"] == "7" and r.headers["X-RateLimit-Type"] == "minute"
            assert {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Daily-Limit",
                    "X-RateLimit-Daily-Remaining"} <= set(r.headers)
    srv.faults.http_429, srv.faults.http_429_daily = FaultRule(count=1), True
    async with http.get(srv.base_url + V1 + "/request-status/x", headers=AUTH) as r:
        assert r.status == 429 and r.headers["X-RateLimit-Type"] == "daily"
    assert (await submit(http, srv.base_url, image=png()))[0] == 200
    assert srv.counters.rate_limited == 3 and srv.counters.jobs_created == 1


async def test_faults_apply_only_to_the_chosen_endpoints(http, srv):
    srv.faults.endpoints = ("download",)
    srv.faults.http_5xx = FaultRule(count=1)
    status, body = await submit(http, srv.base_url, image=png())
    assert status == 200  # submit is not a chosen endpoint
    data = await wait_done(http, srv.base_url, body["data"]["request_id"])
    async with http.get(data["result_url"]) as r:
        assert r.status in (500, 502, 503) and r.content_type == "text/html"
    async with http.get(data["result_url"]) as r:
        assert r.status == 200
    srv.faults.endpoints, srv.faults.http_429 = ("models", "balance", "price"), FaultRule(count=3)
    for method, path in (("GET", "/models"), ("GET", "/balance"), ("POST", "/img2txt/price-calculation")):
        async with http.request(method, srv.base_url + V1 + path, headers=AUTH) as r:
            assert r.status == 429


async def test_5xx_bodies_are_html_like_a_gateway(http, srv):
    srv.faults.http_5xx = FaultRule(count=3)
    for _ in range(3):
        async with http.post(srv.base_url + V1 + "/img2txt", data=form(png()), headers=AUTH) as r:
            assert r.status in (500, 502, 503) and r.content_type == "text/html"
            assert (await r.text()).lstrip().startswith("<html>")
    assert srv.counters.server_errors == 3 and srv.counters.jobs_created == 0


async def test_dropped_connections_before_and_after_the_job_exists(http, srv):
    srv.faults.drop_before_create = FaultRule(count=1)
    with pytest.raises(aiohttp.ClientError):
        await submit(http, srv.base_url, image=png(text="before"))
    assert srv.counters.jobs_created == 0 and srv.counters.dropped == 1
    srv.faults.drop_after_create = FaultRule(count=1)
    with pytest.raises(aiohttp.ClientError):
        await submit(http, srv.base_url, image=png(text="after"))
    assert srv.counters.jobs_created == 1 and srv.counters.dropped == 2  # the job exists; its id never arrived
    job = next(iter(srv.state.store))
    await wait_for(lambda: job.status == "done")
    assert (await submit(http, srv.base_url, image=png()))[0] == 200  # the server keeps serving


async def test_job_error_carries_the_chosen_error_code(http, srv):
    srv.faults.job_error = FaultRule(count=1)
    srv.faults.job_error_code = "CONTEXT_LENGTH_EXCEEDED"
    _, body = await submit(http, srv.base_url, image=png(), return_result_in_response="true")
    data = await wait_done(http, srv.base_url, body["data"]["request_id"])
    assert data["status"] == "error" and data["error_code"] == "CONTEXT_LENGTH_EXCEEDED" and data["error"]
    assert data["result"] is None and data["result_url"] is None
    _, body = await submit(http, srv.base_url, image=png())
    assert (await wait_done(http, srv.base_url, body["data"]["request_id"]))["status"] == "done"


async def test_a_never_finishing_job_blocks_no_other_job_until_released(http, srv):
    srv.faults.job_never_finish = FaultRule(count=1)
    _, body = await submit(http, srv.base_url, image=png(text="stuck"))
    stuck = body["data"]["request_id"]
    others = [(await submit(http, srv.base_url, image=png(text=str(i))))[1]["data"]["request_id"] for i in range(5)]
    for rid in others:
        assert (await wait_done(http, srv.base_url, rid))["status"] == "done"
    code, data = await get_status(http, srv.base_url, stuck)
    assert data["data"]["status"] == "processing" and 0 < data["data"]["progress"] < 100
    async with http.post(srv.base_url + "/_admin/release", headers=AUTH) as r:
        assert await r.json() == {"released": 1}
    assert (await wait_done(http, srv.base_url, stuck))["status"] == "done"


async def test_lost_request_id_answers_404_while_the_job_still_runs(http, srv):
    srv.faults.lose_request_id = FaultRule(count=1)
    _, body = await submit(http, srv.base_url, image=png())
    code, data = await get_status(http, srv.base_url, body["data"]["request_id"])
    assert code == 404 and data["message"] == "Request not found."
    assert srv.counters.jobs_created == 1


async def test_expired_result_link_is_a_clear_403_and_the_next_poll_has_a_fresh_one(http, srv):
    srv.faults.expire_result_link = FaultRule(count=1)
    _, body = await submit(http, srv.base_url, image=png())
    data = await wait_done(http, srv.base_url, body["data"]["request_id"])
    async with http.get(data["result_url"]) as r:
        assert r.status == 403 and r.content_type == "application/json"
        assert "expired" in (await r.json())["message"]
    fresh = await wait_done(http, srv.base_url, body["data"]["request_id"])
    assert fresh["result_url"] != data["result_url"]
    async with http.get(fresh["result_url"]) as r:
        assert r.status == 200 and (await r.text()).startswith("FAST-OCR")


async def test_links_expire_with_the_clock(http):
    from test_server_support import Clock
    clock = Clock()
    async with EmbeddedServer(ServerConfig(engine="fast", tokens=(TOKEN,), clock=clock, result_ttl_s=600)) as s:
        _, body = await submit(http, s.base_url, image=png())
        url = (await wait_done(http, s.base_url, body["data"]["request_id"]))["result_url"]
        clock.now += 599
        async with http.get(url) as r:
            assert r.status == 200
        clock.now += 2
        async with http.get(url) as r:
            assert r.status == 403 and "expired" in (await r.json())["message"]


async def test_latency_keeps_jobs_pending_and_many_wait_side_by_side(http):
    cfg = ServerConfig(engine="fast", tokens=(TOKEN,), faults=FaultConfig(latency=600.0))
    async with EmbeddedServer(cfg) as s:
        ids = [(await submit(http, s.base_url, image=png(text=str(i))))[1]["data"]["request_id"] for i in range(64)]
        states = {(await get_status(http, s.base_url, rid))[1]["data"]["status"] for rid in ids}
        assert states == {"pending"} and len(s.state.jobs.tasks) == 64  # 64 concurrent tasks, none serialised
        s.faults.latency = 0.0  # new jobs skip the wait; the old ones still sleep
        _, body = await submit(http, s.base_url, image=png(text="quick"))
        assert (await wait_done(http, s.base_url, body["data"]["request_id"]))["status"] == "done"
        assert (await get_status(http, s.base_url, ids[0]))[1]["data"]["status"] == "pending"


def test_latency_jitter_stays_within_bounds_and_never_below_zero():
    from pipeline.server.app import ServerState
    state = ServerState(ServerConfig(engine="fast", faults=FaultConfig(latency=0.1, latency_jitter=0.3)))
    draws = [state.jobs._latency() for _ in range(200)]
    assert min(draws) == 0.0 and max(draws) <= 0.4 and len(set(draws)) > 50


async def test_admin_routes_read_and_set_faults_and_counters(http, srv):
    async with http.post(srv.base_url + "/_admin/faults", json={"job_error": {"count": 2}, "latency": 0.0},
                         headers=AUTH) as r:
        assert r.status == 200 and (await r.json())["job_error"] == {"count": 2, "rate": 0.0}
    assert srv.faults.job_error == FaultRule(count=2)  # the live object changed
    async with http.post(srv.base_url + "/_admin/faults", json={"no_such_fault": 1}, headers=AUTH) as r:
        assert r.status == 400 and "unknown fault" in (await r.json())["message"]
    async with http.post(srv.base_url + "/_admin/faults", data=b"{oops", headers=AUTH) as r:
        assert r.status == 400
    async with http.post(srv.base_url + "/_admin/faults", json={"http_5xx": 1}) as r:
        assert r.status == 401  # admin routes need the bearer token too
    async with http.get(srv.base_url + "/_admin/faults", headers=AUTH) as r:
        assert (await r.json())["http_5xx"] == {"count": 0, "rate": 0.0}
    _, body = await submit(http, srv.base_url, image=png())
    await wait_done(http, srv.base_url, body["data"]["request_id"])
    async with http.get(srv.base_url + "/_admin/counters", headers=AUTH) as r:
        counters = await r.json()
    assert counters["submits"] == 1 and counters["jobs_created"] == 1 and counters["jobs_failed"] == 1
    assert len(counters["submits_by_hash"]) == 1 and counters["status_polls"] >= 1
    assert counters["api_calls"] == counters["submits"] + counters["status_polls"] + counters["downloads"]


async def test_the_job_store_forgets_the_oldest_finished_jobs(http):
    async with EmbeddedServer(ServerConfig(engine="fast", tokens=(TOKEN,), max_jobs_kept=3)) as s:
        ids = []
        for i in range(5):
            _, body = await submit(http, s.base_url, image=png(text=str(i)))
            ids.append(body["data"]["request_id"])
            await wait_done(http, s.base_url, ids[-1])
        assert len(s.state.store) == 3
        assert (await get_status(http, s.base_url, ids[0]))[0] == 404
        assert (await get_status(http, s.base_url, ids[-1]))[0] == 200


async def test_same_seed_same_faults_over_http(http):
    outcomes = []
    for _ in range(2):
        cfg = ServerConfig(engine="fast", tokens=(TOKEN,), seed=42, faults=FaultConfig(http_5xx=FaultRule(rate=0.5)))
        async with EmbeddedServer(cfg) as s:
            codes = []
            for _ in range(12):
                async with http.get(s.base_url + V1 + "/request-status/x", headers=AUTH) as r:
                    codes.append(r.status)
            outcomes.append(codes)
    assert outcomes[0] == outcomes[1] and {404} < set(outcomes[0])
