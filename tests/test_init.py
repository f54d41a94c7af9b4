"""``pipeline init`` writes a config that the loader and ``pipeline run`` accept, from the
defaults of ``pipeline/config.py``; it never overwrites; every command's --help shows examples
that parse. Plus ``--version``.

Every test runs the real command (``python -m pipeline``) or the real loader; the run is the
real runner against the embedded server with the fast engine.
"""

from __future__ import annotations

import json
import os
import pty
import shlex
import subprocess
import sys
from dataclasses import fields, is_dataclass
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from pipeline import config as config_module
from pipeline.cli import EXAMPLES, _parser
from pipeline.config import Config, load_config
from pipeline.exitcodes import ExitCode
from pipeline.init_config import field_default, render_config

from helpers import distinct_png

ROOT = Path(__file__).resolve().parents[1]


def pipeline(*args: str, cwd: Path, stdin=subprocess.DEVNULL) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=cwd, stdin=stdin,
                          capture_output=True, text=True, timeout=120)


def defaults_of(cls: type, prefix: str = "") -> dict[str, object]:
    """Every key's default as the loader fills it, flattened to dotted keys (required keys left out)."""
    out: dict[str, object] = {}
    for f in fields(cls):
        value = field_default(f)
        if is_dataclass(value):
            out.update(defaults_of(type(value), prefix + f.name + "."))
        elif value is not config_module.MISSING:
            out[prefix + f.name] = list(value) if isinstance(value, tuple) else value
    return out


def sections_of(cls: type) -> int:
    """How many nested sections (``api:``, ``api.embedded:`` ...) the dataclasses hold."""
    nested = [field_default(f) for f in fields(cls)]
    return sum(1 + sections_of(type(v)) for v in nested if is_dataclass(v))


def flatten(data: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(flatten(value, prefix + key + "."))
        else:
            out[prefix + key] = value
    return out


@pytest.fixture()
def archive(tmp_path: Path) -> Path:
    """A tiny tree of scans: two distinct images, one in a sub-folder."""
    scans = tmp_path / "scans"
    distinct_png(scans / "a.png", seed=1)
    distinct_png(scans / "box 2" / "b.png", seed=2)
    return scans


def test_init_writes_every_key_at_its_config_py_default(tmp_path: Path, archive: Path) -> None:
    proc = pipeline("init", "site", "--input", "scans", "--output", "site/results", cwd=tmp_path)
    assert proc.returncode == ExitCode.OK, proc.stderr
    written = tmp_path / "site" / "config.yaml"
    data = yaml.safe_load(written.read_text(encoding="utf-8"))
    flat = flatten(data)
    expected = defaults_of(Config)
    assert {k: flat[k] for k in expected} == expected
    assert set(flat) == set(expected) | {"input", "output"}  # nothing invented, nothing left out
    # Paths are spelled as the config resolves them: relative to the config's own directory.
    assert data["output"] == "results"
    assert data["input"] == str(archive)
    config = load_config(written)
    assert config.input == archive and config.output == tmp_path / "site" / "results"
    assert config.api == Config.__dataclass_fields__["api"].default_factory()


def test_every_key_has_a_one_line_comment_above_it(tmp_path: Path, archive: Path) -> None:
    text = render_config({"input": str(archive), "output": "out"})
    lines = text.splitlines()
    keyed = [i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith(("#", "- "))]
    assert len(keyed) == len(defaults_of(Config)) + 2 + sections_of(Config)  # + input/output + section headers
    for i in keyed:
        assert lines[i - 1].lstrip().startswith("# "), lines[i]
        assert len(lines[i - 1].strip()) > 4


def test_a_key_added_to_config_py_is_written_without_touching_init(tmp_path: Path, archive: Path,
                                                                   monkeypatch) -> None:
    from dataclasses import dataclass, field

    @dataclass(frozen=True)
    class Extra:
        shiny: int = 7            # a key added by a later issue
    @dataclass(frozen=True)
    class Bigger(Config):
        extra: Extra = field(default_factory=Extra)

    monkeypatch.setattr("pipeline.init_config.Config", Bigger)
    text = render_config({"input": str(archive), "output": "out"})
    assert "extra:\n  # a key added by a later issue\n  shiny: 7\n" in text


def test_the_written_config_runs(tmp_path: Path, archive: Path) -> None:
    proc = pipeline("init", "--input", str(archive), "--output", "ocr", cwd=tmp_path)
    assert proc.returncode == ExitCode.OK, proc.stderr
    written = tmp_path / "config.yaml"
    text = written.read_text(encoding="utf-8")
    assert text.count("engine: rapidocr\n") == 1
    written.write_text(text.replace("engine: rapidocr\n", "engine: fast\n"), encoding="utf-8")  # no real OCR here
    run = pipeline("run", "config.yaml", cwd=tmp_path)
    assert run.returncode == ExitCode.OK, run.stderr
    for rel in ("a.png", "box 2/b.png"):
        document = json.loads((tmp_path / "ocr" / f"{rel}.json").read_text(encoding="utf-8"))
        assert document["source"]["path"] == rel
        assert (tmp_path / "ocr" / f"{rel}.txt").is_file()


def test_init_refuses_to_overwrite(tmp_path: Path, archive: Path) -> None:
    existing = tmp_path / "config.yaml"
    existing.write_text("input: mine\n", encoding="utf-8")
    proc = pipeline("init", "--input", str(archive), cwd=tmp_path)
    assert proc.returncode == ExitCode.CONFIG_ERROR
    assert "already exists; not overwritten" in proc.stderr
    assert existing.read_text(encoding="utf-8") == "input: mine\n"
    named = tmp_path / "archive.yaml"
    named.write_text("x: 1\n", encoding="utf-8")
    assert pipeline("init", "archive.yaml", "--input", str(archive), cwd=tmp_path).returncode == ExitCode.CONFIG_ERROR
    assert named.read_text(encoding="utf-8") == "x: 1\n"


def test_without_a_terminal_or_input_it_exits_2_naming_the_option(tmp_path: Path) -> None:
    proc = pipeline("init", "new", cwd=tmp_path)
    assert proc.returncode == ExitCode.CONFIG_ERROR
    assert "--input DIR" in proc.stderr
    assert not (tmp_path / "new" / "config.yaml").exists()


def test_a_missing_input_folder_is_refused(tmp_path: Path) -> None:
    proc = pipeline("init", "--input", "no-such-folder", cwd=tmp_path)
    assert proc.returncode == ExitCode.CONFIG_ERROR
    assert "no-such-folder is not a directory" in proc.stderr
    assert not (tmp_path / "config.yaml").exists()


def test_without_output_it_defaults_to_out_beside_the_config(tmp_path: Path, archive: Path) -> None:
    proc = pipeline("init", "cfg", "--input", str(archive), cwd=tmp_path)
    assert proc.returncode == ExitCode.OK, proc.stderr
    assert load_config(tmp_path / "cfg" / "config.yaml").output == tmp_path / "cfg" / "out"


def test_on_a_terminal_it_asks_for_input_and_output(tmp_path: Path, archive: Path) -> None:
    main_fd, child_fd = pty.openpty()
    try:
        os.write(main_fd, b"scans\nresults\n")  # the terminal buffers the two answers
        proc = subprocess.run([sys.executable, "-m", "pipeline", "init", "."], cwd=tmp_path, stdin=child_fd,
                              stdout=child_fd, stderr=subprocess.PIPE, timeout=120)
    finally:
        os.close(child_fd)
    shown = b""
    try:
        while chunk := os.read(main_fd, 65536):
            shown += chunk
            if b"next:" in shown:
                break
    except OSError:  # the terminal closed: everything has been read
        pass
    os.close(main_fd)
    assert proc.returncode == ExitCode.OK, proc.stderr
    prompts = shown + proc.stderr  # without readline, input() writes its prompt to stderr
    assert b"Folder of scans to OCR (input)" in prompts and b"Folder for the results (output)" in prompts
    config = load_config(tmp_path / "config.yaml")
    assert (config.input, config.output) == (archive, tmp_path / "results")


def test_version_is_the_installed_package_version(tmp_path: Path) -> None:
    proc = pipeline("--version", cwd=tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"pipeline {version('pipeline')}"


def _commands_in(epilog: str) -> list[list[str]]:
    """The command lines of an epilog's examples (comment, env prefix and program name removed)."""
    out = []
    for line in epilog.splitlines():
        words = shlex.split(line.split("#", 1)[0])
        while words and "=" in words[0]:
            words.pop(0)
        if words[:3] == ["python", "-m", "pipeline"]:
            out.append(words[3:])
    return out


@pytest.mark.parametrize("command", sorted(EXAMPLES, key=str), ids=str)
def test_help_ends_with_examples_that_parse(command: str | None, tmp_path: Path) -> None:
    proc = pipeline(*([command] if command else []), "--help", cwd=tmp_path)
    assert proc.returncode == 0
    tail = proc.stdout.split("examples:", 1)
    assert len(tail) == 2, proc.stdout
    examples = _commands_in(EXAMPLES[command])
    assert 2 <= len(examples) <= 3
    for argv in examples:
        if command is not None:
            assert argv[0] == command
        _parser().parse_args(argv)  # SystemExit (a bad example) fails the test
