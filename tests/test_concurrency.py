"""AdaptiveLimit (AIMD) driven by events - successes with latencies, 429s - never by time."""

from __future__ import annotations

import asyncio
import math
import random

import pytest

from pipeline.deapi.concurrency import AdaptiveLimit


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


def test_slow_start_doubles_per_round_until_the_first_storm():
    limit = AdaptiveLimit(1, 100, initial=2)
    for expected in (4, 8, 16, 32):
        for _ in range(limit.limit):  # one round: as many successes as jobs in flight
            limit.on_success(1.0)
        assert limit.limit == expected
    for _ in range(12):  # a storm: most submits of the round answered 429
        limit.on_overload()
    assert limit.limit == 16 and not limit.slow_start and limit.decreases == 1


def test_additive_increase_is_about_one_per_round_after_slow_start():
    limit = AdaptiveLimit(1, 100, initial=20)
    for _ in range(16):
        limit.on_overload()  # a storm: 10, congestion avoidance from now on
    assert limit.limit == 10
    for _ in range(10):
        limit.on_success(1.0)
    assert limit.limit == 10 and 10.9 < limit._limit < 11.0
    for _ in range(11 * 5):
        limit.on_success(1.0)
    assert limit.limit in (15, 16)


def test_a_storm_halves_once_per_round_not_once_per_429():
    limit = AdaptiveLimit(2, 64, initial=64)
    for _ in range(200):  # 200 429s in a row, no job finishing: one cut, not 200
        limit.on_overload()
    assert limit.limit == 32 and limit.decreases == 1
    for _ in range(32):  # a round passes (32 jobs finish) while the storm goes on
        limit.on_success(1.0)
        limit.on_overload()
        limit.on_overload()
    assert limit.decreases == 2 and limit.limit >= 16
    for _ in range(5000):
        limit.on_success(1.0)
    assert limit.limit == 64  # the ceiling holds


def test_a_steady_share_of_random_429s_does_not_collapse_the_window():
    # 20 % of submits answered 429 (the rate limiter waits them out): the window stays open.
    rng = random.Random(4)
    limit = AdaptiveLimit(1, 64, initial=4)
    seen = []
    for _ in range(5000):
        if rng.random() < 0.2:
            limit.on_overload()
        else:
            limit.on_success(1.0)
        seen.append(limit.limit)
    assert limit.limit == 64 and limit.decreases <= 2  # a chance run of 429s early on, at most
    assert sum(seen[1000:]) / len(seen[1000:]) >= 0.95 * 64


def test_a_queue_that_threatens_the_deadline_halves_once_per_round():
    limit = AdaptiveLimit(1, 64, initial=8, queue_limit_s=10.0)
    for _ in range(8):
        limit.on_success(2.0, queued=True)   # round 1: median 2 s, the baseline
    grown = limit.limit
    for _ in range(grown):
        limit.on_success(30.0, queued=True)  # the queue grew: 15x the baseline, over 10 s
    assert limit.decreases == 1 and limit.limit < grown
    for _ in range(3):  # the jobs right behind it queued for the same reason: no second cut
        limit.on_success(30.0, queued=True)
    assert limit.decreases == 1


@pytest.mark.parametrize("queued, slow", [(False, 30.0), (True, 5.0)])
def test_dense_pages_and_a_short_queue_never_cut(queued, slow):
    # 30 s while *processing* is a dense page; 5 s queued is a queue that keeps the API's
    # workers busy without risking the deadline (under queue_limit_s).
    limit = AdaptiveLimit(1, 64, initial=8, queue_limit_s=10.0)
    for _ in range(8):
        limit.on_success(1.0, queued=queued)
    for _ in range(200):
        limit.on_success(slow, queued=queued)
    assert limit.decreases == 0 and limit.limit == 64


def test_a_wide_spread_of_job_times_is_no_signal():
    rng = random.Random(8)
    limit = AdaptiveLimit(1, 64, initial=4, queue_limit_s=1.0)
    for _ in range(3000):  # log-normal job times, median 2 s, p95 10 s, all seen queued
        limit.on_success(2 * math.exp(rng.gauss(0, 0.98)), queued=True)
    assert limit.limit == 64 and limit.decreases == 0


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
    limit._decrease_once_per_round()  # as a storm would: limit 4 -> 2; nobody is cancelled, nobody new starts
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
