"""State store, run lock and atomic outputs: the pieces crash safety rests on."""

import json
import os
import subprocess
import sys
import time

import pytest

from pipeline.run.lock import LockHeld, RunLock
from pipeline.formats.output import output_path, output_paths, output_rel, source_rel_for, write_results
from pipeline.run.state import StateStore


def test_file_state_round_trip_and_counts(tmp_path):
    store = StateStore(tmp_path / "s.sqlite")
    store.set_file("a.png", "pending", size=1, mtime_ns=2, inode=3, sha256="ab", work_key="k1")
    store.set_file("a.png", "done", outputs=("a.png.txt", "a.png.json"))
    store.set_file("b.png", "pending")
    rec = store.get_file("a.png")
    assert rec.state == "done" and rec.outputs == ("a.png.txt", "a.png.json") and rec.sha256 == "ab"
    assert rec.done_at is not None
    assert store.count_by_state() == {"done": 1, "pending": 1}
    assert store.done_file_with_work("k1", "other.png").rel == "a.png"
    assert store.done_file_with_work("k1", "a.png") is None
    store.close()


def test_transient_failures_are_quarantined_after_the_limit(tmp_path):
    store = StateStore(tmp_path / "s.sqlite")
    states = [store.fail_file("x.png", "failed_transient", error_class="transient", error="503",
                              error_code="ServerError", run_id=None, max_transient_runs=3) for _ in range(3)]
    assert states == ["failed_transient", "failed_transient", "quarantined"]
    rec = store.get_file("x.png")
    assert rec.failures == 3 and "quarantined after 3 failed runs" in rec.error
    store.reset_for_retry("x.png")
    assert store.get_file("x.png").state == "pending" and store.get_file("x.png").failures == 0


def test_records_read_ahead_are_never_older_than_the_database(tmp_path):
    """A rerun reads the next rows in one query (``_ReadAhead``); every write in the stretch
    already read must still be seen, a row new there too, and "no record" must stay true only
    until one is written."""
    store = StateStore(tmp_path / "s.sqlite")
    for i in range(0, 20, 2):                          # f00, f02, ..., f18: the odd ones unknown
        store.set_file(f"f{i:02d}", "done", outputs=(f"f{i:02d}.txt",))
    assert store.get_file("f00").state == "done"       # reads f00..f18 ahead
    assert store.get_file("f03") is None               # between two rows read: no record
    store.set_file("f04", "failed_transient", failures=1)
    store.set_file("f03", "pending")                   # a row new inside the stretch
    store.forgive_failure("f06", "not counted", 0)
    store.set_file("f08", "quarantined")
    store.reset_for_retry("f08")
    assert store.get_file("f04").state == "failed_transient"
    assert store.get_file("f03").state == "pending"
    assert store.get_file("f06").state == "pending" and store.get_file("f06").error == "not counted"
    assert store.get_file("f08").state == "pending"
    assert store.get_file("f18").outputs == ("f18.txt",) and store.get_file("f19") is None
    # beyond the rows one query reads, and from another thread (which asks the database itself)
    many = [f"g{i:04d}" for i in range(300)]
    for rel in many:
        store.set_file(rel, "done")
    assert [store.get_file(rel).rel for rel in many] == many
    store.set_file("g0299", "pending")
    import threading
    seen = []
    threading.Thread(target=lambda: seen.append(store.get_file("g0299").state)).start()
    while not seen:
        time.sleep(0.01)
    assert seen == ["pending"] and store.get_file("g0299").state == "pending"
    store.close()


def test_page_write_ahead_intent_and_unknown_outcomes(tmp_path):
    store = StateStore(tmp_path / "s.sqlite")
    store.set_file("a.png", "submitting", work_key="k")
    store.page_intent("k", 0, "up1", None)
    page = store.get_pages("k")[0]
    assert page.state == "submitting" and page.request_id is None and page.submits == 1
    store.page_outcome_unknown("k", 0)
    store.page_intent("k", 0, "up1", "resubmitted knowingly")
    store.page_submitted("k", 0, "rid-1")
    page = store.get_pages("k")[0]
    assert (page.state, page.request_id, page.submits, page.unknown_outcomes) == ("submitted", "rid-1", 2, 1)
    assert store.possible_duplicates()[0]["rel"] == "a.png"
    assert store.resubmissions()[0]["resubmitted_reason"] == "resubmitted knowingly"
    store.page_done("k", 0, "hello", {"text": "hello"})
    assert store.get_pages("k")[0].result_text == "hello"
    store.compact_work("k")
    assert store.get_pages("k")[0].result_text is None


def test_a_strip_paid_maybe_twice_is_listed_under_its_file_and_page(tmp_path):
    """Found on a fleet chaos tour: a strip resubmitted after the database lost its job was listed
    in the run report with ``rel: null`` and its strip number as the page."""
    store = StateStore(tmp_path / "s.sqlite")
    store.set_file("tall.png", "submitting", work_key="k")
    store.set_file("b.png", "submitting", work_key="k2")
    for key, n in (("k#p2h1350", 1), ("k#p2h1350/s1h640", 0), ("k2", 0)):
        store.page_intent(key, n, f"up-{key}-{n}", None)
        store.page_outcome_unknown(key, n)
        store.page_intent(key, n, f"up-{key}-{n}", "resubmitted knowingly")
    listed = [(d["rel"], d["page"], d.get("strip"), d.get("cut")) for d in store.possible_duplicates()]
    assert listed == [("b.png", 0, None, None), ("tall.png", 2, 2, "p2h1350"), ("tall.png", 2, 1, "p2h1350/s1h640")]
    assert [(r["rel"], r["page"], r.get("strip")) for r in store.resubmissions([("k#p2h1350", 1)])] == [
        ("tall.png", 2, 2)]
    store.close()


def test_committed_state_survives_sigkill(tmp_path):
    """Each call is its own transaction: what returned before a SIGKILL is on disk after it."""
    db = tmp_path / "s.sqlite"
    code = ("import os, signal; from pipeline.run.state import StateStore;"
            f"s = StateStore(__import__('pathlib').Path({str(db)!r}));"
            "s.set_file('a.png', 'submitting', work_key='k'); s.page_intent('k', 0, 'u', None);"
            "s.page_submitted('k', 0, 'rid-9'); os.kill(os.getpid(), signal.SIGKILL)")
    proc = subprocess.run([sys.executable, "-c", code])
    assert proc.returncode == -9
    store = StateStore(db)
    assert store.get_pages("k")[0].request_id == "rid-9"
    assert store.get_file("a.png").state == "submitting"


def test_webhook_deliveries_are_recorded_once(tmp_path):
    store = StateStore(tmp_path / "s.sqlite")
    assert store.record_webhook("d1", "r1", "job.completed") is True
    assert store.record_webhook("d1", "r1", "job.completed") is False


def test_webhook_deliveries_older_than_the_cutoff_are_forgotten(tmp_path):
    store = StateStore(tmp_path / "s.sqlite")
    store.record_webhook("old", "r1", "job.completed")
    cutoff = time.time()
    store.record_webhook("new", "r2", "job.completed")
    assert store.forget_webhooks(cutoff) == 1
    assert store.record_webhook("old", "r1", "job.completed") is True    # gone
    assert store.record_webhook("new", "r2", "job.completed") is False   # kept


def test_run_lock_refuses_a_second_holder_and_is_released_by_a_dying_process(tmp_path):
    path = tmp_path / "state.lock"
    with RunLock(path):
        with pytest.raises(LockHeld, match=f"pid {os.getpid()}"):
            RunLock(path).acquire()
    # A process killed while holding the lock leaves no stale lock behind.
    code = (f"import os, signal; from pipeline.run.lock import RunLock; RunLock(__import__('pathlib').Path({str(path)!r}))"
            ".acquire(); os.kill(os.getpid(), signal.SIGKILL)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == -9
    lock = RunLock(path)
    lock.acquire()
    lock.release()


def test_output_paths_mirror_the_input_and_never_collide(tmp_path):
    txt, js = output_paths(tmp_path, "a b/ünï/scan.jpg")
    assert txt == tmp_path / "a b" / "ünï" / "scan.jpg.txt"
    assert js == tmp_path / "a b" / "ünï" / "scan.jpg.json"
    assert output_paths(tmp_path, "x/scan.png")[0] != output_paths(tmp_path, "x/scan.jpg")[0]
    assert source_rel_for(tmp_path, js) == "a b/ünï/scan.jpg"
    for bad in ("../escape.png", "/abs.png", "", "a/../../b.png", "//net/share.png", "./"):
        with pytest.raises(ValueError):
            output_paths(tmp_path, bad)
        with pytest.raises(ValueError):
            output_rel(bad, ".txt")
    # the state store's names for outputs, built without paths: the same as the paths' own
    for rel in ("a b/ünï/scan.jpg", "a//b.png", "./a/./b.png", "d/e/f.tif", "x", "a/...b"):
        for suffix in (".txt", ".alto.xml", ".page-2.xml"):
            assert output_rel(rel, suffix) == output_path(tmp_path, rel, suffix).relative_to(tmp_path).as_posix()


def test_the_quick_name_length_check_agrees_with_the_full_one(tmp_path, monkeypatch):
    """``too_long`` answers most paths from a bound (``_headroom``); around the bound, for ASCII
    and multi-byte names, deep and flat, its answer is the full computation's."""
    from pipeline.formats import output
    suffixes = (".txt", ".alto.xml", ".page-999.xml")
    room = output._headroom(tmp_path, suffixes)
    rels = []
    for n in range(room - 4, room + 8):
        rels += ["a" * n, "d/" * (n // 4) + "x" * (n - 2 * (n // 4)), ("é" * n)[: n // 2]]
    name_max, path_max = output._limits(tmp_path)
    deep = path_max - len(str(tmp_path)) - 20          # folders of short names near PATH_MAX
    for n in range(deep - 12, deep + 12):
        rels.append(("ab/" * n)[: n - 5] + "x.png")
    quick = [output.too_long(tmp_path, rel, list(suffixes)) for rel in rels]
    monkeypatch.setattr(output, "_headroom", lambda *a: -1)      # the full computation for all
    full = [output.too_long(tmp_path, rel, list(suffixes)) for rel in rels]
    assert quick == full
    assert any(q is None for q in quick) and any(q is not None for q in quick)


async def test_write_results_is_atomic_and_leaves_no_temp_files(tmp_path):
    rels = await write_results(tmp_path, "d/p.png", "text\fpage2", {"text": "text\fpage2"})
    assert rels == ("d/p.png.txt", "d/p.png.json")
    assert (tmp_path / "d/p.png.txt").read_text() == "text\fpage2"
    assert json.loads((tmp_path / "d/p.png.json").read_text())["text"] == "text\fpage2"
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["p.png.json", "p.png.txt"]
