"""Whole-pipeline benchmarks against the project's server running in its own process.

Each scenario prints one JSON line (machine-readable) and the suite prints a table:

* ``throughput``: 2,000 files, job latency 0.5 s, 64 jobs in flight, fast engine; files/s
  against the ideal 64 / 0.5 = 128 files/s (target >= 0.95), and API calls per file (target
  <= 2.1 with inline results).
* ``webhook``: the same run in webhook mode: API calls per file beside polling mode.
* ``rate_limited``: a custom profile of 600 submits/min: achieved submit rate / limit (target
  >= 0.95) and the number of 429s (target: a handful).
* ``daily_limit``: the basic profile (5 submits/min, 50/day): the run stops submitting when the
  day's quota is spent and exits 3 with the rest pending, instead of sleeping until midnight.
* ``rerun``: a rerun over 100,000 done files: seconds (target < 10) and API calls (target 0).

The server runs as ``python -m pipeline serve`` in a subprocess so that client and server do
not share one event loop (as in production), and its counters are read over its admin route.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import aiohttp
import yaml
from PIL import Image

TOKEN = "bench-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(*args: str) -> Iterator[str]:
    """``python -m pipeline serve`` on a free loopback port; yields its base URL."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "serve", "--host", "127.0.0.1", "--port", str(port),
                             "--engine", "fast", "--token", TOKEN, "--admin", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"server did not start: {proc.stderr.read().decode()[-2000:]}")
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


async def counters(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{url}/_admin/counters", headers={"Authorization": f"Bearer {TOKEN}"}) as r:
            return await r.json()


def make_inputs(root: Path, n: int, seed: int = 0) -> None:
    """``n`` small distinct PNGs (within the model's minimum size, so they upload untouched)."""
    rnd = random.Random(seed)
    for i in range(n):
        d = root / f"d{i // 500:03d}"
        d.mkdir(parents=True, exist_ok=True)
        img = Image.frombytes("L", (128, 128), rnd.randbytes(128 * 128))
        img.save(d / f"{i:06d}.png", "PNG", compress_level=1)


def write_config(work: Path, url: str, **extra: Any) -> Path:
    data: dict[str, Any] = {
        "input": str(work / "in"), "output": str(work / "out"), "progress": "off",
        "api": {"base_url": url, "token_env": "PIPELINE_BENCH_TOKEN", "return_result_in_response": True},
        "concurrency": {"jobs_in_flight": 64, "min_jobs_in_flight": 64, "prepare_workers": 4},
        "polling": {"first_poll_s": 0.5, "min_interval_s": 0.05, "max_interval_s": 2.0},
        "retries": {"backoff_initial_s": 0.05, "backoff_max_s": 1.0},
    }
    for key, value in extra.items():
        node = data
        *parents, last = key.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    cfg = work / "config.yaml"
    cfg.write_text(yaml.safe_dump(data))
    return cfg


async def run_once(cfg: Path, **kw: Any) -> tuple[int, dict, float]:
    from pipeline.config import load_config
    from pipeline.run.runner import Runner

    os.environ["PIPELINE_BENCH_TOKEN"] = TOKEN
    runner = Runner(load_config(cfg), stream=io.StringIO(), **kw)
    t0 = time.perf_counter()
    code = await runner.run()
    return int(code), runner.report or {}, time.perf_counter() - t0


def api_calls(c: dict[str, Any]) -> int:
    return int(c.get("submits", 0)) + int(c.get("status_polls", 0)) + int(c.get("downloads", 0))


def bench_throughput(files: int, latency: float, in_flight: int, webhook: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-tp-") as tmp:
        work = Path(tmp)
        make_inputs(work / "in", files)
        extra_args = ["--latency", str(latency), "--allow-http-webhooks"]
        secret = "bench-webhook-secret-0123456789abcdef"
        if webhook:
            extra_args += ["--webhook-secret", secret]
        with serve(*extra_args) as url:
            extra: dict[str, Any] = {"concurrency__jobs_in_flight": in_flight,
                                     "concurrency__min_jobs_in_flight": in_flight}
            if webhook:
                port = free_port()
                os.environ["PIPELINE_BENCH_WEBHOOK_SECRET"] = secret
                extra.update(webhook__enabled=True, webhook__listen_port=port,
                             webhook__public_url=f"http://127.0.0.1:{port}/deapi/webhook",
                             webhook__secret_env="PIPELINE_BENCH_WEBHOOK_SECRET", webhook__wait_s=30)
            cfg = write_config(work, url, **extra)
            code, report, seconds = asyncio.run(run_once(cfg))
            c = asyncio.run(counters(url))
    ideal = in_flight / latency
    rate = files / seconds
    return {"bench": "webhook" if webhook else "throughput", "files": files, "latency_s": latency,
            "in_flight": in_flight, "exit_code": code, "seconds": round(seconds, 2),
            "files_per_s": round(rate, 1), "ideal_files_per_s": ideal, "ratio": round(rate / ideal, 3),
            "api_calls_per_file": round(api_calls(c) / files, 3), "submits": c.get("submits"),
            "status_polls": c.get("status_polls"), "downloads": c.get("downloads"),
            "jobs_created": c.get("jobs_created")}


def bench_rate_limited(files: int, per_minute: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-rl-") as tmp:
        work = Path(tmp)
        make_inputs(work / "in", files, seed=1)
        with serve("--profile", "custom", "--limit-submit-per-min", str(per_minute), "--latency", "0.2") as url:
            cfg = write_config(work, url, rate_limits__plan="custom", rate_limits__submit_per_minute=per_minute,
                               concurrency__jobs_in_flight=32, concurrency__min_jobs_in_flight=1)
            code, report, seconds = asyncio.run(run_once(cfg))
            c = asyncio.run(counters(url))
    jobs = int(c.get("jobs_created", 0))
    achieved_per_min = jobs / seconds * 60
    return {"bench": "rate_limited", "files": files, "limit_per_min": per_minute, "exit_code": code,
            "seconds": round(seconds, 2), "achieved_per_min": round(achieved_per_min, 1),
            "ratio": round(achieved_per_min / per_minute, 3), "http_429": c.get("rate_limited")}


def bench_daily_limit(files: int, per_day: int = 50) -> dict[str, Any]:
    """The basic plan's daily quota of 50 submits; its 5/min is raised to 600/min on both
    sides so the bench takes seconds, not ten minutes. The run must stop at the quota."""
    with tempfile.TemporaryDirectory(prefix="bench-daily-") as tmp:
        work = Path(tmp)
        make_inputs(work / "in", files, seed=2)
        with serve("--profile", "custom", "--limit-submit-per-min", "600", "--limit-submit-per-day", str(per_day),
                   "--latency", "0.05") as url:
            cfg = write_config(work, url, rate_limits__plan="custom", rate_limits__submit_per_minute=600,
                               rate_limits__submit_per_day=per_day, concurrency__jobs_in_flight=5,
                               concurrency__min_jobs_in_flight=1, retries__max_retry_after_s=120)
            code, report, seconds = asyncio.run(run_once(cfg))
            c = asyncio.run(counters(url))
    return {"bench": "daily_limit", "files": files, "exit_code": code, "seconds": round(seconds, 1),
            "jobs_created": c.get("jobs_created"), "done": report.get("this_run", {}).get("done", 0),
            "left_for_next_run": report.get("this_run", {}).get("deferred", 0), "http_429": c.get("rate_limited"),
            "stop_reason": report.get("stop_reason")}


def bench_rerun(files: int) -> dict[str, Any]:
    """Seed ``files`` done files through the state store's API, then time a real rerun."""
    from pipeline.config import load_config
    from pipeline.formats.writer import SUFFIXES, output_path
    from pipeline.run.workkeys import settings_fingerprint, work_key
    from pipeline.run.state import StateStore

    with tempfile.TemporaryDirectory(prefix="bench-rerun-") as tmp:
        work = Path(tmp)
        inp = work / "in"
        for i in range(files):
            d = inp / f"d{i // 1000:03d}"
            if i % 1000 == 0:
                d.mkdir(parents=True)
            (d / f"{i:06d}.png").write_bytes(b"")
        with serve() as url:
            cfg = write_config(work, url)
            config = load_config(cfg)
            fp = settings_fingerprint(config)
            store = StateStore(config.state_file)
            store._db.execute("BEGIN")
            for dirpath, _, names in os.walk(inp):
                for name in names:
                    p = Path(dirpath) / name
                    st = p.stat()
                    sha = f"{hash(p.name) & (2**64 - 1):064x}"
                    rel = p.relative_to(inp).as_posix()
                    # a done file lists its outputs (a run regenerates any it does not list)
                    outputs = [output_path(config.output, rel, SUFFIXES[n]).relative_to(config.output).as_posix()
                               for n in config.outputs]
                    store.set_file(rel, "done", size=st.st_size, mtime_ns=st.st_mtime_ns, inode=st.st_ino,
                                   sha256=sha, work_key=work_key(sha, fp), outputs=outputs)
            store._db.execute("COMMIT")
            store.close()
            before = asyncio.run(counters(url))
            code, report, seconds = asyncio.run(run_once(cfg))
            after = asyncio.run(counters(url))
    calls = sum(int(after.get(k, 0)) - int(before.get(k, 0))
                for k in ("submits", "status_polls", "downloads", "models_calls", "balance_calls", "price_calls"))
    return {"bench": "rerun", "files": files, "exit_code": code, "seconds": round(seconds, 2),
            "skipped": report.get("this_run", {}).get("skipped", 0), "api_calls": calls}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--rerun-files", type=int, default=100_000)
    ap.add_argument("--only", nargs="*", default=None,
                    help="throughput webhook rate_limited daily_limit rerun")
    args = ap.parse_args(argv)
    chosen = args.only or ["throughput", "webhook", "rate_limited", "daily_limit", "rerun"]
    results = []
    for name in chosen:
        if name == "throughput":
            r = bench_throughput(args.files, 0.5, 64)
        elif name == "webhook":
            r = bench_throughput(min(args.files, 1000), 0.5, 64, webhook=True)
        elif name == "rate_limited":
            r = bench_rate_limited(600, 600)
        elif name == "daily_limit":
            r = bench_daily_limit(60)
        elif name == "rerun":
            r = bench_rerun(args.rerun_files)
        else:
            raise SystemExit(f"unknown bench {name}")
        print(json.dumps(r), flush=True)
        results.append(r)
    print()
    for r in results:
        print(" | ".join(f"{k}={v}" for k, v in r.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
