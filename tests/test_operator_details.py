"""The smaller things an operator meets (issue 25): random bytes named .pdf, the installed
``pipeline`` command, skip reasons in the test output, the README's word on ``make test``."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

from conftest import TOKEN
from helpers import failures, run_pipeline, write_config

ROOT = Path(__file__).resolve().parents[1]


async def test_random_bytes_named_pdf_are_reported_as_not_a_pdf(tmp_path, server):
    cfg = write_config(tmp_path, server.base_url)
    (tmp_path / "in" / "minutes.pdf").write_bytes(os.urandom(5000))
    (tmp_path / "in" / "page.pdf").write_bytes(b"<!DOCTYPE html><html><body>404</body></html>")
    code, _, _ = await run_pipeline(cfg, TOKEN)
    rows = failures(tmp_path)
    for rel in ("minutes.pdf", "page.pdf"):
        assert rows[rel]["code"] == "not_a_pdf", rows[rel]
        assert rows[rel]["reason"].startswith("not a PDF, though named .pdf"), rows[rel]
        assert "PNG or JPEG" not in rows[rel]["reason"]
    assert "HTML page" in rows["page.pdf"]["reason"]


def test_the_package_installs_a_pipeline_command():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["pipeline"] == "pipeline.__main__:console"
    command = Path(sys.executable).with_name("pipeline")   # what pip made of it (make installs from pyproject)
    assert command.exists(), f"{command} is missing: reinstall the package (make install)"
    result = subprocess.run([str(command), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("pipeline "), result
    result = subprocess.run([str(command), "status", str(ROOT / "no-such.yaml")], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2 and "config file not found" in result.stderr


def test_pytest_prints_skip_reasons_and_the_readme_says_how_long_make_test_takes():
    addopts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["addopts"]
    assert "-rs" in addopts.split()
    readme = (ROOT / "README.md").read_text()
    line = next(line for line in readme.splitlines() if line.startswith("make test"))
    assert "min" in line, line


def test_with_the_embedded_server_plan_and_status_say_the_run_is_free_and_show_no_money(tmp_path, capsys):
    from helpers import distinct_png
    from pipeline.cli import main

    for i in range(3):
        distinct_png(tmp_path / "in" / f"p{i}.png", i)
    cfg = write_config(tmp_path, "embedded", api__embedded__engine="fast", api__embedded__workers=1)
    assert main(["plan", str(cfg)]) == 0
    text = capsys.readouterr().out
    assert "free: the embedded server" in text and "3 pages" in text
    assert "USD" not in text and "balance" not in text.lower() and "spent today" not in text
    assert main(["plan", str(cfg), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["free"] is True and doc["currency"] is None and doc["balance"] is None
    assert doc["estimated"]["estimated_cost"] == 0
    code, _, _ = asyncio.run(run_pipeline(cfg, None))
    assert code == 0
    assert main(["status", str(cfg)]) == 0
    status = capsys.readouterr().out
    assert "cost: free: the embedded server" in status and "3 pages sent to it so far" in status
    assert "USD" not in status
