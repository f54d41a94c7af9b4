"""``python -m pipeline serve``: the documented curl against a real process, the option checks,
and clear refusals (no token, bad fault, busy port) instead of tracebacks."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.server import FaultRule
from pipeline.server.cli import add_serve_arguments, config_from_args, serve_from_args
from test_server_support import png

ROOT = Path(__file__).resolve().parents[1]


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_serve_arguments(p)
    return p.parse_args(list(argv))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_python_m_pipeline_serve_answers_the_documented_curl(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "DEAPI_API_KEY"}
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "serve", "--port", str(port), "--engine", "fast",
                             "--token", "dev-token", "--admin", "--fault", "poison_red=true"], cwd=ROOT, env=env,
                            stderr=subprocess.PIPE, text=True)
    try:
        banner = proc.stderr.readline()
        assert f"deAPI-compatible server on http://127.0.0.1:{port}" in banner and "dev-token" not in banner
        assert "faults: poison_red" in banner, banner  # a switch fault is said too (the page is not red)
        page = tmp_path / "page.png"
        page.write_bytes(png())
        out = subprocess.run(["curl", "-s", "-H", "Authorization: Bearer dev-token", "-H", "Accept: application/json",
                              "-F", f"image=@{page}", "-F", "model=Nanonets_Ocr_S_F16",
                              "-F", "return_result_in_response=true",
                              f"http://127.0.0.1:{port}/api/v1/client/img2txt"], capture_output=True, text=True)
        rid = json.loads(out.stdout)["data"]["request_id"]
        for _ in range(500):
            out = subprocess.run(["curl", "-s", "-H", "Authorization: Bearer dev-token",
                                  f"http://127.0.0.1:{port}/api/v1/client/request-status/{rid}"],
                                 capture_output=True, text=True)
            data = json.loads(out.stdout)["data"]
            if data["status"] == "done":
                break
            time.sleep(0.01)
        assert data["result"].startswith("FAST-OCR 300x200")
        out = subprocess.run(["curl", "-s", "-H", "Authorization: Bearer dev-token",
                              f"http://127.0.0.1:{port}/_admin/counters"], capture_output=True, text=True)
        assert json.loads(out.stdout)["jobs_created"] == 1
    finally:
        proc.terminate()
        assert proc.wait(10) == 0  # SIGTERM is a clean stop
        proc.stderr.close()


def test_serve_refuses_to_start_without_a_token():
    env = {k: v for k, v in os.environ.items() if k != "DEAPI_API_KEY"}
    proc = subprocess.run([sys.executable, "-m", "pipeline", "serve", "--port", "0"], env=env,
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and "--token" in proc.stderr and "DEAPI_API_KEY" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_token_from_the_environment(monkeypatch):
    monkeypatch.setenv("DEAPI_API_KEY", "from-env")
    assert config_from_args(parse()).tokens == ("from-env",)
    assert config_from_args(parse("--token", "a", "--token", "b")).tokens == ("a", "b")


def test_every_option_reaches_the_config(monkeypatch):
    monkeypatch.setenv("DEAPI_WEBHOOK_SECRET", "env-secret")
    cfg = config_from_args(parse(
        "--host", "0.0.0.0", "--port", "9000", "--engine", "tesseract", "--engine-workers", "3", "--token", "t",
        "--profile", "custom", "--limit-submit-per-min", "7", "--limit-status-per-day", "70", "--balance", "5",
        "--latency", "0.5", "--latency-jitter", "0.1", "--result-ttl", "60", "--allow-http-webhooks",
        "--webhook-time-scale", "0.01", "--fault", "http_5xx=3", "--fault", "job_error=0:0.25",
        "--fault", "retry_after=9", "--fault", "endpoints=submit,download", "--seed", "11", "--admin",
        "--hosted-job-s", "0.5", "2"))
    assert (cfg.host, cfg.port, cfg.engine, cfg.engine_workers, cfg.tokens) == ("0.0.0.0", 9000, "tesseract", 3, ("t",))
    assert cfg.endpoint_limits() == {"submit": (7, None), "status": (None, 70), "price": (None, None)}
    assert (cfg.balance, cfg.result_ttl_s, cfg.webhook_time_scale, cfg.seed) == (5.0, 60.0, 0.01, 11)
    assert cfg.allow_http_webhooks and cfg.admin and cfg.webhook_secret == "env-secret"
    f = cfg.faults
    assert (f.latency, f.latency_jitter, f.retry_after, f.endpoints) == (0.5, 0.1, 9, ("submit", "download"))
    assert f.http_5xx == FaultRule(3) and f.job_error == FaultRule(0, 0.25)
    assert config_from_args(parse("--token", "t", "--webhook-secret", "flag")).webhook_secret == "flag"
    assert cfg.hosted.job_s == (0.5, 2.0)


@pytest.mark.parametrize("argv, words", [
    (("--fault", "http_5xx"), "NAME=COUNT"),
    (("--fault", "gremlins=1"), "unknown fault"),
    (("--fault", "http_5xx=x"), "COUNT[:RATE]"),
    (("--fault", "job_error=0:1.5"), "between 0 and 1"),
    (("--limit-submit-per-min", "5"), "--profile custom"),
    (("--profile", "custom", "--limit-price-per-day", "0"), "at least 1"),
    (("--engine-workers", "0"), "at least 1"),
    (("--latency", "-1"), ">= 0"),
    (("--hosted-job-s", "3", "1"), "--hosted-job-s"),
    (("--role", "worker"), "--role worker needs --store"),
    (("--role", "api"), "needs --store postgresql://"),
    (("--store", "mysql://x/y"), "--store must be a postgresql:// URL"),
    (("--store", "postgresql://x/y", "--lease", "0"), "--lease must be above 0"),
    # found on a tour: an option the other kind of fleet member reads was ignored without a word
    (("--store", "postgresql://x/y", "--role", "api", "--max-input-height", "850"),
     "--max-input-height does nothing on --role api: the workers read the pages: give it to every worker"),
    (("--store", "postgresql://x/y", "--role", "worker", "--profile", "custom", "--limit-submit-per-min", "5"),
     "--profile, --limit-submit-per-min do nothing on --role worker: the API replicas count the rate limits"),
    # these started a server that failed every job, or crashed it with exit 70 (truth, no folder)
    (("--max-input-height", "0"), "--max-input-height must be at least 1"),
    (("--max-answer-chars", "-3"), "--max-answer-chars must be at least 1"),
    (("--engine", "truth"), "--engine truth needs --truth-dir DIR"),
    (("--engine", "truth", "--truth-dir", "/nonexistent/truth"), "/nonexistent/truth is not one"),
    (("--truth-corrupt", "5"), "--truth-corrupt must be a share between 0 and 1"),
])
def test_bad_options_are_refused_with_the_option_named(argv, words, capsys):
    args = parse("--token", "t", *argv)
    assert serve_from_args(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("serve: ") and words in err


def test_an_unreachable_store_is_a_clear_error_without_the_password(capsys, monkeypatch):
    port = free_port()  # nothing listens there
    args = parse("--token", "t", "--engine", "fast", "--store", f"postgresql://u:hunter2@127.0.0.1:{port}/db")
    import pipeline.server.store_pg as store_pg

    original = store_pg.PgStore.open
    monkeypatch.setattr(store_pg.PgStore, "open", lambda self: original(self, 1.0))  # give up after 1 s, not 30
    assert serve_from_args(args) == 6
    err = capsys.readouterr().err
    assert f"cannot reach the PostgreSQL store at 127.0.0.1:{port}/db" in err and "hunter2" not in err


async def test_a_stop_while_the_store_is_not_reached_yet_ends_at_once(capsys):
    """A SIGTERM (here: the stop event, set before the start) while serve waits for a database
    that is not up: before, it was held until the 30 s wait ended, then exit 6."""
    from pipeline.server.cli import run_server

    config = config_from_args(parse("--token", "t", "--engine", "fast", "--port", "0",
                                    "--store", f"postgresql://u@127.0.0.1:{free_port()}/db"))
    stop = asyncio.Event()
    stop.set()
    await asyncio.wait_for(run_server(config, stop), 10)   # the store's own wait is 30 s
    assert "stopped by a signal while starting" in capsys.readouterr().err


def test_a_busy_port_is_a_clear_error_not_a_traceback(capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert serve_from_args(parse("--token", "t", "--engine", "fast", "--port", str(port))) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
