"""A long PDF through the real pipeline (a child process) with bounded memory: the peak RSS of a
500-page run stays within a few MB of a 50-page run. Each page's upload is ~140 KB of noise.

The server holds every job 0.1 s (its ``latency`` fault), so pages are rendered faster than the
job slots take them, which is when an unbounded loop would pile them up. Straightening is off:
it has its own tests, and asking OSD about 550 pages of noise took 110 s of this test's 130.
Measured side by side on a 2-core machine: +3.5 MB with the page window, +32.3 MB with the
window removed, so the 10 MB bound tells the two apart. Memory, not time, is asserted."""

from __future__ import annotations

import asyncio
import os
import sys

import pdfs
import pytest
from conftest import TOKEN
from helpers import read_result, write_config

from pipeline.server import EmbeddedServer, ServerConfig
from pipeline.server.faults import FaultConfig

_CHILD = ("import resource, sys\n"
          "from pipeline.cli import main\n"
          "code = main(['run', sys.argv[1]])\n"
          "print('MAXRSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
          "sys.exit(code)\n")


async def _peak_rss_kb(tmp_path, server, pages: int) -> int:
    pdfs.write(tmp_path / "in" / "long.pdf", pdfs.many_pages(pages))
    cfg = write_config(tmp_path, server.base_url, pdf__text_layer="ocr", concurrency__jobs_in_flight=4,
                       precheck__rotate_pages="off", precheck__deskew="off")
    env = dict(os.environ, PIPELINE_TEST_TOKEN=TOKEN)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", _CHILD, str(cfg), env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 300)
    assert proc.returncode == 0, out.decode()[-2000:]
    text, doc = read_result(tmp_path, "long.pdf")
    assert len(text.split("\f")) == pages and doc["pages"][-1]["source"]["page_number"] == pages
    return int(out.decode().split("MAXRSS_KB")[-1].split()[0])


@pytest.fixture
async def slow_server():
    """Jobs held 0.1 s each: the run's pages outpace its job slots."""
    async with EmbeddedServer(ServerConfig(engine="fast", tokens=(TOKEN,), profile="unlimited",
                                           faults=FaultConfig(latency=0.1))) as srv:
        yield srv


async def test_peak_memory_does_not_grow_with_the_page_count(tmp_path, slow_server):
    server = slow_server
    short = await _peak_rss_kb(tmp_path / "short", server, 50)
    jobs_short = server.counters.jobs_created
    long = await _peak_rss_kb(tmp_path / "long", server, 500)
    assert jobs_short == 50 and server.counters.jobs_created == 550
    uploads = server.counters.upload_sizes
    per_page_kb = sum(uploads) / len(uploads) / 1024 if uploads else 0
    assert per_page_kb > 60, "pages too small for the check to mean anything"
    grown_mb = (long - short) / 1024
    assert grown_mb < 10, f"peak RSS grew {grown_mb:.1f} MB from 50 to 500 pages ({short} -> {long} KB)"
