"""A cron-style run (``</dev/null >log 2>&1``): every line carries the UTC time and the run id,
the log opens with a start line saying what ran against what, and rejected files are named with
their reason. A second night appends to the same log and is told apart by its run id."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import yaml

from helpers import distinct_png
from pipeline import __version__
from pipeline.exitcodes import ExitCode

STAMPED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ run (\d+) ")


def cron_run(cfg: Path, log: Path) -> int:
    """The way cron starts it: no terminal anywhere, stdout and stderr appended to one file."""
    return subprocess.run(f"'{sys.executable}' -m pipeline run '{cfg}' </dev/null >>'{log}' 2>&1",
                          shell=True, cwd=cfg.parent, timeout=180, start_new_session=True).returncode


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_webhook_secret_that_refuses_every_delivery_is_said_once_a_minute_not_per_delivery(tmp_path, monkeypatch):
    """A wrong webhook secret: the receiver refuses every push, and each refusal was a warning in
    the run's log, every retry of every job one (76 lines in 7 s for 5 files against the
    server's retries sped up; a night of real deAPI retries would bury the log). The first is
    said, the rest once a minute; the run's own warning counts them all."""
    port, listen = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DEAPI_API_KEY", "DEAPI_WEBHOOK_SECRET")}
    server = subprocess.Popen([sys.executable, "-m", "pipeline", "serve", "--engine", "fast", "--port", str(port),
                               "--token", "t0k", "--allow-http-webhooks", "--webhook-secret", "right",
                               "--webhook-time-scale", "0.001"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert "server on" in server.stderr.readline()
        for i in range(4):
            distinct_png(tmp_path / "in" / f"p{i}.png", 60 + i)
        cfg = tmp_path / "config.yaml"
        cfg.write_text(yaml.safe_dump({
            "input": "in", "output": "out", "progress": "off", "api": {"base_url": f"http://127.0.0.1:{port}"},
            "webhook": {"enabled": True, "listen_port": listen, "wait_s": 0.5,
                        "public_url": f"http://127.0.0.1:{listen}/deapi/webhook"}}))
        log = tmp_path / "ocr.log"
        monkeypatch.setenv("DEAPI_API_KEY", "t0k")
        monkeypatch.setenv("DEAPI_WEBHOOK_SECRET", "wrong")
        assert cron_run(cfg, log) == ExitCode.OK, log.read_text()
    finally:
        server.terminate()
        server.wait(10)
        server.stderr.close()
    text = log.read_text()
    refused = re.search(r"received (\d+) deliveries and refused them all \(signature (\d+)", text)
    assert refused and int(refused.group(2)) >= 4, text        # every job's push was refused, and counted
    assert text.count("signature mismatch") == 1, text         # and said once
    warning = next(line for line in text.splitlines() if "signature mismatch" in line)
    assert STAMPED.match(warning) and re.search(r"run \d+ WARNING pipeline\.deapi\.webhook: ", warning), warning


def test_a_cron_log_has_a_start_line_and_stamped_lines_with_the_run_id_and_names_rejected_files(tmp_path):
    for i in range(3):
        distinct_png(tmp_path / "in" / f"ok{i}.png", i)
    (tmp_path / "in" / "broken.png").write_bytes(os.urandom(3000))
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({
        "input": "in", "output": "out", "progress": "auto", "log_interval_s": 0.1,
        "api": {"base_url": "embedded", "model": "Nanonets_Ocr_S_F16",
                "embedded": {"engine": "fast", "workers": 1}}}))
    log = tmp_path / "ocr.log"
    assert cron_run(cfg, log) == ExitCode.FILES_FAILED
    (tmp_path / "in" / "ok9.png").write_bytes((tmp_path / "in" / "ok0.png").read_bytes() + b"x")
    cron_run(cfg, log)   # the second night, appended

    lines = log.read_text().splitlines()
    assert lines
    unstamped = [line for line in lines if not STAMPED.match(line)]
    assert not unstamped, unstamped
    runs = [int(STAMPED.match(line).group(1)) for line in lines]
    assert sorted(set(runs)) == [1, 2] and runs == sorted(runs)   # the two nights, in order
    first = [line for line in lines if STAMPED.match(line).group(1) == "1"]
    start = first[0]
    assert "start: pipeline " + __version__ in start
    assert f"config {cfg}" in start and f"input {tmp_path / 'in'}" in start and f"output {tmp_path / 'out'}" in start
    assert "engine fast" in start and "model Nanonets_Ocr_S_F16" in start and "language 'en'" in start
    rejected = [line for line in first if "rejected: broken.png: " in line]
    assert len(rejected) == 1 and "not_an_image: not an image format" in rejected[0], first
    assert any("exit 1 (FILES_FAILED)" in line for line in first)
