"""The deAPI client through every fault the server injects: what is retried, what is not, and
that a submit is never silently sent twice. Waits are tiny (backoff settings) or happen on a
fake clock in the shared rate limiter; nothing here sleeps to hope for timing."""

from __future__ import annotations

import asyncio
import hashlib
import io
import socket

from dataclasses import replace

import pytest
from PIL import Image

from pipeline.deapi import ClientSettings, DeapiClient
from pipeline.deapi.errors import (DailyLimitError, JobFailedError, JobTimeoutError, NotFoundError,
                                   ResultExpiredError, ServerError, SubmitOutcomeUnknown, TransportError)
from pipeline.deapi.ratelimit import RateLimiter
from pipeline.server import EmbeddedServer, FaultRule, ServerConfig

TOKEN = "client-fault-token-1a2b3c"
MODEL = "Nanonets_Ocr_S_F16"
FAST = ClientSettings(backoff_initial_s=0.01, backoff_max_s=0.05, max_retry_after_s=120, first_poll_s=0.02,
                      poll_min_interval_s=0.01, poll_max_interval_s=0.1)


def png(seed: int = 0) -> bytes:
    img = Image.new("L", (160, 140), 255)
    img.putpixel((seed % 160, seed // 160 % 140), 0)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FakeTime:
    """The rate limiter's clock: it moves only when the limiter sleeps on it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(seconds, 0.0)
        await asyncio.sleep(0)


@pytest.fixture
async def srv():
    async with EmbeddedServer(ServerConfig(engine="fast", tokens=(TOKEN,), profile="unlimited", seed=7)) as s:
        yield s


async def submit(api: DeapiClient, data: bytes, inline: bool = True) -> str:
    return await api.submit_ocr(data, "p.png", "image/png", model=MODEL, return_result_in_response=inline)


async def read_once(api: DeapiClient, data: bytes) -> None:
    """Submit ``data`` and wait for its job, which must end done."""
    assert (await api.wait_for_job(await submit(api, data), 10)).ok


def clocked(srv, t: FakeTime, settings: ClientSettings = FAST) -> DeapiClient:
    """A client of ``srv`` whose shared rate limiter waits on the fake clock ``t``."""
    return DeapiClient(srv.base_url, TOKEN, settings, limiter=RateLimiter(clock=t.clock, sleep=t.sleep))


async def test_a_429_burst_is_waited_out_as_retry_after_asks_then_succeeds(srv):
    srv.faults.http_429 = FaultRule(count=3)
    srv.faults.retry_after = 7
    t = FakeTime()
    async with clocked(srv, t) as api:
        await read_once(api, png(1))
        stats = api.stats.snapshot()
    assert srv.counters.rate_limited == 3 == stats["rate_limited"]
    assert stats["retries"] == 3 and stats["submits"] == 4
    assert t.slept == [7.0, 7.0, 7.0]  # Retry-After honoured, in the shared limiter, once per 429
    assert srv.counters.jobs_created == 1


async def test_a_retry_after_longer_than_the_cap_stops_submitting_instead_of_sleeping(srv):
    srv.faults.http_429 = FaultRule(count=1)
    srv.faults.retry_after = 600  # a "minute" 429 asking for ten minutes
    t = FakeTime()
    settings = ClientSettings(backoff_initial_s=0.01, max_retry_after_s=45, first_poll_s=0.02)
    async with clocked(srv, t, settings) as api:
        with pytest.raises(DailyLimitError) as info:
            await submit(api, png(2))
        assert api.limiter.closed("submit")
    assert t.slept == [] and info.value.limit_type == "minute" and info.value.retry_after == 600
    assert "max_retry_after_s" in info.value.reason and srv.counters.submits == 1


async def test_a_daily_429_stops_submitting_without_sleeping(srv):
    srv.faults.http_429 = FaultRule(count=1)
    srv.faults.http_429_daily = True
    srv.faults.retry_after = 80_000
    t = FakeTime()
    async with clocked(srv, t) as api:
        with pytest.raises(DailyLimitError) as info:
            await submit(api, png(3))
        assert api.limiter.closed("submit")
        with pytest.raises(DailyLimitError):  # the next file does not even reach the server
            await submit(api, png(4))
    assert info.value.failure_class == "transient" and info.value.limit_type == "daily"
    assert "next run" in info.value.reason
    assert t.slept == [] and t.now == 0.0
    assert srv.counters.submits == 1 and srv.counters.jobs_created == 0


async def test_5xx_html_pages_are_retried_for_submit_and_status(srv):
    srv.faults.http_5xx = FaultRule(count=2)
    async with DeapiClient(srv.base_url, TOKEN, FAST) as api:
        data = png(5)
        rid = await submit(api, data)  # two 5xx answers, then the job: an answer proves no job was made
        srv.faults.http_5xx = FaultRule(count=1)
        st = await api.wait_for_job(rid, 10)
        assert st.ok
        assert api.stats.retries == 3
    assert srv.counters.server_errors == 3
    assert srv.counters.submits_by_hash == {sha(data): 1}


async def test_5xx_that_never_ends_gives_up_with_a_transient_server_error(srv):
    srv.faults.http_5xx = FaultRule(rate=1.0)
    settings = ClientSettings(max_attempts=3, backoff_initial_s=0.01, backoff_max_s=0.02)
    async with DeapiClient(srv.base_url, TOKEN, settings) as api:
        with pytest.raises(ServerError) as info:
            await submit(api, png(6))
    assert info.value.failure_class == "transient" and info.value.status in (500, 502, 503)
    assert "HTML" in info.value.reason
    assert srv.counters.submits == 3 and srv.counters.jobs_created == 0


async def test_a_503_in_maintenance_is_waited_out_as_its_retry_after_asks(srv):
    """An API in maintenance (Laravel's ``artisan down``) answers 503 with Retry-After: the client
    waits that long (in the shared limiter, for every worker), not its short backoff, so a few
    minutes of maintenance do not use up the attempts and fail the files."""
    srv.faults.http_5xx = FaultRule(count=2)
    srv.faults.retry_after_5xx = 30
    t = FakeTime()
    async with clocked(srv, t) as api:
        data = png(8)
        await read_once(api, data)
        assert api.stats.retries == 2
    assert t.slept == [30.0, 30.0]  # Retry-After, once per 503
    assert srv.counters.server_errors == 2 and srv.counters.submits_by_hash == {sha(data): 1}


async def test_a_5xx_retry_after_is_capped_like_a_429s(srv):
    srv.faults.http_5xx = FaultRule(count=1)
    srv.faults.retry_after_5xx = 3600
    t = FakeTime()
    async with clocked(srv, t) as api:
        await read_once(api, png(9))
    assert t.slept == [FAST.max_retry_after_s]


async def test_connection_refused_before_sending_is_retried_and_makes_exactly_one_job():
    with socket.socket() as s:  # a free port with nobody listening yet
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = ClientSettings(max_attempts=500, backoff_initial_s=0.005, backoff_max_s=0.02, first_poll_s=0.02)
    data = png(7)
    async with DeapiClient(f"http://127.0.0.1:{port}", TOKEN, settings) as api:
        task = asyncio.create_task(submit(api, data))
        while api.stats.retries < 2 and not task.done():  # wait for the condition: refused twice
            await asyncio.sleep(0.005)
        assert not task.done()
        async with EmbeddedServer(ServerConfig(engine="fast", tokens=(TOKEN,), port=port)) as srv:
            rid = await task
            assert (await api.wait_for_job(rid, 10)).ok
            assert srv.counters.submits == 1 and srv.counters.submits_by_hash == {sha(data): 1}
        assert api.stats.possible_duplicates == 0
        assert api.stats.submits == 1  # refused attempts never left, so they are not counted as sent


async def test_unreachable_api_is_a_transient_transport_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = ClientSettings(max_attempts=3, backoff_initial_s=0.001, backoff_max_s=0.002)
    async with DeapiClient(f"http://127.0.0.1:{port}", TOKEN, settings) as api:
        with pytest.raises(TransportError) as info:
            await api.balance()
    assert info.value.failure_class == "transient" and api.stats.retries == 2 and api.stats.other_calls == 0
    assert "cannot reach the API" in info.value.reason


@pytest.mark.parametrize("fault, jobs", [("drop_after_create", 1), ("drop_before_create", 0)])
async def test_a_connection_dropped_after_the_upload_is_an_unknown_outcome_never_resent(srv, fault, jobs):
    """The server reads the whole upload before it drops the connection, so the client cannot
    tell whether a job was made: either way it must say so instead of sending it again."""
    setattr(srv.faults, fault, FaultRule(count=1))
    data = png(8)
    async with DeapiClient(srv.base_url, TOKEN, FAST) as api:
        with pytest.raises(SubmitOutcomeUnknown) as info:
            await submit(api, data)
        assert api.stats.possible_duplicates == 1 and api.stats.retries == 0
        assert info.value.possible_duplicate and info.value.failure_class == "transient"
        assert "may exist" in info.value.reason
        assert srv.counters.submits == 1 and srv.counters.dropped == 1
        assert srv.counters.submits_by_hash.get(sha(data), 0) == jobs
        # The caller may resubmit knowingly; the fault is gone, so this makes exactly one more job.
        await read_once(api, data)
    assert srv.counters.submits_by_hash[sha(data)] == jobs + 1


@pytest.mark.parametrize("code, klass", [("INVALID_INPUT", "permanent"), ("WORKER_TIMEOUT", "transient"),
                                         ("PROCESSING_ERROR", "transient")])
async def test_a_failed_job_raises_job_failed_with_its_code(srv, code, klass):
    srv.faults.job_error = FaultRule(count=1)
    srv.faults.job_error_code = code
    async with DeapiClient(srv.base_url, TOKEN, FAST) as api:
        rid = await submit(api, png(9))
        with pytest.raises(JobFailedError) as info:
            await api.wait_for_job(rid, 10)
    assert info.value.code == code and info.value.failure_class == klass
    assert code in info.value.reason and rid in info.value.reason
    assert srv.counters.jobs_created == 1  # a failed job is not resubmitted by the client


async def test_a_job_that_never_finishes_times_out_at_the_deadline_and_keeps_its_id(srv):
    srv.faults.job_never_finish = FaultRule(count=1)
    async with DeapiClient(srv.base_url, TOKEN, FAST) as api:
        rid = await submit(api, png(10))
        with pytest.raises(JobTimeoutError) as info:
            await api.wait_for_job(rid, deadline_s=0.3)
        polls = srv.counters.status_polls
        assert polls >= 2 and info.value.failure_class == "transient" and rid in info.value.reason
        assert srv.release_stuck_jobs() == 1
        st = await api.wait_for_job(rid, deadline_s=10)  # the same id, later: the job is there
    assert st.ok and srv.counters.jobs_created == 1


async def test_a_status_route_failing_past_the_retries_holds_the_paid_job_until_its_deadline(srv):
    """Before, the first poll that ran out of retries raised ServerError: the file failed though
    its job was paid and running. Now it is asked again later, as after a "not yet"; a status
    route that never comes back ends at the deadline as a job that never finishes does."""
    srv.faults.endpoints = ("status",)
    async with DeapiClient(srv.base_url, TOKEN, replace(FAST, max_attempts=2)) as api:
        rid = await submit(api, png(14))
        srv.faults.http_5xx = FaultRule(count=5)           # two calls' retries, and one more failure
        assert (await api.wait_for_job(rid, 10)).ok
        assert api.stats.held_calls == 2 and srv.counters.server_errors == 5
        srv.faults.http_5xx = FaultRule(rate=1.0)
        rid = await submit(api, png(15))
        with pytest.raises(JobTimeoutError) as info:
            await api.wait_for_job(rid, deadline_s=0.3)
        assert rid in info.value.reason and "the API failed" in info.value.reason
        api.hold = lambda: False                           # the run is stopping: raised as before
        with pytest.raises(ServerError):
            await api.wait_for_job(rid, 10)
        srv.faults.http_5xx = FaultRule()
        assert (await api.wait_for_job(rid, 10)).ok        # the same id, later: the job is there
    assert srv.counters.jobs_created == 2


async def test_a_lost_request_id_is_not_found(srv):
    srv.faults.lose_request_id = FaultRule(count=1)
    async with DeapiClient(srv.base_url, TOKEN, replace(FAST, not_found_grace_s=0.0)) as api:
        rid = await submit(api, png(11))
        with pytest.raises(NotFoundError) as info:
            await api.wait_for_job(rid, 10)
    assert info.value.status == 404 and info.value.failure_class == "permanent"
    assert rid in info.value.reason and "Request not found." in info.value.reason
    assert srv.counters.status_polls == 1  # without a grace a 404 is not retried


async def test_a_404_on_a_fresh_job_is_asked_again_for_the_grace_then_lost(srv):
    """The status side may lag the submit (tests/test_lookalike.py has the lag that ends); a
    404 that outlasts the grace is a lost job as before."""
    srv.faults.lose_request_id = FaultRule(count=1)
    async with DeapiClient(srv.base_url, TOKEN, replace(FAST, not_found_grace_s=0.3)) as api:
        rid = await submit(api, png(11))
        with pytest.raises(NotFoundError):
            await api.wait_for_job(rid, 10)
        assert api.stats.not_found_waits >= 2
    assert srv.counters.status_polls == api.stats.not_found_waits + 1


async def test_an_expired_result_link_is_replaced_by_a_fresh_one_from_status(srv):
    srv.faults.expire_result_link = FaultRule(count=1)
    async with DeapiClient(srv.base_url, TOKEN, FAST) as api:
        rid = await submit(api, png(12), inline=False)
        st = await api.wait_for_job(rid, 10)
        polls = srv.counters.status_polls
        text = await api.fetch_result(rid, st)
        assert api.stats.link_refreshes == 1
    assert text.startswith("FAST-OCR 160x140")
    assert srv.counters.downloads == 2 and srv.counters.downloads_with_auth == 0
    assert srv.counters.status_polls == polls + 1


async def test_a_link_that_never_works_ends_in_result_expired():
    cfg = ServerConfig(engine="fast", tokens=(TOKEN,), result_ttl_s=0.0)  # every link born expired
    async with EmbeddedServer(cfg) as srv:
        async with DeapiClient(srv.base_url, TOKEN, FAST) as api:
            rid = await submit(api, png(13), inline=False)
            st = await api.wait_for_job(rid, 10)
            with pytest.raises(ResultExpiredError) as info:
                await api.fetch_result(rid, st)
    assert info.value.failure_class == "transient" and rid in info.value.reason
    assert srv.counters.downloads == 1 + FAST.link_refreshes and srv.counters.downloads_with_auth == 0
