"""The shared rate limiter, the adaptive concurrency and the polling learner, driven by events
and a fake clock: behaviour, never wall-clock speed."""

from __future__ import annotations

import asyncio

import pytest

from pipeline.deapi.concurrency import AdaptiveLimit
from pipeline.deapi.polling import PollLearner
from pipeline.deapi.ratelimit import DailyBudgetSpent, RateLimiter


class FakeTime:
    """A clock that only moves when someone sleeps on it."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)
        await asyncio.sleep(0)


async def test_limiter_never_exceeds_its_rate_over_any_window():
    t = FakeTime()
    limiter = RateLimiter({"submit": (600, None)}, clock=t.clock, sleep=t.sleep)
    stamps: list[float] = []

    async def worker() -> None:
        for _ in range(50):
            await limiter.acquire("submit")
            stamps.append(t.now)

    await asyncio.gather(*(worker() for _ in range(8)))  # 400 requests from 8 workers sharing it
    assert len(stamps) == 400
    stamps.sort()
    for i, start in enumerate(stamps):  # any 60-second window holds at most 600 / 60 * 60 + burst
        in_window = sum(1 for s in stamps[i:] if s < start + 6.0)
        assert in_window <= 61  # 10 per second over 6 s, plus the one-token burst
    assert stamps[-1] == pytest.approx(399 / 10, abs=0.2)  # and it runs at the limit, not below


async def test_a_429_pauses_the_endpoint_for_everyone_and_daily_budget_closes_it():
    t = FakeTime()
    limiter = RateLimiter({"status": (None, 3)}, clock=t.clock, sleep=t.sleep)
    limiter.pause("status", 30)
    await limiter.acquire("status")
    assert t.now == pytest.approx(30)
    await limiter.acquire("status")
    await limiter.acquire("status")
    with pytest.raises(DailyBudgetSpent):
        await limiter.acquire("status")
    assert limiter.closed("status")


async def test_server_headers_correct_the_local_daily_count():
    t = FakeTime()
    limiter = RateLimiter({"submit": (None, 50)}, clock=t.clock, sleep=t.sleep)
    limiter.observe("submit", {"X-RateLimit-Daily-Remaining": "0"})  # another client used the quota
    with pytest.raises(DailyBudgetSpent):
        await limiter.acquire("submit")


def test_plans_carry_the_documented_numbers():
    basic = RateLimiter.for_plan("basic")
    assert basic._buckets["submit"].per_minute == 5 and basic._buckets["submit"].per_day == 50
    assert basic._buckets["status"].per_minute == 50 and basic._buckets["status"].per_day == 200
    custom = RateLimiter.for_plan("custom", {"submit": (600, None)})
    assert custom._buckets["submit"].per_minute == 600
    assert RateLimiter.for_plan("unlimited")._buckets == {}


async def test_adaptive_limit_slow_starts_then_halves_on_overload_and_grows_additively():
    limit = AdaptiveLimit(1, 64, initial=4)
    for _ in range(4):
        limit.on_success(0.5)
    assert limit.limit == 8  # slow start: +1 per success, doubling per round
    limit.on_overload()
    assert limit.limit == 4 and not limit.slow_start
    for _ in range(4):
        limit.on_success(0.5)
    assert 4.8 < limit._limit < 5.0  # additive: +1/limit a success, just under +1 for a round of 4
    limit.on_success(0.5)
    assert limit.limit == 5
    limit.on_success(0.5 * 10)  # latency far above the best seen: back off
    assert limit.limit == 2
    for _ in range(10):
        limit.on_overload()
    assert limit.limit == 1  # never below the floor


async def test_adaptive_limit_bounds_jobs_in_flight():
    limit = AdaptiveLimit(1, 3, initial=2)
    peak = 0
    running = 0
    release = asyncio.Event()

    async def job() -> None:
        nonlocal peak, running
        async with limit:
            running += 1
            peak = max(peak, running)
            await release.wait()
            running -= 1

    tasks = [asyncio.create_task(job()) for _ in range(6)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert running == 2
    limit.on_success(0.1)  # the limit grows to 3: one more job starts
    for _ in range(5):
        await asyncio.sleep(0)
    assert running == 3
    release.set()
    await asyncio.gather(*tasks)
    assert peak == 3


def simulate(learner: PollLearner, true_duration: float, jobs: int) -> list[int]:
    """Jobs that take ``true_duration``: a first poll at the current delay hits if done."""
    now = [0.0]
    learner.clock = lambda: now[0]
    polls = []
    for i in range(jobs):
        delay = learner.first_delay()
        learner.submitted(f"r{i}")
        if delay >= true_duration:
            now[0] += delay
            learner.finished(f"r{i}", polls=1)
            polls.append(1)
        else:
            now[0] += delay + learner.second_delay()
            learner.finished(f"r{i}", polls=2, last_miss_at=delay)
            polls.append(2)
    return polls


@pytest.mark.parametrize("true_duration", [0.5, 8.0])  # the prior (1.0 s) too long, then too short
def test_poll_learner_converges_on_the_job_time_from_either_side(true_duration):
    learner = PollLearner(first=1.0, minimum=0.05, maximum=30, backoff=1.5)
    assert learner.first_delay() == 1.0  # the prior before any job finished
    polls = simulate(learner, true_duration, 3000)
    assert true_duration <= learner.first_delay() < true_duration * 1.08
    recent = polls[-500:]
    assert sum(recent) / len(recent) < 1.15  # about one status call a job


def test_poll_learner_delays():
    learner = PollLearner(first=1.0, minimum=0.05, maximum=30, backoff=1.5)
    simulate(learner, 0.5, 3000)
    assert learner.first_delay(elapsed=0.2) == pytest.approx(learner.first_delay() - 0.2)
    assert learner.second_delay() == pytest.approx(0.1 * learner.typical())
    assert learner.next_delay(0.5) == pytest.approx(0.75) and learner.next_delay(25) == 30
