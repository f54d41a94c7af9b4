"""An output folder or state path the run cannot write: exit 2 (CONFIG_ERROR) naming the key,
the path and what was denied, from ``run`` and ``plan``, before any work starts.

Tests run as root here, and root ignores permission bits, so the command-line tests use a
denial root meets too: a path that runs through a regular file (ENOTDIR). The permission-bit
case (EACCES) is covered one level down, on ``check_writable`` itself, in a forked child that
has dropped to uid 65534 (the ``nobody`` user cannot run the project's virtualenv, so the whole
command cannot run as it).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from conftest import TOKEN
from helpers import distinct_png, failures, run_as_nobody, run_pipeline, write_config
from pipeline.config import load_config
from pipeline.exitcodes import ExitCode
from pipeline.run.writable import PathNotWritable, cannot_write, check_writable


def config(tmp_path: Path, **extra) -> Path:
    distinct_png(tmp_path / "in" / "a.png", 1)
    data = {"input": str(tmp_path / "in"), "output": str(tmp_path / "out"), "progress": "off",
            "api": {"base_url": "embedded", "embedded": {"engine": "fast", "workers": 1}}}
    data.update(extra)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(data))
    return cfg


def pipeline(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("command", ["run", "plan"])
def test_an_output_folder_under_a_file_is_exit_2_naming_output_and_the_path(tmp_path, command):
    (tmp_path / "afile").write_text("not a folder")
    out = tmp_path / "afile" / "out"
    result = pipeline(command, str(config(tmp_path, output=str(out))))
    assert result.returncode == ExitCode.CONFIG_ERROR, result.stderr
    assert f"output: cannot create the folder {out}" in result.stderr
    assert "a part of the path is a file, not a folder" in result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["run", "plan"])
def test_a_state_path_under_a_file_is_exit_2_naming_state_path_before_any_work(tmp_path, command):
    (tmp_path / "afile").write_text("not a folder")
    state = tmp_path / "afile" / "db" / "state.sqlite"
    result = pipeline(command, str(config(tmp_path, state_path=str(state))))
    assert result.returncode == ExitCode.CONFIG_ERROR, result.stderr
    assert f"state_path: cannot create the folder {state.parent}" in result.stderr
    assert "internal error" not in result.stderr
    assert not list((tmp_path / "out").glob("*.png.*"))   # no page was read, no result written


@pytest.fixture
def world_dir():
    """A folder outside pytest's root-only temp tree, so a uid-65534 child can reach it."""
    root = Path(tempfile.mkdtemp(prefix="pipeline-perm-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        for p in root.rglob("*"):
            if p.is_dir():
                p.chmod(0o755)
        shutil.rmtree(root)


def test_permission_bits_deny_the_output_and_the_state_file_with_a_clear_message(world_dir):
    inp = world_dir / "in"
    inp.mkdir()
    locked = world_dir / "locked"
    locked.mkdir(mode=0o555)
    locked.chmod(0o555)
    (world_dir / "cfg.yaml").write_text(yaml.safe_dump({"input": str(inp), "output": str(locked / "out")}))
    cfg_out = load_config(world_dir / "cfg.yaml")
    mine = world_dir / "mine"
    mine.mkdir()
    state = mine / "state.sqlite"
    state.write_bytes(b"")
    state.chmod(0o444)
    os.chown(mine, 65534, 65534)
    (world_dir / "cfg2.yaml").write_text(yaml.safe_dump({"input": str(inp), "output": str(mine / "out"),
                                                         "state_path": str(state)}))
    cfg_state = load_config(world_dir / "cfg2.yaml")

    def attempt():
        lines = []
        for cfg in (cfg_out, cfg_state):
            try:
                check_writable(cfg)
                lines.append("writable")
            except PathNotWritable as exc:
                lines.append(str(exc))
        return lines

    denied_out, denied_state = run_as_nobody(attempt)
    assert denied_out == f"output: cannot create the folder {locked / 'out'}: permission denied", denied_out
    assert denied_state == f"state_path: cannot write the file {state}: permission denied", denied_state
    # and root, for whom the bits do not count, is let through: the check asks the system, not the bits
    assert attempt() == ["writable", "writable"]


# -- a disk that fills during the run ------------------------------------------------------------


def test_cannot_write_knows_a_full_disk_and_a_full_state_store_and_nothing_else(tmp_path):
    """Real errors, not made-up ones: a write to /dev/full (ENOSPC), and SQLite refusing a row
    past ``max_page_count`` (SQLITE_FULL, the same "database or disk is full" a full disk gives)."""
    with pytest.raises(OSError) as enospc:
        with open("/dev/full", "wb") as fh:
            fh.write(b"x" * 65536)
            fh.flush()
    assert cannot_write(enospc.value).startswith("no space left on the device")
    db = sqlite3.connect(tmp_path / "s.sqlite")
    db.execute("CREATE TABLE t (x TEXT)")
    db.execute("PRAGMA max_page_count = 2")
    with pytest.raises(sqlite3.OperationalError) as full:
        for _ in range(100):
            db.execute("INSERT INTO t VALUES (?)", ("x" * 4000,))
    assert "state store cannot be written" in cannot_write(full.value)
    try:
        raise RuntimeError("wrapped") from full.value
    except RuntimeError as exc:
        assert cannot_write(exc) is not None         # found behind the exception it caused
    assert cannot_write(ValueError("a bug")) is None
    assert cannot_write(PermissionError(13, "Permission denied")) is None


async def stops_for_a_write(tmp_path: Path, cfg: Path, rel: str, why: str) -> None:
    """A run that meets a write it cannot make stops with exit 2 saying ``why``, with no crash
    log and no strike for ``rel`` (not the file's fault: it waits for the next run)."""
    code, report, log = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.CONFIG_ERROR, log
    assert f"cannot write: {why}" in report["stop_reason"], report["stop_reason"]
    assert "free space" in log and "internal error" not in log and "internal_error" not in log
    assert not list((tmp_path / "out" / ".pipeline").glob("crash-*.log"))
    assert rel not in failures(tmp_path)


async def test_a_folder_of_the_output_tree_denied_mid_run_stops_with_exit_2_naming_it(tmp_path, server):
    """The start-up check probes only the output's top; a folder further down that cannot be
    made (here a file stands where it must go: ENOTDIR, which root meets too; a subfolder made
    read-only or owned by someone else is EACCES, the same path through the code) was met at
    the first result's write. Before: every file under it failed as "internal error" with a
    crash log, each taking a strike, exit 1. Now the run stops as for a full disk, exit 2, names
    the path, and after the fix the rerun writes the results without paying again."""
    distinct_png(tmp_path / "in" / "box" / "deeper" / "a.png", 50)
    distinct_png(tmp_path / "in" / "b.png", 51)
    cfg = write_config(tmp_path, server.base_url, concurrency__jobs_in_flight=1)
    blocker = tmp_path / "out" / "box"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file where the folder box/ must go")

    await stops_for_a_write(tmp_path, cfg, "box/deeper/a.png",
                            f"a part of the path is a file, not a folder ({blocker / 'deeper'})")

    blocker.unlink()                                       # the operator fixes the folder
    code, report, log = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK, log
    assert (tmp_path / "out" / "box" / "deeper" / "a.png.txt").read_text().startswith("FAST-OCR")
    assert sorted(server.counters.submits_by_hash.values()) == [1, 1]   # no page paid twice


def test_a_denial_counts_as_a_setting_only_in_the_trees_the_run_writes(tmp_path):
    """An input file the run may not read is that file's problem (prepare reports it), never a
    reason to stop the run: only paths under the output, or the state store's own files, count;
    and a state store kept beside the scans does not make the scans' folder the run's."""
    (tmp_path / "in").mkdir()
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump({
        "input": str(tmp_path / "in"), "output": str(tmp_path / "out"),
        "state_path": str(tmp_path / "state.sqlite")}))
    cfg = load_config(tmp_path / "cfg.yaml")
    denied = lambda path: PermissionError(13, "Permission denied", str(path))  # noqa: E731
    assert cannot_write(denied(tmp_path / "out" / "x" / ".a.txt.tmp"), cfg) == (
        f"permission denied ({tmp_path / 'out' / 'x' / '.a.txt.tmp'})")
    assert cannot_write(denied(tmp_path / "state.sqlite-wal"), cfg) is not None
    assert cannot_write(denied(tmp_path / "in" / "a.png"), cfg) is None
    assert cannot_write(denied(tmp_path / "other.txt"), cfg) is None
    assert cannot_write(denied(tmp_path / "out" / "a.txt")) is None    # no config: not judged


async def test_a_full_disk_mid_run_stops_with_exit_2_and_the_rerun_pays_nothing_twice(tmp_path, server):
    """The first output write meets ENOSPC (its temp file is a link to /dev/full, which is how a
    full disk answers a write). Before: that file and every later one was paid for, failed as an
    "internal error" with a crash log, and the run ended with exit 70 "please report it"."""
    names = [f"{c}.png" for c in "abc"]
    for i, name in enumerate(names):
        distinct_png(tmp_path / "in" / name, 40 + i)
    cfg = write_config(tmp_path, server.base_url, concurrency__jobs_in_flight=1)
    trap = tmp_path / "out" / ".a.png.txt.tmp"
    trap.parent.mkdir(parents=True)
    trap.symlink_to("/dev/full")

    await stops_for_a_write(tmp_path, cfg, "a.png", "no space left on the device")

    code, report, log = await run_pipeline(cfg, TOKEN)  # space freed (the trap is gone)
    assert code == ExitCode.OK, log
    for name in names:
        assert (tmp_path / "out" / (name + ".txt")).read_text().startswith("FAST-OCR")
    assert sorted(server.counters.submits_by_hash.values()) == [1, 1, 1]   # no page paid twice
