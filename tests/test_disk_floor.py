"""``min_free_mb``: the run keeps a floor of free space on the disks of the outputs and the state
store, checked before each upload, so that no page is paid whose request id could not then be
recorded.

Why: the disk filling between an accepted submit and the write of its request id left the page
``submitting``; the next run sent it again, paid twice (up to ``jobs_in_flight`` pages). Found by
filling a 4 MB tmpfs under the state store right after the intents of four pages: exit 2 as
designed, but the rerun listed 2 ``possible_duplicates`` and the server had one upload twice.

The free space is the real one (``os.statvfs``) except where a test must see it drop mid-run: then
the figure read is the real one until the server has created a job, 0 after (a reading injected
as the budget's clock is, the server's own record deciding when).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import yaml

from conftest import TOKEN
from helpers import distinct_png, run_pipeline, write_config
from pipeline.config import load_config
from pipeline.exitcodes import ExitCode
from pipeline.run.diskfloor import MB, DiskFloor, free_bytes


def _pages(tmp_path: Path, n: int) -> None:
    for i in range(n):
        distinct_png(tmp_path / "in" / f"p{i}.png", 60 + i)


def _page_states(tmp_path: Path) -> dict[str, int]:
    db = sqlite3.connect(tmp_path / "out" / ".pipeline" / "state.sqlite")
    try:
        return dict(db.execute("SELECT state, COUNT(*) FROM pages GROUP BY state").fetchall())
    finally:
        db.close()


async def test_a_run_that_starts_under_the_floor_exits_2_naming_the_key_and_path_and_submits_nothing(tmp_path, server):
    _pages(tmp_path, 2)
    (tmp_path / "out").mkdir()
    real_mb = free_bytes(tmp_path / "out") // MB
    cfg = write_config(tmp_path, server.base_url, min_free_mb=real_mb + 100_000)

    code, report, log = await run_pipeline(cfg, TOKEN)

    assert code == ExitCode.CONFIG_ERROR, log
    assert f"min_free_mb: " in log and f"on the disk of output ({tmp_path / 'out'})" in log, log
    assert f"under the floor of {real_mb + 100_000} MB" in log and "nothing was submitted" in log, log
    assert server.counters.submits == 0 and server.counters.models_calls == 0
    assert not (tmp_path / "out" / ".pipeline" / "state.sqlite").exists()   # nothing started


async def test_the_floor_crossed_mid_run_stops_new_uploads_keeps_those_in_flight_and_pays_nothing_twice(tmp_path, server):
    _pages(tmp_path, 6)
    cfg = write_config(tmp_path, server.base_url, min_free_mb=1, concurrency__jobs_in_flight=2)

    def free(folder: Path) -> int:   # the disk "fills" once the server has taken a job
        return free_bytes(folder) if server.counters.jobs_created == 0 else 0

    code, report, log = await run_pipeline(cfg, TOKEN, free_space=free, free_space_every_s=0)

    assert code == ExitCode.CONFIG_ERROR, log
    assert report["stop_reason"].startswith(f"min_free_mb: 0.0 MB free on the disk of output ({tmp_path / 'out'}), "
                                            "under the floor of 1 MB"), report["stop_reason"]
    paid = server.counters.jobs_created
    assert 1 <= paid <= 2, paid   # those in flight when the floor was crossed, no more
    # every page paid for was recorded and its result written; none is left "submitting"
    assert _page_states(tmp_path) == {"done": paid}, _page_states(tmp_path)
    assert len(list((tmp_path / "out").glob("p*.png.txt"))) == paid

    code, report, log = await run_pipeline(cfg, TOKEN)   # the disk has room again
    assert code == ExitCode.OK, log
    assert len(list((tmp_path / "out").glob("p*.png.txt"))) == 6
    assert sorted(server.counters.submits_by_hash.values()) == [1] * 6   # no page paid twice
    assert not report["possible_duplicates"]


def test_the_free_space_is_read_at_most_once_a_period_on_each_disk_once_and_never_when_off(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "out" / ".pipeline").mkdir(parents=True)
    data = {"input": str(tmp_path / "in"), "output": str(tmp_path / "out"), "min_free_mb": 10}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    reads: list[Path] = []
    left = {"bytes": 50 * MB}
    clock = {"t": 100.0}

    def free(folder: Path) -> int:
        reads.append(folder)
        return left["bytes"]

    floor = DiskFloor(load_config(tmp_path / "c.yaml"), free=free, every_s=1.0, clock=lambda: clock["t"])
    assert [key for key, *_ in floor.places] == ["output"]   # the state store under it: the same disk
    assert floor.check() is None and len(reads) == 1
    left["bytes"] = 5 * MB
    clock["t"] += 0.5
    assert floor.check() is None and len(reads) == 1          # trusted for a second
    clock["t"] += 0.6
    assert floor.check() == (f"min_free_mb: 5.0 MB free on the disk of output ({tmp_path / 'out'}), "
                             "under the floor of 10 MB") and len(reads) == 2
    left["bytes"] = 500 * MB
    clock["t"] += 5
    assert floor.check() is not None and len(reads) == 2     # the run is stopping: it stays so

    almost = DiskFloor(load_config(tmp_path / "c.yaml"), free=lambda folder: 10 * MB - 1, every_s=0)
    assert almost.check().startswith("min_free_mb: 9.9 MB free")   # not "10.0 MB free ..., under ... 10 MB"

    (tmp_path / "c.yaml").write_text(yaml.safe_dump({**data, "min_free_mb": 0}))
    off = DiskFloor(load_config(tmp_path / "c.yaml"), free=free, every_s=0)
    left["bytes"] = 0
    assert off.check() is None and len(reads) == 2           # 0: off, not even read


async def test_plan_says_a_run_would_not_start_under_the_floor_and_nothing_when_over_it(tmp_path, server):
    from pipeline.run.plan import Planner, format_plan

    _pages(tmp_path, 1)
    (tmp_path / "out").mkdir()
    real_mb = free_bytes(tmp_path / "out") // MB
    cfg = write_config(tmp_path, server.base_url, min_free_mb=real_mb + 100_000)

    code, plan, _ = await Planner(load_config(cfg)).plan()

    assert code == ExitCode.OK   # still a plan: what the run would send once there is room
    assert plan["free_space_short"].startswith(f"min_free_mb: ") and f"under the floor of {real_mb + 100_000} MB" \
        in plan["free_space_short"]
    assert "a run would not start (exit 2)" in format_plan(plan)

    cfg = write_config(tmp_path, server.base_url, min_free_mb=1)
    code, plan, _ = await Planner(load_config(cfg)).plan()
    assert plan["free_space_short"] is None and "free space:" not in format_plan(plan)


async def test_a_free_space_that_cannot_be_read_stops_the_run_naming_the_path_not_every_file_as_a_crash(tmp_path, server):
    # Before: statvfs failing mid-run (a stale NFS handle) reached each upload, and every file left
    # failed as an internal error, a strike and a traceback each, exit 1.
    import errno

    _pages(tmp_path, 6)
    cfg = write_config(tmp_path, server.base_url, min_free_mb=1, concurrency__jobs_in_flight=2)
    stale = {"from_job": 0}

    def free(folder: Path) -> int:
        if server.counters.jobs_created < stale["from_job"]:
            return free_bytes(folder)
        raise OSError(errno.ESTALE, "Stale file handle", str(folder))

    code, report, log = await run_pipeline(cfg, TOKEN, free_space=free, free_space_every_s=0)
    assert code == ExitCode.CONFIG_ERROR, log
    assert (f"min_free_mb: cannot read the free space on the disk of output ({tmp_path / 'out'}): Stale file "
            "handle: check that file system is mounted") in log and "nothing was submitted" in log, log
    assert server.counters.submits == 0

    stale["from_job"] = 1   # readable until the server has taken a job
    code, report, log = await run_pipeline(cfg, TOKEN, free_space=free, free_space_every_s=0)
    assert code == ExitCode.CONFIG_ERROR, log
    assert report["stop_reason"].startswith(f"min_free_mb: cannot read the free space on the disk of output"), log
    assert "internal_error" not in log and "failed" not in report["this_run"], report["this_run"]
    paid = server.counters.jobs_created
    assert 1 <= paid <= 2 and _page_states(tmp_path) == {"done": paid}
