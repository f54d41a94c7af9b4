"""The hosted model's limits: A4 pages at 300 dpi cut into strips under an 850 px limit.

What is measured (issue 27): ``pipeline run`` against ``pipeline serve`` with the hosted model's
behaviour switched on (``--max-input-height 850``: taller uploads fail with ``INPUT_TOO_LARGE``),
the premium plan (300 submits and 300 status calls a minute) and job times of 5-20 s (uniform;
``--time-scale`` shrinks them for a quick look), in two modes side by side, each on its own
server: **polling** (the poll planner, ``polling.max_lateness_share`` from ``--share``, default
0.25) and **webhook** (each job pushed to the run's receiver when it ends). Per mode:

* pages a minute ÷ the **ideal** client's on the same jobs (target >= 0.95): from the server's
  own record of every job (``GET /_admin/jobs``: created, finished), the makespan of a client
  that submits at the rate limit (evenly, 5 a second), holds ``C`` jobs in flight and learns each
  result the instant it ends, each job taking the time it took here (``ideal_makespan``). The
  formula ``min(rate, C/L) / strips per page`` is reported beside it (``formula_pages_per_min``);
  it ignores the ramp and the tail (the last jobs' 5-20 s), which a run of a few minutes cannot;
* API calls per strip (submit + polls + downloads; target <= 2.1 with inline results);
* strips per page;
* refused jobs per 1,000 pages after the limit is learned (target <= 1): a first run with no
  configured limit learns it from the refusals (kept in the state store), the measured run on new
  pages then cuts before sending;
* lateness (a job's end to the first status answer or webhook delivery that told the client, by
  the server's clock): p50, p99, max, and the largest as a share of the job's time (target <= 25 %).

``python -m bench.hosted_strips --quick`` runs 3 learning pages and 12 measured pages at a
quarter of the job times in each mode; the full run is 3 + 150 pages at full job times.
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

import os

import aiohttp

from bench.pipeline_runs import TOKEN, counters, free_port, run_once, serve, write_config

A4_300DPI = (2480, 3508)
LIMIT = 850
RATE_PER_MIN = 300          # the premium plan's submits a minute
SECRET = "bench-webhook-secret-0123456789abcdef"
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


async def server_jobs(url: str) -> list[dict]:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{url}/_admin/jobs", headers={"Authorization": f"Bearer {TOKEN}"}) as r:
            return (await r.json())["jobs"]


def ideal_makespan(durations: list[float], in_flight: int, rate_per_s: float) -> float:
    """A client that submits job ``k`` at ``k / rate`` at the earliest, never more than
    ``in_flight`` at once, and learns each result the instant it ends; jobs in this order."""
    import heapq

    running: list[float] = []
    clock = end = 0.0
    for k, d in enumerate(durations):
        clock = max(clock, k / rate_per_s)
        if len(running) >= in_flight:
            clock = max(clock, heapq.heappop(running))
        heapq.heappush(running, clock + d)
        end = max(end, clock + d)
    return end


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


async def _run(url: str, work: Path, pages: list[int], in_flight: int, job_s: float,
               **extra: Any) -> dict[str, Any]:
    for seed in pages:
        a4_page(work / "in" / f"p{seed:04d}.png", seed)
    cfg = write_config(work, url, rate_limits__plan="premium", timeouts__job_s=max(120.0, job_s * 10),
                       concurrency__jobs_in_flight=in_flight, concurrency__min_jobs_in_flight=1, **extra)
    before, known = await counters(url), {j["id"] for j in await server_jobs(url)}
    cpu = time.process_time()
    code, report, seconds = await run_once(cfg)
    cpu = time.process_time() - cpu
    after, jobs = await counters(url), [j for j in await server_jobs(url) if j["id"] not in known]
    if code != 0:
        raise RuntimeError(f"pipeline run exited {code}: {json.dumps(report)[:800]}")
    strips = report["api_calls"]["strips"]
    done = sorted((j for j in jobs if j["finished"] is not None), key=lambda j: j["created"])
    late = [j["told"] - j["finished"] for j in done if j["told"] is not None]
    share = [(j["told"] - j["finished"]) / (j["finished"] - j["created"]) for j in done if j["told"] is not None]
    span = (max(j["told"] or j["finished"] for j in done) - min(j["created"] for j in done)) if done else 0.0
    return {"pages": len(pages), "seconds": round(seconds, 2), "client_cpu_s": round(cpu, 1),
            "server_span_s": round(span, 2), "jobs": len(jobs),
            "strips": strips["strips"], "refused_jobs": strips["refused_jobs"],
            "learned": strips["learned_max_input_height"], "limit_used": strips["limit_used"],
            "api_calls": calls(before, after), "status_polls": int(after["status_polls"]) - int(before["status_polls"]),
            "rate_limited": int(after["rate_limited"]) - int(before["rate_limited"]),
            "durations": [j["finished"] - j["created"] for j in done],
            # the submits' own pace: (jobs - 1) / rate is the least a client at the rate limit needs
            "submit_span_s": round(done[-1]["created"] - done[0]["created"], 2) if done else 0.0,
            "lateness_p50_s": round(pct(late, 0.5), 3), "lateness_p99_s": round(pct(late, 0.99), 3),
            "lateness_max_s": round(max(late, default=float("nan")), 3),
            "lateness_share_p99": round(pct(share, 0.99), 3), "lateness_share_max": round(max(share, default=0.0), 3),
            "not_told": len(done) - len(late), "polling": report.get("api_calls", {}).get("polling"),
            "window": report.get("api_calls", {}).get("jobs_in_flight")}  # did the adaptive window cut?


def one_mode(mode: str, learn_pages: int, pages: int, lo: float, hi: float, in_flight: int,
             share: float | None, status_calls: int | None = None) -> dict[str, Any]:
    mean = (lo + hi) / 2
    args = ["--profile", "premium", "--max-input-height", str(LIMIT), "--latency", f"{mean:g}",
            "--latency-jitter", f"{(hi - lo) / 2:g}"]
    extra: dict[str, Any] = {"polling__max_lateness_share": share, "polling__status_calls_per_job": status_calls}
    if mode == "webhook":
        args += ["--allow-http-webhooks", "--webhook-secret", SECRET]
        os.environ["PIPELINE_BENCH_WEBHOOK_SECRET"] = SECRET
        port = free_port()
        extra.update(webhook__enabled=True, webhook__listen_port=port,
                     webhook__public_url=f"http://127.0.0.1:{port}/deapi/webhook",
                     webhook__secret_env="PIPELINE_BENCH_WEBHOOK_SECRET", webhook__wait_s=max(60.0, hi * 3))
    with tempfile.TemporaryDirectory(prefix="bench-strips-") as tmp, serve(*args) as url:
        work = Path(tmp)
        learn = asyncio.run(_run(url, work, list(range(learn_pages)), in_flight, mean, **extra))
        # the measured run: new pages, the same state store (the learned limit), a fresh tree
        measured = asyncio.run(_run(url, work, list(range(1000, 1000 + pages)), in_flight, mean, **extra))
    learn.pop("durations")
    durations = measured.pop("durations")
    ideal = ideal_makespan(durations, in_flight, RATE_PER_MIN / 60)
    strips_per_page = measured["strips"] / pages
    formula = min(RATE_PER_MIN, in_flight * 60 / mean) / strips_per_page
    pages_per_min = pages / measured["seconds"] * 60
    return {"mode": mode, "in_flight": in_flight, "gap_share": share if mode == "polling" else None,
            "status_calls_per_job": status_calls if mode == "polling" else None, "learning_run": learn,
            "measured_run": measured, "strips_per_page": round(strips_per_page, 2),
            "pages_per_min": round(pages_per_min, 2),
            "ideal_makespan_s": round(ideal, 2), "ideal_pages_per_min": round(pages / ideal * 60, 2),
            "of_ideal": round(ideal / measured["seconds"], 3),
            "of_ideal_server_span": round(ideal / measured["server_span_s"], 3) if measured["server_span_s"] else None,
            "formula_pages_per_min": round(formula, 2), "of_formula": round(pages_per_min / formula, 3),
            "api_calls_per_strip": round(measured["api_calls"] / max(1, measured["jobs"]), 3),
            "refused_per_1000_pages_after_learning": round(1000 * measured["refused_jobs"] / pages, 2)}


def bench(learn_pages: int, pages: int, time_scale: float, in_flight: int, modes: list[str],
          share: float | None, status_calls: int | None = None) -> dict[str, Any]:
    lo, hi = (t * time_scale for t in JOB_S)
    rows = [one_mode(m, learn_pages, pages, lo, hi, in_flight, share, status_calls) for m in modes]
    return {"bench": "hosted_strips", "limit_px": LIMIT, "job_s": [round(lo, 2), round(hi, 2)], "in_flight": in_flight,
            "pages": pages, "rows": rows,
            "note": ("a quick run is mostly ramp-up and tail; the ideal client has them too" if pages < 100 else "")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="3 + 12 pages at a quarter of the job times, each mode")
    p.add_argument("--pages", type=int, default=150)
    p.add_argument("--learn-pages", type=int, default=3)
    p.add_argument("--time-scale", type=float, default=1.0, help="multiplies the 5-20 s job times")
    p.add_argument("--in-flight", type=int, default=100,
                   help="jobs in flight (default 100: 5 submits/s x (12.5 s + lateness), with room for the spread)")
    p.add_argument("--mode", action="append", choices=("polling", "webhook"), help="default: both")
    p.add_argument("--share", type=float, default=0.25, help="polling.max_lateness_share (default 0.25)")
    p.add_argument("--status-calls", type=int, default=None,
                   help="polling.status_calls_per_job (default: from the plan, premium 1, which widens the bound)")
    args = p.parse_args(argv)
    if args.quick:
        args.pages, args.time_scale = 12, 0.25
    t0 = time.perf_counter()
    result = bench(args.learn_pages, args.pages, args.time_scale, args.in_flight, args.mode or ["polling", "webhook"],
                   args.share, args.status_calls)
    result["bench_seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
