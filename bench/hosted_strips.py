"""The hosted model's limits: A4 pages at 300 dpi cut into strips under an 850 px limit.

What is measured, side by side in one run (issue 27): ``pipeline run`` against ``pipeline serve``
with the hosted model's behaviour switched on (``--max-input-height 850``: taller uploads fail
with ``INPUT_TOO_LARGE``), the premium plan (300 submits a minute) and job times of 5-20 s
(uniform; ``--time-scale`` shrinks them for a quick look), beside the **oracle**: the best any
client can do, ``min(rate limit, C / L)`` jobs a minute (``C`` jobs in flight, ``L`` the mean job
time), divided by the strips a page needs. The figures:

* pages a minute / the oracle's (target >= 0.95 on a run long enough to fill the pipe: a quick
  run is mostly ramp-up and tail, and says so);
* API calls per strip (submit + polls + downloads; target <= 2.1 with inline results);
* strips per page;
* refused jobs per 1,000 pages after the limit is learned (target <= 1): a first run with no
  configured limit learns it from the refusals (kept in the state store), the measured run on new
  pages then cuts before sending.

``python -m bench.hosted_strips --quick`` runs 3 learning pages and 12 measured pages at a
quarter of the job times (under a minute); the full run is 3 + 150 pages at full job times.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from bench.pipeline_runs import counters, run_once, serve, write_config

A4_300DPI = (2480, 3508)
LIMIT = 850
RATE_PER_MIN = 300          # the premium plan's submits a minute
JOB_S = (5.0, 20.0)         # the hosted model's job times
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
WORDS = ("archive letter minutes council river harvest ledger parish school railway mill bridge "
         "winter market estate survey county deed").split()


def a4_page(path: Path, seed: int) -> None:
    """A 300 dpi A4 page of 10 pt text lines (about 60), distinct per seed, some paragraph breaks."""
    rnd = random.Random(seed)
    img = Image.new("L", A4_300DPI, 255)
    draw = ImageDraw.Draw(img)
    try:
        font = ImageFont.truetype(FONT, 42)
    except OSError:
        font = ImageFont.load_default(size=42)
    y = 240
    while y < A4_300DPI[1] - 300:
        line = " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(8, 13)))
        draw.text((240, y), f"{seed}.{y} {line}", fill=0, font=font)
        y += 52 if rnd.random() > 0.12 else 110
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, "PNG", compress_level=1)


def calls(before: dict, after: dict) -> int:
    return sum(int(after.get(k, 0)) - int(before.get(k, 0)) for k in ("submits", "status_polls", "downloads"))


async def _run(url: str, work: Path, pages: list[int], in_flight: int, job_s: float) -> dict[str, Any]:
    for seed in pages:
        a4_page(work / "in" / f"p{seed:04d}.png", seed)
    cfg = write_config(work, url, rate_limits__plan="premium", timeouts__job_s=max(120.0, job_s * 10),
                       concurrency__jobs_in_flight=in_flight, concurrency__min_jobs_in_flight=1)
    before = await counters(url)
    code, report, seconds = await run_once(cfg)
    after = await counters(url)
    if code != 0:
        raise RuntimeError(f"pipeline run exited {code}: {json.dumps(report)[:800]}")
    strips = report["api_calls"]["strips"]
    jobs = int(after["jobs_created"]) - int(before["jobs_created"])
    return {"pages": len(pages), "seconds": round(seconds, 2), "jobs": jobs, "strips": strips["strips"],
            "refused_jobs": strips["refused_jobs"], "learned": strips["learned_max_input_height"],
            "limit_used": strips["limit_used"],
            "api_calls": calls(before, after), "rate_limited": int(after["rate_limited"]) - int(before["rate_limited"])}


def bench(learn_pages: int, pages: int, time_scale: float, in_flight: int) -> dict[str, Any]:
    lo, hi = (t * time_scale for t in JOB_S)
    mean = (lo + hi) / 2
    with tempfile.TemporaryDirectory(prefix="bench-strips-") as tmp, \
            serve("--profile", "premium", "--max-input-height", str(LIMIT), "--latency", f"{mean:g}",
                  "--latency-jitter", f"{(hi - lo) / 2:g}") as url:
        work = Path(tmp)
        learn = asyncio.run(_run(url, work, list(range(learn_pages)), in_flight, mean))
        # the measured run: new pages, the same state store (the learned limit), a fresh tree
        measured = asyncio.run(_run(url, work, list(range(1000, 1000 + pages)), in_flight, mean))
    strips_per_page = measured["strips"] / pages
    oracle_jobs_per_min = min(RATE_PER_MIN, in_flight * 60 / mean)
    oracle_pages_per_min = oracle_jobs_per_min / strips_per_page
    pages_per_min = pages / measured["seconds"] * 60
    return {
        "bench": "hosted_strips", "limit_px": LIMIT, "job_s": [round(lo, 2), round(hi, 2)], "in_flight": in_flight,
        "learning_run": learn, "measured_run": measured,
        "strips_per_page": round(strips_per_page, 2),
        "pages_per_min": round(pages_per_min, 2),
        "oracle_pages_per_min": round(oracle_pages_per_min, 2),
        "of_oracle": round(pages_per_min / oracle_pages_per_min, 3),
        "api_calls_per_strip": round(measured["api_calls"] / max(1, measured["jobs"]), 3),
        "refused_per_1000_pages_after_learning": round(1000 * measured["refused_jobs"] / pages, 2),
        "note": ("a quick run is mostly ramp-up and tail: of_oracle is only meaningful on the full run"
                 if pages < 100 else ""),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="3 + 12 pages at a quarter of the job times")
    p.add_argument("--pages", type=int, default=150)
    p.add_argument("--learn-pages", type=int, default=3)
    p.add_argument("--time-scale", type=float, default=1.0, help="multiplies the 5-20 s job times")
    p.add_argument("--in-flight", type=int, default=64)
    args = p.parse_args(argv)
    if args.quick:
        args.pages, args.time_scale = 12, 0.25
    t0 = time.perf_counter()
    result = bench(args.learn_pages, args.pages, args.time_scale, args.in_flight)
    result["bench_seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
