"""The real client and runner against an independent deAPI look-alike (``tests/lookalike.py``).

Our own server and client were written by the same people; the look-alike was written from
``../shared/deapi-api.md`` alone and takes the other reading wherever the description allows
one (statuses ``queued``/``running``/``failed``, ``progress`` as a string, ``result`` null with
a signed ``result_url`` on another host, a Laravel paginator with the OCR model on page 2, ...).
Each test counts submits per image (paid once?), checks every text against the look-alike's
own OCR of that file, and where a result host is involved, that the token never went there.
"""

from __future__ import annotations

import os
import socket

import pytest

from helpers import distinct_png, failures, read_result, run_pipeline, save, text_page, write_config
from lookalike import LookAlike, text_for
from pipeline.exitcodes import ExitCode

TOKEN = "lookalike-token-0123456789"
SECRET = "lookalike-webhook-secret-0123456789abcdef"


@pytest.fixture
async def la():
    async with LookAlike(TOKEN, webhook_secret=SECRET) as server:
        yield server


def pages(tmp_path, n: int, seed: int = 0) -> list[str]:
    names = [f"p{i}.png" for i in range(n)]
    for i, name in enumerate(names):
        distinct_png(tmp_path / "in" / name, seed=seed + i)
    return names


def assert_read_once(tmp_path, la: LookAlike, names: list[str]) -> None:
    """Every page done with its own text, each paid for exactly once, no token on the result host."""
    for name in names:
        assert read_result(tmp_path, name)[0] == text_for((tmp_path / "in" / name).read_bytes()), name
    assert sorted(la.submits.values()) == [1] * len(names)
    assert all("Authorization" not in h.headers for h in la.hits(la.result_base))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def webhook_config(tmp_path, la: LookAlike, **kw):
    port = free_port()
    os.environ["PIPELINE_TEST_LOOKALIKE_SECRET"] = SECRET
    return write_config(tmp_path, la.base_url, webhook__enabled=True, webhook__listen_port=port,
                        webhook__public_url=f"http://127.0.0.1:{port}/deapi/webhook",
                        webhook__secret_env="PIPELINE_TEST_LOOKALIKE_SECRET", webhook__wait_s=3, **kw)


# -- readings of the description the client copes with (guards: these passed unchanged) -----

@pytest.mark.parametrize("inline,fmt", [(True, "text"), (False, "text"), (True, "json"), (False, "json")])
async def test_the_other_readings_of_the_description_are_understood(tmp_path, la, inline, fmt):
    names = pages(tmp_path, 3)
    cfg = write_config(tmp_path, la.base_url, api__return_result_in_response=inline, api__format=fmt)
    code, _, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK
    assert_read_once(tmp_path, la, names)
    downloads = la.hits(la.result_base)
    assert len(downloads) == (0 if inline else 3)    # result null: the signed link on the other host
    # the model sat on page 2 of a Laravel paginator: found, so the run started at all
    assert any(h.path.endswith("/models") for h in la.log)


async def test_webhook_mode_with_result_url_only_and_numeric_timestamps(tmp_path, la):
    names = pages(tmp_path, 3)
    code, report, _ = await run_pipeline(webhook_config(tmp_path, la, api__return_result_in_response=False), TOKEN)
    assert code == ExitCode.OK
    assert_read_once(tmp_path, la, names)
    assert la.status_polls == 0 and report["api_calls"]["webhooks"]["receiver"]["accepted"] == 6
    assert len(la.hits(la.result_base)) == 3


@pytest.mark.parametrize("fault", [
    {"submit_429": 4}, {"submit_429": 3, "retry_after": None}, {"status_429": 4, "retry_after": None},
    {"burst_5xx": 3}, {"drop_polls": 2}, {"slow_s": 0.2}, {"result_404_once": True},
], ids=lambda f: "-".join(f"{k}={v}" for k, v in f.items()))
async def test_faults_that_cost_nothing_extra(tmp_path, la, fault):
    names = pages(tmp_path, 3)
    for key, value in fault.items():
        setattr(la.faults, key, value)
    cfg = write_config(tmp_path, la.base_url, api__return_result_in_response=False)
    code, _, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK
    assert_read_once(tmp_path, la, names)


async def test_a_dropped_submit_is_resubmitted_knowingly_and_reported(tmp_path, la):
    names = pages(tmp_path, 2)
    la.faults.drop_submits = 1
    code, report, _ = await run_pipeline(write_config(tmp_path, la.base_url), TOKEN)
    assert code == ExitCode.OK
    assert sorted(la.submits.values()) == [1, 2]         # the job existed: paid twice, but said so
    assert [d["rel"] for d in report["possible_duplicates"]] == [
        n for n in names if la.submits[_sha(tmp_path, n)] == 2]


def _sha(tmp_path, name: str) -> str:
    import hashlib
    return hashlib.sha256((tmp_path / "in" / name).read_bytes()).hexdigest()


@pytest.mark.parametrize("message", [None, "worker crashed"])
async def test_a_failed_job_with_or_without_a_message_is_a_transient_failure(tmp_path, la, message):
    pages(tmp_path, 1)
    la.faults.fail_jobs, la.faults.fail_message = 1, message
    code, _, _ = await run_pipeline(write_config(tmp_path, la.base_url), TOKEN)
    assert code == ExitCode.FILES_FAILED
    row = failures(tmp_path)["p0.png"]
    assert row["state"] == "failed_transient" and (message or "no details given") in row["reason"]
    assert list(la.submits.values()) == [1]


async def test_a_job_pending_past_the_deadline_is_collected_by_the_next_run_unpaid(tmp_path, la):
    names = pages(tmp_path, 2)
    la.faults.pending_s = 1.5
    cfg = write_config(tmp_path, la.base_url, timeouts__job_s=0.5)
    assert (await run_pipeline(cfg, TOKEN))[0] == ExitCode.FILES_FAILED
    la.faults.pending_s = 0.0                            # the queue drained meanwhile
    assert (await run_pipeline(cfg, TOKEN))[0] == ExitCode.OK
    assert_read_once(tmp_path, la, names)


async def test_a_daily_429_stops_the_run_with_exit_3_and_pays_nothing_twice(tmp_path, la):
    pages(tmp_path, 3)
    la.faults.submit_429, la.faults.daily_429 = 1, True
    code, report, _ = await run_pipeline(write_config(tmp_path, la.base_url), TOKEN)
    assert code == ExitCode.STOPPED_EARLY and "daily" in report["stop_reason"]
    assert all(n == 1 for n in la.submits.values()) and len(la.submits) <= 2


async def test_a_422_in_the_errors_pages_list_form_fails_the_file_with_the_apis_words(tmp_path, la):
    pages(tmp_path, 2)
    la.faults.reject_submits = 1
    code, _, _ = await run_pipeline(write_config(tmp_path, la.base_url), TOKEN)
    assert code == ExitCode.FILES_FAILED
    [row] = failures(tmp_path).values()
    assert row["state"] == "failed_permanent" and "image: The image must be at least 128 pixels wide." in row["reason"]
    assert list(la.submits.values()) == [1]              # the refused one made no job; the other read once


async def test_laravels_unauthenticated_is_exit_5_naming_the_variable(tmp_path, la):
    pages(tmp_path, 1)
    code, _, out = await run_pipeline(write_config(tmp_path, la.base_url), "not-the-token")
    assert code == ExitCode.AUTH_OR_BALANCE and "PIPELINE_TEST_TOKEN" in out and "Unauthenticated." in out
    assert la.submits == {} and "not-the-token" not in out


# -- bugs the look-alike found ---------------------------------------------------------------

@pytest.mark.parametrize("mode", ["polling", "webhook"])
async def test_request_not_found_right_after_a_submit_is_asked_again_not_paid_again(tmp_path, la, mode):
    """The API answered the submit with the id, so the job exists; its status side may not
    know it for a moment. Before the fix every page was paid twice and then failed."""
    names = pages(tmp_path, 3)
    la.faults.not_found_polls = 2
    la.faults.result_404_once = mode == "webhook"        # the pushed link fails: the status is asked
    cfg = (webhook_config(tmp_path, la, api__return_result_in_response=False) if mode == "webhook"
           else write_config(tmp_path, la.base_url))
    code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK
    assert_read_once(tmp_path, la, names)
    assert report["resubmitted_pages"] == 0


def tall_page(tmp_path) -> str:
    text = "\n\n\n\n\n\n".join(f"line {i}" for i in range(5))
    save(text_page(text, size=(400, 900)), tmp_path / "in" / "tall.png", "PNG")
    return "tall.png"


async def test_input_too_large_given_only_as_the_v1_error_string_cuts_the_page(tmp_path, la):
    """v1's status has only ``error`` (a string). Before the fix ``"error": "INPUT_TOO_LARGE"``
    was an unknown transient failure: the page was never cut and failed again every run."""
    tall_page(tmp_path)
    la.faults.tall_limit = 400
    code, report, _ = await run_pipeline(write_config(tmp_path, la.base_url), TOKEN)
    assert code == ExitCode.OK
    strips = report["api_calls"]["strips"]
    assert strips["pages_cut"] == 1 and strips["refused_jobs"] >= 1
    assert {r["code"] for r in strips["refusals"]} == {"INPUT_TOO_LARGE"}
    assert all(j.height <= 400 for j in la.jobs.values() if j.fail is None)
    text, _ = read_result(tmp_path, "tall.png")
    read = {line for j in la.jobs.values() if j.fail is None for line in text_for(j.image).splitlines()}
    # the look-alike's "OCR" does not read the rows two strips share, so a seam may keep either copy
    assert text.count("LOOKALIKE") >= 2 and set(text.splitlines()) <= read


async def test_a_code_at_the_start_of_the_error_string_decides_permanent_or_transient(tmp_path, la):
    pages(tmp_path, 1)
    la.faults.fail_jobs, la.faults.fail_message = 1, "INVALID_INPUT: the image could not be decoded"
    code, _, _ = await run_pipeline(write_config(tmp_path, la.base_url), TOKEN)
    assert code == ExitCode.FILES_FAILED
    row = failures(tmp_path)["p0.png"]
    assert row["state"] == "failed_permanent" and row["code"] == "INVALID_INPUT"


@pytest.mark.parametrize("broken", [False, True])
async def test_plan_says_when_the_balance_could_not_be_read(tmp_path, la, broken):
    """Before the fix a balance route that errored left the balance line out without a word,
    so a plan read as if the balance had been checked."""
    from pipeline.config import load_config
    from pipeline.run.plan import Planner, format_plan

    pages(tmp_path, 2)
    la.faults.balance_error = broken
    os.environ["PIPELINE_TEST_TOKEN"] = TOKEN
    code, report, _ = await Planner(load_config(write_config(tmp_path, la.base_url))).plan()
    assert code == ExitCode.OK and la.submits == {}
    line = next(x for x in format_plan(report).splitlines() if x.startswith("balance:"))
    if broken:
        assert report["balance"] is None and "500" in report["balance_unknown"]
        assert "unknown" in line and "not checked" in line
    else:
        assert report["balance"] == 19.72 and report["balance_unknown"] is None and "lasts" in line


async def test_a_text_result_file_served_as_a_json_string_is_the_text(tmp_path, la):
    """The result file's type is undocumented. Before the fix a file served as
    ``application/json`` holding ``"LOOKALIKE ...\\nGr\\u00fc\\u00dfe"`` was written out
    with its quotes and escapes: wrong text in the .txt."""
    names = pages(tmp_path, 2)
    la.faults.text_file_as_json = True
    code, _, _ = await run_pipeline(write_config(tmp_path, la.base_url, api__return_result_in_response=False), TOKEN)
    assert code == ExitCode.OK
    assert_read_once(tmp_path, la, names)


async def test_a_gateway_timeout_after_the_upload_is_a_possible_duplicate_not_a_silent_retry(tmp_path, la):
    """A 504 from the proxy in front of the API says nothing of the job behind it. Before the
    fix the submit was retried like any 5xx: the page was paid twice and no report said so."""
    names = pages(tmp_path, 2)
    la.faults.gateway_after_create = 1
    code, report, out = await run_pipeline(write_config(tmp_path, la.base_url), TOKEN)
    assert code == ExitCode.OK
    assert "1 submits had an unknown outcome" in out and "paid twice" in out   # the cron log says it
    twice = [n for n in names if la.submits[_sha(tmp_path, n)] == 2]
    assert len(twice) == 1 and sorted(la.submits.values()) == [1, 2]
    assert [d["rel"] for d in report["possible_duplicates"]] == twice


async def test_a_done_job_whose_link_is_not_there_yet_is_asked_again_after_a_pause(tmp_path, la):
    """``result_url`` "only when done" (deapi-api.md 2.1) may lag "done" while storage is
    written. Before the fix the second link-less answer failed the file for this run (asked again
    at once, then given up while the refreshes were still unspent)."""
    names = pages(tmp_path, 2)
    la.faults.linkless_done_polls = 2
    code, _, _ = await run_pipeline(write_config(tmp_path, la.base_url, api__return_result_in_response=False), TOKEN)
    assert code == ExitCode.OK
    assert_read_once(tmp_path, la, names)
