"""Ctrl-C at a terminal: the terminal sends SIGINT to the whole foreground process group, the
embedded engine's worker processes included, not only to the main process.

The run is started in a session of its own with a pseudo-terminal as its controlling terminal,
the way a shell starts it, and ``\\x03`` is written to the terminal: the line discipline turns it
into SIGINT for every process of the group. The embedded server runs the real tesseract engine
in worker processes. The test then reads what a person and a scheduler would: the summary line,
``run-report.json``, the run closed in the state store, the exit code.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest
import yaml

from helpers import save, text_page
from pipeline.exitcodes import ExitCode


class Terminal:
    """A child process on a pseudo-terminal: its controlling terminal, stdin, stdout and stderr."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        self.master, slave = os.openpty()
        env = dict(os.environ)
        env.pop("PIPELINE_CRASHPOINT", None)

        def controlling_tty() -> None:  # runs after setsid(): the pty becomes this session's terminal
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave,
                                     start_new_session=True, preexec_fn=controlling_tty)
        os.close(slave)
        self._out = bytearray()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # EIO: every process holding the terminal has exited
                return
            if not chunk:
                return
            with self._lock:
                self._out += chunk

    @property
    def output(self) -> str:
        with self._lock:
            return self._out.decode(errors="replace")

    def ctrl_c(self) -> None:
        os.write(self.master, b"\x03")

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._reader.join(5)
            os.close(self.master)


def wait_for(condition, timeout: float, what: str) -> None:
    """Poll a condition of the world (files on disk, terminal output); fail naming ``what``."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def archive(tmp_path: Path, pages: int, grace: float, big: int = 0) -> Path:
    """``pages`` small pages, then ``big`` dense full-size pages (seconds each for tesseract)."""
    for i in range(pages):
        save(text_page(f"Page {i} of the\nletters {i * 7}"), tmp_path / "in" / f"p{i:03d}.png", "PNG")
    dense = "\n".join(f"Line {n} of a long dense protocol page with many words" for n in range(70))
    for i in range(big):
        save(text_page(dense, size=(2400, 3400)), tmp_path / "in" / f"q{i:03d}.png", "PNG")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({
        "input": str(tmp_path / "in"), "output": str(tmp_path / "out"), "progress": "bar",
        "shutdown_grace_s": grace,
        "api": {"base_url": "embedded", "embedded": {"engine": "tesseract", "workers": 1}},
        "concurrency": {"jobs_in_flight": 2, "adaptive": False},
    }))
    return cfg


def done_outputs(tmp_path: Path) -> int:
    return len(list((tmp_path / "out").glob("*.png.txt")))


def closed_runs(tmp_path: Path) -> list[tuple]:
    db = sqlite3.connect(tmp_path / "out" / ".pipeline" / "state.sqlite")
    try:
        return db.execute("SELECT id, ended_at, exit_code FROM runs").fetchall()
    finally:
        db.close()


def run_on_terminal(tmp_path: Path, cfg: Path, done: int = 1) -> Terminal:
    term = Terminal([sys.executable, "-m", "pipeline", "run", str(cfg)], tmp_path)
    # the engine's worker process is up and reading pages: some file is done, others are waiting
    wait_for(lambda: done_outputs(tmp_path) >= done or term.proc.poll() is not None, 120, "a first page read")
    assert term.proc.poll() is None, term.output
    return term


def test_ctrl_c_at_a_terminal_stops_like_sigterm_with_summary_report_and_closed_run(tmp_path):
    cfg = archive(tmp_path, pages=60, grace=60)
    term = run_on_terminal(tmp_path, cfg)
    term.ctrl_c()
    code = term.wait(120)
    out = term.output
    assert code == ExitCode.STOPPED_EARLY, out
    assert "stopping (signal SIGINT)" in out
    assert "stopped early: signal SIGINT" in out
    assert "exit 3 (STOPPED_EARLY)" in out
    assert "Traceback" not in out and "internal error" not in out, out
    report = json.loads((tmp_path / "out" / ".pipeline" / "run-report.json").read_text())
    assert report["exit_code"] == 3 and report["stop_reason"] == "signal SIGINT"
    assert report["this_run"].get("done", 0) >= 1
    assert report["this_run"].get("failed", 0) == 0, report   # no page failed because its worker died
    runs = closed_runs(tmp_path)
    assert len(runs) == 1 and runs[0][1] is not None and runs[0][2] == 3, runs
    assert done_outputs(tmp_path) < 60


def test_a_second_ctrl_c_stops_at_once_and_still_writes_the_report(tmp_path):
    # the small pages are done when Ctrl-C comes; dense pages of seconds each are then in flight,
    # and a grace of 3000 s would let them finish: only the second Ctrl-C ends the run early
    cfg = archive(tmp_path, pages=2, grace=3000, big=6)
    term = run_on_terminal(tmp_path, cfg, done=2)
    term.ctrl_c()
    wait_for(lambda: "stopping (signal SIGINT)" in term.output, 60, "the first stop message")
    term.ctrl_c()
    code = term.wait(120)
    out = term.output
    assert code == ExitCode.STOPPED_EARLY, out
    assert "second signal" in out
    assert done_outputs(tmp_path) < 8                 # the dense pages in flight were parked, not finished
    assert "Traceback" not in out and "internal error" not in out, out
    report = json.loads((tmp_path / "out" / ".pipeline" / "run-report.json").read_text())
    assert report["exit_code"] == 3
    runs = closed_runs(tmp_path)
    assert len(runs) == 1 and runs[0][1] is not None and runs[0][2] == 3, runs


# A Ctrl-C while a worker process is still starting: the pool spawns it on demand (the geometry
# pool on the first page that needs placing, the engine pool at start and at each recycle), and a
# spawned interpreter ignores SIGINT only once its initializer runs. Each script starts a pool,
# sends SIGINT to its own process group the moment the worker exists (as a terminal's Ctrl-C
# reaches every process of the group) and then uses the worker. Found by a tour of random Ctrl-Cs
# against the hosted-like model: the page was written without word positions for good.
_CTRL_C_AT_SPAWN = '''
import asyncio, json, os, signal, sys

signal.signal(signal.SIGINT, signal.default_int_handler)  # as from a terminal (a background job inherits it ignored)

async def main(kind, path):
    loop = asyncio.get_running_loop()
    stops = []
    loop.add_signal_handler(signal.SIGINT, stops.append, "SIGINT")   # the parent owns shutdown
    data = open(path, "rb").read()
    if kind == "geometry":
        from pipeline.run.placing import Placer
        pool = Placer()
        work = asyncio.ensure_future(pool.place(data, "Ctrl C at spawn", "en"))
    else:
        from pipeline.ocr.pool import EngineRunner
        pool = EngineRunner("tesseract")
        work = asyncio.ensure_future(pool.recognize(data, "en"))
    while pool._executor is None or not getattr(pool._executor, "_processes", None):
        await asyncio.sleep(0)
    os.killpg(0, signal.SIGINT)
    try:
        got = await work
        answer = {"error": got.get("error"), "placed": got.get("placed")} if kind == "geometry" else {"text": got.text}
    except Exception as exc:
        answer = {"error": f"{type(exc).__name__}: {exc}"}
    if kind == "geometry":
        pool.close()
    else:
        await pool.close()
    print(json.dumps({"stops": stops, **answer}))

asyncio.run(main(sys.argv[1], sys.argv[2]))
'''


@pytest.mark.parametrize("kind", ["geometry", "engine"])
def test_a_ctrl_c_while_a_worker_process_starts_does_not_kill_it(tmp_path, kind):
    page = save(text_page("Ctrl C at spawn"), tmp_path / "page.png")
    proc = subprocess.run([sys.executable, "-c", _CTRL_C_AT_SPAWN, kind, str(page)], capture_output=True,
                          text=True, timeout=120, start_new_session=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["stops"] == ["SIGINT"]          # the signal did reach the group
    assert got.get("error") is None, got       # before: "the geometry worker process died" / WORKER_TIMEOUT
    if kind == "geometry":
        assert got["placed"] >= 3
    else:
        assert "Ctrl" in got["text"] or "spawn" in got["text"], got


# A stop sent to the whole group (systemd's `systemctl stop` with its default KillMode, `kill -TERM
# -PGID`) reaches the engine workers too. The script starts the engine pool, gives its worker a
# two-second stand-in page, has `kill` send SIGTERM to its group once the page has begun, and takes
# the answer; then ends the worker as a broken pool does (SIGTERM from the parent).
_GROUP_SIGTERM = '''
import asyncio, json, multiprocessing.connection, os, signal, subprocess, sys
from helpers import mark_then_sleep
from pipeline.ocr.pool import EngineRunner, pool_processes, run_in_worker

async def main(marker):
    loop = asyncio.get_running_loop()
    stops = []
    loop.add_signal_handler(signal.SIGTERM, stops.append, "SIGTERM")   # the parent owns shutdown
    runner = EngineRunner("tesseract")
    await runner.start()
    page = run_in_worker(loop, runner._executor, mark_then_sleep, marker, 2.0)
    while not os.path.exists(marker):
        await asyncio.sleep(0.01)
    subprocess.run(["kill", "-s", "TERM", "--", f"-{os.getpgid(0)}"])   # from outside, as systemd's
    try:
        answer = await page
    except Exception as exc:
        answer = f"{type(exc).__name__}: {exc}"
    worker = pool_processes(runner._executor)[0]
    worker.terminate()                       # from the parent: obeyed
    # The sentinel, not is_alive(): the pool's manager thread reaps a worker that died too, and
    # is_alive() read while it does (its waitpid got the status, ours gets ECHILD) says "alive".
    ended = multiprocessing.connection.wait([worker.sentinel], 30)
    print(json.dumps({"stops": stops, "answer": answer, "ended_by_parent": bool(ended)}))
    await runner.close()

asyncio.run(main(sys.argv[1]))
'''


def test_a_sigterm_to_the_whole_group_lets_the_engine_worker_finish_its_page(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", _GROUP_SIGTERM, str(tmp_path / "begun")], capture_output=True,
                          text=True, timeout=120, start_new_session=True, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["stops"] == ["SIGTERM"]           # the signal did reach the group
    assert got["answer"] == "slept", got         # before: BrokenProcessPool (the worker died of it)
    assert got["ended_by_parent"]
