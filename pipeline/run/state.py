"""The SQLite state store: what every file and every submitted page is, across runs and crashes.

Why SQLite in WAL mode: one file beside the outputs, transactions that survive a SIGKILL at any
instant, readers (``pipeline status``) that never block the writer, and no server to run.

Two levels are tracked:

* ``files``: one row per input path. States::

      pending -> prepared -> submitting -> submitted -> done
                    \\-> rejected_input          \\-> failed_transient -> (rerun) ... -> quarantined
                                                 \\-> failed_permanent

  A file is ``done`` only after its outputs are on disk (the runner writes them first).
* ``pages``: one row per (work key, page). The work key is the content hash plus every setting
  that changes the result, so files with identical content share their pages and are paid for
  once. A page row is written with state ``submitting`` *before* the POST (the intent) and gets
  its ``request_id`` right after; on restart a page with a request id is re-attached, never
  resubmitted, and a page left in ``submitting`` is known to have an unknown outcome.
  ``page_json`` keeps what the page's ``.json`` entry needs (size, render dpi, transforms, where
  its text came from), so a resumed PDF does not render its done pages again. A page taken from a
  PDF's text layer is stored ``done`` with no request id: it cost nothing and is never submitted.
* ``price_quotes`` (schema 2): the API's price per (model, language, format, size bucket) with
  the time it was asked (``pipeline.run.pricing``), and ``spend``: one row per submitted page with
  its quote, its run and its calendar day (``pipeline.run.budget`` sums it for the caps).

All writes happen on the event-loop thread through one connection; each call is one short
transaction, so the database is consistent at every instant.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection, Iterator

SCHEMA_VERSION = 2

FILE_STATES = (
    "pending", "prepared", "submitting", "submitted", "done",
    "failed_transient", "failed_permanent", "rejected_input", "quarantined",
)
FAILED_STATES = ("failed_transient", "failed_permanent", "rejected_input", "quarantined")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    rel         TEXT PRIMARY KEY,
    size        INTEGER,
    mtime_ns    INTEGER,
    inode       INTEGER,
    sha256      TEXT,
    work_key    TEXT,
    state       TEXT NOT NULL,
    failures    INTEGER NOT NULL DEFAULT 0,
    error_class TEXT,
    error_code  TEXT,
    error       TEXT,
    outputs     TEXT,
    updated_at  REAL NOT NULL,
    done_at     REAL,
    run_id      INTEGER
);
CREATE INDEX IF NOT EXISTS files_state ON files(state);
CREATE INDEX IF NOT EXISTS files_work ON files(work_key);
CREATE TABLE IF NOT EXISTS pages (
    work_key      TEXT NOT NULL,
    page          INTEGER NOT NULL,
    state         TEXT NOT NULL,
    request_id    TEXT,
    upload_sha256 TEXT,
    submits       INTEGER NOT NULL DEFAULT 0,
    unknown_outcomes INTEGER NOT NULL DEFAULT 0,
    resubmitted_reason TEXT,
    result_text   TEXT,
    result_json   TEXT,
    error_code    TEXT,
    error         TEXT,
    submitted_at  REAL,
    finished_at   REAL,
    page_json     TEXT,
    PRIMARY KEY (work_key, page)
);
CREATE TABLE IF NOT EXISTS runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at  REAL NOT NULL,
    ended_at    REAL,
    exit_code   INTEGER,
    summary     TEXT
);
CREATE TABLE IF NOT EXISTS webhook_events (
    delivery_id TEXT PRIMARY KEY,
    request_id  TEXT,
    event       TEXT,
    received_at REAL
);
"""


_SCHEMA_2 = """
CREATE TABLE IF NOT EXISTS price_quotes (
    quote_key   TEXT PRIMARY KEY,
    price       REAL NOT NULL,
    quoted_at   REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS spend (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id      INTEGER,
    day         TEXT NOT NULL,
    at          REAL NOT NULL,
    pages       INTEGER NOT NULL,
    cost        REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS spend_day ON spend(day);
CREATE INDEX IF NOT EXISTS spend_run ON spend(run_id);
"""


@dataclass(frozen=True)
class FileRecord:
    rel: str
    size: int | None
    mtime_ns: int | None
    inode: int | None
    sha256: str | None
    work_key: str | None
    state: str
    failures: int
    error_class: str | None
    error_code: str | None
    error: str | None
    outputs: tuple[str, ...]
    updated_at: float
    done_at: float | None


@dataclass(frozen=True)
class PageRecord:
    work_key: str
    page: int
    state: str              # submitting | submitted | done | failed
    request_id: str | None
    upload_sha256: str | None
    submits: int
    unknown_outcomes: int
    resubmitted_reason: str | None
    result_text: str | None
    result_json: str | None
    error_code: str | None
    error: str | None
    submitted_at: float | None
    finished_at: float | None
    page_json: str | None = None

    @property
    def facts(self) -> dict | None:
        """The page's recorded prepare/render facts, if any."""
        return json.loads(self.page_json) if self.page_json else None

    @property
    def lost_job(self) -> bool:
        """The server lost this page's job (``page_forget_request``) and no run has sent the
        page since: its next submit pays a second job, a resubmission that run must admit even
        when the run that lost the job stopped before resending (a stop, a kill)."""
        return self.state == "failed" and self.error is not None and self.error == self.resubmitted_reason


class StateStore:
    """Per-file and per-page state in one SQLite database (WAL)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: every committed transaction survives a process crash (SIGKILL);
        # only an OS crash or power loss can lose the last ones.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._owner = threading.get_ident()   # the thread that writes (the event loop's)
        self._ahead: _ReadAhead | None = None  # file records read ahead of the walk (get_file)
        self._db.executescript(_SCHEMA)
        self._migrate()

    def close(self) -> None:
        self._db.close()

    def _migrate(self) -> None:
        """Additive upgrades of a database written by an older version (columns added since)."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(pages)")}
        if "page_json" not in columns:
            self._db.execute("ALTER TABLE pages ADD COLUMN page_json TEXT")
        # schema 2: price quotes and the spend ledger (issue 13); new tables, nothing rewritten
        self._db.executescript(_SCHEMA_2)
        self._db.execute("INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT(key) DO UPDATE SET "
                         "value=excluded.value WHERE CAST(value AS INTEGER) < CAST(excluded.value AS INTEGER)",
                         (str(SCHEMA_VERSION),))

    # -- runs ---------------------------------------------------------------------------------

    def start_run(self) -> int:
        cur = self._db.execute("INSERT INTO runs (started_at) VALUES (?)", (time.time(),))
        return int(cur.lastrowid)

    def finish_run(self, run_id: int, exit_code: int, summary: dict[str, Any]) -> None:
        self._db.execute("UPDATE runs SET ended_at=?, exit_code=?, summary=? WHERE id=?",
                         (time.time(), exit_code, json.dumps(summary), run_id))

    def last_run(self) -> dict[str, Any] | None:
        row = self._db.execute("SELECT * FROM runs ORDER BY id DESC LIMIT 1").fetchone()
        if row is None:
            return None
        out = dict(row)
        out["summary"] = json.loads(out["summary"]) if out["summary"] else None
        return out

    # -- files --------------------------------------------------------------------------------

    def get_file(self, rel: str) -> FileRecord | None:
        if threading.get_ident() == self._owner:   # another thread asks the database itself
            ahead = self._ahead
            if ahead is None or not ahead.covers(rel):
                self._ahead = ahead = _ReadAhead.read(self._db, rel)
            if rel not in ahead.stale:   # else written since it was read: asked again
                row = ahead.rows.get(rel)
                return _file(row) if row else None
        row = self._db.execute("SELECT * FROM files WHERE rel=?", (rel,)).fetchone()
        return _file(row) if row else None

    def _changed(self, rel: str) -> None:
        """A file's row was written: its record read ahead, if any, is asked of the database again."""
        if self._ahead is not None:
            self._ahead.forget(rel)

    def set_file(self, rel: str, state: str, *, run_id: int | None = None, **fields: Any) -> None:
        """Create or update a file row; ``fields`` are columns (``outputs`` as a sequence)."""
        assert state in FILE_STATES, state
        if "outputs" in fields and fields["outputs"] is not None:
            fields["outputs"] = json.dumps(list(fields["outputs"]))
        now = time.time()
        cols = {"state": state, "updated_at": now, **fields}
        if run_id is not None:
            cols["run_id"] = run_id
        if state == "done":
            cols.setdefault("done_at", now)
        names = ", ".join(cols)
        marks = ", ".join("?" for _ in cols)
        updates = ", ".join(f"{c}=excluded.{c}" for c in cols)
        self._db.execute(
            f"INSERT INTO files (rel, {names}) VALUES (?, {marks}) ON CONFLICT(rel) DO UPDATE SET {updates}",
            (rel, *cols.values()))
        self._changed(rel)

    def fail_file(self, rel: str, state: str, *, error_class: str, error: str, error_code: str | None,
                  run_id: int | None, max_transient_runs: int) -> str:
        """Record a failure; a transient one that keeps recurring becomes ``quarantined``."""
        rec = self.get_file(rel)
        failures = (rec.failures if rec else 0) + (1 if state == "failed_transient" else 0)
        if state == "failed_transient" and failures >= max_transient_runs:
            state = "quarantined"
            error = f"{error} (quarantined after {failures} failed runs; use --retry-failed)"
        self.set_file(rel, state, run_id=run_id, failures=failures, error_class=error_class,
                      error=error, error_code=error_code)
        return state

    def forgive_failure(self, rel: str, error: str, failures: int | None = None) -> None:
        """A failure that was the API's, not the file's (it went away mid-run, ``run.outage``):
        the file is ``pending`` again, its failed runs as before this run (``failures``, else kept),
        so the next run takes it with no strike towards quarantine; the reason is kept for ``status``."""
        self._db.execute("UPDATE files SET state='pending', failures=COALESCE(?, failures), error=?, "
                         "error_class='transient' WHERE rel=?", (failures, error, rel))
        self._changed(rel)

    def iter_files(self, states: tuple[str, ...] | None = None) -> Iterator[FileRecord]:
        if states:
            marks = ", ".join("?" for _ in states)
            cur = self._db.execute(f"SELECT * FROM files WHERE state IN ({marks}) ORDER BY rel", states)
        else:
            cur = self._db.execute("SELECT * FROM files ORDER BY rel")
        for row in cur:
            yield _file(row)

    def count_forgiven(self, prefix: str) -> int:
        """Pending files whose recorded error starts with ``prefix`` (``run.outage``'s NOT_COUNTED)."""
        row = self._db.execute("SELECT COUNT(*) FROM files WHERE state='pending' AND substr(error, 1, ?) = ?",
                               (len(prefix), prefix)).fetchone()
        return int(row[0])

    def count_by_state(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self._db.execute("SELECT state, COUNT(*) FROM files GROUP BY state")}

    def done_file_with_work(self, work_key: str, exclude_rel: str) -> FileRecord | None:
        """Another file already done with the same content and settings (reuse its outputs)."""
        row = self._db.execute(
            "SELECT * FROM files WHERE work_key=? AND state='done' AND rel<>? LIMIT 1",
            (work_key, exclude_rel)).fetchone()
        return _file(row) if row else None

    def reset_for_retry(self, rel: str) -> None:
        self._db.execute("UPDATE files SET state='pending', failures=0, error=NULL, error_class=NULL, "
                         "error_code=NULL WHERE rel=?", (rel,))
        self._changed(rel)

    # -- pages --------------------------------------------------------------------------------

    def get_pages(self, work_key: str) -> dict[int, PageRecord]:
        rows = self._db.execute("SELECT * FROM pages WHERE work_key=?", (work_key,)).fetchall()
        return {row["page"]: PageRecord(**dict(row)) for row in rows}

    def page_intent(self, work_key: str, page: int, upload_sha256: str, resubmitted_reason: str | None) -> None:
        """Write-ahead: recorded *before* the POST, so a crash mid-submit is never silent."""
        self._db.execute(
            "INSERT INTO pages (work_key, page, state, upload_sha256, submits, resubmitted_reason) "
            "VALUES (?, ?, 'submitting', ?, 1, ?) ON CONFLICT(work_key, page) DO UPDATE SET "
            "state='submitting', request_id=NULL, upload_sha256=excluded.upload_sha256, "
            "submits=submits+1, resubmitted_reason=COALESCE(excluded.resubmitted_reason, resubmitted_reason), "
            "error=NULL, error_code=NULL",
            (work_key, page, upload_sha256, resubmitted_reason))

    def page_withdraw(self, work_key: str, page: int, reason: str) -> None:
        """The intent's submit provably created no job (answered 429/4xx/5xx, never sent, or
        abandoned on a stop before its bytes left): not a possible duplicate."""
        self._db.execute("UPDATE pages SET state='failed', submits=MAX(0, submits-1), error=? "
                         "WHERE work_key=? AND page=? AND state='submitting'", (reason, work_key, page))

    def page_submitted(self, work_key: str, page: int, request_id: str) -> None:
        self._db.execute("UPDATE pages SET state='submitted', request_id=?, submitted_at=? "
                         "WHERE work_key=? AND page=?", (request_id, time.time(), work_key, page))

    def earlier_unknown(self, work_key: str, page: int, submits: int,
                        spend: tuple[int | None, str, float, float] | None) -> bool:
        """An intent an earlier run left unanswered (killed between the upload and its answer: the
        job may exist, charged), met by a run: counted once, its unknown outcome on the page's row
        and, with ``spend`` (run id, day, cost, time), its quote in the spend ledger, in one
        transaction with a mark (``meta`` ``unknown:<key>:<page>:<submits>``, the intent's own
        count), so a later run that meets it again before it is sent counts nothing more (each such
        run counted it again: ``unknown_outcomes`` 3 of 2 submits). True when counted now."""
        mark = f"unknown:{work_key}:{page}:{submits}"
        self._db.execute("BEGIN IMMEDIATE")
        try:
            counted = self._meta(mark) is None
            if counted:
                self.page_outcome_unknown(work_key, page)
                if spend is not None:
                    run_id, day, cost, at = spend
                    self.record_spend(run_id, day, 1, cost, at)
                self._set_meta(mark, "1")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        return counted

    def page_outcome_unknown(self, work_key: str, page: int) -> None:
        """The POST was sent and its answer lost: the job may exist and may be charged."""
        self._db.execute("UPDATE pages SET unknown_outcomes=unknown_outcomes+1 WHERE work_key=? AND page=?",
                         (work_key, page))

    def page_done(self, work_key: str, page: int, text: str, structured: Any | None) -> None:
        self._db.execute(
            "UPDATE pages SET state='done', result_text=?, result_json=?, finished_at=? WHERE work_key=? AND page=?",
            (text, json.dumps(structured) if structured is not None else None, time.time(), work_key, page))

    def page_text_layer(self, work_key: str, page: int, text: str, facts: dict) -> None:
        """A page whose text came from the PDF's own text layer: done, no request, nothing paid."""
        self._db.execute(
            "INSERT INTO pages (work_key, page, state, submits, result_text, page_json, finished_at) "
            "VALUES (?, ?, 'done', 0, ?, ?, ?) ON CONFLICT(work_key, page) DO UPDATE SET state='done', "
            "result_text=excluded.result_text, page_json=excluded.page_json, finished_at=excluded.finished_at",
            (work_key, page, text, json.dumps(facts), time.time()))

    def page_facts(self, work_key: str, page: int, facts: dict) -> None:
        """Record how a page was prepared (for its .json entry) once it has a row."""
        self._db.execute("UPDATE pages SET page_json=? WHERE work_key=? AND page=?",
                         (json.dumps(facts), work_key, page))

    def page_failed(self, work_key: str, page: int, error_code: str | None, error: str) -> None:
        self._db.execute("UPDATE pages SET state='failed', error_code=?, error=?, finished_at=? "
                         "WHERE work_key=? AND page=?", (error_code, error, time.time(), work_key, page))

    def page_forget_request(self, work_key: str, page: int, reason: str) -> None:
        """The server no longer knows this request id: the next submit is a known resubmission."""
        self._db.execute("UPDATE pages SET state='failed', error=?, resubmitted_reason=? "
                         "WHERE work_key=? AND page=?", (reason, reason, work_key, page))

    def compact_work(self, work_key: str) -> None:
        """Drop stored result text once every file of this work has its outputs on disk (its
        strips' too: their keys start with the work key and ``#``, ``pipeline.run.strips``), and
        the cuts kept for its strips: they matter only while a page's strips are unfinished (a
        page redone later has no stored answers left to put on the wrong strip)."""
        self._db.execute("UPDATE pages SET result_text=NULL, result_json=NULL WHERE state='done' AND "
                         "(work_key=? OR (work_key >= ? AND work_key < ?))", (work_key, *_prefix_range(work_key + "#")))
        self._db.execute("DELETE FROM meta WHERE key >= ? AND key < ?", _prefix_range(f"cut:{work_key}#"))

    # -- the meta table: one value a key ----------------------------------------------------

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                         (key, value))

    # -- the file system the input folder was on (runner: an empty mount point) -----------------

    def input_device(self) -> int | None:
        """The device of the input folder on the last run whose walk found anything in it."""
        value = self._meta("input_device")
        return int(value) if value is not None else None

    def set_input_device(self, device: int) -> None:
        self._set_meta("input_device", str(int(device)))

    # -- strips of pages too tall for the model (pipeline.run.strips) --------------------------

    def strip_keys(self, prefix: str) -> list[str]:
        """The strip work keys begun under ``prefix`` (one per cut limit tried), the one to resume
        first; a key with a ``/`` after the prefix belongs to a finer cut of one strip, not listed.

        Two keys for one page come only from ``--force`` cutting a done page afresh at another
        limit. The one to resume is the unfinished one: its cut still kept (``compact_work`` drops
        a finished page's cuts with its stored texts), else the one begun last (its first row
        inserted last: a strip's intent has no time yet, and a forced cut killed before any
        request id came back lost to the old, finished cut, whose strips were all sent again
        while the forced strip in flight was neither resent nor counted a possible duplicate)."""
        rows = self._db.execute(   # a range on the primary key: an index seek, not a scan of every page
            "SELECT work_key, MAX(rowid) AS last, "
            "EXISTS(SELECT 1 FROM meta WHERE meta.key = 'cut:' || work_key) AS kept FROM pages "
            "WHERE work_key >= ? AND work_key < ? GROUP BY work_key ORDER BY kept DESC, last DESC",
            _prefix_range(prefix)).fetchall()
        return [r[0] for r in rows if "/" not in r[0][len(prefix):]]

    def page_cut_done(self, work_key: str, page: int, text: str, structured: Any | None) -> None:
        """A page read in strips: done, its text the strips' joined (each strip has its own row)."""
        self._db.execute(
            "INSERT INTO pages (work_key, page, state, submits, result_text, result_json, finished_at) "
            "VALUES (?, ?, 'done', 0, ?, ?, ?) ON CONFLICT(work_key, page) DO UPDATE SET state='done', "
            "result_text=excluded.result_text, result_json=excluded.result_json, finished_at=excluded.finished_at",
            (work_key, page, text, json.dumps(structured) if structured is not None else None, time.time()))

    def cut_plan(self, strip_key: str) -> list[list[int]] | None:
        """The strips a page (or a refused strip) was cut into when ``strip_key`` was begun, as
        ``[x0, y0, x1, y1, overlap, paragraph]`` rows (``Region.row``; five numbers when kept
        before ``paragraph``); ``None`` for a key begun before plans were kept."""
        value = self._meta(f"cut:{strip_key}")
        return json.loads(value) if value is not None else None

    def keep_cut_plan(self, strip_key: str, regions: list[list[int]]) -> None:
        """Write a cut ahead of its first strip's intent: a resumed page reads the strips it began
        with, whatever a later version's cutting would make of the page (the strip numbers are the
        key's pages, so a different cut would put a stored answer on another strip's place)."""
        self._set_meta(f"cut:{strip_key}", json.dumps(regions))

    def learned_height(self, model: str) -> int | None:
        """The tallest image the model was found to take (learned from its refusals), if any."""
        value = self._meta(f"max_input_height:{model}")
        return int(value) if value is not None else None

    def learn_height(self, model: str, height: int) -> None:
        """Keep the lower of the known and the newly learned limit."""
        self._db.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value "
                         "WHERE CAST(excluded.value AS INTEGER) < CAST(value AS INTEGER)",
                         (f"max_input_height:{model}", str(int(height))))

    def possible_duplicates(self, only: Collection[tuple[str, int]] | None = None) -> list[dict[str, Any]]:
        """Pages submitted with an unknown outcome (maybe paid twice), ever or, with ``only``,
        among those (work key, page) pairs."""
        rows = self._db.execute(
            "SELECT p.work_key, p.page, p.unknown_outcomes, p.submits, p.request_id, " + _REL_OF_PAGE +
            "FROM pages p WHERE p.unknown_outcomes > 0 ORDER BY rel, p.work_key, p.page").fetchall()
        return _among(rows, only)

    def resubmissions(self, only: Collection[tuple[str, int]] | None = None) -> list[dict[str, Any]]:
        """Pages submitted again, and why, ever or, with ``only``, among those pairs."""
        rows = self._db.execute(
            "SELECT p.work_key, p.page, p.submits, p.request_id, p.resubmitted_reason, " + _REL_OF_PAGE +
            "FROM pages p WHERE p.resubmitted_reason IS NOT NULL ORDER BY rel, p.work_key, p.page").fetchall()
        return _among(rows, only)

    # -- prices and spend (pipeline.run.pricing, pipeline.run.budget) ----------------------------------

    def get_quote(self, quote_key: str) -> tuple[float, float] | None:
        """(price, quoted_at) of a cached price quote, or None."""
        row = self._db.execute("SELECT price, quoted_at FROM price_quotes WHERE quote_key=?", (quote_key,)).fetchone()
        return (row[0], row[1]) if row else None

    def put_quote(self, quote_key: str, price: float, quoted_at: float) -> None:
        self._db.execute("INSERT INTO price_quotes VALUES (?, ?, ?) ON CONFLICT(quote_key) DO UPDATE SET "
                         "price=excluded.price, quoted_at=excluded.quoted_at", (quote_key, price, quoted_at))

    def record_spend(self, run_id: int | None, day: str, pages: int, cost: float, at: float) -> None:
        self._db.execute("INSERT INTO spend (run_id, day, at, pages, cost) VALUES (?, ?, ?, ?, ?)",
                         (run_id, day, at, pages, cost))

    def spend_on_day(self, day: str) -> tuple[int, float]:
        row = self._db.execute("SELECT COALESCE(SUM(pages), 0), COALESCE(SUM(cost), 0) FROM spend WHERE day=?",
                               (day,)).fetchone()
        return int(row[0]), float(row[1])

    def spend_by_run(self, limit: int = 10) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT run_id, MIN(day) AS day, SUM(pages) AS pages, ROUND(SUM(cost), 6) AS cost "
                                "FROM spend GROUP BY run_id ORDER BY run_id DESC LIMIT ?", (limit,)).fetchall()
        return [dict(r) for r in rows]

    def spend_by_day(self, limit: int = 10) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT day, SUM(pages) AS pages, ROUND(SUM(cost), 6) AS cost FROM spend "
                                "GROUP BY day ORDER BY day DESC LIMIT ?", (limit,)).fetchall()
        return [dict(r) for r in rows]

    def set_last_plan(self, summary: dict[str, Any]) -> None:
        """What the latest ``plan`` found left to do (the run checks the balance against it)."""
        self._set_meta("last_plan", json.dumps(summary))

    def last_plan(self) -> dict[str, Any] | None:
        value = self._meta("last_plan")
        return json.loads(value) if value is not None else None

    def last_plan_cost(self) -> float | None:
        """The latest plan's estimate less what was spent since it was made: what is left of it."""
        plan = self.last_plan()
        if not plan or plan.get("estimated_cost") is None:
            return None
        spent = self._db.execute("SELECT COALESCE(SUM(cost), 0) FROM spend WHERE at >= ?",
                                 (plan.get("at_ts", 0),)).fetchone()[0]
        return max(0.0, plan["estimated_cost"] - spent)

    # -- webhooks -----------------------------------------------------------------------------

    def record_webhook(self, delivery_id: str, request_id: str | None, event: str) -> bool:
        """Store a webhook delivery; False when this delivery id was seen before (a replay)."""
        cur = self._db.execute("INSERT OR IGNORE INTO webhook_events VALUES (?, ?, ?, ?)",
                               (delivery_id, request_id, event, time.time()))
        return cur.rowcount == 1

    def forget_webhooks(self, before: float) -> int:
        """Drop the deliveries received before ``before`` (a time.time()): the record is an audit
        for a person, and a replay that old is refused by its signed timestamp anyway, so a row
        kept for ever only grew the store by two rows a page every night."""
        return self._db.execute("DELETE FROM webhook_events WHERE received_at < ?", (before,)).rowcount


# The file a ``pages`` row belongs to: a strip's work key is its file's work key, ``#`` and the
# cut (``pipeline.run.strips``), so an exact match would find no file for it.
_REL_OF_PAGE = ("(SELECT rel FROM files f WHERE f.work_key = CASE WHEN instr(p.work_key, '#') > 0 "
                "THEN substr(p.work_key, 1, instr(p.work_key, '#') - 1) ELSE p.work_key END "
                "ORDER BY rel LIMIT 1) AS rel ")


def _among(rows: list[sqlite3.Row], only: Collection[tuple[str, int]] | None) -> list[dict[str, Any]]:
    return [_page_entry(dict(r)) for r in rows if only is None or (r["work_key"], r["page"]) in only]


def _page_entry(row: dict[str, Any]) -> dict[str, Any]:
    """A report's line about one upload, in the file's terms: for a strip (its row's ``page`` is
    the strip's number within its cut), the file's page, the strip (1-based, in reading order
    within its cut, as ``image.pages[].strips`` and the upload's ``-sNN`` name count) and the cut
    (``p<page>h<limit>``, ``/s<n>h<limit>`` for a refused strip cut finer). Before, a strip was
    listed with ``rel: null`` and its strip number as the page: a person could not tell which
    scan may have been paid twice (found by a fleet chaos tour: a strip resubmitted after the
    database lost its job)."""
    key = row["work_key"]
    if "#" in key:
        cut = key.split("#", 1)[1]
        row["strip"], row["cut"] = row["page"] + 1, cut
        row["page"] = int(cut[1:cut.index("h")])
    return row


def _prefix_range(prefix: str) -> tuple[str, str]:
    """The keys starting with ``prefix`` as a half-open range [prefix, next): index-friendly."""
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


class _ReadAhead:
    """The ``files`` rows of one stretch of keys, read in one query: ``[lo, hi]``.

    Why: a rerun over a tree that is all done asks the state store about one file after another,
    in the walk's order, which is the keys' order within a folder (names sorted; UTF-8 compares
    as code points, as Python sorts). One lookup costs about 12 microseconds alone but 60-70
    inside a run (cProfile of ``bench.pipeline_runs``' rerun over 100,000 done files,
    2026-12-07): the scan's thread takes the interpreter lock each time SQLite gives it up, and
    each call pays the switch. One query for the next ``ROWS`` keys pays it once for all of them,
    and answers "no record" too for every key between two rows it returned.

    It stays true: every write to a file's row goes through the store on the thread that reads
    ahead, and marks the row to be asked again (``forget``); rows are made into records only
    when asked (a stretch read for a file whose neighbours are all new costs one query)."""

    ROWS = 128

    def __init__(self, lo: str, hi: str | None, rows: dict[str, sqlite3.Row]) -> None:
        self.lo, self.hi, self.rows = lo, hi, rows     # hi None: every key from lo on
        self.stale: set[str] = set()

    @classmethod
    def read(cls, db: sqlite3.Connection, rel: str) -> "_ReadAhead":
        rows = db.execute("SELECT * FROM files WHERE rel >= ? ORDER BY rel LIMIT ?", (rel, cls.ROWS)).fetchall()
        hi = rows[-1]["rel"] if len(rows) == cls.ROWS else None
        return cls(rel, hi, {row["rel"]: row for row in rows})

    def covers(self, rel: str) -> bool:
        return self.lo <= rel and (self.hi is None or rel <= self.hi)

    def forget(self, rel: str) -> None:
        if self.covers(rel):
            self.stale.add(rel)


def _file(row: sqlite3.Row) -> FileRecord:
    data = dict(row)
    data.pop("run_id", None)
    data["outputs"] = tuple(json.loads(data["outputs"])) if data["outputs"] else ()
    return FileRecord(**data)
