"""A lost state store costs nothing: outputs on disk are adopted, never paid for twice.

The real runner against the project's server over loopback: a first run does the work, the
state database is deleted (or the output tree moved to a new place), and the second run must
submit nothing for the files whose ``.json`` records the same content and settings, while
damaged or foreign outputs are reported and processed again.
"""

from __future__ import annotations

import json
import shutil

import yaml

from conftest import TOKEN
from helpers import distinct_png, read_result, run_pipeline, write_config
from pipeline.exitcodes import ExitCode


def _tree(tmp_path, n):
    names = [f"scan{i}.png" if i % 2 else f"sub/scan{i}.png" for i in range(n)]
    for i, name in enumerate(names):
        distinct_png(tmp_path / "in" / name, seed=100 + i)
    return names


def _lose_state(tmp_path):
    shutil.rmtree(tmp_path / "out" / ".pipeline")


async def test_deleted_state_store_adopts_every_output_with_zero_submits(tmp_path, server):
    names = _tree(tmp_path, 5)
    cfg = write_config(tmp_path, server.base_url)
    code, _, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK
    before = {n: read_result(tmp_path, n) for n in names}
    jobs = server.counters.jobs_created
    _lose_state(tmp_path)

    code, report, out = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK
    assert server.counters.jobs_created == jobs            # nothing submitted again
    assert report["this_run"].get("adopted") == len(names)
    assert report["adoption_refused_count"] == 0
    assert report["files_by_state"] == {"done": len(names)}
    assert "5 adopted from existing outputs" in out
    for n in names:
        assert read_result(tmp_path, n) == before[n]       # the outputs were left as they were

    code, report, _ = await run_pipeline(cfg, TOKEN)       # and from now on they are simply done
    assert report["this_run"] == {"skipped": len(names)} and server.counters.jobs_created == jobs


async def test_an_output_tree_moved_to_a_new_place_is_adopted(tmp_path, server):
    names = _tree(tmp_path, 3)
    cfg = write_config(tmp_path, server.base_url)
    assert (await run_pipeline(cfg, TOKEN))[0] == ExitCode.OK
    jobs = server.counters.jobs_created
    moved = tmp_path / "elsewhere"
    shutil.copytree(tmp_path / "out", moved, ignore=shutil.ignore_patterns(".pipeline"))
    data = yaml.safe_load(cfg.read_text())
    data["output"] = str(moved)
    cfg.write_text(yaml.safe_dump(data))

    code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK and report["this_run"] == {"adopted": len(names)}
    assert server.counters.jobs_created == jobs


async def test_damaged_foreign_and_other_settings_outputs_are_reported_and_redone(tmp_path, server):
    names = _tree(tmp_path, 5)
    cfg = write_config(tmp_path, server.base_url)
    assert (await run_pipeline(cfg, TOKEN))[0] == ExitCode.OK
    jobs = server.counters.jobs_created
    _lose_state(tmp_path)
    out = tmp_path / "out"
    damaged, foreign, mismatched_txt, old, kept = names
    (out / (damaged + ".json")).write_text('{"pages": [')                      # cut off mid-write
    distinct_png(tmp_path / "in" / foreign, seed=999)                         # the scan was replaced
    (out / (mismatched_txt + ".txt")).write_text("someone edited this")
    doc = json.loads((out / (old + ".json")).read_text())
    del doc["settings"]["fingerprint"]                                        # an older version's record
    (out / (old + ".json")).write_text(json.dumps(doc))

    code, report, text = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK
    assert report["this_run"] == {"adopted": 1, "done": 4}
    assert server.counters.jobs_created == jobs + 4                           # only the refused are paid
    reasons = {r["path"]: r["reason"] for r in report["adoption_refused"]}
    assert set(reasons) == {damaged, foreign, mismatched_txt, old}
    assert reasons[damaged].startswith("damaged: the .json does not parse")
    assert reasons[foreign].startswith("foreign:")
    assert reasons[mismatched_txt].startswith("damaged:") and ".txt" in reasons[mismatched_txt]
    assert "older version" in reasons[old]
    assert "4 files had outputs on disk that were not taken over" in text
    for n in (damaged, foreign, mismatched_txt):                              # redone and whole again
        txt, js = read_result(tmp_path, n)
        assert js["text"] == txt and js["settings"]["fingerprint"]


async def test_changed_settings_are_not_adopted(tmp_path, server):
    names = _tree(tmp_path, 2)
    assert (await run_pipeline(write_config(tmp_path, server.base_url), TOKEN))[0] == ExitCode.OK
    jobs = server.counters.jobs_created
    _lose_state(tmp_path)
    code, report, _ = await run_pipeline(write_config(tmp_path, server.base_url, api__format="json"), TOKEN)
    assert code == ExitCode.OK and report["this_run"] == {"done": len(names)}
    assert server.counters.jobs_created == jobs + len(names)
    assert all("other settings" in r["reason"] for r in report["adoption_refused"])


async def test_adopted_file_gets_newly_configured_outputs_from_its_json_for_free(tmp_path, server):
    names = _tree(tmp_path, 2)
    assert (await run_pipeline(write_config(tmp_path, server.base_url, api__format="json"), TOKEN))[0] == 0
    jobs = server.counters.jobs_created
    _lose_state(tmp_path)
    cfg = write_config(tmp_path, server.base_url, api__format="json", outputs=["txt", "json", "hocr"])
    code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK and report["this_run"] == {"adopted": len(names)}
    assert server.counters.jobs_created == jobs
    for n in names:
        assert "ocr_page" in (tmp_path / "out" / (n + ".hocr")).read_text()


async def test_force_ignores_outputs_on_disk(tmp_path, server):
    names = _tree(tmp_path, 2)
    cfg = write_config(tmp_path, server.base_url)
    assert (await run_pipeline(cfg, TOKEN))[0] == ExitCode.OK
    jobs = server.counters.jobs_created
    _lose_state(tmp_path)
    code, report, _ = await run_pipeline(cfg, TOKEN, force=True)
    assert code == ExitCode.OK and report["this_run"] == {"done": len(names)}
    assert server.counters.jobs_created == jobs + len(names)


async def test_plan_counts_adoptable_outputs_as_done_and_refused_ones_as_work(tmp_path, server):
    import os

    from pipeline.config import load_config
    from pipeline.run.plan import Planner, format_plan

    names = _tree(tmp_path, 3)
    cfg = write_config(tmp_path, server.base_url)
    assert (await run_pipeline(cfg, TOKEN))[0] == ExitCode.OK
    _lose_state(tmp_path)
    (tmp_path / "out" / (names[0] + ".json")).write_text("{")
    jobs = server.counters.jobs_created
    os.environ["PIPELINE_TEST_TOKEN"] = TOKEN
    code, report, _ = await Planner(load_config(cfg)).plan()
    assert code == ExitCode.OK
    c = report["counted"]
    assert c["adopted"] == 2 and c["files_skipped_done"] == 2 and c["pages_skipped_done"] == 2
    assert c["adoption_refused"] == 1 and c["files_to_send"] == 1 and c["pages_to_send"] == 1
    assert "2 of them adopted from outputs on disk" in format_plan(report)
    assert server.counters.jobs_created == jobs
    code, run_report, _ = await run_pipeline(cfg, TOKEN)    # the run does what the plan said
    assert run_report["this_run"] == {"adopted": 2, "done": 1}
    assert server.counters.jobs_created == jobs + 1
