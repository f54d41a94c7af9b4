"""The command line as cron sees it: arguments, config errors and exit codes."""

import argparse
import subprocess
import sys
from pathlib import Path

from pipeline.cli import main
from pipeline.exitcodes import ExitCode

ROOT = Path(__file__).resolve().parents[1]


def test_bad_arguments_exit_with_the_config_code(capsys):
    assert main(["run"]) == ExitCode.CONFIG_ERROR
    assert main(["frobnicate"]) == ExitCode.CONFIG_ERROR


def test_config_error_names_the_key_and_exits_2(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    cfg = tmp_path / "c.yaml"
    cfg.write_text("input: in\noutput: out\nretries: {max_attemps: 3}\n")
    assert main(["run", str(cfg)]) == ExitCode.CONFIG_ERROR
    err = capsys.readouterr().err
    assert "unknown key 'retries.max_attemps' (did you mean 'retries.max_attempts'?)" in err


def test_input_and_output_flags_are_relative_to_where_the_command_runs(tmp_path, monkeypatch):
    from pipeline.cli import _overrides, _parser
    from pipeline.config import load_config

    (tmp_path / "conf").mkdir()
    (tmp_path / "scans" / "letters").mkdir(parents=True)
    cfg = tmp_path / "conf" / "c.yaml"
    cfg.write_text("input: ../scans\noutput: out\n")      # the file's paths: against its folder
    monkeypatch.chdir(tmp_path)
    args = _parser().parse_args(["run", "conf/c.yaml", "--input", "scans/letters", "--output", "night"])
    config = load_config(cfg, _overrides(args))
    assert Path(config.input) == tmp_path / "scans" / "letters"
    assert Path(config.output) == tmp_path / "night"
    assert Path(load_config(cfg).input).resolve() == (tmp_path / "scans").resolve()


def test_every_argument_of_every_command_says_what_it_is_in_help():
    from pipeline.cli import _parser

    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    bare = [f"{name} {action.dest}" for name, parser in sub.choices.items() for action in parser._actions
            if not action.help]
    assert bare == []


def test_status_before_any_run(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    cfg = tmp_path / "c.yaml"
    cfg.write_text("input: in\noutput: out\n")
    assert main(["status", str(cfg)]) == ExitCode.OK
    assert "no files recorded yet" in capsys.readouterr().out


def test_real_token_never_needed_for_embedded_and_missing_token_is_a_config_error(tmp_path):
    (tmp_path / "in").mkdir()
    cfg = tmp_path / "c.yaml"
    cfg.write_text("input: in\noutput: out\napi: {base_url: 'http://127.0.0.1:9', token_env: NO_SUCH_TOKEN_VAR}\n")
    proc = subprocess.run([sys.executable, "-m", "pipeline", "run", str(cfg)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == ExitCode.CONFIG_ERROR
    assert "NO_SUCH_TOKEN_VAR is empty or unset" in proc.stderr


def test_help_lists_every_command():
    proc = subprocess.run([sys.executable, "-m", "pipeline", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0
    for command in ("run", "serve", "status", "verify", "models"):
        assert command in proc.stdout


def test_a_reader_closing_the_pipe_is_not_a_crash(tmp_path):
    """`pipeline status cfg | head -1`: the reader stops early; exit 0, no crash log."""
    (tmp_path / "in").mkdir()
    cfg = tmp_path / "c.yaml"
    cfg.write_text("input: in\noutput: out\n")
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "status", str(cfg), "--json"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()                   # the reader is gone before a byte is written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == ExitCode.OK, err
    assert "internal error" not in err and "Traceback" not in err
    assert not list((tmp_path / "out").rglob("crash-*.log"))


def test_an_image_over_the_pixel_limit_is_refused_once_without_pillows_warning(tmp_path):
    """Between Pillow's limit and twice it, Pillow only warns; our own check refuses the file
    with a reason. The cron log must carry that reason, not Pillow's warning and its source line
    as well (before: ``DecompressionBombWarning: Image size ...`` and ``warnings.warn(``)."""
    from PIL import Image

    (tmp_path / "in").mkdir()
    Image.new("1", (15000, 15000), 1).save(tmp_path / "in" / "big.png")    # 225 Mpx: over 100, and over the 200 the OCR pool sets
    cfg = tmp_path / "c.yaml"
    cfg.write_text("input: in\noutput: out\nprogress: off\napi: {base_url: embedded, embedded: {engine: fast}}\n"
                   "precheck: {max_source_pixels: 100000000}\n")
    proc = subprocess.run([sys.executable, "-m", "pipeline", "run", str(cfg)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    log = proc.stdout + proc.stderr
    assert proc.returncode == ExitCode.FILES_FAILED
    assert "big.png: decompression_bomb" in log and "225,000,000 pixels" in log
    assert "DecompressionBombWarning" not in log and "warnings.warn" not in log
