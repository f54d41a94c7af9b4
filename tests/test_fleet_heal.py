"""A fleet that heals (issue 26), over a real PostgreSQL with members as separate processes.

The database is stopped and started again while workers hold jobs; a replica is killed -9 right
after a result is saved; a worker drains with events pending; one replica's clock runs a minute
ahead; the fleet-wide queue is scraped from every member as Prometheus would. This module has
its own throwaway cluster (a restart here must not disturb test_fleet.py's). Waits are on the
fleet's own answers or its log lines, bounded by count, never timed guesses.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import yaml

from test_fleet import V1, cluster, dsn, fleet, http, job_row, sql, status, submit, until, wait_done  # noqa: F401
from test_fleet_support import ROOT, SECRET, TOKEN, Fleet, auth, scrape
from test_server_support import Receiver, form, png
from pipeline.server.config import ServerConfig
from pipeline.server.embedded import EmbeddedServer
from pipeline.server.faults import FaultRule
from pipeline.server.outbox import next_pause
from pipeline.server.store import StoreUnavailable
from pipeline.server.store_pg import PgStore
from pipeline.server.store_pg_schema import MIGRATIONS
from pipeline.server.webhooks import RETRY_SCHEDULE_S, sign

pytestmark = pytest.mark.fleet
HPA = Path(__file__).resolve().parents[1] / "deploy" / "kubernetes" / "hpa.yaml"


async def post_submit(http, base_url: str, text: str) -> tuple[int, dict[str, str]]:
    async with http.post(base_url + V1 + "/img2txt", data=form(image=png(text=text)), headers=auth()) as r:
        return r.status, dict(r.headers)


async def submit_through_503(http, base_url: str, text: str) -> str:
    """Submit as the pipeline's client does: a 503 (a stale connection after the restart) is retried."""
    for _ in range(50):
        async with http.post(base_url + V1 + "/img2txt", data=form(image=png(text=text)), headers=auth()) as r:
            if r.status == 200:
                return (await r.json())["data"]["request_id"]
            assert r.status == 503 and "Retry-After" in r.headers, await r.text()
    raise AssertionError("the API never came back after the restart")


def whole_log(member) -> str:
    """A member's whole output (``output()`` keeps the last 3000 characters; an outage's warnings push lines out)."""
    member.log.seek(0)
    return member.log.read().decode(errors="replace")


async def livez_fails(http, base_url: str) -> bool:
    return await code_of(http, base_url + "/livez") == 503


async def code_of(http, url: str) -> int:
    async with http.get(url) as r:
        return r.status


def pg_clock(dsn: str, query: str):
    return sql(dsn, query)[0][0]


# -- a database restart while workers hold jobs -------------------------------------------------

async def test_a_database_restart_while_workers_hold_jobs_loses_nothing_and_every_worker_claims_again(
        http, cluster, fleet, dsn):
    api = fleet.add("api", lease=30.0, name="api-0")
    await api.ready(http)
    workers = [fleet.add("worker", "--fault-engine-slots", "1", "--fault-engine-seconds", "1", lease=30.0,
                         name=f"worker-{i}") for i in range(3)]
    for w in workers:
        await w.ready(http)
    held = [await submit(http, api.base_url, image=png(text=f"held {i}")) for i in range(3)]
    await until(lambda: sql(dsn, "SELECT count(*) FROM jobs WHERE status = 'processing'") == [(3,)])

    cluster.stop("fast")      # every connection is cut, as in a restart of the database
    try:
        code, headers = await post_submit(http, api.base_url, "during the outage")
        assert code == 503 and int(headers["Retry-After"]) > 0          # not a 500: the client retries
        async with http.get(f"{api.base_url}{V1}/request-status/{held[0]}", headers=auth()) as r:
            assert r.status == 503 and int(r.headers["Retry-After"]) > 0
        assert await code_of(http, api.base_url + "/readyz") == 503      # out of the Service's rotation ...
        for m in [api, *workers]:
            assert await code_of(http, m.base_url + "/livez") == 200     # ... but alive: no restart
        # a scrape still answers (a failed one reads as "the pod is down"): counters kept, the store down
        (during,) = await scrape(http, [api])
        assert during["pipeline_store_up"] == 0 and during['pipeline_submits_total{role="api"}'] >= 3
        assert during["pipeline_fleet_exporter"] == 0 and "pipeline_jobs_queued" not in during
        # every worker has read its page and keeps trying to save it
        await until(lambda: all("cannot save the result yet" in w.output() for w in workers))
    finally:
        cluster.start_again()
    restarted = pg_clock(dsn, "SELECT pg_postmaster_start_time()")
    # the log says the outage is over (its repeated warnings are said once a minute: pipeline/quietlog.py)
    await until(lambda: all("database reachable again" in m.output() for m in [api, *workers]))

    for rid in held:
        assert (await wait_done(http, api.base_url, rid))["status"] == "done"
    later = [await submit_through_503(http, api.base_url, f"after {i}") for i in range(9)]
    for rid in later:
        assert (await wait_done(http, api.base_url, rid))["status"] == "done"

    rows = sql(dsn, "SELECT id, status, error_code, attempts, worker_id, started_at FROM jobs")
    assert len(rows) == 12
    assert {(r[1], r[2], r[3]) for r in rows} == {("done", None, 1)}   # none read twice, none an error
    assert {r[4] for r in rows if r[0] in held} == {w.name for w in workers}   # each saved its own page
    for w in workers:   # every worker claimed again, within a few seconds of the restart
        first = min(r[5] for r in rows if r[4] == w.name and r[0] in later)
        assert (first - restarted).total_seconds() < 8, (w.name, first, restarted)
    assert (await scrape(http, [api]))[0]["pipeline_store_up"] == 1
    async with http.get(api.base_url + "/healthz") as r:
        assert r.status == 200 and (await r.json())["workers"] == 3


async def test_a_second_signal_ends_a_drain_that_waits_for_the_database(http, cluster, fleet, dsn):
    """Found on a tour: a worker told to stop (SIGTERM, Ctrl-C) during a database outage waited to
    save its page for as long as the outage lasted, and a second SIGTERM or SIGINT changed nothing:
    only kill -9 ended it. A stop must always end; the page goes back to the queue after the lease."""
    api, worker = await fleet.api_and_slow_worker(http, 1.0, "stuck")
    rid = await submit(http, api.base_url)
    await until(lambda: sql(dsn, "SELECT status FROM jobs WHERE id = %s", rid) == [("processing",)])
    cluster.stop("fast")
    try:
        worker.proc.send_signal(signal.SIGTERM)
        await until(lambda: "cannot save the result yet" in worker.output())   # read, and draining into the outage
        assert worker.proc.poll() is None and "draining: 1 job(s) in hand" in whole_log(worker)
        worker.proc.send_signal(signal.SIGTERM)
        assert worker.proc.wait(timeout=60) == 0
        assert "second signal: stopping now; 1 job(s) in hand go back to the queue after the lease" in whole_log(worker)
    finally:
        cluster.start_again()
    assert sql(dsn, "SELECT status, worker_id FROM jobs WHERE id = %s", rid) == [("processing", "stuck")]


async def test_a_dead_claim_loop_fails_liveness_and_stops_counting_as_a_worker(http, dsn):
    cfg = ServerConfig(store_url=dsn, role="worker", engine="fast", tokens=(TOKEN,), lease_s=1.0, worker_id="w-dead")
    async with EmbeddedServer(cfg) as srv:
        assert await code_of(http, srv.base_url + "/livez") == 200
        assert await code_of(http, srv.base_url + "/readyz") == 200
        srv.faults.worker_loop_exit = FaultRule(count=1)    # the loop ends, as a bug would end it
        await until(lambda: livez_fails(http, srv.base_url), polls=3000)
        async with http.get(srv.base_url + "/healthz") as r:
            assert r.status == 503 and (await r.json())["status"] == "dead"
        # the sweeper beats every third of a second while the loops run; now it stays silent
        await until(lambda: pg_clock(dsn, "SELECT now() - seen_at > interval '2 seconds' FROM workers "
                                          "WHERE id = 'w-dead'"))


# -- webhooks from the outbox ----------------------------------------------------------------------

async def test_kill_9_right_after_a_result_is_saved_still_delivers_job_completed_once(http, fleet, dsn):
    api = fleet.add("api", name="api-0")
    await api.ready(http)
    doomed = fleet.add("worker", "--fault", "worker_kill_after_save=1", name="doomed")
    await doomed.ready(http)
    async with Receiver() as hook:
        rid = await submit(http, api.base_url, webhook_url=hook.url)
        assert await asyncio.to_thread(doomed.proc.wait, 60) == -9          # killed itself right after the commit
        assert job_row(dsn, rid)["status"] == "done" and job_row(dsn, rid)["worker_id"] == "doomed"
        # if the dying worker's own dispatcher had claimed the event in the instant before the kill,
        # the claim runs out after the webhook timeout + 5 s and another member sends it
        await hook.wait(lambda got: "job.completed" in [h["X-DeAPI-Event"] for h, _ in got], timeout=45)
        # a later job through a new worker: deliveries flow, and the first was not sent again
        rescuer = fleet.add("worker", name="rescuer")
        await rescuer.ready(http)
        rid2 = await submit(http, api.base_url, webhook_url=hook.url)
        await wait_done(http, api.base_url, rid2)
        await hook.wait(lambda got: [h["X-DeAPI-Event"] for h, _ in got].count("job.completed") == 2)
    completed = [(h, json.loads(b)) for h, b in hook.received if h["X-DeAPI-Event"] == "job.completed"]
    assert sorted(p["data"]["job_request_id"] for _, p in completed) == sorted([rid, rid2])
    (h, payload), = [(h, p) for h, p in completed if p["data"]["job_request_id"] == rid]
    (event_id, state, saved_by), = sql(dsn, "SELECT id, state, worker_id FROM webhook_events "
                                            "WHERE job_id = %s AND event = 'job.completed'", rid)
    assert (state, saved_by) == ("sent", "doomed")
    assert h["webhook-id"] == h["X-DeAPI-Delivery-Id"] == payload["delivery_id"] == event_id


async def test_a_failing_receiver_gets_every_attempt_with_one_webhook_id_then_the_event_fails_in_metrics(
        http, fleet, dsn):
    (api,), _ = await fleet.start(http, 1, 1, "--webhook-time-scale", "0.00001")
    async with Receiver(default=500) as hook:
        rid = await submit(http, api.base_url, webhook_url=hook.url)
        await until(lambda: sql(dsn, "SELECT count(*) FROM webhook_events WHERE state = 'failed'") == [(2,)])
    attempts = [(h, b) for h, b in hook.received if h["X-DeAPI-Event"] == "job.completed"]
    assert len(attempts) == len(RETRY_SCHEDULE_S) and next_pause(len(RETRY_SCHEDULE_S), 1.0) is None
    assert len({h["webhook-id"] for h, _ in attempts}) == 1 and len({b for _, b in attempts}) == 1
    h, body = attempts[-1]
    assert h["X-DeAPI-Signature"] == sign(SECRET, h["X-DeAPI-Timestamp"], body)
    mac = hmac.new(SECRET.encode(), f"{h['webhook-id']}.{h['webhook-timestamp']}.".encode() + body, hashlib.sha256)
    assert h["webhook-signature"] == "v1," + base64.b64encode(mac.digest()).decode()
    assert json.loads(body)["data"]["job_request_id"] == rid
    assert sum(m.get("pipeline_webhooks_failed", 0) for m in await scrape(http, fleet.members)) == 2


async def test_a_drain_delivers_its_pending_events_before_the_worker_exits(http, fleet, dsn):
    api, worker = await fleet.api_and_slow_worker(http, 2, "drainer")
    async with Receiver() as hook:
        rid = await submit(http, api.base_url, webhook_url=hook.url)
        await until(lambda: job_row(dsn, rid)["status"] == "processing")
        api.kill()                                   # no other member is left to deliver
        assert await asyncio.to_thread(worker.terminate) == 0
        delivered = [json.loads(b)["data"]["job_request_id"] for h, b in hook.received
                     if h["X-DeAPI-Event"] == "job.completed"]
    assert delivered == [rid]                        # sent before the process exited
    assert sql(dsn, "SELECT state FROM webhook_events WHERE job_id = %s AND event = 'job.completed'", rid) == [("sent",)]


# -- one clock for the rate limits ----------------------------------------------------------------

async def test_a_replica_with_its_clock_a_minute_ahead_cannot_pass_the_rate_limit(http, fleet, dsn):
    limit = ("--profile", "custom", "--limit-submit-per-min", "10")
    api0 = fleet.add("api", *limit, name="api-0")
    await api0.ready(http)
    ahead = fleet.add("api", *limit, "--clock-offset", "60", name="api-ahead")   # its own minute is the next one
    await ahead.ready(http)
    # 20 quick submits must fall in one minute of the database's clock
    await until(lambda: pg_clock(dsn, "SELECT extract(second FROM clock_timestamp()) < 45"), polls=2000)
    minute = pg_clock(dsn, "SELECT date_trunc('minute', clock_timestamp())")
    codes = [(await post_submit(http, m.base_url, f"rl {i}"))[0] for i in range(10) for m in (api0, ahead)]
    assert pg_clock(dsn, "SELECT date_trunc('minute', clock_timestamp())") == minute
    assert codes.count(200) == 10 and codes.count(429) == 10


# -- the autoscaler's arithmetic -------------------------------------------------------------------

async def test_the_hpa_sees_the_fleet_queue_once_however_many_pods_are_scraped(http, fleet):
    (api0, api1, api2), _ = await fleet.start(http, 3, 0)
    for i in range(45):
        await submit(http, (api0, api1, api2)[i % 3].base_url, image=png(text=f"q{i}"))
    hpa = yaml.safe_load(HPA.read_text())
    (metric,) = hpa["spec"]["metrics"]
    target = float(metric["external"]["target"]["averageValue"])
    name = metric["external"]["metric"]["name"]

    async def queue_seen() -> float:
        scraped = await scrape(http, [m for m in fleet.members if m.proc.poll() is None])
        assert sum(m["pipeline_fleet_exporter"] for m in scraped) == 1
        return sum(m.get(name, 0.0) for m in scraped)   # what sum() over the pods gives the HPA

    assert await queue_seen() == 45
    assert math.ceil(await queue_seen() / target) == math.ceil(45 / target) == 3   # not 3 pods x 45
    exporter = next(m for m, s in zip(fleet.members, await scrape(http, fleet.members)) if s["pipeline_fleet_exporter"])
    exporter.kill()                                  # another member takes the export over
    rest = [m for m in fleet.members if m is not exporter]

    async def one_exporter() -> bool:
        return sum(s["pipeline_fleet_exporter"] for s in await scrape(http, rest)) == 1
    await until(one_exporter, polls=1000)
    assert await queue_seen() == 45


# -- migrations as a separate step ------------------------------------------------------------------

async def test_members_without_ddl_rights_serve_a_database_the_migration_job_set_up(http, dsn):
    owner = dsn
    db = owner.rsplit("/", 1)[1]
    refused = subprocess.run([sys.executable, "-m", "pipeline", "serve", "--store", owner, "--role", "api",
                              "--token", TOKEN, "--no-migrate", "--port", "0"],
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 6 and "--migrate-only" in refused.stderr       # an empty database: a clear refusal
    done = subprocess.run([sys.executable, "-m", "pipeline", "serve", "--migrate-only", "--store", owner],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    with psycopg.connect(owner, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS member_" + db)
        conn.execute(f"CREATE ROLE member_{db} LOGIN")
        conn.execute(f"REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO member_{db}")
        conn.execute(f"GRANT USAGE, UPDATE ON ALL SEQUENCES IN SCHEMA public TO member_{db}")
    member = owner.replace("postgresql://fleet@", f"postgresql://member_{db}@")
    with psycopg.connect(member, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE probe (x int)")                      # really no DDL
    members = Fleet(member)
    try:
        (api,), (worker,) = await members.start(http, 1, 1, "--no-migrate")
        # each banner says what the member serves: an operator must not point the client at a worker
        await until(lambda: f"deAPI-compatible API replica on {api.base_url} (no engine" in api.output())
        await until(lambda: f"fleet worker on {worker.base_url} (/healthz, /livez, /readyz and /metrics only"
                    in worker.output())
        rid = await submit(http, api.base_url)
        assert (await wait_done(http, api.base_url, rid))["status"] == "done"
    finally:
        members.stop()


# -- what an operator is told at start-up -----------------------------------------------------------

def migrate_only(store: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", "serve", "--migrate-only", "--store", store],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"})


def test_migrate_only_says_which_migrations_it_applied(dsn):
    """Found on a tour: the first --migrate-only on a new database said "nothing to apply", because
    opening the store had already applied them and the second look found none missing."""
    first, again = migrate_only(dsn), migrate_only(dsn)
    assert (first.returncode, again.returncode) == (0, 0), first.stderr + again.stderr
    assert f"applied {', '.join(str(v) for v, _ in MIGRATIONS)}" in first.stderr
    assert "nothing to apply" in again.stderr
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(MIGRATIONS)


async def test_a_store_that_cannot_be_opened_says_why_not_only_that_the_pool_timed_out(cluster):
    """Found on a tour: a wrong password or database name waited 30 s and then said only
    "PoolTimeout: pool initialization incomplete"; the reason was in the pool's log lines alone."""
    store = PgStore(cluster.dsn("no_such_database"), (TOKEN,), 1.0, {}, time.time)
    with pytest.raises(StoreUnavailable, match='cannot reach .*database "no_such_database" does not exist'):
        await store.open(timeout=0.5)


def test_a_user_without_rights_is_told_which_rights_a_member_needs(dsn):
    """Found on a tour: a member whose user may not create tables exited 6 with "cannot reach the
    PostgreSQL store" (it had reached it) and PostgreSQL's bare "permission denied"."""
    db = dsn.rsplit("/", 1)[1]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS plain_{db}")
        conn.execute(f"CREATE ROLE plain_{db} LOGIN")
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    user = dsn.replace("postgresql://fleet@", f"postgresql://plain_{db}@")
    r = subprocess.run([sys.executable, "-m", "pipeline", "serve", "--store", user, "--role", "api",
                        "--token", TOKEN, "--port", "0"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 6, r.stderr
    assert "refuses this user: permission denied for schema public" in r.stderr
    assert "cannot reach" not in r.stderr and "docs/fleet.md#kubernetes" in r.stderr


# -- the ledger ----------------------------------------------------------------------------------------

async def test_a_submit_whose_job_cannot_be_written_charges_nothing(http, dsn):
    """Found on a tour: the submit charged the balance in one statement and inserted the job in
    another, on whichever pooled connection came; when the insert failed (a stale connection after
    a database restart, here a user that may not insert jobs) the client got an error and no job,
    and the balance kept the charge: paid for a page never read, and again when the client retried."""
    assert migrate_only(dsn).returncode == 0
    db = dsn.rsplit("/", 1)[1]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS ledger_{db}")
        conn.execute(f"CREATE ROLE ledger_{db} LOGIN")
        conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ledger_{db}")
        conn.execute(f"GRANT USAGE, UPDATE ON ALL SEQUENCES IN SCHEMA public TO ledger_{db}")
        conn.execute(f"REVOKE INSERT ON jobs FROM ledger_{db}")          # the job's insert fails, the charge would not
    members = Fleet(dsn.replace("postgresql://fleet@", f"postgresql://ledger_{db}@"))
    try:
        api = members.add("api", "--no-migrate", name="api-0")
        await api.ready(http)
        before = sql(dsn, "SELECT balance FROM balances WHERE token = %s", TOKEN)
        code, _ = await post_submit(http, api.base_url, "never written")
        assert code == 500
        assert sql(dsn, "SELECT count(*) FROM jobs") == [(0,)]
        assert sql(dsn, "SELECT balance FROM balances WHERE token = %s", TOKEN) == before   # nothing charged
    finally:
        members.stop()
