"""The fleet over a real PostgreSQL: API replicas and workers as separate processes on loopback.

Shows what issue 15 asks: submit on one replica and poll/download on another; ``pipeline run``
through a balancer alternating between replicas; kill -9 of a worker mid-job (done once, by
another worker, one ``job.completed``), of an API replica (no job lost), of every worker (jobs
wait, then finish when a worker returns); SIGTERM drains; token fairness; the store's lease
rules on their own. Waits are on the fleet's own answers, bounded by count, never timed."""

from __future__ import annotations

import asyncio
import json
import shutil

import aiohttp
import psycopg
import pytest

from helpers import distinct_png, run_pipeline, write_config
from pipeline.server.lifecycle import Job
from pipeline.server.store_pg import MAX_ATTEMPTS, PgStore
from pipeline.server.store_pg_schema import MIGRATIONS
from test_fleet_support import OTHER, SECRET, TOKEN, AlternatingProxy, Fleet, auth, scrape, start_cluster, unavailable
from test_server_support import Receiver, form, png
from pipeline.server.webhooks import outbox_delivery, sign

pytestmark = pytest.mark.fleet
V1 = "/api/v1/client"
POLLS = 6000


@pytest.fixture(scope="module")
def cluster():
    c = start_cluster()
    yield c
    c.stop()
    shutil.rmtree(c.root, ignore_errors=True)


@pytest.fixture
def dsn(cluster):
    return cluster.create_database()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def fleet(dsn):
    f = Fleet(dsn)
    yield f
    f.stop()


def sql(dsn: str, query: str, *args):
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(query, args).fetchall()


async def submit(http, base_url: str, token: str = TOKEN, **fields) -> str:
    fields.setdefault("image", png(text=f"fleet {id(fields)}"))
    async with http.post(base_url + V1 + "/img2txt", data=form(**fields), headers=auth(token)) as r:
        assert r.status == 200, await r.text()
        return (await r.json())["data"]["request_id"]


async def status(http, base_url: str, rid: str, token: str = TOKEN) -> tuple[int, dict]:
    async with http.get(f"{base_url}{V1}/request-status/{rid}", headers=auth(token)) as r:
        return r.status, await r.json()


async def wait_done(http, base_url: str, rid: str, token: str = TOKEN) -> dict:
    for _ in range(POLLS):
        code, body = await status(http, base_url, rid, token)
        assert code == 200, body
        if body["data"]["status"] in ("done", "error"):
            return body["data"]
        await asyncio.sleep(0.01)
    raise AssertionError(f"job {rid} never finished")


async def until(predicate, polls: int = POLLS):
    for _ in range(polls):
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(0.01)
    raise AssertionError("condition never became true")


def job_row(dsn: str, rid: str) -> dict:
    with psycopg.connect(dsn, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        return conn.execute("SELECT status, worker_id, attempts, text FROM jobs WHERE id = %s", (rid,)).fetchone()


def test_without_postgresql_a_developer_skips_with_the_reason_and_ci_fails(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run the fleet tests: no initdb"):
        unavailable("no initdb")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="fleet tests need PostgreSQL: no initdb"):
        unavailable("no initdb")


# -- the store's rules, in-process ------------------------------------------------------------

def new_job(token: str, n: int) -> Job:
    return Job(id=f"{token}-{n}", token=token, model="m", language=None, format="text", inline=False,
               webhook_url=None, image=b"x", base_url="http://x", price=0.5)


def store_for(dsn: str) -> PgStore:
    import time
    return PgStore(dsn, (TOKEN, OTHER), 10.0, {"submit": (2, None)}, time.time)


async def test_migrations_apply_once_when_replicas_start_together(dsn):
    stores = [store_for(dsn) for _ in range(3)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        assert await stores[0].migrate() == []          # already there: nothing applied twice
        assert sql(dsn, "SELECT version FROM schema_migrations ORDER BY 1") == [(v,) for v, _ in MIGRATIONS]
        assert await stores[1].balance(TOKEN) == 10.0   # seeded once, not once per replica
        secrets = {await s.link_secret() for s in stores}
        assert len(secrets) == 1                        # every replica signs links alike
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_claims_round_robin_between_tokens_and_fifo_within_one(dsn):
    store = store_for(dsn)
    await store.open()
    try:
        for n in range(6):
            await store.add(new_job(TOKEN, n))
        for n in range(2):
            await store.add(new_job(OTHER, n))
        order = [(await store.claim("w", 30)).id for _ in range(8)]
        assert await store.claim("w", 30) is None
        assert order[:4] == [f"{TOKEN}-0", f"{OTHER}-0", f"{TOKEN}-1", f"{OTHER}-1"]  # alternating
        assert order[4:] == [f"{TOKEN}-{n}" for n in range(2, 6)]                      # then the rest, in order
    finally:
        await store.close()


async def test_a_lost_lease_is_taken_over_and_finished_once(dsn):
    store = store_for(dsn)
    await store.open()
    try:
        await store.add(new_job(TOKEN, 0))
        a = await store.claim("worker-a", 0.05)
        assert await until(store.requeue_expired) == 1        # a stopped renewing: back in the queue
        b = await store.claim("worker-b", 30)
        assert b.id == a.id
        assert not await store.renew(a.id, "worker-a", 30, 50.0)  # a wakes up: its lease is gone
        a.text, b.text = "from a", "from b"
        assert not await store.complete(a, "worker-a")            # ... and cannot write a result
        assert await store.complete(b, "worker-b")
        assert not await store.complete(b, "worker-b")            # nor can b write twice
        assert sql(dsn, "SELECT status, text, attempts FROM jobs") == [("done", "from b", 2)]
        assert sql(dsn, "SELECT event, worker_id FROM webhook_events") == [("job.completed", "worker-b")]
    finally:
        await store.close()


async def test_a_job_that_kills_every_worker_fails_after_the_attempts_and_is_refunded(dsn):
    store = store_for(dsn)
    await store.open()
    try:
        await store.charge(TOKEN, 0.5)
        await store.add(new_job(TOKEN, 0))
        for _ in range(MAX_ATTEMPTS):
            assert await store.claim("doomed", 0.05) is not None
            await until(lambda: sql(dsn, "SELECT 1 FROM jobs WHERE lease_until < now()"))
            await store.requeue_expired()
        assert sql(dsn, "SELECT status, error_code FROM jobs") == [("error", "WORKER_TIMEOUT")]
        assert await store.balance(TOKEN) == 10.0
    finally:
        await store.close()


async def test_a_job_failed_by_the_sweeper_still_sends_job_failed(dsn):
    """Found on a tour: a job failed with WORKER_TIMEOUT by the sweeper (every worker that took it
    died) put no job.failed in the outbox, so a client waiting for pushes learnt of it only when its
    webhook.wait_s ran out. The sweeper's failure goes through the outbox like a worker's."""
    store = store_for(dsn)
    await store.open()
    try:
        job = new_job(TOKEN, 0)
        job.webhook_url = "https://receiver.example/hook"
        await store.add(job)
        for _ in range(MAX_ATTEMPTS):
            assert await store.claim("doomed", 0.05) is not None
            await until(lambda: sql(dsn, "SELECT 1 FROM jobs WHERE lease_until < now()"))
            await store.requeue_expired(lambda j: outbox_delivery(j, "job.failed"))
        (event,) = await store.outbox_claim("member", 10, 15.0)
        body = json.loads(event.body)
        assert (event.event, event.url, body["data"]["job_request_id"]) == ("job.failed", job.webhook_url, job.id)
        assert (body["data"]["status"], body["data"]["error_code"]) == ("error", "WORKER_TIMEOUT")
    finally:
        await store.close()


async def test_rate_limits_and_balance_are_shared_by_replicas(dsn):
    a, b = store_for(dsn), store_for(dsn)
    await a.open()
    await b.open()
    try:
        verdicts = [await s.rate_check(TOKEN, "submit") for s in (a, b, a)]
        assert [v.allowed for v in verdicts] == [True, True, False]   # 2 a minute, counted across both
        assert verdicts[2].headers["X-RateLimit-Type"] == "minute"
        assert (await b.rate_check(OTHER, "submit")).allowed            # per token
        assert await a.charge(TOKEN, 6.0) and not await b.charge(TOKEN, 6.0)
        assert await b.balance(TOKEN) == 4.0
    finally:
        await a.close()
        await b.close()


# -- the fleet as processes --------------------------------------------------------------------

async def test_submit_on_one_replica_poll_and_download_on_the_other(http, fleet, dsn):
    (api0, api1), workers = await fleet.start(http, apis=2, workers=3)
    async with Receiver() as hook:
        ids = [await submit(http, api0.base_url, image=png(text=f"page {i}"), webhook_url=hook.url,
                            return_result_in_response="true") for i in range(6)]
        results = [await wait_done(http, api1.base_url, rid) for rid in ids]
        assert all(r["status"] == "done" and r["result"] for r in results)
        async with http.get(results[0]["result_url"].replace(api0.base_url, api1.base_url)) as r:
            assert r.status == 200 and await r.text() == results[0]["result"]   # a link signed by api0
        await hook.wait(lambda got: sum(h["X-DeAPI-Event"] == "job.completed" for h, _ in got) == 6)
        completed = [json.loads(b) for h, b in hook.received if h["X-DeAPI-Event"] == "job.completed"]
        assert sorted(p["data"]["job_request_id"] for p in completed) == sorted(ids)
        h, raw = next((h, b) for h, b in hook.received if h["X-DeAPI-Event"] == "job.completed")
        assert h["X-DeAPI-Signature"] == sign(SECRET, h["X-DeAPI-Timestamp"], raw)
    served_by = {job_row(dsn, rid)["worker_id"] for rid in ids}
    assert served_by <= {w.name for w in workers}
    async with http.get(api1.base_url + "/healthz") as r:
        health = await r.json()
    assert health["store"] == "postgresql" and health["workers"] == 3 and health["queued"] == 0
    async with http.get(api0.base_url + "/metrics") as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    scraped = await scrape(http, [api0, api1, *workers])
    exporter, = [s for s in scraped if s["pipeline_fleet_exporter"] == 1]   # the fleet's gauges, once
    assert (exporter["pipeline_jobs_queued"], exporter["pipeline_workers"]) == (0, 3)
    code, _ = await status(http, api1.base_url, ids[0], token=OTHER)
    assert code == 404   # another token's job stays invisible, on every replica


async def test_pipeline_run_through_a_balancer_alternating_between_replicas(http, fleet, tmp_path):
    (api0, api1), _ = await fleet.start(http, apis=2, workers=3)
    for i in range(8):
        distinct_png(tmp_path / "in" / f"box{i % 2}" / f"page{i}.png", seed=i)
    async with AlternatingProxy([api0.base_url, api1.base_url]) as lb:
        code, report, out = await run_pipeline(write_config(tmp_path, lb.base_url), TOKEN)
        assert code == 0, out
        assert {api0.base_url, api1.base_url} == set(lb.served)
        assert lb.served[:2] == [api0.base_url, api1.base_url]
    assert len(list((tmp_path / "out").rglob("*.txt"))) == 8


async def test_kill_9_of_a_worker_mid_job_the_job_is_done_once_by_another(http, fleet, dsn):
    api = fleet.add("api", name="api-0")
    await api.ready(http)
    doomed = fleet.add("worker", "--fault-engine-slots", "1", "--fault-engine-seconds", "600", name="doomed")
    await doomed.ready(http)
    async with Receiver() as hook:
        rid = await submit(http, api.base_url, webhook_url=hook.url)
        await until(lambda: job_row(dsn, rid)["status"] == "processing")
        doomed.kill()
        rescuer = fleet.add("worker", name="rescuer")
        await rescuer.ready(http)
        data = await wait_done(http, api.base_url, rid)
        assert data["status"] == "done"
        row = job_row(dsn, rid)
        assert (row["worker_id"], row["attempts"]) == ("rescuer", 2)
        await hook.wait(lambda got: "job.completed" in [h["X-DeAPI-Event"] for h, _ in got])
        assert sql(dsn, "SELECT worker_id FROM webhook_events WHERE event = 'job.completed'") == [("rescuer",)]
        # a later job's completion proves deliveries still flow; still one completed for the first
        rid2 = await submit(http, api.base_url, webhook_url=hook.url)
        await wait_done(http, api.base_url, rid2)
        await hook.wait(lambda got: [h["X-DeAPI-Event"] for h, _ in got].count("job.completed") == 2)
    completed = [json.loads(b)["data"]["job_request_id"] for h, b in hook.received
                 if h["X-DeAPI-Event"] == "job.completed"]
    assert sorted(completed) == sorted([rid, rid2])


async def test_kill_9_of_an_api_replica_loses_no_job(http, fleet):
    (api0, api1), _ = await fleet.start(http, apis=2, workers=2)
    ids = [await submit(http, (api0 if i % 2 else api1).base_url, image=png(text=f"k{i}")) for i in range(6)]
    api0.kill()
    done = [await wait_done(http, api1.base_url, rid) for rid in ids]
    assert [d["status"] for d in done] == ["done"] * 6
    # found on a tour: polled on api1, the jobs submitted on api0 linked their results to the dead api0
    for d in done:
        assert d["result_url"].startswith(api1.base_url + "/results/")
        async with http.get(d["result_url"]) as r:
            assert r.status == 200 and (await r.text()).startswith("FAST-OCR")


async def test_with_every_worker_killed_jobs_wait_then_finish_when_one_returns(http, fleet, dsn):
    (api,), workers = await fleet.start(http, apis=1, workers=3)
    for w in workers:
        w.kill()
    ids = [await submit(http, api.base_url, image=png(text=f"w{i}")) for i in range(4)]
    async with http.get(api.base_url + "/healthz") as r:
        assert (await r.json())["queued"] == 4
    assert [(await status(http, api.base_url, rid))[1]["data"]["status"] for rid in ids] == ["pending"] * 4
    back = fleet.add("worker", name="back")
    await back.ready(http)
    assert [(await wait_done(http, api.base_url, rid))["status"] for rid in ids] == ["done"] * 4
    assert {job_row(dsn, rid)["worker_id"] for rid in ids} == {"back"}


async def test_sigterm_drains_the_job_in_hand_and_takes_no_new_one(http, fleet, dsn):
    api, worker = await fleet.api_and_slow_worker(http, 4, "drainer")
    first = await submit(http, api.base_url, image=png(text="in hand"))
    await until(lambda: job_row(dsn, first)["status"] == "processing")
    second = await submit(http, api.base_url, image=png(text="left"))
    assert worker.terminate() == 0
    assert job_row(dsn, first)["status"] == "done" and job_row(dsn, first)["worker_id"] == "drainer"
    assert job_row(dsn, second)["status"] == "pending"   # not taken: it waits for the next worker
    assert "draining: 1 job(s) in hand" in worker.output()


async def test_one_token_cannot_starve_another(http, fleet, dsn):
    api = fleet.add("api", name="api-0")
    await api.ready(http)
    heavy = [await submit(http, api.base_url, TOKEN, image=png(text=f"h{i}")) for i in range(10)]
    light = [await submit(http, api.base_url, OTHER, image=png(text=f"l{i}")) for i in range(2)]
    worker = fleet.add("worker", name="only")
    await worker.ready(http)
    for rid in light:
        await wait_done(http, api.base_url, rid, OTHER)
    order = [r[0] for r in sql(dsn, "SELECT id FROM jobs WHERE claim_no IS NOT NULL ORDER BY claim_no")]
    assert order.index(light[1]) <= 3          # served within the first four claims, not after ten
    assert [rid for rid in order if rid in heavy] == heavy[:len([r for r in order if r in heavy])]


async def test_the_outbox_hands_an_event_to_one_dispatcher_and_schedules_its_retries(dsn):
    a, b = store_for(dsn), store_for(dsn)
    await a.open()
    await b.open()
    try:
        job = new_job(TOKEN, 0)
        job.webhook_url = "http://127.0.0.1:9/hook"
        await a.add(job)
        claimed = await a.claim("w", 30)
        claimed.text = "t"
        assert await a.complete(claimed, "w", ("id-1", '{"event":"job.completed"}'))
        assert not await a.complete(claimed, "w", ("id-2", "{}"))          # one event per job, never a second id
        (got,) = await a.outbox_claim("member-a", 10, 30)
        assert (got.id, got.event, got.url, got.attempts) == ("id-1", "job.completed", job.webhook_url, 0)
        assert await b.outbox_claim("member-b", 10, 30) == []               # held by a meanwhile
        await a.outbox_retry("id-1", "member-a", 3600.0, "HTTP 500")
        assert await b.outbox_claim("member-b", 10, 30) == []               # not due for an hour
        assert sql(dsn, "SELECT state, attempts, last_error FROM webhook_events") == [("pending", 1, "HTTP 500")]
        assert sql(dsn, "UPDATE webhook_events SET next_at = now() RETURNING id") == [("id-1",)]
        (again,) = await b.outbox_claim("member-b", 10, 30)                 # any member takes it up
        assert (again.id, again.attempts) == ("id-1", 1)
        await b.outbox_retry("id-1", "member-b", None, "HTTP 500")          # the schedule is spent
        assert sql(dsn, "SELECT state FROM webhook_events") == [("failed",)]
        assert (await a.stats()).webhooks_failed == 1
        await b.outbox_sent("id-1", "member-b")                             # a late 2xx cannot revive it
        assert sql(dsn, "SELECT state FROM webhook_events") == [("failed",)]
    finally:
        await a.close()
        await b.close()
