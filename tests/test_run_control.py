"""Run control in the states real runs meet: stops with thousands of files waiting, a second
signal, the deadline, stops while uploads wait for the rate limiter, crashes, bad settings.

The pipeline runs as a real subprocess (``python -m pipeline run``) against the project's own
server in the test process; a stop that hangs shows up as the subprocess not exiting before a
generous timeout, never as a timed assertion.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import sqlite3
import sys
import threading
from pathlib import Path

import pytest
from PIL import Image

from conftest import TOKEN
from helpers import distinct_png, run_pipeline, write_config
from pipeline.exitcodes import ExitCode
from pipeline.inputs.feed import ScanFeed
from pipeline.server import EmbeddedServer, FaultConfig, FaultRule, ServerConfig

NOISE = ("Traceback", "never retrieved", "Task was destroyed", "CancelledError")


def many_files(root: Path, n: int) -> None:
    """``n`` distinct tiny PNGs, cheaply: one image, a different trailing byte run each
    (Pillow ignores data after IEND; the content hash differs)."""
    buf = io.BytesIO()
    Image.new("L", (120, 80), 255).save(buf, "PNG")
    base = buf.getvalue()
    folder = root / "in" / "many"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"{i:05d}.png").write_bytes(base + i.to_bytes(4, "big"))


async def start_run(cfg: Path, *extra: str, env_extra: dict | None = None) -> asyncio.subprocess.Process:
    env = dict(os.environ, PIPELINE_TEST_TOKEN=TOKEN)
    env.pop("PIPELINE_CRASHPOINT", None)
    env.update(env_extra or {})
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "pipeline", "run", str(cfg), *extra, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def until(condition, timeout: float = 60.0) -> None:
    """Wait for a condition of the world (server counters), failing after ``timeout``."""
    async def loop():
        while not condition():
            await asyncio.sleep(0.02)
    await asyncio.wait_for(loop(), timeout)


async def finish(proc, timeout: float = 90.0) -> tuple[int, str]:
    _, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode, err.decode()


@pytest.fixture
async def slow_server():
    """Jobs stay pending for 30 s: every file in flight is still waiting when the stop comes."""
    async with EmbeddedServer(ServerConfig(engine="fast", tokens=(TOKEN,), faults=FaultConfig(latency=30.0))) as srv:
        yield srv


def report(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "out" / ".pipeline" / "run-report.json").read_text())


def parked(tmp_path: Path) -> int:
    db = sqlite3.connect(tmp_path / "out" / ".pipeline" / "state.sqlite")
    try:
        return db.execute("SELECT COUNT(*) FROM pages WHERE state='submitted' AND request_id IS NOT NULL").fetchone()[0]
    finally:
        db.close()


@pytest.mark.parametrize("how", ["sigterm", "max_runtime"])
async def test_a_stop_with_thousands_of_files_waiting_ends_within_the_grace_period(tmp_path, slow_server, how):
    many_files(tmp_path, 3000)
    cfg = write_config(tmp_path, slow_server.base_url, shutdown_grace_s=1, concurrency__jobs_in_flight=4,
                       concurrency__adaptive=False, polling__max_interval_s=1)
    proc = await start_run(cfg, *(["--max-runtime", "2"] if how == "max_runtime" else []))
    await until(lambda: slow_server.counters.jobs_created >= 4)
    if how == "sigterm":
        proc.send_signal(signal.SIGTERM)
    code, err = await finish(proc, timeout=60)  # the old feeder hung here for ever
    assert code == ExitCode.STOPPED_EARLY, err
    assert not any(n in err for n in NOISE), err
    rep = report(tmp_path)
    assert rep["exit_code"] == 3 and rep["stop_reason"]
    assert rep["this_run"].get("deferred", 0) >= 1
    assert parked(tmp_path) == slow_server.counters.jobs_created  # every job's request id is kept
    assert slow_server.counters.jobs_created == 4                  # nothing submitted after the stop
    # the jobs get the grace less the stop's own wrap-up, so the process is gone when it is over
    assert "in-flight jobs still running after 0.9s of the 1s grace; parking them" in err, err


async def test_the_grace_is_counted_from_the_signal_not_from_when_the_loop_got_to_it(tmp_path, slow_server):
    # The SIGTERM comes while a step holds the event loop for 1.5 s (as an import does on a loaded
    # machine): the run's handler runs after that, and the grace counted from there gave the jobs
    # their 0.9 s on top, so the process outlived its 1 s grace by the time the loop was held.
    many_files(tmp_path, 20)
    cfg = write_config(tmp_path, slow_server.base_url, shutdown_grace_s=1, concurrency__jobs_in_flight=4,
                       concurrency__adaptive=False, polling__max_interval_s=1)
    proc = await start_run(cfg, env_extra={"PIPELINE_CRASHPOINT": "after_submit:4:SIGTERM:busy=1.5"})
    code, err = await finish(proc, timeout=60)
    assert code == ExitCode.STOPPED_EARLY, err
    assert "stopping (signal SIGTERM)" in err, err
    # the jobs' share of the grace (0.9 s) was spent while the loop was held: they get no more
    assert "in-flight jobs still running after 0s of the 1s grace; parking them" in err, err
    assert parked(tmp_path) == slow_server.counters.jobs_created >= 1


async def test_a_second_signal_stops_at_once_with_the_report_written(tmp_path, slow_server):
    many_files(tmp_path, 50)
    cfg = write_config(tmp_path, slow_server.base_url, shutdown_grace_s=3000, concurrency__jobs_in_flight=4,
                       concurrency__adaptive=False, polling__max_interval_s=1)
    proc = await start_run(cfg)
    await until(lambda: slow_server.counters.jobs_created >= 4)
    proc.send_signal(signal.SIGINT)
    line = b""
    while b"stopping" not in line and (line or not proc.stderr.at_eof()):  # after the start line
        line = await asyncio.wait_for(proc.stderr.readline(), 30)
    assert b"stopping (signal SIGINT)" in line
    proc.send_signal(signal.SIGTERM)  # a grace of 3000 s would keep it running; the second signal must not
    code, err = await finish(proc, timeout=60)
    assert code == ExitCode.STOPPED_EARLY, err
    assert "second signal" in err
    assert not any(n in err for n in NOISE), err
    assert report(tmp_path)["exit_code"] == 3
    assert parked(tmp_path) == 4


async def test_uploads_waiting_for_the_rate_limiter_leave_at_once_on_a_stop_and_are_not_possible_duplicates(
        tmp_path, server):
    for i in range(6):
        distinct_png(tmp_path / "in" / f"{i}.png", seed=i)
    # One submit a minute: after the first, every upload waits ~60 s in the limiter.
    cfg = write_config(tmp_path, server.base_url, shutdown_grace_s=3000, concurrency__jobs_in_flight=4,
                       concurrency__adaptive=False, rate_limits__plan="custom", rate_limits__submit_per_minute=1)
    proc = await start_run(cfg)
    await until(lambda: server.counters.jobs_created >= 1)
    await asyncio.sleep(0.3)  # the others are now queued in the limiter (nothing to observe from outside)
    proc.send_signal(signal.SIGTERM)
    code, err = await finish(proc, timeout=60)  # not 3000 s of grace, not 60 s of limiter wait
    assert code == ExitCode.STOPPED_EARLY, err
    assert server.counters.jobs_created == 1
    rep = report(tmp_path)
    assert rep["possible_duplicates"] == [] and rep["possible_duplicate_submits"] == 0
    # The next run (no limit now) sends the rest once each, and nothing is listed as a duplicate.
    cfg = write_config(tmp_path, server.base_url, concurrency__jobs_in_flight=4)
    code, rep2, out = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK, out
    assert rep2["possible_duplicates"] == []
    assert server.counters.jobs_created == 6


async def test_a_crash_exits_70_with_one_line_and_the_traceback_in_a_log(tmp_path, server):
    distinct_png(tmp_path / "in" / "a.png", seed=1)
    cfg = write_config(tmp_path, server.base_url)
    proc = await start_run(cfg, env_extra={"PIPELINE_CRASHPOINT": "run_start:1:raise"})
    code, err = await finish(proc)
    assert code == ExitCode.INTERNAL_ERROR == 70
    assert "Traceback" not in err and "internal error (InjectedCrash" in err
    logs = list((tmp_path / "out" / ".pipeline").glob("crash-*.log"))
    assert len(logs) == 1
    text = logs[0].read_text()
    assert "Traceback" in text and "InjectedCrash" in text and TOKEN not in text
    assert report(tmp_path)["exit_code"] == 70


async def test_a_ctrl_c_as_the_run_begins_stops_it_with_the_report_and_the_run_closed(tmp_path, server):
    """Found by random Ctrl-Cs: one that came before the run had set its handlers met asyncio's
    own, which cancelled the run: 'second signal' for the first, no report, the run never closed."""
    distinct_png(tmp_path / "in" / "a.png", seed=1)
    cfg = write_config(tmp_path, server.base_url)
    proc = await start_run(cfg, env_extra={"PIPELINE_CRASHPOINT": "run_begins:1:SIGINT"})
    code, err = await finish(proc)
    assert code == ExitCode.STOPPED_EARLY, err
    assert "stopping (signal SIGINT)" in err and "second signal" not in err
    assert not any(noise in err for noise in NOISE), err
    assert report(tmp_path)["stop_reason"] == "signal SIGINT"
    db = sqlite3.connect(tmp_path / "out" / ".pipeline" / "state.sqlite")
    try:
        assert db.execute("SELECT exit_code FROM runs WHERE ended_at IS NOT NULL").fetchall() == [(3,)]
    finally:
        db.close()
    assert server.counters.submits == 0


@pytest.mark.parametrize("point,sig", [("run_handlers_removed", "SIGINT"), ("process_exit", "SIGINT"),
                                       ("process_exit", "SIGTERM")])
async def test_a_signal_after_the_run_said_its_exit_code_does_not_change_it(tmp_path, server, point, sig):
    """Found by Ctrl-C at random moments: a run whose last line said ``exit 1 (FILES_FAILED)``
    exited 3 with 'second signal' when the Ctrl-C came while asyncio closed down (its handlers
    gone: ``run_handlers_removed``), or died of the signal with no word (exit 130) in the
    interpreter's teardown after ``main`` returned (``process_exit``, where the interpreter puts
    the default handler back). A scheduler must get the code the log says."""
    distinct_png(tmp_path / "in" / "a.png", seed=1)
    (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)  # a reject: exit 1
    cfg = write_config(tmp_path, server.base_url)
    proc = await start_run(cfg, env_extra={"PIPELINE_CRASHPOINT": f"{point}:1:{sig}"})
    code, err = await finish(proc)
    assert "exit 1 (FILES_FAILED)" in err, err
    assert code == ExitCode.FILES_FAILED, err
    assert "second signal" not in err and not any(noise in err for noise in NOISE), err
    assert report(tmp_path)["exit_code"] == 1


async def test_a_signal_after_a_run_said_exit_2_at_its_start_does_not_change_it(tmp_path, server):
    """The same for a run that ends at its start with its own exit line (the disk under the
    ``min_free_mb`` floor): it said ``exit 2 (CONFIG_ERROR)`` and exited 3, 'second signal'."""
    import shutil

    distinct_png(tmp_path / "in" / "a.png", seed=1)
    (tmp_path / "out").mkdir()
    floor_mb = shutil.disk_usage(tmp_path / "out").free // (1 << 20) + 100_000
    cfg = write_config(tmp_path, server.base_url, min_free_mb=floor_mb)
    proc = await start_run(cfg, env_extra={"PIPELINE_CRASHPOINT": "run_handlers_removed:1:SIGINT"})
    code, err = await finish(proc)
    assert "exit 2 (CONFIG_ERROR)" in err, err
    assert code == ExitCode.CONFIG_ERROR and "second signal" not in err, err


async def test_a_sigterm_while_the_command_starts_exits_3_not_by_the_signal(tmp_path):
    """Before, a SIGTERM before the run's handlers (the interpreter importing the run's modules
    takes a second or more on a loaded machine) ended the process by the signal: exit -15 (143)."""
    distinct_png(tmp_path / "in" / "a.png", seed=1)
    cfg = write_config(tmp_path, "http://127.0.0.1:9")
    proc = await start_run(cfg, env_extra={"PIPELINE_CRASHPOINT": "cli_start:1:SIGTERM"})
    code, err = await finish(proc)
    assert code == ExitCode.STOPPED_EARLY, err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()  # stopped before anything was created


async def test_a_stop_does_not_wait_for_a_geometry_worker_still_placing_a_page_it_gave_up(tmp_path):
    """Found by random stops against the hosted-like model: after the report, the run waited for
    the geometry worker to finish placing a page of a file it had parked (seconds on a loaded
    machine; a second Ctrl-C did not cut it short). The placement here never ends."""
    from helpers import save, text_page
    from pipeline.server.hosted import HostedSettings

    save(text_page("Harbour parish ledger"), tmp_path / "in" / "a.png")
    hosted = HostedSettings(job_s=(0.01, 0.02), max_input_height=None)
    async with EmbeddedServer(ServerConfig(engine="fast", tokens=(TOKEN,), hosted=hosted)) as srv:
        cfg = write_config(tmp_path, srv.base_url, outputs=["txt", "json", "alto"], shutdown_grace_s=1,
                           api__model="Nanonets_Ocr_S_Hosted")
        proc = await start_run(cfg, env_extra={"PIPELINE_CRASHPOINT": "in_placement:1:stall"})
        try:
            await until(lambda: srv.counters.jobs_done == 1)
            proc.send_signal(signal.SIGTERM)
            code, err = await finish(proc, timeout=60)   # before: never (the worker never finishes)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert code == ExitCode.STOPPED_EARLY, err
    assert report(tmp_path)["stop_reason"] == "signal SIGTERM"
    assert parked(tmp_path) == 0 and not (tmp_path / "out" / "a.png.txt").exists()


async def test_a_stop_does_not_wait_for_a_page_still_being_opened(tmp_path, server):
    """Found by stopping real runs at random moments: the pre-check of a 300 dpi page (decoding,
    the upright and skew measures) takes seconds, and ran in the event loop's default executor,
    which ``asyncio.run`` joins after the run's last line: a stop with 2 s of grace ended 5.6 s
    after the signal. Here the signal comes from inside the opening of the first page, which then
    takes 10 minutes: before, the process waited for it after saying ``exit 3``."""
    distinct_png(tmp_path / "in" / "a.png", 1)
    cfg = write_config(tmp_path, server.base_url, shutdown_grace_s=1)
    proc = await start_run(cfg, env_extra={"PIPELINE_CRASHPOINT": "in_prepare:1:SIGTERM:busy=600"})
    try:
        code, err = await finish(proc, timeout=60)   # before: 600 s
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert code == ExitCode.STOPPED_EARLY, err
    assert err.rstrip().splitlines()[-1].endswith(f"exit 3 (STOPPED_EARLY); results in {tmp_path / 'out'}; "
                                                  f"report {tmp_path / 'out' / '.pipeline' / 'run-report.json'}"), err
    assert report(tmp_path)["stop_reason"] == "signal SIGTERM"
    assert server.counters.jobs_created == 0 and not (tmp_path / "out" / "a.png.txt").exists()


@pytest.mark.parametrize("token, message", [("has a space", "whitespace"), ("", "is empty or unset")])
async def test_a_bad_token_exits_2_before_anything_is_created(tmp_path, token, message):
    (tmp_path / "in").mkdir()
    cfg = write_config(tmp_path, "http://127.0.0.1:9")
    env = dict(os.environ, PIPELINE_TEST_TOKEN=token)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "pipeline", "run", str(cfg), env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    code, err = await finish(proc)
    assert code == ExitCode.CONFIG_ERROR, err
    assert "PIPELINE_TEST_TOKEN" in err and message in err
    assert not (tmp_path / "out").exists()  # no output folder, no state, no lock


async def test_a_blank_page_is_done_with_no_text(tmp_path):
    (tmp_path / "in").mkdir()
    Image.new("L", (400, 300), 255).save(tmp_path / "in" / "blank.png")
    async with EmbeddedServer(ServerConfig(engine="tesseract", tokens=(TOKEN,))) as srv:
        cfg = write_config(tmp_path, srv.base_url)
        code, rep, out = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK, out
    doc = json.loads((tmp_path / "out" / "blank.png.json").read_text())
    assert doc["pages"][0]["no_text"] is True and doc["text"] == ""
    assert rep["files_by_state"] == {"done": 1}


async def test_finished_files_leave_no_results_in_memory_and_progress_shows_the_truth(tmp_path):
    async with EmbeddedServer(ServerConfig(engine="fast", tokens=(TOKEN,), faults=FaultConfig(latency=0.2))) as srv:
        for i in range(24):
            distinct_png(tmp_path / "in" / f"{i:02d}.png", seed=i)
        (tmp_path / "in" / "copy.png").write_bytes((tmp_path / "in" / "00.png").read_bytes())
        cfg = write_config(tmp_path, srv.base_url, progress="log", log_interval_s=0.1,
                           concurrency__jobs_in_flight=4, concurrency__adaptive=False)
        from pipeline.config import load_config
        from pipeline.run.runner import Runner

        os.environ["PIPELINE_TEST_TOKEN"] = TOKEN
        runner = Runner(load_config(cfg), stream=io.StringIO())
        assert await runner.run() == ExitCode.OK
    assert runner._ctx.in_run_works == {}
    assert srv.counters.jobs_created == 24  # the copy was paid once
    lines = [ln for ln in runner.stream.getvalue().splitlines() if ln.startswith("progress:")]
    assert lines, runner.stream.getvalue()
    assert any(" of 25 files" in ln for ln in lines)
    assert any(int(ln.split(" in flight")[0].rsplit(", ", 1)[1]) > 0 for ln in lines)


async def test_the_feed_hands_over_the_first_entry_before_the_walk_ends():
    release = threading.Event()

    def walk():
        yield "first"
        release.wait(30)  # a huge sparse tree: the next match is far away
        yield "second"

    feed = ScanFeed(walk).start()
    try:
        assert await asyncio.wait_for(feed.get(), 10) == "first"
    finally:
        release.set()
    assert await asyncio.wait_for(feed.get(), 10) == "second"
    assert await asyncio.wait_for(feed.get(), 10) is None


async def test_closing_the_feed_wakes_every_waiter_and_returns_what_nobody_took():
    gate = threading.Event()

    def walk():
        yield from ("a", "b")
        gate.wait(30)

    feed = ScanFeed(walk, capacity=4).start()
    await until(lambda: feed.found == 2, 10)
    left = feed.close()
    assert left == ["a", "b"]
    assert await asyncio.wait_for(feed.get(), 5) is None
    gate.set()


async def test_the_adaptive_window_does_not_collapse_under_the_servers_429s(tmp_path):
    faults = FaultConfig(http_429=FaultRule(rate=0.2), retry_after=0, latency=0.05)
    async with EmbeddedServer(ServerConfig(engine="fast", tokens=(TOKEN,), faults=faults)) as srv:
        for i in range(150):
            distinct_png(tmp_path / "in" / f"{i:03d}.png", seed=i)
        cfg = write_config(tmp_path, srv.base_url, concurrency__jobs_in_flight=16, concurrency__adaptive=True,
                           retries__max_attempts=8)
        code, rep, out = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK, out
    window = rep["api_calls"]["jobs_in_flight"]
    assert rep["api_calls"]["rate_limited"] > 10  # the storm happened
    assert window["limit"] >= 8, window           # halving on each 429 ended at 1


async def test_embedded_mode_learns_job_ends_by_webhook_and_never_guesses(tmp_path):
    for i in range(6):
        distinct_png(tmp_path / "in" / f"{i}.png", seed=i)
    cfg = write_config(tmp_path, "embedded", api__embedded={"engine": "fast", "workers": 1},
                       concurrency__jobs_in_flight=8)
    code, rep, out = await run_pipeline(cfg, None)
    assert code == ExitCode.OK, out
    srv = rep["embedded_server_counters"]
    assert srv["jobs_created"] == 6
    assert srv["webhooks_delivered"] >= 6     # job.completed for every job, on loopback
    assert srv["status_polls"] == 0           # no guessing when to poll
    assert rep["api_calls"]["jobs_in_flight"]["maximum"] == 2  # two jobs per engine worker
