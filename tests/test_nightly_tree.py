"""Night after night over a tree that changes between runs, as an archive's cron runs it: what
a file deleted, renamed or excluded since an earlier night does to the exit code, the failures
list and ``status``."""

from __future__ import annotations

import os

import yaml

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
