"""Night after night over a tree that changes between runs, as an archive's cron runs it: what
a file deleted, renamed or excluded since an earlier night does to the exit code, the failures
list and ``status``."""

from __future__ import annotations

import json
import os
import threading

import yaml

from conftest import TOKEN
from helpers import distinct_png, failures, run_pipeline, write_config
from pipeline.config import load_config
from pipeline.exitcodes import ExitCode
from pipeline.run.audit import format_status, status_report


def _fast(tmp_path, **kw):
    return write_config(tmp_path, "embedded", api__embedded={"engine": "fast", "workers": 1}, **kw)


async def test_a_failed_file_deleted_or_excluded_since_is_no_failure_of_the_tree(tmp_path):
    distinct_png(tmp_path / "in" / "good.png", seed=1)
    broken = tmp_path / "in" / "box" / "broken.png"
    broken.parent.mkdir()
    broken.write_bytes(os.urandom(3000))
    cfg = _fast(tmp_path)
    code, _, _ = await run_pipeline(cfg, None)
    assert code == ExitCode.FILES_FAILED and set(failures(tmp_path)) == {"box/broken.png"}

    aside = tmp_path / "aside.png"
    broken.rename(aside)                              # taken out of the tree by the archive
    code, report, log = await run_pipeline(cfg, None)
    assert code == ExitCode.OK, log            # before: exit 1 every night, for a file no longer there
    assert failures(tmp_path) == {} and report["failures"] == 0
    assert report["failures_gone_from_tree"] == 1
    status = status_report(load_config(cfg))
    assert status["failures_total"] == 0 and status["failures_gone_from_tree"] == 1
    assert "no longer in the input tree" in format_status(status)

    aside.rename(broken)                              # back again: its row was kept, not read anew
    code, report, _ = await run_pipeline(cfg, None)
    assert code == ExitCode.FILES_FAILED and report["this_run"] == {"skipped": 1, "still_failed": 1}

    data = yaml.safe_load(cfg.read_text())
    data["exclude"] = ["box/**"]                      # left out of the tree by a new exclude
    cfg.write_text(yaml.safe_dump(data))
    code, report, _ = await run_pipeline(cfg, None)
    assert code == ExitCode.OK and report["failures_gone_from_tree"] == 1


async def test_the_run_report_does_not_grow_with_the_uploads_of_the_night(tmp_path):
    for i in range(3):
        distinct_png(tmp_path / "in" / f"p{i}.png", seed=i)
    distinct_png(tmp_path / "in" / "copy.png", seed=0)     # same content: one upload for both
    code, report, _ = await run_pipeline(_fast(tmp_path), None)
    assert code == ExitCode.OK
    counters = report["embedded_server_counters"]
    # before: every upload's hash was listed, a report as large as the night (80 MB a million scans)
    assert "submits_by_hash" not in counters
    assert counters["distinct_uploads"] == counters["jobs_created"] == 3
    assert counters["uploads_sent_more_than_once"] == {} and counters["uploads_sent_more_than_once_count"] == 0


class _WalkedThenMoved:
    """The walk as it stood a moment before ``rel`` was moved away: its entry (the stat the walk
    took) comes out after the file is gone, as when a scan is moved while a run is under way."""

    def __init__(self, cfg, rel):
        self.cfg, self.rel = cfg, rel

    def __call__(self):
        from pipeline.inputs.scan import ScanEntry
        from pipeline.run.tree import walk

        for item in walk(self.cfg):
            if isinstance(item, ScanEntry) and item.rel == self.rel:
                item.path.rename(item.path.with_name(".moved-away"))   # hidden: no longer in the tree
            yield item


async def test_a_scan_moved_away_while_the_run_reads_it_is_not_failed_for_good(tmp_path):
    import io

    from pipeline.run.runner import Runner

    scan = distinct_png(tmp_path / "in" / "a.png", seed=1)
    distinct_png(tmp_path / "in" / "b.png", seed=2)
    cfg_path = _fast(tmp_path)
    assert (await run_pipeline(cfg_path, None))[0] == ExitCode.OK
    os.utime(scan, ns=(scan.stat().st_atime_ns, scan.stat().st_mtime_ns + 10**9))  # touched: hashed again
    cfg = load_config(cfg_path)
    runner = Runner(cfg, stream=io.StringIO())
    runner._walk = _WalkedThenMoved(cfg, "a.png")
    code = await runner.run()
    log = runner.stream.getvalue()
    assert code == ExitCode.OK, log                    # before: rejected (unreadable), exit 1
    assert failures(tmp_path) == {} and "a.png: vanished" in log, log
    assert runner.report["this_run"] == {"vanished": 1, "skipped": 1}

    scan.with_name(".moved-away").rename(scan)          # back, content unchanged
    code, report, log = await run_pipeline(cfg_path, None)
    # before: "failed earlier" for good (rejected_input for this content), until --retry-failed
    assert code == ExitCode.OK and report["this_run"] == {"skipped": 2}, log
    assert report["embedded_server_counters"]["submits"] == 0


async def test_a_possible_duplicate_is_in_the_report_of_its_night_not_of_every_night_after(tmp_path, server):
    from conftest import TOKEN
    from pipeline.server import FaultRule

    distinct_png(tmp_path / "in" / "p.png", seed=1)
    cfg = write_config(tmp_path, server.base_url)
    server.faults.drop_after_create = FaultRule(count=1)     # the answer to the submit is lost
    code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK and [d["rel"] for d in report["possible_duplicates"]] == ["p.png"]
    assert [r["rel"] for r in report["resubmissions"]] == ["p.png"]

    distinct_png(tmp_path / "in" / "q.png", seed=2)          # the next night: one new scan, no fault
    code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK and report["this_run"] == {"done": 1, "skipped": 1}
    # before: p.png again, in this and every later night's report (the state store's whole history)
    assert report["possible_duplicates"] == [] and report["resubmissions"] == []
    assert report["possible_duplicate_submits"] == 0
    status = status_report(load_config(cfg))                # the history stays in status
    assert [d["rel"] for d in status["possible_duplicate_submits"]] == ["p.png"]


async def test_a_scan_replaced_between_its_hash_and_its_reading_lends_no_text_to_its_copies(tmp_path, monkeypatch):
    """A scan station re-exports a.png (other content, same name) after the run hashed it and
    before it read the pixels. b.png is a copy of the old a.png: it must not get the new text."""
    from PIL import Image

    import pipeline.run.process as process
    from pipeline.ocr.fast import pixel_digest

    old = distinct_png(tmp_path / "in" / "a.png", seed=1)
    copy = (tmp_path / "in" / "b.png")
    copy.write_bytes(old.read_bytes())
    new = distinct_png(tmp_path / "new.png", seed=2, size=(320, 200))
    real_open, real_hash, replaced = process.open_source, process.hash_and_sniff, threading.Event()

    def open_after_replacing(path, *args):   # the other program's write lands here: after the hash
        if path.name == "a.png" and not replaced.is_set():
            os.replace(new, path)
            replaced.set()
        return real_open(path, *args)

    def hash_b_after_the_replacement(path, *args):
        # b.png's hash waits for a.png's reading to begin: a.png is the one read for the old
        # content (else b.png, hashed first, would do the work and a.png wait for it: no test)
        if path.name == "b.png":
            assert replaced.wait(30)
        return real_hash(path, *args)

    monkeypatch.setattr(process, "open_source", open_after_replacing)
    monkeypatch.setattr(process, "hash_and_sniff", hash_b_after_the_replacement)
    cfg = _fast(tmp_path, concurrency__jobs_in_flight=1)
    code, report, log = await run_pipeline(cfg, None)
    assert replaced.is_set(), log
    with Image.open(copy) as im:
        digest = pixel_digest(im)
    text = (tmp_path / "out" / "b.png.txt").read_text()
    assert f"pixels:{digest}" in text, text   # before: b.png got the text of the new a.png
    assert "a.png: changed" in log and failures(tmp_path) == {}, log
    assert code == ExitCode.STOPPED_EARLY, log                  # work is left: the new a.png
    code, report, log = await run_pipeline(cfg, None)          # the next night reads the new a.png
    with Image.open(tmp_path / "in" / "a.png") as im:
        assert f"pixels:{pixel_digest(im)}" in (tmp_path / "out" / "a.png.txt").read_text()
    assert code == ExitCode.OK and report["this_run"] == {"done": 1, "skipped": 1}, log


async def test_a_scan_moved_away_before_its_searchable_pdf_is_written_is_not_failed_for_good(tmp_path, monkeypatch):
    """The searchable PDF is made from the source's pixels after the OCR: a scan moved away in
    between failed as output_error (permanent), and back again it stayed "failed earlier"."""
    import pipeline.run.context as context   # where a file's outputs are written

    scan = distinct_png(tmp_path / "in" / "a.png", seed=1)
    real_write, moved = context.write_outputs, []

    async def write_after_moving(output, rel, names, document, source_path, *args):
        if not moved:
            source_path.rename(tmp_path / "aside.png")
            moved.append(rel)
        return await real_write(output, rel, names, document, source_path, *args)

    monkeypatch.setattr(context, "write_outputs", write_after_moving)
    cfg = _fast(tmp_path, outputs=["txt", "json", "pdf"], pdf={"pdfa": "off"}, api__format="json")
    code, report, log = await run_pipeline(cfg, None)
    assert moved and "a.png: vanished" in log and failures(tmp_path) == {}, log
    (tmp_path / "aside.png").rename(scan)
    code, report, log = await run_pipeline(cfg, None)
    assert code == ExitCode.OK and report["this_run"] == {"done": 1}, log   # before: still_failed
    assert report["embedded_server_counters"]["submits"] == 0             # its page was read already
    assert (tmp_path / "out" / "a.png.pdf").exists()


async def test_the_embedded_servers_pushes_leave_no_rows_in_the_state_store(tmp_path):
    import sqlite3

    for i in range(3):
        distinct_png(tmp_path / "in" / f"p{i}.png", seed=i)
    code, report, _ = await run_pipeline(_fast(tmp_path), None)
    assert code == ExitCode.OK and report["embedded_server_counters"]["webhooks_delivered"] >= 3
    db = sqlite3.connect(tmp_path / "out" / ".pipeline" / "state.sqlite")
    try:   # before: two rows a page, every night, for ever (a third of the store)
        assert db.execute("SELECT COUNT(*) FROM webhook_events").fetchone()[0] == 0
    finally:
        db.close()


async def test_a_job_lost_on_the_last_night_is_admitted_by_the_night_that_pays_it_again(tmp_path, server):
    """The server lost a page's job and the run ended before sending it again (here its second
    job lost too: the file fails, "retried next run"; a stop or a kill between the 404 and the
    resend leaves the page the same). Found by the faultkill tour (a SIGTERM while the server
    was restarted mid-run): the next night paid the page again and its report said
    ``resubmitted_pages: 0``, no ``resubmissions`` row: a paid job no report admitted."""
    from conftest import TOKEN
    from pipeline.server import FaultRule

    distinct_png(tmp_path / "in" / "p.png", seed=1)
    cfg = write_config(tmp_path, server.base_url, polling__not_found_grace_s=0)
    server.faults.lose_request_id = FaultRule(count=2)
    code, report, log = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.FILES_FAILED and "lost the request id twice" in log, log
    assert report["resubmitted_pages"] == 1 and server.counters.jobs_created == 2

    # ... and its first upload that night fails (5xx after every retry) and is sent again: still
    # one resubmission (the upload the API failed made no job; it was counted twice)
    cfg = write_config(tmp_path, server.base_url, polling__not_found_grace_s=0, retries__outage_min_s=0.2)
    server.faults.endpoints, server.faults.http_5xx = ("submit",), FaultRule(count=4)
    code, report, log = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK and server.counters.jobs_created == 3, log
    assert server.faults.http_5xx.count == 0   # the failed upload happened
    assert report["resubmitted_pages"] == 1, report["resubmissions"]    # before: 0, then 2
    assert [(r["rel"], r["submits"]) for r in report["resubmissions"]] == [("p.png", 3)]


async def test_a_lost_jobs_resend_a_run_never_sent_is_admitted_only_by_the_run_that_sends_it(tmp_path, server):
    """A page whose job the server lost, and whose resend a night did not send (its cap reached:
    the same as a 429 storm and then a stop): that night admitted a resubmission nobody paid
    (``resubmitted_pages: 1``, counted before the upload), beside the night that did pay it."""
    from conftest import TOKEN
    from pipeline.server import FaultRule

    distinct_png(tmp_path / "in" / "p.png", seed=1)
    cfg = write_config(tmp_path, server.base_url, polling__not_found_grace_s=0)
    server.faults.lose_request_id = FaultRule(count=2)
    code, report, log = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.FILES_FAILED and server.counters.jobs_created == 2, log

    capped = write_config(tmp_path, server.base_url, polling__not_found_grace_s=0, budget__max_pages_per_run=0)
    code, report, log = await run_pipeline(capped, TOKEN)
    assert code == ExitCode.STOPPED_EARLY and server.counters.jobs_created == 2, log   # nothing sent
    assert report["resubmitted_pages"] == 0, report["resubmissions"]   # before: 1

    cfg = write_config(tmp_path, server.base_url, polling__not_found_grace_s=0)   # the cap lifted
    code, report, log = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK and server.counters.jobs_created == 3, log
    assert report["resubmitted_pages"] == 1, report["resubmissions"]
    assert [(r["rel"], r["submits"]) for r in report["resubmissions"]] == [("p.png", 3)]


async def test_images_the_default_include_passes_by_are_counted_and_said(tmp_path, server):
    """A new user's phone photos (.heic), a DjVu book and a Photoshop file were left out by the
    default include without a word: the run said '1 done' and exit 0, as if the folder held
    nothing else. They are counted by suffix in the report and the run says so; an image the
    user excluded is their choice and is not counted."""
    cfg = write_config(tmp_path, server.base_url, exclude=["**/*.psd"])
    distinct_png(tmp_path / "in" / "a.png", 1)
    for name in ("phone.HEIC", "sub/book.djvu", "sub/book2.djvu", "layers.psd", "notes.txt"):
        (tmp_path / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "in" / name).write_bytes(b"not read")
    from pipeline.config import load_config
    from pipeline.run.plan import Planner, format_plan

    os.environ["PIPELINE_TEST_TOKEN"] = TOKEN
    _, planned, _ = await Planner(load_config(cfg)).plan()   # plan says it before a night is spent
    assert planned["counted"]["left_out_images"] == {".djvu": 2, ".heic": 1}
    assert "3 image files no include pattern matches were left out (.djvu 2, .heic 1)" in format_plan(planned)
    code, report, log = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK and report["this_run"] == {"done": 1}
    assert report["left_out_images"] == {".djvu": 2, ".heic": 1}
    assert "3 image files no include pattern matches were left out (.djvu 2, .heic 1)" in log


class _WalkedThenWritten(_WalkedThenMoved):
    """The walk of a tree where ``rel`` is still being copied: more of it is written after the
    walk's stat, before the run reads it (the copy not finished when it is read)."""

    def __call__(self):
        from pipeline.inputs.scan import ScanEntry
        from pipeline.run.tree import walk

        for item in walk(self.cfg):
            if isinstance(item, ScanEntry) and item.rel == self.rel:
                with open(item.path, "ab") as f:
                    f.write(self.more)
            yield item


async def test_a_scan_still_being_copied_when_read_is_left_for_the_next_run_not_rejected(tmp_path):
    """A scan read while its copy was under way (min_file_age_s at its default 0) was rejected
    'truncated: ... copy or download it again', exit 1, though the copy was only unfinished."""
    import io

    from pipeline.run.runner import Runner

    whole = distinct_png(tmp_path / "in" / "a.png", seed=1).read_bytes()
    distinct_png(tmp_path / "in" / "b.png", seed=2)
    scan = tmp_path / "in" / "a.png"
    scan.write_bytes(whole[: len(whole) // 3])               # the first third is there at the walk
    cfg = load_config(_fast(tmp_path))
    runner = Runner(cfg, stream=io.StringIO())
    runner._walk = _WalkedThenWritten(cfg, "a.png")
    runner._walk.more = whole[len(whole) // 3: len(whole) * 2 // 3]   # the next third when it is read
    code = await runner.run()
    log = runner.stream.getvalue()
    assert code == ExitCode.STOPPED_EARLY, log                # before: rejected (truncated), exit 1
    assert failures(tmp_path) == {} and runner.report["this_run"] == {"changed": 1, "done": 1}, log

    scan.write_bytes(whole)                                   # the copy has finished
    code, report, log = await run_pipeline(_fast(tmp_path), None)
    assert code == ExitCode.OK and report["this_run"] == {"done": 1, "skipped": 1}, log


async def test_files_left_as_still_being_written_are_named(tmp_path):
    """A file modified less than ``min_file_age_s`` ago waits for a later run (exit 3); the run
    said only "2 left for next run", never which nor why, so a file that stays young (a clock
    set ahead, a scanner that never finishes one) kept a nightly run at exit 3, unnamed."""
    distinct_png(tmp_path / "in" / "old.png", seed=1)
    for name in ("new1.png", "sub/new2.png"):
        (tmp_path / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        distinct_png(tmp_path / "in" / name, seed=len(name))
    past = os.stat(tmp_path / "in" / "old.png").st_mtime - 7200
    os.utime(tmp_path / "in" / "old.png", (past, past))
    code, report, log = await run_pipeline(_fast(tmp_path, min_file_age_s=3600), None)
    assert code == ExitCode.STOPPED_EARLY and report["this_run"] == {"done": 1, "deferred": 2}, log
    assert report["still_being_written"] == 2
    assert sorted(report["still_being_written_files"]) == ["new1.png", "sub/new2.png"]
    line = next(ln for ln in log.splitlines() if "min_file_age_s" in ln)   # before: no such line
    assert "2 files" in line and "new1.png" in line and "sub/new2.png" in line and "old.png" not in line


async def test_an_input_found_empty_on_another_file_system_is_a_share_not_mounted(tmp_path):
    """A share unmounted at night leaves its mount point: an empty folder on another file
    system. The run said "0 done ... exit 0", and a nightly job looked fine while it read
    nothing. The night before is made here by the device the state store noted (no mount
    without root): the folder found empty on another device is ``input_gone``, exit 3. An input
    emptied on its own file system (scans moved out once read) stays exit 0."""
    from pipeline.run.state import StateStore

    scan = distinct_png(tmp_path / "in" / "a.png", seed=1)
    cfg = _fast(tmp_path)
    code, _, _ = await run_pipeline(cfg, None)
    assert code == ExitCode.OK
    state_file = load_config(cfg).state_file
    store = StateStore(state_file)
    try:
        assert store.input_device() == os.stat(tmp_path / "in").st_dev   # noted by the walk that found a.png
    finally:
        store.close()

    scan.rename(tmp_path / "read-and-moved-out.png")          # an inbox: emptied on its own file system
    code, report, log = await run_pipeline(cfg, None)
    assert code == ExitCode.OK and report["scan_problems"] == 0, log

    store = StateStore(state_file)
    try:
        store.set_input_device(os.stat(tmp_path / "in").st_dev + 1)   # the last night's files were on a share
    finally:
        store.close()
    code, report, log = await run_pipeline(cfg, None)
    assert code == ExitCode.STOPPED_EARLY, log                       # before: exit 0, "0 done"
    assert "input_gone" in log and "not mounted" in report["stop_reason"], log
    assert [p["code"] for p in json.loads((tmp_path / "out" / ".pipeline" / "failures.json").read_text())] == ["input_gone"]
