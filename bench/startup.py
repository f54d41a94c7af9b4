"""Benchmark: start to first submit, and the client's resident memory at that moment.

Why: the archival outputs (fpdf2 with fontTools, pikepdf, the ALTO/hOCR/PDF writers) and numpy
used to be imported by every run, used or not (issue 25: 0.36 s grew to about 1.4 s, 62 MB to
116 MB). Each repeat starts ``python -m pipeline run`` against the project's server on
loopback (fast engine, jobs held pending so the process is idle after its first submit) and
measures the seconds from the process start to the server's first created job, and the
process's RSS then. Two variants side by side in one run: the client as it is (archival
writers loaded when first needed) and the same client with those modules imported up front,
as before; the ratio is what loading them lazily saves.

    python -m bench.startup [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

EAGER = ("import fpdf, fontTools.ttLib, numpy, pikepdf, pipeline.formats.alto, pipeline.formats.hocr, "
         "pipeline.formats.pdf, pipeline.formats.pdf_overlay, pipeline.formats.pdf_text; ")
LAUNCH = "import sys; {pre}from pipeline.cli import main; sys.exit(main())"
TOKEN = "bench-token"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def one(srv, cfg: Path, pre: str) -> tuple[float, float]:
    before = srv.counters.jobs_created
    env = dict(os.environ, BENCH_TOKEN=TOKEN)
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", LAUNCH.format(pre=pre), "run", str(cfg),
                                                env=env, stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.DEVNULL)
    while srv.counters.jobs_created == before:
        if proc.returncode is not None:
            raise RuntimeError(f"the run ended (exit {proc.returncode}) before submitting")
        await asyncio.sleep(0.002)
    seconds = time.perf_counter() - started
    memory = rss_mb(proc.pid)
    proc.terminate()
    await proc.wait()
    return seconds, memory


async def measure(repeat: int) -> dict:
    from PIL import Image

    from pipeline.server import EmbeddedServer, FaultConfig, ServerConfig

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "in").mkdir()
        Image.new("L", (400, 300), 255).save(root / "in" / "page.png")
        async with EmbeddedServer(ServerConfig(engine="fast", tokens=(TOKEN,), profile="unlimited",
                                               faults=FaultConfig(latency=60.0))) as srv:
            rows = {"lazy": [], "eager": []}
            for i in range(repeat):
                for variant, pre in (("lazy", ""), ("eager", EAGER)):   # interleaved: same machine load
                    cfg = root / f"{variant}-{i}.yaml"
                    cfg.write_text(yaml.safe_dump({
                        "input": str(root / "in"), "output": str(root / f"out-{variant}-{i}"), "progress": "off",
                        "shutdown_grace_s": 0.1, "outputs": ["txt", "json"],
                        "api": {"base_url": srv.base_url, "token_env": "BENCH_TOKEN"}}))
                    rows[variant].append(await one(srv, cfg, pre))
    med = {v: (statistics.median(s for s, _ in r), statistics.median(m for _, m in r)) for v, r in rows.items()}
    return {"bench": "startup", "repeat": repeat,
            "first_submit_s": round(med["lazy"][0], 3), "idle_rss_mb": round(med["lazy"][1], 1),
            "eager_first_submit_s": round(med["eager"][0], 3), "eager_idle_rss_mb": round(med["eager"][1], 1),
            "time_ratio": round(med["lazy"][0] / med["eager"][0], 3),
            "rss_ratio": round(med["lazy"][1] / med["eager"][1], 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.repeat))), flush=True)


if __name__ == "__main__":
    main()
