"""Start-up cost: ``run --help`` and a txt-only run load none of the archival writers, and a
server that cannot quote prices is asked once per run, not once per page.

The imports are read from ``sys.modules`` of a fresh interpreter (a subprocess): in the test
process everything is loaded already by other tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import TOKEN
from helpers import distinct_png, run_pipeline, write_config

#: what only ALTO, hOCR and the searchable PDF need (fpdf2 brings fontTools; pikepdf the PDF
#: overlay), and numpy, which only the polling learner's planner, the straightening check
#: (``precheck.rotate_pages``/``deskew``), strips and word placement need
HEAVY = ("fpdf", "fontTools", "numpy", "pikepdf", "pipeline.formats.alto", "pipeline.formats.hocr",
         "pipeline.formats.pdf", "pipeline.formats.pdf_overlay", "pipeline.formats.pdf_text",
         "pipeline.formats.check")

PROBE = """
import json, sys
from pipeline.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.__stdout__)
"""


def loaded(*argv: str, cwd: Path) -> tuple[int, set[str]]:
    result = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, cwd=cwd,
                            timeout=120)
    doc = json.loads(result.stdout.strip().splitlines()[-1])
    return doc["code"], set(doc["modules"])


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m in HEAVY or m.split(".")[0] in HEAVY)


def test_run_help_loads_no_archival_writer(tmp_path):
    code, modules = loaded("run", "--help", cwd=tmp_path)
    assert code == 0
    assert heavy(modules) == []


def test_a_txt_only_run_loads_no_archival_writer_and_an_alto_run_does(tmp_path):
    distinct_png(tmp_path / "in" / "a.png", 1)
    cfg = tmp_path / "config.yaml"
    base = {"input": "in", "progress": "off", "api": {"base_url": "embedded", "format": "json",
                                                      "embedded": {"engine": "fast", "workers": 1}}}
    straight_off = {"precheck": {"rotate_pages": "off", "deskew": "off"}}
    cfg.write_text(yaml.safe_dump({**base, **straight_off, "output": "out", "outputs": ["txt", "json"]}))
    code, modules = loaded("run", str(cfg), cwd=tmp_path)
    assert code == 0 and (tmp_path / "out" / "a.png.txt").exists()
    assert "pipeline.formats.writer" in modules   # it did write its outputs
    assert heavy(modules) == []
    # with the default straightening the page's line profile is measured (numpy, really used),
    # and still no archival writer is loaded
    cfg.write_text(yaml.safe_dump({**base, "output": "out1", "outputs": ["txt", "json"]}))
    code, modules = loaded("run", str(cfg), cwd=tmp_path)
    assert code == 0 and "pipeline.inputs.skew" in modules
    assert heavy(modules) == ["numpy"] + sorted(m for m in modules if m.startswith("numpy."))
    # the same run asking for ALTO and the searchable PDF loads them when the first file needs them
    cfg.write_text(yaml.safe_dump({**base, "output": "out2", "outputs": ["txt", "json", "alto", "pdf"]}))
    code, modules = loaded("run", str(cfg), cwd=tmp_path)
    assert code == 0 and (tmp_path / "out2" / "a.png.pdf").exists()
    assert {"pipeline.formats.alto", "pipeline.formats.pdf", "fpdf"} <= modules


async def test_a_server_without_the_price_route_is_asked_once_per_run(tmp_path, server):
    server.faults.no_price_route = True
    for i in range(6):   # six page sizes: six size buckets, each would be priced
        distinct_png(tmp_path / "in" / f"p{i}.png", i, size=(300 + 60 * i, 200 + 40 * i))
    cfg = write_config(tmp_path, server.base_url, concurrency__jobs_in_flight=1, concurrency__adaptive=False)
    code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == 0 and report["this_run"]["done"] == 6
    assert server.counters.price_calls == 1
    assert report["cost"]["price_requests"] == 1 and report["cost"]["price_route_missing"] is True
