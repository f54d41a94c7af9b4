"""The client's shared rate limiter on a fake clock (no test sleeps): it never exceeds its
budget over any window, runs close to it, pauses everyone on a 429, closes the day, and takes
corrections from the server's headers; plus one loopback check that it learns the account's
real limits from the server."""

from __future__ import annotations

import asyncio
import io

import pytest
from PIL import Image

from pipeline.deapi import ClientSettings, DeapiClient
from pipeline.deapi.ratelimit import PLANS, DailyBudgetSpent, RateLimiter
from pipeline.server import EmbeddedServer, ServerConfig


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)
        await asyncio.sleep(0)


def max_in_any_window(stamps: list[float], width: float) -> int:
    stamps = sorted(stamps)
    return max(sum(1 for s in stamps[i:] if s < start + width) for i, start in enumerate(stamps))


@pytest.mark.parametrize("per_minute, burst", [(10, 1), (10, 5), (300, 1), (7, 7)])
async def test_never_more_than_per_minute_in_any_60_seconds_and_close_to_the_limit(per_minute, burst):
    t = FakeTime()
    limiter = RateLimiter({"submit": (per_minute, None)}, clock=t.clock, sleep=t.sleep, burst=burst)
    stamps: list[float] = []
    total = per_minute * 5

    async def worker(n: int) -> None:
        for _ in range(n):
            await limiter.acquire("submit")
            stamps.append(t.now)

    await asyncio.gather(*(worker(total // 5) for _ in range(5)))
    assert len(stamps) == total
    assert max_in_any_window(stamps, 60.0) <= per_minute
    # ... and not far below it: five minutes' worth takes a little over four minutes (the first
    # minute's budget is available from the start), never more than five.
    assert 4 * 60 - 1e-6 <= stamps[-1] - stamps[0] <= 5 * 60
    assert limiter.used_today("submit") == total and limiter.waited("submit") > 0


async def test_paced_evenly_not_in_clumps_with_a_burst_of_one():
    t = FakeTime()
    limiter = RateLimiter({"status": (60, None)}, clock=t.clock, sleep=t.sleep)
    stamps = []
    for _ in range(20):
        await limiter.acquire("status")
        stamps.append(t.now)
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert gaps == pytest.approx([1.0] * 19)


async def test_the_daily_budget_closes_the_endpoint_for_the_run():
    t = FakeTime()
    limiter = RateLimiter({"submit": (None, 3)}, clock=t.clock, sleep=t.sleep)
    for _ in range(3):
        await limiter.acquire("submit")
    with pytest.raises(DailyBudgetSpent):
        await limiter.acquire("submit")
    assert limiter.closed("submit") and not limiter.closed("status")
    t.now += 86_400  # even a day later: closed for this run (the next run starts afresh)
    with pytest.raises(DailyBudgetSpent):
        await limiter.acquire("submit")


async def test_a_429_pauses_the_endpoint_for_every_waiter():
    t = FakeTime()
    limiter = RateLimiter({"status": (600, None)}, clock=t.clock, sleep=t.sleep)
    await limiter.acquire("status")
    limiter.pause("status", 30)
    stamps = []

    async def one() -> None:
        await limiter.acquire("status")
        stamps.append(t.now)

    await asyncio.gather(*(one() for _ in range(3)))
    assert min(stamps) >= 30.0
    await limiter.acquire("submit")  # other endpoints are not paused
    limiter.pause("submit", 5)       # an endpoint without limits can still be paused
    before = t.now
    await limiter.acquire("submit")
    assert t.now == pytest.approx(before + 5)


async def test_a_pause_set_while_waiting_still_applies():
    t = FakeTime()
    limiter = RateLimiter({"submit": (1, None)}, clock=t.clock, sleep=t.sleep)
    await limiter.acquire("submit")
    waiter = asyncio.create_task(limiter.acquire("submit"))  # must wait 60 s for the next token
    await asyncio.sleep(0)
    limiter.pause("submit", 200)  # meanwhile a 429 arrives with Retry-After 200
    await waiter
    assert t.now >= 200


async def test_waiters_are_served_first_come_first_served():
    t = FakeTime()
    limiter = RateLimiter({"submit": (60, None)}, clock=t.clock, sleep=t.sleep)
    order: list[int] = []

    async def one(i: int) -> None:
        await limiter.acquire("submit")
        order.append(i)

    tasks = []
    for i in range(6):
        tasks.append(asyncio.create_task(one(i)))
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    assert order == list(range(6))


async def test_ranked_waiters_go_likeliest_first():
    # Status polls queue by the chance their job is done (the poller's rank), not by arrival:
    # on premium the status limit is the tight resource and first come first served answered
    # the polls in planned order. Unranked callers keep their place in the FIFO.
    t = FakeTime()
    limiter = RateLimiter({"status": (60, None)}, clock=t.clock, sleep=t.sleep)
    await limiter.acquire("status")        # the bucket's one call is spent
    order: list[float] = []

    stamps: list[float] = []

    async def one(chance: float) -> None:
        await limiter.acquire("status", rank=lambda: chance)
        order.append(chance)
        stamps.append(t.now)

    tasks = [asyncio.create_task(one(chance)) for chance in (0.1, 0.2, 0.9, 0.5, 0.5)]
    await asyncio.sleep(0)                 # all five queued (the first waits for its token)
    await asyncio.gather(*tasks)
    # the first one arrived at an empty queue and went at once; the rest by rank
    assert order == [0.1, 0.9, 0.5, 0.5, 0.2]
    assert max_in_any_window(stamps, 60.0) <= 60   # the limit holds as for any waiter


async def test_server_headers_correct_the_plan():
    t = FakeTime()
    limiter = RateLimiter.for_plan("premium", clock=t.clock, sleep=t.sleep)
    # The account is really on Basic: the server's stricter numbers replace the configured ones.
    limiter.observe("submit", {"X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "4",
                               "X-RateLimit-Daily-Limit": "50", "X-RateLimit-Daily-Remaining": "10"})
    assert limiter.limits("submit") == (5, 50)
    assert limiter.used_today("submit") == 40  # another client used 40 of today's 50
    limiter.observe("submit", {"X-RateLimit-Limit": "1000"})  # looser numbers never loosen the plan
    assert limiter.limits("submit") == (5, 50)
    limiter.observe("status", {})  # no headers: nothing learnt, nothing limited
    assert limiter.limits("status") == (300, None)
    unlimited = RateLimiter.for_plan("unlimited", clock=t.clock, sleep=t.sleep)
    unlimited.observe("status", {"X-RateLimit-Limit": "50", "X-RateLimit-Daily-Limit": "200"})
    assert unlimited.limits("status") == (50, 200)


async def test_remaining_zero_empties_the_bucket():
    t = FakeTime()
    limiter = RateLimiter({"submit": (6, None)}, clock=t.clock, sleep=t.sleep)
    limiter.observe("submit", {"X-RateLimit-Remaining": "0"})
    await limiter.acquire("submit")
    assert t.now == pytest.approx(10.0)  # waited for a fresh token instead of using the stored one


def test_plans_carry_the_documented_numbers_and_unknown_plans_are_refused():
    assert PLANS["basic"]["submit"] == (5, 50) and PLANS["basic"]["status"] == (50, 200)
    assert PLANS["premium"]["submit"] == (300, None)
    custom = RateLimiter.for_plan("custom", {"submit": (120, 1000), "status": (None, 400)})
    assert custom.limits("submit") == (120, 1000) and custom.limits("status") == (None, 400)
    basic = RateLimiter.for_plan("basic", {"submit": (None, 20)})  # None keeps the plan's number
    assert basic.limits("submit") == (5, 20)
    with pytest.raises(ValueError, match="unknown rate-limit plan 'gold'"):
        RateLimiter.for_plan("gold")
    with pytest.raises(ValueError, match="whole number"):
        RateLimiter({"submit": (0, None)})


async def test_the_client_learns_the_accounts_limits_from_the_server():
    """Configured as unlimited, talking to a Basic account: one answer later the client paces
    submits at 5 a minute and knows how much of the day is left."""
    token = "ratelimit-test-token"
    img = Image.new("L", (200, 200), 255)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    async with EmbeddedServer(ServerConfig(engine="fast", tokens=(token,), profile="basic")) as srv:
        async with DeapiClient(srv.base_url, token, ClientSettings(plan="unlimited", first_poll_s=0.02,
                                                                   poll_min_interval_s=0.01)) as api:
            assert api.limiter.limits("submit") == (None, None)
            rid = await api.submit_ocr(buf.getvalue(), "p.png", "image/png", model="Nanonets_Ocr_S_F16",
                                       return_result_in_response=True)
            assert (await api.wait_for_job(rid, 10)).ok
            assert api.limiter.limits("submit") == (5, 50)
            assert api.limiter.limits("status") == (50, 200)
            assert api.limiter.used_today("submit") == 1
    assert srv.counters.rate_limited == 0
