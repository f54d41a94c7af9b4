"""A tall page is paid once across runs, whatever changed between them (issue 27's strips, re-checked).

A rerun must read a page the way it began: a page sent whole stays whole, a page begun in strips
keeps the cut it began with (``StateStore.strip_keys``), a refused strip keeps its finer cut,
whatever the limit is now. Each test kills the real CLI (``kill -9`` at a named crash point,
``pipeline.run.crashpoints``) while it runs against the project's own server with a height limit,
then changes what a fresh cut would be (the configured limit lowered or raised, a lower limit
learned from another page's refusal, ``--force``), reruns, and counts the server's jobs by the
bytes uploaded (``counters.submits_by_hash``): no upload twice, but one whose POST was in flight at
a kill (intent written, no request id: it may or may not have reached the server); and no job
done whose answer is not in the outputs (a page cut again sends new uploads, each once: only the
count of jobs done against strips read sees it, ``Ledger.unread``).
"""

from __future__ import annotations

import random
import signal
import sqlite3
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from conftest import TOKEN
from helpers import read_result, run_pipeline, save, write_config
from pipeline.exitcodes import ExitCode
from pipeline.server import EmbeddedServer, ServerConfig
from test_crash_safety import run_cli
from test_strips import _uploads_at_crash, lined_page
from test_webhook_mode import SECRET, webhook_config

SERVER_LIMIT = 850      # the server refuses taller uploads (INPUT_TOO_LARGE)


def limited(limit: int = SERVER_LIMIT) -> EmbeddedServer:
    return EmbeddedServer(ServerConfig(engine="fast", tokens=(TOKEN,), profile="unlimited", max_input_height=limit,
                                       allow_http_webhooks=True, webhook_secret=SECRET, webhook_time_scale=0.001))


def put_page(img: Image.Image, folder: Path, stem: str, kind: str) -> str:
    """``img`` as ``stem.png``, or as the one page of ``stem.pdf`` (its scan at 300 dpi)."""
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "png":
        save(img, folder / f"{stem}.png")
    else:
        from fpdf import FPDF

        pdf = FPDF(unit="pt", format=(img.width * 72 / 300, img.height * 72 / 300))
        pdf.add_page()
        pdf.image(img, x=0, y=0, w=pdf.w, h=pdf.h)
        pdf.output(str(folder / f"{stem}.pdf"))
    return f"{stem}.{kind}"


WORDS = ("archive", "ledger", "parish", "record", "deed", "folio", "index", "census", "charter", "roll",
         "estate", "tithe", "survey", "map", "letter", "minute", "court", "will", "grant", "lease")


def tall_page(tag: str, height: int = 2000) -> Image.Image:
    """Lines of words drawn at random for ``tag``: no two pages share a strip's pixels, not even a
    column of one (the same upload twice would be two pages, not one paid twice)."""
    rnd = random.Random(tag)
    return lined_page(size=(800, height), pitch=60, size_pt=28,
                      words=lambda n: " ".join([tag, *rnd.choices(WORDS, k=3)]))[0]


class Ledger:
    """What the state store said at each kill: an upload whose intent was written and whose
    request id was not may have reached the server, so it may be sent once more."""

    def __init__(self) -> None:
        self.allowed: Counter = Counter()

    def killed(self, tmp_path: Path) -> None:
        recorded, unknown = _uploads_at_crash(tmp_path)
        assert recorded or unknown, "killed before any upload: the test proves nothing"
        self.allowed.update(unknown - recorded)

    def unread(self, srv, read: int) -> int:
        """Jobs the server did that no output was made of (beyond those the kills allow): a page
        cut again at another limit sends new uploads, each once, so only this count sees it."""
        sent = srv.counters.submits_by_hash
        return srv.counters.jobs_done - read - sum(max(0, sent[sha] - 1) for sha in self.allowed)

    def overpaid(self, sent: Counter, since: Counter | None = None) -> dict[str, int]:
        """Uploads the server took more often than once (plus the in-flight allowance)."""
        since = since or Counter()
        return {sha: n - since[sha] for sha, n in sent.items() if n - since[sha] > 1 + self.allowed[sha]}


def state_rows(tmp_path: Path, sql: str, *args) -> list:
    db = sqlite3.connect(tmp_path / "out" / ".pipeline" / "state.sqlite")
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def learned(tmp_path: Path) -> int | None:
    rows = state_rows(tmp_path, "SELECT value FROM meta WHERE key LIKE 'max_input_height:%'")
    return int(rows[0][0]) if rows else None


async def refused_elsewhere(tmp_path: Path, limit: int) -> int:
    """Another page, in another folder read into the same output (the same state store), refused
    by a server that takes at most ``limit`` px: the learned limit falls to 0.75 of its height.
    Returns the learned limit."""
    side = tmp_path / "side"
    side.mkdir(exist_ok=True)
    save(tall_page("Elsewhere", limit + 100), side / "other" / "c.png")
    async with limited(limit) as srv:
        cfg = write_config(side, srv.base_url, input=str(side / "other"), output=str(tmp_path / "out"))
        code, report, _ = await run_pipeline(cfg, TOKEN)
        assert code == ExitCode.OK, report
        assert report["api_calls"]["strips"]["refused_jobs"] >= 1
    return learned(tmp_path)


def strips_of(tmp_path: Path, name: str) -> tuple[list[dict], int | None]:
    text, doc = read_result(tmp_path, name)
    facts = doc["image"]["pages"][0]
    recs = facts.get("strips", [])
    assert text.count("FAST-OCR") == max(1, len(recs))   # every strip's answer, once
    return recs, facts.get("strip_limit")


# -- a page read whole ---------------------------------------------------------------------------

@pytest.mark.parametrize("fell,kind", [("config", "png"), ("learned", "png"), ("config", "pdf")])
async def test_a_page_read_whole_is_not_cut_and_paid_again_when_the_limit_fell_before_its_facts_were_kept(
        tmp_path, fell, kind):
    """Killed after a page's whole answer was stored and before its facts were (placement runs
    there, and a stop past the grace cancels it there): the rerun, with a limit now below the
    page's height, took the page for one never read, cut it and paid every strip again."""
    name = put_page(tall_page("Whole", 840), tmp_path / "in", "page", kind)
    async with limited() as srv:
        cfg = write_config(tmp_path, srv.base_url, pdf__dpi=300, pdf__text_layer="ocr")
        code, out = await run_cli("run", str(cfg), crashpoint="page_read:1")
        assert code == -signal.SIGKILL, out
        assert srv.counters.jobs_created == srv.counters.jobs_done == 1   # read whole, 840 px
        if fell == "config":
            cfg = write_config(tmp_path, srv.base_url, pdf__dpi=300, pdf__text_layer="ocr", api__max_input_height=600)
        else:
            assert await refused_elsewhere(tmp_path, 400) < 840
        code, out = await run_cli("run", str(cfg))
        assert code == ExitCode.OK, out
        assert srv.counters.jobs_created == 1, srv.counters.submits_by_hash   # nothing sent again
    recs, limit = strips_of(tmp_path, name)
    assert recs == [] and limit is None
    _, doc = read_result(tmp_path, name)
    assert doc["pages"][0]["request_id"]


# -- a page begun in strips ------------------------------------------------------------------------

CASES = [   # (crash point, limit in run 1, what changed before the rerun, transport, input)
    ("before_submit:3", SERVER_LIMIT, "config", "polling", "png"),
    ("after_submit:2", SERVER_LIMIT, "learned", "polling", "png"),
    ("after_poll:3", 600, "raised", "polling", "png"),
    ("page_read:1", SERVER_LIMIT, "learned", "polling", "png"),
    ("after_submit:3", SERVER_LIMIT, "config", "webhook", "png"),
    ("after_submit:2", SERVER_LIMIT, "config", "polling", "pdf"),
    ("after_submit:10", None, "config", "polling", "png"),    # learning: whole pages and strips refused, cut finer
    ("after_submit:7", None, "learned", "webhook", "png"),
]


@pytest.mark.parametrize("point,first,change,transport,kind", CASES)
async def test_a_page_begun_in_strips_keeps_its_cut_and_pays_no_strip_twice_when_the_limit_moved(
        tmp_path, point, first, change, transport, kind):
    names = [put_page(tall_page(f"File {n}"), tmp_path / "in", f"p{n}", kind) for n in range(2)]
    ledger = Ledger()

    def config(srv, limit):
        kw = {"concurrency__jobs_in_flight": 2, "pdf__dpi": 300, "pdf__text_layer": "ocr",
              **({"api__max_input_height": limit} if limit else {})}
        if transport == "webhook":
            return webhook_config(tmp_path, srv, wait_s=2.0, **kw)
        return write_config(tmp_path, srv.base_url, **kw)

    async with limited() as srv:
        code, out = await run_cli("run", str(config(srv, first)), crashpoint=point)
        assert code == -signal.SIGKILL, out
        ledger.killed(tmp_path)
        begun = {k: int(k.rsplit("h", 1)[1]) for (k,) in state_rows(
            tmp_path, "SELECT DISTINCT work_key FROM pages WHERE work_key LIKE '%#p0h%' AND work_key NOT LIKE '%/%'")}
        before = learned(tmp_path)
        if first is None:   # learning: a refused strip's finer cut was begun (``/s<n>h`` keys)
            assert state_rows(tmp_path, "SELECT 1 FROM pages WHERE work_key LIKE '%/s_h%' AND request_id IS NOT NULL")
        if change == "config":
            again = config(srv, 500)
        elif change == "raised":
            again = config(srv, SERVER_LIMIT)
        else:
            now = await refused_elsewhere(tmp_path, 400)
            assert now < min([*begun.values(), before or SERVER_LIMIT])
            again = config(srv, first)
        code, out = await run_cli("run", str(again))
        assert code == ExitCode.OK, out
        assert ledger.overpaid(srv.counters.submits_by_hash) == {}
        read = {name: strips_of(tmp_path, name) for name in names}
        assert ledger.unread(srv, sum(len(recs) for recs, _ in read.values())) <= 0, read
    by_key = {k.split("#")[0]: h for k, h in begun.items()}
    work = dict(state_rows(tmp_path, "SELECT rel, work_key FROM files"))
    for name, (recs, limit) in read.items():
        assert recs and all(r["height"] <= SERVER_LIMIT for r in recs)
        if work[name] in by_key:   # begun before the kill: read at the limit it began with
            assert limit == by_key[work[name]], (name, limit, by_key)
    assert by_key, "no page was begun in strips before the kill"
    code, out = await run_cli("verify", str(again))
    if change == "learned":   # the other folder's page is not in this input: its one problem
        assert code == ExitCode.OK and ", 0 problems; 1 whose source file is gone" in out, out
        assert "c.png: source file is gone (outputs kept)" in out, out
    else:
        assert code == ExitCode.OK, out


# -- a refusal not yet recorded, a cut begun with no strip sent ---------------------------------

@pytest.mark.parametrize("point", ["after_submit:1", "refused:1", "refused:3"])
async def test_a_refusal_the_kill_kept_from_being_recorded_or_learned_costs_no_upload_twice(tmp_path, point):
    """Killed with the whole page submitted and refused by the server, the client not yet told
    (``after_submit``), or told and the refusal on the page's row but no limit learned from it
    (``refused:1``; ``refused:3``: a strip's refusal, after the two whole pages'); the configured
    limit is lowered before the rerun. The rerun collects the refusal (or takes the recorded one),
    cuts the page (or the strip) once, and sends the refused upload no more. A whole page refused
    says only that its own height was too much: the page is cut at the configured limit, and the
    limit learned from it is 0.75 of its height; before, both were 0.75 of the limit set since
    (375 px: every later page cut in a third more strips)."""
    names = [put_page(tall_page(f"Refused {n}"), tmp_path / "in", f"r{n}", "png") for n in range(2)]
    ledger = Ledger()
    async with limited() as srv:
        # refused:1 with one job in flight: the other page is not sent before the kill, so the
        # rerun can learn the limit from the recorded refusal alone (with two in flight it also
        # learned it from the other page's refusal, re-attached, when that page was sent in time)
        cfg = write_config(tmp_path, srv.base_url, concurrency__jobs_in_flight=1 if point == "refused:1" else 2)
        code, out = await run_cli("run", str(cfg), crashpoint=point)
        assert code == -signal.SIGKILL, out
        ledger.killed(tmp_path)
        if point == "refused:3":   # a strip refused and recorded, no finer cut begun
            assert state_rows(tmp_path, "SELECT 1 FROM pages WHERE work_key LIKE '%#p0h%' AND error_code=?",
                              "INPUT_TOO_LARGE")
        else:
            assert learned(tmp_path) is None   # nothing learned before the kill
        begun = {k.split("#")[0]: int(k.rsplit("h", 1)[1]) for (k,) in state_rows(
            tmp_path, "SELECT DISTINCT work_key FROM pages WHERE work_key LIKE '%#p0h%' AND work_key NOT LIKE '%/%'")}
        code, out = await run_cli("run", str(write_config(tmp_path, srv.base_url, api__max_input_height=500)))
        assert code == ExitCode.OK, out
        assert ledger.overpaid(srv.counters.submits_by_hash) == {}
        read = {name: strips_of(tmp_path, name) for name in names}
        assert ledger.unread(srv, sum(len(recs) for recs, _ in read.values())) <= 0, read
    assert all(recs and all(r["height"] <= SERVER_LIMIT for r in recs) for recs, _ in read.values())
    work = dict(state_rows(tmp_path, "SELECT rel, work_key FROM files"))
    assert {name: limit for name, (_, limit) in read.items()} == {name: begun.get(work[name], 500) for name in names}
    if point != "refused:3":   # (there, a strip in flight at the kill is refused on the rerun: 0.75 of its height)
        assert learned(tmp_path) == 1500   # 0.75 x the whole page's 2000 px, not 0.75 x 500


async def test_a_cut_kept_with_no_strip_sent_is_cut_again_at_the_lower_limit_and_paid_once(tmp_path):
    """Killed right after the page's cut was kept, before any strip's intent was written (crash
    point ``cut_kept``: no timing hoped for). With the limit lowered, the rerun may cut the page
    afresh (nothing of it was paid) and pays for each strip once."""
    names = [put_page(tall_page("Waiting"), tmp_path / "in", "w0", "png")]
    ledger = Ledger()
    async with limited() as srv:
        cfg = write_config(tmp_path, srv.base_url, api__max_input_height=SERVER_LIMIT)
        code, out = await run_cli("run", str(cfg), crashpoint="cut_kept:1")
        assert code == -signal.SIGKILL, out   # no upload in flight: the ledger allows nothing twice
        kept = {k.split(":", 1)[1] for (k,) in state_rows(tmp_path, "SELECT key FROM meta WHERE key LIKE 'cut:%'")}
        assert len(kept) == 1 and not state_rows(tmp_path, "SELECT 1 FROM pages")   # a cut, nothing sent
        assert srv.counters.submits == 0
        code, out = await run_cli("run", str(write_config(tmp_path, srv.base_url, api__max_input_height=500)))
        assert code == ExitCode.OK, out
        assert ledger.overpaid(srv.counters.submits_by_hash) == {}
        read = {name: strips_of(tmp_path, name) for name in names}
        assert ledger.unread(srv, sum(len(recs) for recs, _ in read.values())) <= 0, read
    assert [limit for _, limit in read.values()] == [500]


# -- --force ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("point", ["before_submit:1", "after_submit:1"])
async def test_a_forced_run_killed_early_is_resumed_in_its_own_cut_not_the_earlier_one(tmp_path, point):
    """Done at 850 px, then ``--force`` with the limit at 500, killed at its first strip (intent
    written; sent or not). The rerun (no --force) finishes the forced redo in the cut it began
    (500), once, and does not go back to the earlier cut, whose stored answers are gone."""
    names = [put_page(tall_page(f"Forced {n}"), tmp_path / "in", f"f{n}", "png") for n in range(2)]
    async with limited() as srv:
        code, report, _ = await run_pipeline(write_config(tmp_path, srv.base_url, api__max_input_height=SERVER_LIMIT),
                                             TOKEN)
        assert code == ExitCode.OK, report
        first = Counter(srv.counters.submits_by_hash)
        done_before = srv.counters.jobs_done
        cfg = write_config(tmp_path, srv.base_url, concurrency__jobs_in_flight=2, api__max_input_height=500)
        code, out = await run_cli("run", str(cfg), "--force", crashpoint=point)
        assert code == -signal.SIGKILL, out
        ledger = Ledger()
        ledger.killed(tmp_path)
        forced = {k.split("#")[0] for (k,) in state_rows(tmp_path, "SELECT work_key FROM pages WHERE work_key LIKE '%#p0h500'")}
        assert forced, "the forced cut was not begun before the kill"
        code, out = await run_cli("run", str(cfg))
        assert code == ExitCode.OK, out
        since = Counter({sha: n - first[sha] for sha, n in srv.counters.submits_by_hash.items() if n > first[sha]})
        assert ledger.overpaid(since) == {}
        read = {name: strips_of(tmp_path, name) for name in names}
        redone = sum(len(recs) for recs, _ in read.values())
        dup = sum(max(0, since[sha] - 1) for sha in ledger.allowed)
        assert srv.counters.jobs_done - done_before - dup <= redone, (srv.counters.jobs_done, done_before, read)
    work = dict(state_rows(tmp_path, "SELECT rel, work_key FROM files"))
    assert {name for name in names if read[name][1] == 500} >= {name for name in names if work[name] in forced}
