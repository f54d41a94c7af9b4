"""`make run`'s path for real: the shipped config, the embedded server, RapidOCR, the samples.

This is the one end-to-end test with a real OCR engine (a few seconds a page); everything else
uses the fast engine. It runs the CLI exactly as README tells a new user to, into a temporary
output directory, and checks that each sample's words come back in order, page by page.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def sample_texts() -> dict[str, list[str]]:
    spec = importlib.util.spec_from_file_location("make_samples", ROOT / "samples" / "make_samples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SAMPLE_TEXTS


def words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


@pytest.mark.real_ocr
def test_make_run_reads_every_sample(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "pipeline", "run", str(ROOT / "config.yaml"),
                           "--output", str(out), "--progress", "log"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "6 done" in proc.stderr and str(out) in proc.stderr
    for rel, pages in sample_texts().items():
        text = (out / (rel + ".txt")).read_text()
        doc = json.loads((out / (rel + ".json")).read_text())
        got_pages = text.split("\f")
        assert len(got_pages) == len(pages) == doc["image"]["page_count"]
        for expected, got in zip(pages, got_pages):
            exp, seen = words(expected), set(words(got))
            recall = sum(w in seen for w in exp) / len(exp)
            assert recall >= 0.9, (rel, expected, got)
    rotated = json.loads((out / "photos/sideways-note.jpg.json").read_text())
    assert any("exif" in t for t in rotated["image"]["pages"][0]["transforms"])
    minutes = json.loads((out / "reports/minutes-2pages.pdf.json").read_text())
    assert [p["text_source"] for p in minutes["pages"]] == ["text_layer", "ocr"]
