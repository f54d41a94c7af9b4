"""File names an archive really holds, through ``plan`` and ``run``: bytes that are not UTF-8 (an
old Latin-1 share), names too long for the outputs beside them, newlines and tabs.

Before: a non-UTF-8 name crashed the run (exit 70, the state store cannot hold it) and made
``plan`` print counts without the file (its task's error was lost) and exit 0; a name whose
``.json`` would pass the file system's 255 bytes was paid for, then failed at the write as an
"internal error" on every run; a newline in a rejected file's name split its cron log line in two.
"""

from __future__ import annotations

import os
from pathlib import Path

from conftest import TOKEN
from helpers import distinct_png, failures, run_pipeline, write_config
from test_plan import plan
from pipeline.config import load_config
from pipeline.exitcodes import ExitCode
from pipeline.run.audit import format_status, status_report

LONG = "y" * 250 + ".png"            # fits the input folder (254 bytes); its .json would not


def awkward_tree(tmp_path: Path) -> Path:
    inp = tmp_path / "in"
    distinct_png(inp / "ok.png", 1)
    distinct_png(inp / LONG, 2)
    raw = os.fsencode(inp) + b"/caf\xe9.png"           # Latin-1 bytes: not UTF-8
    with open(raw, "wb") as fh:
        fh.write((inp / "ok.png").read_bytes())
    os.mkdir(os.fsencode(inp) + b"/Gr\xfc\xdfe")         # a folder so named is not entered
    distinct_png(Path(os.fsdecode(os.fsencode(inp) + b"/Gr\xfc\xdfe/inner.png")), 3)
    (inp / "new\nline.png").write_bytes(b"")            # rejected (empty), named in the log
    return inp


async def test_a_run_over_awkward_names_pays_only_for_what_it_can_write(tmp_path, server):
    awkward_tree(tmp_path)
    cfg = write_config(tmp_path, server.base_url)
    code, report, log = await run_pipeline(cfg, TOKEN)

    assert code == ExitCode.FILES_FAILED, log          # files failed, not a crash (70)
    rows = failures(tmp_path)
    assert rows["caf\\xe9.png"]["code"] == "undecodable_name"
    assert rows["Gr\\xfc\\xdfe"]["code"] == "undecodable_name" and "folder" in rows["Gr\\xfc\\xdfe"]["reason"]
    assert rows[LONG]["code"] == "name_too_long" and rows[LONG]["state"] == "rejected_input"
    assert "255" in rows[LONG]["reason"]
    assert rows["new\nline.png"]["code"] == "empty_file"
    assert (tmp_path / "out" / "ok.png.txt").is_file()
    assert server.counters.submits == 1                 # ok.png only: the long name was never sent
    assert "rejected: new\\nline.png: empty_file: " in log
    assert not any(line.startswith("line.png") for line in log.splitlines())

    status = format_status(status_report(load_config(cfg)))
    assert "  new\\nline.png: rejected_input [empty_file]" in status   # one line a failure there too

    code, report, log = await run_pipeline(cfg, TOKEN)  # the next night: nothing paid, nothing new
    assert code == ExitCode.FILES_FAILED and server.counters.submits == 1
    assert report["this_run"].get("still_failed") == 2  # the long name and the empty file


async def test_plan_counts_awkward_names_as_the_run_would(tmp_path, server):
    awkward_tree(tmp_path)
    report = await plan(write_config(tmp_path, server.base_url))
    c = report["counted"]
    assert c["files_to_send"] == 1
    assert c["rejected_files"] == {"name_too_long": 1, "empty_file": 1}
    assert c["scan_problems"] == {"undecodable_name": 2}
    assert server.counters.submits == 0
