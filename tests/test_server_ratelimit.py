"""Rate limits per token and endpoint: minute and day windows, the 429 body and its six headers,
the headers on allowed requests, and every profile. Time moves by an injected clock, never sleeps."""

from __future__ import annotations

import aiohttp
import pytest

from pipeline.server import EmbeddedServer, ServerConfig
from pipeline.server.ratelimit import RateLimiter
from test_server_support import AUTH, MODEL, OTHER_TOKEN, TOKEN, V1, Clock, form, png

DAY_START = 1_800_000_000 - 1_800_000_000 % 86_400  # midnight UTC


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


async def post_submit(http, srv, token=TOKEN):
    async with http.post(srv.base_url + V1 + "/img2txt", data=form(png()),
                         headers={"Authorization": f"Bearer {token}"}) as r:
        return r.status, dict(r.headers), await r.json()


async def test_basic_submit_limit_per_minute_then_per_day_with_headers(http):
    clock = Clock(DAY_START + 10.0)
    async with EmbeddedServer(ServerConfig(engine="fast", tokens=(TOKEN, OTHER_TOKEN), profile="basic",
                                           clock=clock)) as srv:
        for i in range(5):
            code, h, _ = await post_submit(http, srv)
            assert code == 200
            assert (h["X-RateLimit-Limit"], h["X-RateLimit-Remaining"]) == ("5", str(4 - i))
            assert (h["X-RateLimit-Daily-Limit"], h["X-RateLimit-Daily-Remaining"]) == ("50", str(49 - i))
            assert "X-RateLimit-Type" not in h and "Retry-After" not in h
        code, h, body = await post_submit(http, srv)
        assert code == 429 and body == {"message": "Too Many Attempts."}
        assert h["X-RateLimit-Type"] == "minute" and h["Retry-After"] == "50"  # 10 s into the minute
        assert (h["X-RateLimit-Limit"], h["X-RateLimit-Remaining"]) == ("5", "0")
        assert (h["X-RateLimit-Daily-Limit"], h["X-RateLimit-Daily-Remaining"]) == ("50", "45")
        assert (await post_submit(http, srv, OTHER_TOKEN))[0] == 200  # per token
        for _ in range(9):  # 45 more over nine minutes: the day's 50 are spent
            clock.now += 60
            for _ in range(5):
                assert (await post_submit(http, srv))[0] == 200
        clock.now += 60
        code, h, body = await post_submit(http, srv)
        assert code == 429 and body == {"message": "Too Many Attempts."}
        assert h["X-RateLimit-Type"] == "daily" and h["X-RateLimit-Daily-Remaining"] == "0"
        assert int(h["Retry-After"]) == DAY_START + 86_400 - int(clock.now)
        assert srv.counters.jobs_created == 51 and srv.counters.rate_limited == 2
        clock.now = DAY_START + 86_400  # a new UTC day
        assert (await post_submit(http, srv))[0] == 200


async def test_status_and_price_have_their_own_windows_models_and_balance_none(http):
    clock = Clock(DAY_START)
    async with EmbeddedServer(ServerConfig(engine="fast", tokens=(TOKEN,), profile="basic", clock=clock)) as srv:
        for i in range(50):
            async with http.get(srv.base_url + V1 + "/request-status/none", headers=AUTH) as r:
                assert r.status == 404 and r.headers["X-RateLimit-Remaining"] == str(49 - i)
        async with http.get(srv.base_url + V1 + "/request-status/none", headers=AUTH) as r:
            assert r.status == 429 and r.headers["X-RateLimit-Type"] == "minute"
            assert r.headers["X-RateLimit-Daily-Limit"] == "200"
        async with http.post(srv.base_url + V1 + "/img2txt/price-calculation",
                             json={"model": MODEL, "width": 300, "height": 200}, headers=AUTH) as r:
            assert r.status == 200 and r.headers["X-RateLimit-Limit"] == "50"
        assert (await post_submit(http, srv))[0] == 200  # submit untouched by the status window
        for path in ("/models", "/balance"):
            for _ in range(60):
                async with http.get(srv.base_url + V1 + path, headers=AUTH) as r:
                    assert r.status == 200 and "X-RateLimit-Limit" not in r.headers


async def test_premium_is_300_per_minute_and_unlimited_per_day(http):
    clock = Clock(DAY_START)
    async with EmbeddedServer(ServerConfig(engine="fast", tokens=(TOKEN,), profile="premium", clock=clock)) as srv:
        for _ in range(300):
            async with http.get(srv.base_url + V1 + "/request-status/none", headers=AUTH) as r:
                assert r.status == 404
        async with http.get(srv.base_url + V1 + "/request-status/none", headers=AUTH) as r:
            assert r.status == 429 and r.headers["X-RateLimit-Limit"] == "300"
            assert "X-RateLimit-Daily-Limit" not in r.headers  # no daily cap on premium


async def test_custom_limits_apply_to_the_named_endpoint(http):
    clock = Clock(DAY_START)
    async with EmbeddedServer(ServerConfig(engine="fast", tokens=(TOKEN,), profile="custom", clock=clock,
                                           limits={"submit": (None, 2)})) as srv:
        assert [(await post_submit(http, srv))[0] for _ in range(3)] == [200, 200, 429]
        code, h, _ = await post_submit(http, srv)
        assert code == 429 and h["X-RateLimit-Type"] == "daily" and "X-RateLimit-Limit" not in h
        async with http.get(srv.base_url + V1 + "/request-status/none", headers=AUTH) as r:
            assert r.status == 404  # status stays unlimited


def test_windows_are_fixed_clock_minutes_and_refusals_do_not_count():
    clock = Clock(DAY_START + 59.5)
    rl = RateLimiter({"submit": (2, 3)}, clock)
    assert rl.check("t", "submit").allowed and rl.check("t", "submit").allowed
    refused = rl.check("t", "submit")
    assert not refused.allowed and refused.limit_type == "minute" and refused.retry_after == 1
    clock.now += 1  # the next clock minute: the minute window resets, the day keeps its 2
    v = rl.check("t", "submit")
    assert v.allowed and v.headers["X-RateLimit-Daily-Remaining"] == "0"
    refused = rl.check("t", "submit")
    assert refused.limit_type == "daily" and refused.retry_after == 86_400 - 60


@pytest.mark.parametrize("bad", [dict(profile="gold"), dict(limits={"models": (1, 1)}),
                                 dict(limits={"submit": (0, None)}), dict(tokens=()), dict(engine_workers=0)])
def test_bad_server_config_is_refused_with_a_clear_message(bad):
    with pytest.raises(ValueError) as err:
        ServerConfig(**bad)
    assert str(err.value)
