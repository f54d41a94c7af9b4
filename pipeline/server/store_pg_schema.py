"""The PostgreSQL schema as numbered migrations, applied by whichever replica starts first.

Why in code and not a migration tool: five tables need no framework, and every replica runs
``migrate`` at start-up under one advisory lock, so a new database is set up by the first
process that reaches it and replicas starting together do not race. A migration, once
released, is never edited: a change is a new entry at the end.

Version 2 turns ``webhook_events`` into an outbox (the event's body, its stable delivery id,
its state ``pending | sent | failed | none`` and its retry schedule; rows from before it count
as sent) and adds ``exporter``, the lease of the one member that exports the fleet-wide gauges.
A deployment can run them as a separate step (``pipeline serve --migrate-only``, the Kubernetes
Job) so the serving members' database user needs no DDL rights (``--no-migrate``).
"""

from __future__ import annotations

MIGRATION_LOCK = 0x70697065  # pg_advisory_xact_lock key ("pipe")

MIGRATIONS: list[tuple[int, str]] = [
    (1, """
CREATE TABLE jobs (
    seq          bigserial UNIQUE,
    id           text PRIMARY KEY,
    token        text NOT NULL,
    model        text NOT NULL,
    language     text,
    format       text NOT NULL,
    inline       boolean NOT NULL,
    webhook_url  text,
    image        bytea,
    base_url     text NOT NULL,
    price        double precision NOT NULL DEFAULT 0,
    status       text NOT NULL DEFAULT 'pending',
    progress     double precision NOT NULL DEFAULT 0,
    text         text,
    error        text,
    error_code   text,
    lost         boolean NOT NULL DEFAULT false,
    expire_link  boolean NOT NULL DEFAULT false,
    never_finish boolean NOT NULL DEFAULT false,
    fail         boolean NOT NULL DEFAULT false,
    worker_id    text,
    lease_until  timestamptz,
    attempts     integer NOT NULL DEFAULT 0,
    claim_no     bigint,
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz
);
CREATE INDEX jobs_pending ON jobs (token, seq) WHERE status = 'pending';
CREATE INDEX jobs_leases ON jobs (lease_until) WHERE status = 'processing';
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE TABLE balances (token text PRIMARY KEY, balance double precision NOT NULL);
CREATE TABLE rate_windows (
    token text NOT NULL, endpoint text NOT NULL, kind text NOT NULL, win bigint NOT NULL,
    hits integer NOT NULL DEFAULT 0,
    PRIMARY KEY (token, endpoint, kind, win)
);
CREATE SEQUENCE turn_seq;
CREATE TABLE token_turns (token text PRIMARY KEY, last_served bigint NOT NULL);
CREATE TABLE webhook_events (
    job_id text NOT NULL, event text NOT NULL, worker_id text, created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, event)
);
CREATE TABLE workers (id text PRIMARY KEY, role text NOT NULL, seen_at timestamptz NOT NULL);
CREATE TABLE settings (key text PRIMARY KEY, value text NOT NULL);
"""),
    (2, """
ALTER TABLE webhook_events
    ADD COLUMN id            text,
    ADD COLUMN url           text,
    ADD COLUMN body          text,
    ADD COLUMN state         text NOT NULL DEFAULT 'sent',
    ADD COLUMN attempts      integer NOT NULL DEFAULT 0,
    ADD COLUMN next_at       timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN claimed_by    text,
    ADD COLUMN claimed_until timestamptz,
    ADD COLUMN sent_at       timestamptz,
    ADD COLUMN last_error    text;
CREATE INDEX webhook_due ON webhook_events (next_at) WHERE state = 'pending';
CREATE TABLE exporter (id integer PRIMARY KEY, member text NOT NULL, until timestamptz NOT NULL);
"""),
]

__all__ = ["MIGRATIONS", "MIGRATION_LOCK"]
