"""End to end: the real runner against the project's server over loopback, fast engine.

Every test builds its own input tree, runs ``Runner`` exactly as ``python -m pipeline run``
does, and checks the outputs, the failures list, the exit code and the server's own counters.
"""

from __future__ import annotations

import hashlib
import io
import os

from PIL import Image

from conftest import TOKEN
from helpers import distinct_png, failures, noise_image, read_result, run_pipeline, save, text_page, write_config
from pipeline.exitcodes import ExitCode
from pipeline.server import FaultRule


def tree_of(tmp_path, names):
    for i, name in enumerate(names):
        distinct_png(tmp_path / "in" / name, seed=i)


async def test_fault_free_run_mirrors_the_tree_and_submits_each_file_once(tmp_path, server):
    names = ["a.png", "sub dir/b.png", "ünïcödé/ç/c.png", "deep/er/still/d.png"]
    tree_of(tmp_path, names)
    code, report, _ = await run_pipeline(write_config(tmp_path, server.base_url), TOKEN)
    assert code == ExitCode.OK
    for name in names:
        text, doc = read_result(tmp_path, name)
        im = Image.open(tmp_path / "in" / name)
        assert text.startswith(f"FAST-OCR {im.width}x{im.height}")  # this file's own pixels, not another's
        assert doc["source"]["path"] == name
        assert doc["source"]["sha256"] == hashlib.sha256((tmp_path / "in" / name).read_bytes()).hexdigest()
        assert doc["text"] == text and doc["pages"][0]["request_id"]
    counts = server.counters
    assert counts.jobs_created == len(names)
    assert sorted(counts.submits_by_hash.values()) == [1] * len(names)
    assert report["this_run"]["done"] == len(names)
    assert counts.downloads == 0  # inline results: no download call


async def test_results_by_download_never_carry_the_token(tmp_path, server):
    tree_of(tmp_path, ["x.png", "y.png"])
    cfg = write_config(tmp_path, server.base_url, api__return_result_in_response=False)
    code, _, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK
    assert server.counters.downloads == 2 and server.counters.downloads_with_auth == 0
    assert read_result(tmp_path, "x.png")[0].startswith("FAST-OCR")


async def test_json_format_keeps_the_structured_result(tmp_path, server):
    tree_of(tmp_path, ["j.png"])
    code, _, _ = await run_pipeline(write_config(tmp_path, server.base_url, api__format="json"), TOKEN)
    assert code == ExitCode.OK
    text, doc = read_result(tmp_path, "j.png")
    result = doc["pages"][0]["result"]
    assert result["blocks"][0]["lines"][0]["text"] == text.splitlines()[0]
    assert "FAST-OCR" in text


async def test_multipage_tiff_exif_rotation_big_and_tiny_images(tmp_path, server):
    inp = tmp_path / "in"
    inp.mkdir()
    pages = [text_page(f"page {i}", (400 + 10 * i, 200)) for i in range(3)]
    pages[0].save(inp / "book.tif", save_all=True, append_images=pages[1:])
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to view
    text_page("rotated", (500, 200), "RGB").save(inp / "photo.jpg", exif=exif)
    save(noise_image((5200, 3900), seed=1), inp / "big.jpg", "JPEG", quality=97)
    save(noise_image((2400, 2200), seed=2), inp / "big.png", "PNG")
    save(Image.new("L", (40, 30), 0), inp / "tiny.png", "PNG")
    assert (inp / "big.jpg").stat().st_size > 10_000_000 and (inp / "big.png").stat().st_size > 10_000_000
    code, _, _ = await run_pipeline(write_config(tmp_path, server.base_url), TOKEN)
    assert code == ExitCode.OK, failures(tmp_path)
    text, doc = read_result(tmp_path, "book.tif")
    assert text.count("\f") == 2 and [p["index"] for p in doc["pages"]] == [0, 1, 2]
    assert [t.split()[1] for t in text.split("\f")] == ["400x200", "410x200", "420x200"]
    text, _ = read_result(tmp_path, "photo.jpg")
    assert text.startswith("FAST-OCR 200x500")  # EXIF applied: width and height swapped
    for name in ("big.jpg", "big.png"):
        w, h = map(int, read_result(tmp_path, name)[0].split()[1].split("x"))
        assert w <= 4096 and h <= 4096
    w, h = map(int, read_result(tmp_path, "tiny.png")[0].split()[1].split("x"))
    assert w >= 128 and h >= 127
    assert all(n <= 10_000_000 for n in server.counters.upload_sizes)


async def test_bad_inputs_each_fail_clearly_and_the_run_goes_on(tmp_path, server):
    inp = tmp_path / "in"
    distinct_png(inp / "good.png", 1)
    (inp / "empty.jpg").write_bytes(b"")
    good = io.BytesIO()
    text_page("x").save(good, "JPEG")
    (inp / "truncated.jpg").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    (inp / "notes.jpg").write_text("this is a text file, not a scan\n")
    bomb = io.BytesIO()
    Image.new("1", (30000, 30000)).save(bomb, "PNG")
    (inp / "bomb.png").write_bytes(bomb.getvalue())
    (inp / "loop").mkdir()
    os.symlink("..", inp / "loop" / "again")
    code, report, _ = await run_pipeline(write_config(tmp_path, server.base_url,
                                                      precheck__max_source_pixels=100_000_000), TOKEN)
    assert code == ExitCode.FILES_FAILED
    rows = failures(tmp_path)
    assert rows["empty.jpg"]["code"] == "empty_file"
    assert rows["truncated.jpg"]["code"] in ("truncated", "corrupt")
    assert rows["notes.jpg"]["code"] == "not_an_image"
    assert rows["bomb.png"]["code"] == "decompression_bomb"
    assert any(r["code"] == "symlink_loop" for r in rows.values())
    assert all(r["reason"] for r in rows.values())
    assert read_result(tmp_path, "good.png")[0].startswith("FAST-OCR")
    assert server.counters.jobs_created == 1  # nothing bad was sent to the API


async def test_transient_faults_are_retried_and_each_file_is_paid_once(tmp_path, server):
    tree_of(tmp_path, [f"f{i}.png" for i in range(6)])
    server.faults.http_429 = FaultRule(count=3)
    server.faults.retry_after = 0
    server.faults.http_5xx = FaultRule(count=3)
    # Six injected failures in all: 7 attempts per call survive even if one call gets every one.
    code, _, _ = await run_pipeline(write_config(tmp_path, server.base_url, retries__max_attempts=7), TOKEN)
    assert code == ExitCode.OK
    assert server.counters.rate_limited == 3 and server.counters.server_errors == 3
    assert server.counters.jobs_created == 6
    assert sorted(server.counters.submits_by_hash.values()) == [1] * 6


async def test_dropped_submit_is_resubmitted_knowingly_and_reported(tmp_path, server):
    """A dropped connection cannot tell "before the job was created" from "after": both are
    an unknown outcome, resubmitted once on purpose and listed as a possible duplicate."""
    tree_of(tmp_path, ["d.png"])
    server.faults.drop_before_create = FaultRule(count=1)
    code, report, _ = await run_pipeline(write_config(tmp_path, server.base_url), TOKEN)
    assert code == ExitCode.OK
    assert server.counters.dropped == 1 and server.counters.jobs_created == 1
    assert report["possible_duplicate_submits"] == 1


async def test_lost_submit_response_is_reported_as_possible_duplicate(tmp_path, server):
    tree_of(tmp_path, ["p.png"])
    server.faults.drop_after_create = FaultRule(count=1)
    code, report, _ = await run_pipeline(write_config(tmp_path, server.base_url), TOKEN)
    assert code == ExitCode.OK
    assert report["possible_duplicate_submits"] == 1
    assert report["possible_duplicates"][0]["rel"] == "p.png"
    assert server.counters.jobs_created == 2  # the lost job and the knowing resubmission


async def test_job_errors_and_validation_errors_fail_only_that_file(tmp_path, server):
    tree_of(tmp_path, ["a.png", "b.png", "c.png"])
    server.faults.job_error = FaultRule(count=1)
    server.faults.job_error_code = "INVALID_INPUT"
    code, _, _ = await run_pipeline(write_config(tmp_path, server.base_url), TOKEN)
    assert code == ExitCode.FILES_FAILED
    rows = failures(tmp_path)
    assert len(rows) == 1
    (row,) = rows.values()
    assert "INVALID_INPUT" in (row["code"] or "") + (row["reason"] or "")
    assert sum(1 for n in ("a.png", "b.png", "c.png") if (tmp_path / "out" / (n + ".txt")).exists()) == 2


async def test_unknown_model_fails_before_any_work(tmp_path, server):
    tree_of(tmp_path, ["a.png"])
    code, _, out = await run_pipeline(write_config(tmp_path, server.base_url, api__model="No_Such_Model"), TOKEN)
    assert code == ExitCode.CONFIG_ERROR and "No_Such_Model" in out
    assert server.counters.submits == 0


async def test_bad_token_stops_with_its_exit_code(tmp_path, server):
    tree_of(tmp_path, ["a.png"])
    code, _, out = await run_pipeline(write_config(tmp_path, server.base_url), "wrong-token")
    assert code == ExitCode.AUTH_OR_BALANCE
    assert "wrong-token" not in out and server.counters.submits == 0


async def test_unreachable_api_has_its_exit_code(tmp_path):
    tree_of(tmp_path, ["a.png"])
    cfg = write_config(tmp_path, "http://127.0.0.1:9", retries__max_attempts=1)
    code, _, out = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.API_UNREACHABLE
    # said once: it read "the API at URL cannot be reached: cannot reach the API at URL (...)"
    assert out.count("http://127.0.0.1:9 ") == 1 and "cannot reach the API at http://127.0.0.1:9 (" in out, out


async def test_a_base_url_that_is_not_the_apis_root_is_a_config_error_not_a_crash(tmp_path, server):
    """Found on a tour: the client pointed at a fleet worker's port (it serves only the probes) got
    404 for the models list, and every file failed as internal_error with a crash log (and counted
    a transient run: three cron runs would have quarantined them)."""
    tree_of(tmp_path, ["a.png", "b.png"])
    code, report, out = await run_pipeline(write_config(tmp_path, server.base_url + "/not-the-root"), TOKEN)
    assert code == ExitCode.CONFIG_ERROR and "api.base_url" in out and "404" in out
    # every file the run met stays pending (the stop may come before the walk hands it the
    # second: {"pending": 1} in a full suite on a loaded machine), none failed
    assert report["failures"] == 0 and set(report["files_by_state"]) == {"pending"}, report["files_by_state"]
    assert not list((tmp_path / "out" / ".pipeline").glob("crash-*.log")) and server.counters.submits == 0


async def test_daily_limit_stops_submitting_and_leaves_files_for_the_next_run(tmp_path, server):
    tree_of(tmp_path, [f"f{i}.png" for i in range(5)])
    server.faults.http_429 = FaultRule(count=1000)
    server.faults.http_429_daily = True
    server.faults.retry_after = 40000
    server.faults.endpoints = ("submit",)
    code, report, _ = await run_pipeline(write_config(tmp_path, server.base_url), TOKEN)
    assert code == ExitCode.STOPPED_EARLY
    assert report["this_run"].get("done", 0) == 0 and report["failures"] == 0
    server.faults.http_429 = FaultRule()
    code, report, _ = await run_pipeline(write_config(tmp_path, server.base_url), TOKEN)
    assert code == ExitCode.OK and report["this_run"]["done"] == 5
