"""The polling tail: how late the last jobs are answered when job times vary (issue 27).

Why: with job times of 2 s ± 50 %, the poll planner's optimal plan could end in one long gap
(``[..., 3.0, 63.2]`` s), and 3 of 6 runs answered their last job 17-41 s after it finished.
The planner now bounds every gap after the first poll by 25 % of the time since the submit
(``pipeline/deapi/polling.py``). This benchmark runs, side by side against the same server
settings, one after another in one process:

* **pipeline**: the real ``DeapiClient`` (its ``PollPlanner`` with the gap bound), defaults: a
  gap after a poll at ``t`` is at most ``max(0.25 t, 1 s)`` (``polling.lateness_floor_s``);
* **share only**: the same with ``lateness_floor_s: 0``, the bound ``0.25 t`` alone (at most
  every ``polling.min_interval_s``): the promise "a quarter of the job's time", paid in polls;
* **unbounded**: the same client with the bound switched off (the planner as it was);
* **naive**: a fixed 1 s poll (the SDK's default).

Jobs take ``uniform(mean - spread, mean + spread)`` seconds on the in-process server (fast
engine); ``--in-flight`` jobs at a time. Lateness is the time from the job's end to the first
status answer that said so, by the server's clock (as ``lateness_s`` in its counters, here kept
per job). Reported per client: API calls per job (submit and
status calls, counted by the server), lateness p50/p99/max in seconds, and the largest lateness
as a share of the job's time (submit to end), over all jobs and over the jobs a poll had found
still running (the bound's promise: a job done before its first poll waits for that poll, which
no gap rule can shorten). Several runs (``--runs``) because the tail is
what varies between runs; the figures are over all of them.

``python -m bench.polling_tail --quick`` is a short run (1 run of 96 jobs).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import time

from PIL import Image

from pipeline.deapi import ClientSettings, DeapiClient
from pipeline.server import EmbeddedServer, FaultConfig, ServerConfig

TOKEN = "bench-polling-tail"
MODEL = "Nanonets_Ocr_S_F16"


def png(seed: int) -> bytes:
    img = Image.new("L", (128, 128), 255)
    img.putpixel((seed % 128, seed // 128 % 128), 0)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


async def run_client(kind: str, jobs: int, in_flight: int, mean: float, spread: float, seed: int) -> dict:
    """One client over ``jobs`` jobs on a fresh server; per-job (lateness, job time) and calls."""
    cfg = ServerConfig(engine="fast", tokens=(TOKEN,), seed=seed,
                       faults=FaultConfig(latency=mean, latency_jitter=spread))
    out: list[tuple[float, float, bool]] = []
    missed: set[str] = set()   # jobs a poll found still running: past their first poll
    async with EmbeddedServer(cfg) as srv:
        told: dict[str, float] = {}   # job id -> lateness of the first status answer that said done
        observe = srv.counters.observe_status

        def observe_status(job, now: float) -> None:
            if job.finished is not None and job.id not in told:
                told[job.id] = max(0.0, now - job.finished)
            observe(job, now)

        srv.counters.observe_status = observe_status
        settings = ClientSettings(poll_gap_floor_s=0.0) if kind == "share only" else ClientSettings()
        async with DeapiClient(srv.base_url, TOKEN, settings) as api:
            if kind == "unbounded":
                api.poller.gap_share = api.poller.share = None
            finished = api.poller.finished

            def seen_finished(rid: str, lo: float, hi: float, polls: int, hinted_hit: bool = False) -> None:
                if lo > 0:
                    missed.add(rid)
                finished(rid, lo, hi, polls, hinted_hit)

            api.poller.finished = seen_finished
            sem = asyncio.Semaphore(in_flight)

            async def one(k: int) -> None:
                async with sem:
                    sent = time.monotonic()
                    rid = await api.submit_ocr(png(seed * 100_000 + k), "p.png", "image/png", model=MODEL,
                                               return_result_in_response=True)
                    if kind == "naive":
                        while True:
                            await asyncio.sleep(1.0)
                            st = await api.get_status(rid)
                            if st.terminal:
                                break
                            missed.add(rid)
                    else:
                        await api.wait_for_job(rid, 600)
                    job = srv.state.jobs.store.get(rid)   # the in-memory server's record (same clock)
                    out.append((told[rid], job.finished - sent, rid))

            t0 = time.perf_counter()
            await asyncio.gather(*(one(k) for k in range(jobs)))
            wall = time.perf_counter() - t0
        calls = srv.counters.submits + srv.counters.status_polls + srv.counters.downloads
    return {"late": [(x, t, rid in missed) for x, t, rid in out], "calls": calls, "jobs": jobs, "wall_s": wall}


def summary(runs: list[dict]) -> dict:
    late = sorted(x for r in runs for x, _, _ in r["late"])
    shares = [x / t for r in runs for x, t, _ in r["late"] if t > 0]
    past_first = [x / t for r in runs for x, t, missed in r["late"] if t > 0 and missed]
    n = len(late)
    jobs = sum(r["jobs"] for r in runs)
    return {"jobs": jobs, "api_calls_per_job": round(sum(r["calls"] for r in runs) / jobs, 3),
            "lateness_p50_s": round(late[n // 2], 3), "lateness_p95_s": round(late[min(n - 1, int(0.95 * n))], 3),
            "lateness_p99_s": round(late[min(n - 1, int(0.99 * n))], 3),
            "lateness_max_s": round(late[-1], 3), "lateness_max_share": round(max(shares), 3),
            "lateness_max_share_past_first_poll": round(max(past_first, default=0.0), 3),
            "worst_run_max_s": round(max(max(x for x, _, _ in r["late"]) for r in runs), 3),
            "wall_s": round(sum(r["wall_s"] for r in runs), 1)}


async def main_async(args: argparse.Namespace) -> dict:
    rows = {}
    for kind in ("pipeline", "share only", "unbounded", "naive"):
        runs = [await run_client(kind, args.jobs, args.in_flight, args.mean, args.spread, seed)
                for seed in range(args.runs)]
        rows[kind] = summary(runs)
    return {"bench": "polling_tail", "mean_s": args.mean, "spread_s": args.spread, "runs": args.runs,
            "in_flight": args.in_flight, "rows": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--jobs", type=int, default=300, help="jobs a run (default 300)")
    p.add_argument("--runs", type=int, default=3, help="runs of each client (default 3)")
    p.add_argument("--in-flight", type=int, default=32)
    p.add_argument("--mean", type=float, default=2.0, help="mean job time, s (default 2)")
    p.add_argument("--spread", type=float, default=1.0, help="± uniform spread, s (default 1: 2 s ± 50 %%)")
    p.add_argument("--quick", action="store_true", help="1 run of 96 jobs")
    args = p.parse_args()
    if args.quick:
        args.jobs, args.runs = 96, 1
    print(json.dumps(asyncio.run(main_async(args))), flush=True)


if __name__ == "__main__":
    main()
