"""The polling learner: unit tests on a simulated clock, then the real client against a server
whose jobs take 0.2 s, counting status calls (never timing them)."""

from __future__ import annotations

import asyncio
import io
import random

import pytest
from PIL import Image

from pipeline.deapi import ClientSettings, DeapiClient
from pipeline.deapi.polling import PollLearner
from pipeline.server import EmbeddedServer, FaultConfig, ServerConfig


class Sim:
    """Jobs of given durations polled the way ``DeapiClient.wait_for_job`` does, on a fake clock."""

    def __init__(self, learner: PollLearner) -> None:
        self.now = 0.0
        self.learner = learner
        learner.clock = lambda: self.now

    def run(self, duration: float, rid: str) -> int:
        start = self.now
        self.learner.submitted(rid)
        delay, polls, first, last_miss = self.learner.first_delay(), 0, True, None
        while True:
            self.now += delay
            polls += 1
            if self.now - start >= duration:
                self.learner.finished(rid, polls, last_miss)
                return polls
            last_miss = self.now - start
            delay = self.learner.second_delay() if first else self.learner.next_delay(delay)
            first = False


def test_the_prior_is_used_until_a_job_finishes_and_is_clamped():
    assert PollLearner(first=2.0).first_delay() == 2.0
    assert PollLearner(first=100.0, maximum=30.0).first_delay() == 30.0
    assert PollLearner(first=0.01, minimum=0.2).first_delay() == 0.2
    learner = PollLearner(first=2.0, minimum=0.2)
    assert learner.first_delay(elapsed=1.5) == pytest.approx(0.5)  # time already spent counts
    assert learner.first_delay(elapsed=5.0) == 0.2                 # never below the minimum


def test_later_polls_back_off_by_the_factor_up_to_the_maximum():
    learner = PollLearner(first=1.0, minimum=0.2, maximum=2.0, backoff=1.5)
    delays = [0.2]
    for _ in range(6):
        delays.append(learner.next_delay(delays[-1]))
    assert delays == pytest.approx([0.2, 0.3, 0.45, 0.675, 1.0125, 1.51875, 2.0])


@pytest.mark.parametrize("low, high", [(0.4, 0.6), (3.0, 6.0)])
def test_the_first_poll_learns_the_90th_percentile_of_varying_job_times(low, high):
    rng = random.Random(1)
    learner = PollLearner(first=1.0, minimum=0.05, maximum=30.0)
    sim = Sim(learner)
    polls = [sim.run(rng.uniform(low, high), f"r{i}") for i in range(1500)]
    p90 = low + 0.9 * (high - low)
    assert 0.8 * p90 <= learner.first_delay() <= 1.15 * high
    recent = polls[-300:]
    first_hits = sum(1 for p in recent if p == 1) / len(recent)
    assert first_hits >= 0.7                       # most jobs cost a single status call
    assert sum(recent) / len(recent) <= 1.5



@pytest.mark.parametrize("true_duration", [0.5, 8.0])  # the prior (1.0 s) too long, then too short
def test_the_first_poll_converges_on_a_steady_job_time_from_either_side(true_duration):
    learner = PollLearner(first=1.0, minimum=0.05, maximum=30, backoff=1.5)
    sim = Sim(learner)
    polls = [sim.run(true_duration, f"r{i}") for i in range(3000)]
    assert 0.92 * true_duration <= learner.first_delay() < 1.08 * true_duration  # hovers at the job time
    recent = polls[-500:]
    assert sum(recent) / len(recent) < 1.15  # about one status call a job
    assert learner.second_delay() == pytest.approx(0.1 * learner.typical())  # a near miss: ask again soon

def test_jobs_that_never_report_are_forgotten():
    learner = PollLearner()
    learner.submitted("a")
    learner.forget("a")
    assert learner.submitted_at("a") is None
    learner.finished("a", polls=1)  # unknown id: no sample, no error
    assert not learner.samples and learner.hits == 0


def png(seed: int) -> bytes:
    img = Image.new("L", (150, 150), 255)
    img.putpixel((seed % 150, seed // 150 % 150), 0)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


async def test_once_warmed_up_a_job_with_inline_results_costs_about_one_status_call():
    token = "polling-test-token"
    cfg = ServerConfig(engine="fast", tokens=(token,), faults=FaultConfig(latency=0.2))
    # The prior (0.05 s) is far too short: the learner must find the 0.2 s job time itself.
    settings = ClientSettings(first_poll_s=0.05, poll_min_interval_s=0.02, poll_max_interval_s=1.0)
    async with EmbeddedServer(cfg) as srv:
        async with DeapiClient(srv.base_url, token, settings) as api:
            async def job(seed: int) -> str:
                rid = await api.submit_ocr(png(seed), "p.png", "image/png", model="Nanonets_Ocr_S_F16",
                                           return_result_in_response=True)
                return await api.fetch_result(rid, await api.wait_for_job(rid, 10))

            async def batch(seeds: range) -> None:
                texts = await asyncio.gather(*(job(s) for s in seeds))
                assert all(t.startswith("FAST-OCR 150x150") for t in texts)

            for r in range(4):  # warm-up: 4 rounds of 4 jobs
                await batch(range(r * 4, r * 4 + 4))
            before = srv.counters.snapshot()
            for r in range(4, 10):  # measured: 24 jobs
                await batch(range(r * 4, r * 4 + 4))
            after = srv.counters.snapshot()
    jobs = after["jobs_created"] - before["jobs_created"]
    polls = after["status_polls"] - before["status_polls"]
    assert jobs == 24
    assert polls / jobs <= 1.5
    assert after["downloads"] == 0  # inline results: no download calls at all
    assert api.poller.hits + api.poller.misses == 40
