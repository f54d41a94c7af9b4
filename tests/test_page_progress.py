"""A long PDF is not silent: the progress line counts pages as well as files and the ETA is by
pages, so a cron log shows a 30-page file moving while it is still the only file in flight."""

from __future__ import annotations

import io
import os
import re

from conftest import TOKEN
from helpers import write_config
from pdfs import build, write
from pipeline.exitcodes import ExitCode
from pipeline.server import EmbeddedServer, FaultConfig, ServerConfig

PAGES = 30


async def test_the_progress_line_counts_the_pages_of_a_long_pdf_before_the_file_is_done(tmp_path):
    write(tmp_path / "in" / "minutes.pdf", build([("scan", f"Minutes, page {i + 1}") for i in range(PAGES)]))
    async with EmbeddedServer(ServerConfig(engine="fast", tokens=(TOKEN,), faults=FaultConfig(latency=0.1))) as srv:
        cfg = write_config(tmp_path, srv.base_url, progress="log", log_interval_s=0.1,
                           concurrency__jobs_in_flight=2, concurrency__adaptive=False)
        from pipeline.config import load_config
        from pipeline.run.runner import Runner

        os.environ["PIPELINE_TEST_TOKEN"] = TOKEN
        runner = Runner(load_config(cfg), stream=io.StringIO())
        assert await runner.run() == ExitCode.OK
    out = runner.stream.getvalue()
    lines = [ln for ln in out.splitlines() if ln.startswith("progress:")]
    moving = [(int(m.group(1)), ln) for ln in lines
              if ln.startswith("progress: 0 done") and (m := re.search(rf"(\d+) of {PAGES} pages read", ln))]
    assert len(moving) >= 2, out                        # several lines while the one file is still in work
    counts = [n for n, _ in moving]
    assert counts == sorted(counts) and 0 < counts[0] < PAGES and len(set(counts)) >= 2, counts
    assert all("of 1 files" in ln and "ETA" in ln for n, ln in moving if n > 0), moving
    assert f"1 done ({PAGES} pages read)" in out
