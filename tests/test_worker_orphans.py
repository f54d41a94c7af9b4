"""A run killed outright (``kill -9``, the OOM killer) leaves no worker processes behind.

The embedded server's engine workers and the client's geometry workers are pool processes that
wait for their next task on a pipe whose write end they hold themselves, so they never saw their
parent die: after each killed run they lived on, each with its engine's memory. Found by killing
a PDF run with the hosted-like model and counting ``spawn_main`` processes re-parented to init.
Linux only (``/proc``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import pdfs
from conftest import TOKEN
from helpers import mark_then_sleep, write_config

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


def _state_and_ppid(pid: int) -> tuple[str, int] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def _workers_of(parent: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        got = _state_and_ppid(int(entry.name))
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if got is not None and got[1] == parent and b"spawn_main" in cmdline:
            out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    got = _state_and_ppid(pid)
    return got is not None and got[0] != "Z"


async def _until(condition, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        await asyncio.sleep(0.1)
    return condition()


async def test_workers_of_a_run_killed_outright_exit_with_it(tmp_path):
    pdfs.write(tmp_path / "in" / "book.pdf", pdfs.build([("scan", "harbour"), ("scan", "parish")], size=(400, 300)))
    cfg = write_config(tmp_path, "embedded", outputs=["txt", "json", "alto"],
                       api__model="Nanonets_Ocr_S_Hosted", api__embedded={"engine": "tesseract", "workers": 1},
                       timeouts__job_s=120)
    env = dict(os.environ, PIPELINE_TEST_TOKEN=TOKEN)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "pipeline", "run", str(cfg), env=env,
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        workers = await _until(lambda: _workers_of(proc.pid), 60)   # the engine worker, started with the run
        assert workers, "the run started no worker process"
        assert proc.returncode is None                               # hosted-like jobs take 5-20 s
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
        await proc.wait()
    left = await _until(lambda: not any(_alive(pid) for pid in workers), 15)
    try:
        assert left, [pid for pid in workers if _alive(pid)]
    finally:
        for pid in workers:          # never leave them running, whatever the outcome
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


async def test_closing_the_engine_pool_kills_a_page_that_outlives_the_close_timeout(tmp_path):
    """A stopping embedded run closes its engine pool with 1 s for the page in progress. The close
    shut the pool down first, which made it forget its workers and its manager thread: it waited
    for nothing, killed nothing, and the page held the process's exit until it ended (found by
    random stops: the run exited seconds after its last line)."""
    from pipeline.ocr.pool import EngineRunner, pool_processes

    runner = EngineRunner("tesseract")
    await runner.start()
    workers = pool_processes(runner._executor)
    marker = tmp_path / "reading"
    runner._executor.submit(mark_then_sleep, str(marker), 600)   # a page that will not end in time
    try:
        assert await _until(marker.exists, 30), "the worker never took the page"
        runner.close_timeout_s = 0.5
        await runner.close()
        assert await _until(lambda: not any(p.is_alive() for p in workers), 10), "a worker outlived close()"
    finally:
        for proc in workers:        # never leave a sleeping worker to hold pytest's exit
            if proc.is_alive():
                proc.kill()


async def test_a_stopped_embedded_run_does_not_wait_for_the_page_in_ocr_after_its_last_line(tmp_path):
    """The page in OCR when a stop's grace ends belongs to a parked job, and its answer dies with
    the run's own server: the engine worker is killed at once. Before, it was given 1 s more after
    the run's last line (``exit 3``), so a stop outlived its grace (5.4-5.8 s for 5 s, found by
    stopping real runs at random moments). The dense page takes tesseract seconds: the old close
    waited its full second for it."""
    from helpers import save, text_page

    dense = "\n".join(f"Line {n} of a long dense protocol page with many words, set small" for n in range(100))
    save(text_page(dense, size=(3000, 4200)), tmp_path / "in" / "dense.png", "PNG")
    cfg = write_config(tmp_path, "embedded", shutdown_grace_s=1, api__embedded={"engine": "tesseract", "workers": 1},
                       timeouts__job_s=120)
    env = dict(os.environ, PIPELINE_TEST_TOKEN=TOKEN, PIPELINE_CRASHPOINT="after_submit:1:SIGTERM")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "pipeline", "run", str(cfg), env=env,
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    said_at, lines = None, []
    try:
        async def read() -> None:
            nonlocal said_at
            async for raw in proc.stderr:
                lines.append(raw.decode())
                if "exit 3 (STOPPED_EARLY)" in lines[-1]:
                    said_at = time.monotonic()
            await proc.wait()
        await asyncio.wait_for(read(), 120)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    ended_at = time.monotonic()
    err = "".join(lines)
    assert proc.returncode == 3 and said_at is not None, err
    assert "parking them" in err, err   # the page was still in OCR when the grace ended
    # before: at least the 1 s the engine's close waited for the page; now the kill and the reaping
    assert ended_at - said_at < 0.9, (ended_at - said_at, err)


_CLOSE_THEN_LEAVE = '''
import asyncio, os, sys
from helpers import mark_then_sleep
from pipeline.ocr.pool import EngineRunner

async def main(marker):
    runner = EngineRunner("tesseract")
    await runner.start()
    runner._executor.submit(mark_then_sleep, marker, 600)   # a page that will not end in time
    while not os.path.exists(marker):
        await asyncio.sleep(0.05)
    runner.close_timeout_s = 0.0   # as a stopped embedded run closes it
    await runner.close()

asyncio.run(main(sys.argv[1]))
sys.stderr.flush()
os._exit(0)   # as pipeline.__main__._leave: no interpreter teardown, no finalizers
'''


def test_an_engine_pool_closed_by_killing_its_workers_leaves_nothing_for_the_resource_tracker(tmp_path):
    """Found by stopping RapidOCR runs at random moments once the stop killed the engine's workers
    at once: after ``exit 3`` the process's stderr (mailed by cron) got multiprocessing's
    "resource_tracker: There appear to be 5 leaked semaphore objects to clean up at shutdown":
    the close killed the workers and returned while the pool's shutdown still held its queues,
    and the process left without finalizers."""
    tests = str(Path(__file__).resolve().parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([tests, *filter(None, [os.environ.get("PYTHONPATH")])]))
    env.pop("PIPELINE_CRASHPOINT", None)
    done = subprocess.run([sys.executable, "-c", _CLOSE_THEN_LEAVE, str(tmp_path / "reading")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "reading").exists()   # the worker was in its page when the pool closed
    assert "leaked" not in done.stderr and "Traceback" not in done.stderr, done.stderr
