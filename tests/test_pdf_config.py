"""The ``pdf:`` config section: defaults, and bad values that exit 2 naming the key."""

from __future__ import annotations

import pytest

from pipeline.cli import main
from pipeline.config import IMAGE_GLOBS, load_config
from pipeline.exitcodes import ExitCode


def _cfg(tmp_path, pdf_yaml: str):
    (tmp_path / "in").mkdir(exist_ok=True)
    path = tmp_path / "config.yaml"
    path.write_text(f"input: in\noutput: out\n{pdf_yaml}")
    return path


def test_defaults_and_pdfs_in_the_default_include(tmp_path):
    config = load_config(_cfg(tmp_path, ""))
    assert (config.pdf.dpi, config.pdf.text_layer, config.pdf.max_pages) == (300, "auto", 1000)
    assert "**/*.pdf" in IMAGE_GLOBS and config.include == IMAGE_GLOBS


@pytest.mark.parametrize("pdf_yaml, message", [
    ("pdf: {text_layer: always}\n", "pdf.text_layer: must be one of auto, ocr, use"),
    ("pdf: {dpi: 0}\n", "pdf.dpi: must be at least 36"),
    ("pdf: {dpi: 5000}\n", "pdf.dpi: must be at most 1200"),
    ("pdf: {max_pages: -1}\n", "pdf.max_pages: must be at least 1"),
    ("pdf: {dip: 300}\n", "unknown key 'pdf.dip' (did you mean 'pdf.dpi'?)"),
])
def test_bad_pdf_settings_exit_2_naming_the_key(tmp_path, capsys, pdf_yaml, message):
    assert main(["run", str(_cfg(tmp_path, pdf_yaml))]) == ExitCode.CONFIG_ERROR == 2
    assert message in capsys.readouterr().err
