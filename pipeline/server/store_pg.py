"""The shared store on PostgreSQL (psycopg 3, async): what lets replicas and workers be many.

Why these choices:

* Workers claim with ``FOR UPDATE SKIP LOCKED``: many workers take different jobs in one
  statement each, without a queue broker and without waiting on each other's row locks.
* Round robin between tokens: ``token_turns`` remembers when each token was last served; the
  next claim takes the oldest pending job of the token served longest ago, so one token's
  backlog of a million pages cannot starve another's ten (per token, submission order holds).
* Leases: a claimed job carries ``worker_id`` and ``lease_until``; the worker renews it while
  the engine reads. A worker that dies stops renewing and any replica's sweeper puts the job
  back after the lease (``requeue_expired``); after ``MAX_ATTEMPTS`` claims it fails instead
  (a page that kills every worker must not loop for ever). ``complete``/``fail`` only apply
  while the caller still owns the job, and the ``webhook_events`` row is inserted in the same
  transaction: one result, one ``job.completed``, whichever worker finished it.
* Time for leases and expiry is the database's ``now()``, one clock for every machine.
* ``LISTEN``/``NOTIFY`` wakes idle workers at once when a job is queued; they also look every
  ``IDLE_POLL_S`` in case a notification was missed (a reconnect).
* Webhooks go through an outbox: ``complete``/``fail`` insert the event's body with its stable
  delivery id in the finishing transaction; any member's dispatcher (``outbox.py``) claims due
  rows, sends them, and marks them sent only on a 2xx. Rate-limit windows are counted on the
  database's clock, so a member whose clock is off cannot open a window of its own.
* A database outage is not a crash: the pool reconnects on a short, capped backoff
  (``RECONNECT_MAX_S``), a request waits at most ``POOL_TIMEOUT_S`` for a connection, and
  ``is_outage`` tells the routes to answer 503 with ``Retry-After`` instead of 500.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Any, Callable

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from psycopg_pool.base import AttemptWithBackoff

from .lifecycle import Job
from .ratelimit import Verdict, judge, windows
from .store import Delivery, OutboxEvent, Stats, Store, StoreUnavailable
from .store_pg_schema import MIGRATION_LOCK, MIGRATIONS

log = logging.getLogger("pipeline.server.store_pg")

CHANNEL = "pipeline_jobs"
MAX_ATTEMPTS = 3                 # claims of one job before it fails with WORKER_TIMEOUT
WORKER_SEEN_S = 15.0             # a worker that has not said so for this long is not counted
POOL_TIMEOUT_S = 3.0             # a request waits this long for a connection before the 503
RECONNECT_FIRST_S = 0.25         # the pool's reconnect backoff: first pause ...
RECONNECT_MAX_S = 2.0            # ... doubling up to this, so a restarted database is used again within seconds

JOB_COLUMNS = ("id", "token", "model", "language", "format", "inline", "webhook_url", "image", "base_url",
               "price", "lost", "expire_link", "never_finish", "fail")


def safe_dsn(dsn: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.Error:
        return "(unparsable URL)"
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"


def _one_line(exc: BaseException) -> str:
    """A database error's message on one line (libpq's span several), cut to a readable length."""
    return " ".join(str(exc).split())[:300]


# the price taken from a balance that covers it (a short one: no row changes)
CHARGE_SQL = "UPDATE balances SET balance = balance - %s WHERE token = %s AND balance + 1e-12 >= %s"

# what a status poll or a download reads: everything but the upload itself
READ_COLUMNS = ", ".join([c for c in JOB_COLUMNS if c != "image"] + [
    "status", "progress", "text", "error", "error_code", "started_at", "finished_at"])


def _job(row: dict[str, Any]) -> Job:
    job = Job(**{k: row.get(k) for k in JOB_COLUMNS})
    job.image = bytes(row["image"]) if row.get("image") is not None else None
    job.status, job.progress, job.text = row["status"], row["progress"], row["text"]
    job.error, job.error_code = row["error"], row["error_code"]
    job.started = row["started_at"].timestamp() if row["started_at"] else None
    job.finished = row["finished_at"].timestamp() if row["finished_at"] else None
    return job


async def _wait_and_clear(event: asyncio.Event, timeout: float) -> None:
    """Wait until ``event`` is set (a NOTIFY came) or ``timeout`` passes, then re-arm it."""
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except asyncio.TimeoutError:
        pass
    event.clear()


class _Reconnect(AttemptWithBackoff):
    """psycopg_pool's reconnect schedule (1 s doubling without bound) with a short first pause and a cap."""

    INITIAL_DELAY = RECONNECT_FIRST_S

    def update_delay(self, now: float) -> None:
        super().update_delay(now)
        self.delay = min(self.delay, RECONNECT_MAX_S)


class _Pool(AsyncConnectionPool):
    """The pool with ``_Reconnect``: after a restart of the database, connections come back within
    ``RECONNECT_MAX_S`` instead of after a pause that doubled through the whole outage."""

    async def _add_connection(self, attempt: AttemptWithBackoff | None, growing: bool = False) -> None:
        await super()._add_connection(attempt or _Reconnect(timeout=self.reconnect_timeout), growing)


OUTAGE_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout)


class PgStore(Store):
    kind = "postgresql"
    shared = True

    def __init__(self, dsn: str, tokens: tuple[str, ...], balance: float,
                 limits: dict[str, tuple[int | None, int | None]], clock: Callable[[], float],
                 pool_size: int = 8, auto_migrate: bool = True) -> None:
        self.dsn, self.tokens, self.initial_balance = dsn, tokens, balance
        self.limits, self.clock, self.auto_migrate = limits, clock, auto_migrate
        self.pool = _Pool(dsn, min_size=1, max_size=pool_size, open=False, timeout=POOL_TIMEOUT_S,
                          reconnect_timeout=3600.0, kwargs={"autocommit": True, "row_factory": dict_row})
        self._work = asyncio.Event()
        self._hooks = asyncio.Event()
        self._listener: asyncio.Task | None = None
        self.migrations_applied: list[int] = []      # what ``open`` applied (``--migrate-only`` reports it)

    # -- set-up ---------------------------------------------------------------------------
    async def open(self, timeout: float = 30.0) -> None:
        """Connect (waiting up to ``timeout`` for a database that is still starting), then apply the
        missing migrations (``migrations_applied`` says which) or, without ``auto_migrate``, check them.

        The errors say what an operator can act on: why no connection came (the pool itself only
        times out, so one direct attempt asks the server), or which rights the user lacks."""
        try:
            await self.pool.open(wait=True, timeout=timeout)
            if self.auto_migrate:
                self.migrations_applied = await self.migrate()
            else:
                await self.check_schema()
        except PoolTimeout:
            await self.pool.close()
            raise StoreUnavailable(f"cannot reach the PostgreSQL store at {safe_dsn(self.dsn)} "
                                   f"(tried {timeout:g} s): {await self._connect_error()}") from None
        except psycopg.errors.InsufficientPrivilege as exc:
            await self.pool.close()
            raise StoreUnavailable(f"the PostgreSQL store at {safe_dsn(self.dsn)} refuses this user: {_one_line(exc)}. "
                                   "Setting the schema up (the default) needs a user that may create tables (the "
                                   "database's owner); a member started with --no-migrate, after `pipeline serve "
                                   "--migrate-only`, needs SELECT, INSERT, UPDATE, DELETE on the tables and USAGE, "
                                   "UPDATE on the sequences (docs/fleet.md#kubernetes)") from None
        except psycopg.Error as exc:
            await self.pool.close()
            raise StoreUnavailable(f"cannot use the PostgreSQL store at {safe_dsn(self.dsn)}: "
                                   f"{type(exc).__name__}: {_one_line(exc)}") from None
        async with self.pool.connection() as conn:
            for token in self.tokens:
                await conn.execute("INSERT INTO balances (token, balance) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                                   (token, self.initial_balance))
        self._listener = asyncio.create_task(self._listen(), name="pg-listen")

    async def _connect_error(self) -> str:
        """Why the pool got no connection: libpq's own reason (refused, password, no such database)."""
        try:
            conn = await psycopg.AsyncConnection.connect(self.dsn, connect_timeout=5)
        except psycopg.Error as exc:
            return _one_line(exc)
        await conn.close()
        return "no connection came in time, though the server answers now"

    async def applied_versions(self) -> set[int]:
        """The migrations this database has (read-only: a member without DDL rights may ask)."""
        async with self.pool.connection() as conn:
            row = await (await conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL AS there")).fetchone()
            if not row["there"]:
                return set()
            return {r["version"] for r in await (await conn.execute("SELECT version FROM schema_migrations")).fetchall()}

    async def check_schema(self) -> None:
        """``--no-migrate``: refuse to serve a database the migrations have not reached."""
        missing = sorted({v for v, _ in MIGRATIONS} - await self.applied_versions())
        if missing:
            raise StoreUnavailable(f"the PostgreSQL store at {safe_dsn(self.dsn)} lacks schema migration(s) "
                                   f"{missing}: run `pipeline serve --migrate-only` (the Kubernetes Job "
                                   "pipeline-ocr-migrate) with a user that may create tables")

    async def migrate(self) -> list[int]:
        """Apply the migrations this database lacks (under an advisory lock); returns those applied.

        An up-to-date database is recognised read-only first, so members whose user has no DDL
        rights start on a database the migration Job has set up."""
        if {v for v, _ in MIGRATIONS} <= await self.applied_versions():
            return []
        applied = []
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            await conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations "
                               "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
            done = {r["version"] for r in await (await conn.execute("SELECT version FROM schema_migrations")).fetchall()}
            for version, sql in MIGRATIONS:
                if version not in done:
                    await conn.execute(sql)
                    await conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
                    applied.append(version)
        return applied

    async def _listen(self) -> None:
        lost_at: float | None = None   # when the LISTEN connection was lost (the log says when it is back)
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    if lost_at is not None:   # the outage's warnings are said once a minute (quietlog): its end too
                        log.warning("database reachable again (LISTEN restored after %.0f s)", time.monotonic() - lost_at)
                        lost_at = None
                    self._work.set()  # look once after (re)connecting: a NOTIFY may have been missed
                    self._hooks.set()
                    async for note in conn.notifies():
                        (self._hooks if note.payload == "webhook" else self._work).set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database restarted: listen again shortly
                log.warning("LISTEN connection lost (%s); reconnecting", exc)
                if lost_at is None:
                    lost_at = time.monotonic()
                await asyncio.sleep(1.0)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        await self.pool.close()

    def is_outage(self, exc: BaseException) -> bool:
        if isinstance(exc, OUTAGE_ERRORS):
            return True
        return isinstance(exc, psycopg.errors.AdminShutdown | psycopg.errors.CannotConnectNow)

    async def ping(self) -> None:
        async with self.pool.connection() as conn:
            await conn.execute("SELECT 1")

    async def link_secret(self) -> bytes:
        async with self.pool.connection() as conn:
            await conn.execute("INSERT INTO settings (key, value) VALUES ('link_secret', %s) ON CONFLICT DO NOTHING",
                               (secrets.token_hex(32),))
            row = await (await conn.execute("SELECT value FROM settings WHERE key = 'link_secret'")).fetchone()
        return bytes.fromhex(row["value"])

    # -- jobs -----------------------------------------------------------------------------
    async def add(self, job: Job) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            await self._queue(conn, job)

    async def add_charged(self, job: Job) -> bool:
        """Charge ``job.price`` and queue the job in one transaction; ``False`` (nothing done) when
        the balance is short. Two statements on two pooled connections could fail between them (a
        stale connection after a restart) and leave a charge without its job."""
        async with self.pool.connection() as conn, conn.transaction():
            if (await conn.execute(CHARGE_SQL, (job.price, job.token, job.price))).rowcount != 1:
                return False
            await self._queue(conn, job)
        return True

    @staticmethod
    async def _queue(conn: Any, job: Job) -> None:
        await conn.execute(f"INSERT INTO jobs ({', '.join(JOB_COLUMNS)}) VALUES ({', '.join(['%s'] * len(JOB_COLUMNS))})",
                           [getattr(job, c) for c in JOB_COLUMNS])
        await conn.execute("SELECT pg_notify(%s, '')", (CHANNEL,))

    async def load(self, job_id: str) -> Job | None:
        async with self.pool.connection() as conn:
            row = await (await conn.execute(f"SELECT {READ_COLUMNS} FROM jobs WHERE id = %s", (job_id,))).fetchone()
        return _job(row) if row else None

    async def link_expired_once(self, job_id: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute("UPDATE jobs SET expire_link = false WHERE id = %s", (job_id,))

    async def claim(self, worker_id: str, lease_s: float) -> Job | None:
        async with self.pool.connection() as conn, conn.transaction():
            row = await (await conn.execute("""
                WITH next AS (
                    SELECT j.id FROM jobs j LEFT JOIN token_turns t ON t.token = j.token
                    WHERE j.status = 'pending'
                    ORDER BY COALESCE(t.last_served, 0), j.seq
                    LIMIT 1
                    FOR UPDATE OF j SKIP LOCKED)
                UPDATE jobs SET status = 'processing', progress = 10, worker_id = %s,
                       lease_until = now() + make_interval(secs => %s), attempts = attempts + 1,
                       started_at = now(), claim_no = nextval('turn_seq')
                FROM next WHERE jobs.id = next.id
                RETURNING jobs.*""", (worker_id, lease_s))).fetchone()
            if row is None:
                return None
            await conn.execute("INSERT INTO token_turns (token, last_served) VALUES (%s, %s) "
                               "ON CONFLICT (token) DO UPDATE SET last_served = EXCLUDED.last_served",
                               (row["token"], row["claim_no"]))
        return _job(row)

    async def renew(self, job_id: str, worker_id: str, lease_s: float, progress: float) -> bool:
        async with self.pool.connection() as conn:
            cur = await conn.execute("UPDATE jobs SET lease_until = now() + make_interval(secs => %s), progress = %s "
                                     "WHERE id = %s AND worker_id = %s AND status = 'processing'",
                                     (lease_s, progress, job_id, worker_id))
            return cur.rowcount == 1

    async def complete(self, job: Job, worker_id: str, webhook: Delivery | None = None) -> bool:
        return await self._finish(job, worker_id, "done", "job.completed", webhook)

    async def fail(self, job: Job, worker_id: str, webhook: Delivery | None = None) -> bool:
        return await self._finish(job, worker_id, "error", "job.failed", webhook)

    async def _finish(self, job: Job, worker_id: str, status: str, event: str, webhook: Delivery | None) -> bool:
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute("""
                UPDATE jobs SET status = %s, text = %s, error = %s, error_code = %s, progress = 100,
                       image = NULL, finished_at = now(), lease_until = NULL
                WHERE id = %s AND worker_id = %s AND status = 'processing'""",
                                     (status, job.text, job.error, job.error_code, job.id, worker_id))
            if cur.rowcount != 1:
                return False
            if status == "error":
                await conn.execute("UPDATE balances SET balance = balance + %s WHERE token = %s", (job.price, job.token))
            return await self._outbox_insert(conn, job, event, worker_id, webhook)

    async def announce(self, job: Job, event: str, worker_id: str, webhook: Delivery | None) -> bool:
        async with self.pool.connection() as conn, conn.transaction():
            return await self._outbox_insert(conn, job, event, worker_id, webhook)

    async def _outbox_insert(self, conn: Any, job: Job, event: str, worker_id: str, webhook: Delivery | None) -> bool:
        """One row per (job, event): the second attempt at it (a job taken over) inserts nothing."""
        delivery_id, body = webhook if webhook and job.webhook_url else (None, None)
        cur = await conn.execute(
            "INSERT INTO webhook_events (job_id, event, worker_id, id, url, body, state) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (job.id, event, worker_id, delivery_id, job.webhook_url if body else None, body,
             "pending" if body else "none"))
        if cur.rowcount == 1 and body:
            await conn.execute("SELECT pg_notify(%s, 'webhook')", (CHANNEL,))
        return cur.rowcount == 1

    # -- the webhook outbox ----------------------------------------------------------------
    async def outbox_claim(self, member: str, limit: int, hold_s: float) -> list[OutboxEvent]:
        async with self.pool.connection() as conn:
            rows = await (await conn.execute("""
                WITH due AS (
                    SELECT job_id, event FROM webhook_events
                    WHERE state = 'pending' AND next_at <= now()
                      AND (claimed_until IS NULL OR claimed_until < now() OR claimed_by = %s)
                    ORDER BY next_at LIMIT %s FOR UPDATE SKIP LOCKED)
                UPDATE webhook_events w SET claimed_by = %s, claimed_until = now() + make_interval(secs => %s)
                FROM due WHERE w.job_id = due.job_id AND w.event = due.event
                RETURNING w.id, w.event, w.url, w.body, w.attempts""",
                                             (member, limit, member, hold_s))).fetchall()
        return [OutboxEvent(r["id"], r["event"], r["url"], r["body"], r["attempts"]) for r in rows]

    async def outbox_sent(self, delivery_id: str, member: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute("UPDATE webhook_events SET state = 'sent', sent_at = now(), attempts = attempts + 1, "
                               "claimed_by = NULL, claimed_until = NULL WHERE id = %s AND state = 'pending'",
                               (delivery_id,))

    async def outbox_retry(self, delivery_id: str, member: str, retry_in_s: float | None, error: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute("""
                UPDATE webhook_events SET attempts = attempts + 1, last_error = %s, claimed_by = NULL,
                       claimed_until = NULL,
                       state = CASE WHEN %s::float8 IS NULL THEN 'failed' ELSE 'pending' END,
                       next_at = now() + make_interval(secs => COALESCE(%s::float8, 0))
                WHERE id = %s AND state = 'pending'""", (error[:300], retry_in_s, retry_in_s, delivery_id))

    async def wait_for_webhooks(self, timeout: float) -> None:
        await _wait_and_clear(self._hooks, timeout)

    async def exporter(self, member: str, lease_s: float) -> bool:
        async with self.pool.connection() as conn:
            row = await (await conn.execute("""
                INSERT INTO exporter (id, member, until) VALUES (1, %s, now() + make_interval(secs => %s))
                ON CONFLICT (id) DO UPDATE SET member = EXCLUDED.member, until = EXCLUDED.until
                WHERE exporter.member = EXCLUDED.member OR exporter.until < now()
                RETURNING member""", (member, lease_s))).fetchone()
        return row is not None

    async def resign_exporter(self, member: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute("DELETE FROM exporter WHERE member = %s", (member,))

    async def requeue_expired(self, failed: Callable[[Job], Delivery | None] = lambda job: None) -> int:
        async with self.pool.connection() as conn, conn.transaction():
            dead = await (await conn.execute(f"""
                UPDATE jobs SET status = 'error', error_code = 'WORKER_TIMEOUT', progress = 100,
                       error = 'every worker that took this job stopped before finishing it',
                       image = NULL, finished_at = now(), lease_until = NULL
                WHERE status = 'processing' AND lease_until < now() AND attempts >= %s
                RETURNING {READ_COLUMNS}, image, worker_id""", (MAX_ATTEMPTS,))).fetchall()
            for row in dead:   # refunded, and job.failed in the outbox, as a worker's failure
                job = _job(row)
                await conn.execute("UPDATE balances SET balance = balance + %s WHERE token = %s", (job.price, job.token))
                await self._outbox_insert(conn, job, "job.failed", row["worker_id"], failed(job))
            cur = await conn.execute("UPDATE jobs SET status = 'pending', progress = 0, worker_id = NULL, "
                                     "lease_until = NULL WHERE status = 'processing' AND lease_until < now()")
            if cur.rowcount:
                await conn.execute("SELECT pg_notify(%s, '')", (CHANNEL,))
                log.warning("%d job(s) back in the queue: their worker's lease ran out", cur.rowcount)
            return cur.rowcount

    async def purge_expired(self, result_ttl_s: float) -> int:
        async with self.pool.connection() as conn:
            minute, day = windows(await self._db_time(conn))
            cur = await conn.execute("DELETE FROM jobs WHERE finished_at < now() - make_interval(secs => %s)",
                                     (result_ttl_s,))
            await conn.execute("DELETE FROM webhook_events e WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = e.job_id)")
            await conn.execute("DELETE FROM rate_windows WHERE (kind = 'm' AND win < %s) OR (kind = 'd' AND win < %s)",
                               (minute - 1, day - 1))
            await conn.execute("DELETE FROM workers WHERE seen_at < now() - interval '1 hour'")
            return cur.rowcount

    async def heartbeat(self, worker_id: str, role: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute("INSERT INTO workers (id, role, seen_at) VALUES (%s, %s, now()) "
                               "ON CONFLICT (id) DO UPDATE SET seen_at = now(), role = EXCLUDED.role", (worker_id, role))

    async def forget_worker(self, worker_id: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute("DELETE FROM workers WHERE id = %s", (worker_id,))

    async def wait_for_work(self, timeout: float) -> None:
        await _wait_and_clear(self._work, timeout)

    # -- money and limits -----------------------------------------------------------------
    async def balance(self, token: str) -> float:
        async with self.pool.connection() as conn:
            row = await (await conn.execute("SELECT balance FROM balances WHERE token = %s", (token,))).fetchone()
        return round(row["balance"], 6) if row else 0.0

    async def charge(self, token: str, amount: float) -> bool:
        async with self.pool.connection() as conn:
            cur = await conn.execute(CHARGE_SQL, (amount, token, amount))
            return cur.rowcount == 1

    async def refund(self, token: str, amount: float) -> None:
        async with self.pool.connection() as conn:
            await conn.execute("UPDATE balances SET balance = balance + %s WHERE token = %s", (amount, token))

    async def rate_check(self, token: str, endpoint: str) -> Verdict:
        per_min, per_day = self.limits.get(endpoint, (None, None))
        if per_min is None and per_day is None:
            return Verdict(True)
        where = "token = %s AND endpoint = %s AND ((kind = 'm' AND win = %s) OR (kind = 'd' AND win = %s))"
        async with self.pool.connection() as conn, conn.transaction():
            now = await self._db_time(conn)   # one clock for every replica, whatever theirs say
            minute, day = windows(now)
            key = (token, endpoint, minute, day)
            await conn.execute("INSERT INTO rate_windows (token, endpoint, kind, win) VALUES (%s, %s, 'm', %s), "
                               "(%s, %s, 'd', %s) ON CONFLICT DO NOTHING", (token, endpoint, minute, token, endpoint, day))
            rows = await (await conn.execute(f"SELECT kind, hits FROM rate_windows WHERE {where} FOR UPDATE", key)).fetchall()
            hits = {r["kind"]: r["hits"] for r in rows}
            verdict = judge(per_min, per_day, hits.get("m", 0), hits.get("d", 0), now)
            if verdict.allowed:
                await conn.execute(f"UPDATE rate_windows SET hits = hits + 1 WHERE {where}", key)
        return verdict

    @staticmethod
    async def _db_time(conn: Any) -> float:
        row = await (await conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8 AS t")).fetchone()
        return row["t"]

    # -- operations -----------------------------------------------------------------------
    async def stats(self) -> Stats:
        async with self.pool.connection() as conn:
            row = await (await conn.execute("""
                SELECT count(*) FILTER (WHERE status = 'pending') AS queued,
                       count(*) FILTER (WHERE status = 'processing') AS running,
                       count(*) FILTER (WHERE finished_at > now() - interval '1 minute') AS done_last_minute,
                       count(*) FILTER (WHERE status = 'error' AND finished_at > now() - interval '1 minute')
                           AS failed_last_minute,
                       percentile_disc(ARRAY[0.5, 0.9, 0.99]) WITHIN GROUP
                           (ORDER BY extract(epoch FROM finished_at - started_at) * 1000)
                           FILTER (WHERE finished_at > now() - interval '5 minutes' AND started_at IS NOT NULL) AS pct,
                       count(*) AS jobs_kept
                FROM jobs""")).fetchone()
            workers = await (await conn.execute(
                "SELECT count(*) AS n FROM workers WHERE role IN ('worker', 'all') "
                "AND seen_at > now() - make_interval(secs => %s)", (WORKER_SEEN_S,))).fetchone()
            hooks = await (await conn.execute(
                "SELECT count(*) FILTER (WHERE state = 'pending') AS pending, "
                "count(*) FILTER (WHERE state = 'failed') AS failed FROM webhook_events")).fetchone()
        pct = [float(p) for p in row["pct"]] if row["pct"] else [0.0, 0.0, 0.0]
        return Stats(queued=row["queued"], running=row["running"], done_last_minute=row["done_last_minute"],
                     failed_last_minute=row["failed_last_minute"], p50_ms=pct[0], p90_ms=pct[1], p99_ms=pct[2],
                     workers=workers["n"], jobs_kept=row["jobs_kept"], webhooks_pending=hooks["pending"],
                     webhooks_failed=hooks["failed"])


__all__ = ["MAX_ATTEMPTS", "PgStore", "safe_dsn"]
