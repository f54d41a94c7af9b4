"""The smaller things an operator meets (issue 25): random bytes named .pdf, the installed
``pipeline`` command, skip reasons in the test output, the README's word on ``make test``."""

from __future__ import annotations

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
