"""AdaptiveLimit (AIMD) driven by events - successes with latencies, 429s - never by time."""

from __future__ import annotations

import asyncio

import pytest

from pipeline.deapi.concurrency import AdaptiveLimit


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


def test_slow_start_doubles_per_round_until_the_first_overload():
    limit = AdaptiveLimit(1, 100, initial=2)
    for expected in (4, 8, 16, 32):
        for _ in range(limit.limit):  # one round: as many successes as jobs in flight
            limit.on_success(1.0)
        assert limit.limit == expected
    limit.on_overload()
    assert limit.limit == 16 and not limit.slow_start


def test_additive_increase_is_about_one_per_round_after_slow_start():
    limit = AdaptiveLimit(1, 100, initial=20)
    limit.on_overload()  # 10, congestion avoidance from now on
    for _ in range(10):
        limit.on_success(1.0)
    assert limit.limit == 10 and 10.9 < limit._limit < 11.0
    for _ in range(11 * 5):
        limit.on_success(1.0)
    assert limit.limit in (15, 16)


def test_every_429_halves_and_the_floor_and_ceiling_hold():
    limit = AdaptiveLimit(2, 8, initial=50)
    assert limit.limit == 8  # initial clamped to the ceiling
    limit.on_overload()
    limit.on_overload()
    assert limit.limit == 2
    limit.on_overload()
    assert limit.limit == 2 and limit.decreases == 3
    for _ in range(1000):
        limit.on_success(1.0)
    assert limit.limit == 8


def test_rising_latency_halves_once_per_round_and_never_grows_the_limit():
    limit = AdaptiveLimit(1, 64, initial=16)
    limit.on_success(1.0)  # baseline 1 s; slow start 16 -> 17
    assert limit.limit == 17
    limit.on_success(5.0)  # 5x the baseline: queueing at the API
    assert limit.limit == 8
    for _ in range(5):  # the jobs right behind it were slow for the same reason: no second cut
        limit.on_success(5.0)
    assert limit.limit == 8 and limit.decreases == 1
    for _ in range(8):  # a round of normal jobs
        limit.on_success(1.2)
    limit.on_success(6.0)  # still slow a round later: cut again
    assert limit.limit == 4 and limit.decreases == 2
    limit.on_success(2.5)  # slower than the best, but under 3x: fine, grows
    assert limit._limit > 4


async def test_jobs_in_flight_never_exceed_the_limit_even_while_it_shrinks():
    limit = AdaptiveLimit(1, 10, initial=4)
    running, peak_over = 0, 0
    gates = [asyncio.Event() for _ in range(12)]

    async def job(i: int) -> None:
        nonlocal running, peak_over
        async with limit:
            running += 1
            peak_over = max(peak_over, running - limit.limit)
            await gates[i].wait()
            running -= 1

    tasks = [asyncio.create_task(job(i)) for i in range(12)]
    await settle()
    assert running == 4 == limit.in_flight
    limit.on_overload()  # limit 2: nobody is cancelled, but nobody new starts
    gates[0].set()
    gates[1].set()
    await settle()
    assert running == 2  # 4 - 2 finished, 0 started: already at the new limit
    for _ in range(3):
        limit.on_success(0.1)  # congestion avoidance: 2 -> ~3.3
    await settle()
    assert running == limit.limit == 3
    for g in gates:
        g.set()
    await asyncio.gather(*tasks)
    assert limit.in_flight == 0


async def test_a_cancelled_waiter_does_not_leak_a_slot():
    limit = AdaptiveLimit(1, 1, initial=1)
    await limit.acquire()
    waiter = asyncio.create_task(limit.acquire())
    await settle()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await limit.release()
    assert limit.in_flight == 0
    await asyncio.wait_for(limit.acquire(), 1)  # the slot is free again
    assert limit.in_flight == 1
