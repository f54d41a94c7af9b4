"""Control scenarios: `pipeline run` beside an oracle client and a naive client, in one run.

Why side by side: these machines are noisy, so every figure is a ratio of clients measured one
after another against the same server settings, in the same process tree:

* the **oracle** polls exactly when a job is done, by the server's own clock: the server sends
  it a webhook on loopback when the job ends, and it then asks ``request-status`` once. Nothing
  that polls can do better;
* the **naive** client starts all its tasks up front (a semaphore of 64 around each job) and
  polls every second, the SDK's default;
* **pipeline** is the real ``Runner`` over a tree of files, with its defaults.

Lateness (seconds from a job's end to the first status answer that said so) is measured by the
server itself (``lateness_s`` in its counters), never estimated by the client.

Scenarios (``--only NAME`` runs one; ``--quick`` shrinks them):

* ``steady``: job time 0.5 s, 64 in flight: >= 0.95 of the oracle, <= 2.1 API calls a file;
* ``lognormal``: job times log-normal (median 2 s, 95th percentile 10 s): ahead of naive with no
  more calls a file, >= 0.85 of the oracle;
* ``queueing``: each job holds one of 2 engine slots for 0.3 s, 64 in flight: >= 0.9 of the
  oracle, lateness p95 <= 0.5 s;
* ``storm``: 20 % random 429 + 5 % 5xx: adaptive >= 0.8 of the fixed window (median of 3 pairs);
* ``premium``: the premium profile (300 submits/min): >= 0.95 of the limit, <= 1 % of calls 429;
* ``stop``: SIGTERM to a 20,000-file run with 30 s jobs: exits within ``shutdown_grace_s`` + 5 s
  (the issue's target), and within ``shutdown_grace_s`` itself (the README's promise);
* ``memory``: peak RSS of runs of N and 4N files (0.05 s jobs) and the first submit on a
  1,000,000-entry tree with 100 images (< 1 s);
* ``embedded``: the embedded default on real pages (``../shared/data``) beside the engine alone.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from PIL import Image

from bench.pipeline_runs import TOKEN, counters, free_port, run_once, serve, write_config

API = "/api/v1/client"
ROOT = Path(__file__).resolve().parents[1]


def payloads(n: int) -> list[bytes]:
    """``n`` distinct small PNGs (one image, a different trailing run each: the hash differs)."""
    buf = io.BytesIO()
    Image.new("L", (128, 128), 255).save(buf, "PNG")
    base = buf.getvalue()
    return [base + i.to_bytes(4, "big") for i in range(n)]


def write_tree(root: Path, data: list[bytes]) -> None:
    for i, blob in enumerate(data):
        d = root / f"d{i // 500:03d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{i:06d}.png").write_bytes(blob)


def form(blob: bytes, webhook: str | None = None) -> aiohttp.FormData:
    f = aiohttp.FormData()
    f.add_field("image", blob, filename="p.png", content_type="image/png")
    f.add_field("model", "Nanonets_Ocr_S_F16")
    f.add_field("return_result_in_response", "true")
    if webhook:
        f.add_field("webhook_url", webhook)
    return f


HEADERS = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}


async def _submit(s: aiohttp.ClientSession, url: str, blob: bytes, webhook: str | None = None) -> str:
    while True:
        async with s.post(f"{url}{API}/img2txt", data=form(blob, webhook), headers=HEADERS) as r:
            if r.status == 200:
                return (await r.json())["data"]["request_id"]
            await asyncio.sleep(float(r.headers.get("Retry-After", "1") or 1) if r.status == 429 else 0.2)


async def _status(s: aiohttp.ClientSession, url: str, rid: str) -> dict | None:
    async with s.get(f"{url}{API}/request-status/{rid}", headers=HEADERS) as r:
        if r.status != 200:
            return None
        return (await r.json())["data"]


async def naive_client(url: str, data: list[bytes], in_flight: int = 64, interval: float = 1.0) -> float:
    """All tasks up front, a fixed 1 s poll: the simplest client that works."""
    sem = asyncio.Semaphore(in_flight)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=in_flight + 8)) as s:
        async def one(blob: bytes) -> None:
            async with sem:
                rid = await _submit(s, url, blob)
                while True:
                    await asyncio.sleep(interval)
                    st = await _status(s, url, rid)
                    if st and st["status"] in ("done", "error"):
                        return

        t0 = time.perf_counter()
        await asyncio.gather(*(one(b) for b in data))
        return time.perf_counter() - t0


async def oracle_client(url: str, data: list[bytes], in_flight: int = 64) -> float:
    """Polls once, exactly when the server says the job ended (its webhook on loopback)."""
    ended: dict[str, asyncio.Event] = {}

    async def hook(request: web.Request) -> web.Response:
        body = await request.json()
        d = body.get("data") or {}
        if body.get("event") in ("job.completed", "job.failed"):
            ended.setdefault(d.get("job_request_id"), asyncio.Event()).set()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    sem = asyncio.Semaphore(in_flight)
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=in_flight + 8)) as s:
            async def one(blob: bytes) -> None:
                async with sem:
                    rid = await _submit(s, url, blob, f"http://127.0.0.1:{port}/hook")
                    await ended.setdefault(rid, asyncio.Event()).wait()
                    await _status(s, url, rid)

            t0 = time.perf_counter()
            await asyncio.gather(*(one(b) for b in data))
            return time.perf_counter() - t0
    finally:
        await runner.cleanup()


async def pipeline_client(url: str, data: list[bytes], work: Path, **cfg: Any) -> tuple[float, dict]:
    """The real Runner with its own polling defaults (the bench config's tuned ones removed)."""
    import yaml

    write_tree(work / "in", data)
    config = write_config(work, url, **{"concurrency__min_jobs_in_flight": 1, "concurrency__jobs_in_flight": 64,
                                        **cfg})
    doc = yaml.safe_load(config.read_text())
    doc.pop("polling", None)
    config.write_text(yaml.safe_dump(doc))
    code, report, seconds = await run_once(config)
    if code != 0:
        raise RuntimeError(f"pipeline run exited {code}: {json.dumps(report)[:500]}")
    return report.get("duration_s", seconds), report


def calls(before: dict, after: dict) -> int:
    return sum(int(after.get(k, 0)) - int(before.get(k, 0)) for k in ("submits", "status_polls", "downloads"))


async def measure(url: str, name: str, fn, n: int) -> dict[str, Any]:
    before = await counters(url)
    out = await fn()
    after = await counters(url)
    seconds, report = (out if isinstance(out, tuple) else (out, None))
    row = {"client": name, "files": n, "seconds": round(seconds, 2), "files_per_s": round(n / seconds, 2),
           "api_calls_per_file": round(calls(before, after) / n, 3),
           "rate_limited": int(after.get("rate_limited", 0)) - int(before.get("rate_limited", 0)),
           "lateness": after.get("lateness_s")}
    if report is not None:
        row["window"] = report.get("api_calls", {}).get("jobs_in_flight")
        row["polling"] = report.get("api_calls", {}).get("polling")
    return row


def payloads_shifted(n: int) -> list[bytes]:
    """The pipeline's files differ from the other clients' (the server would not care; the
    pipeline's own state must not dedupe against nothing) - same size, other bytes."""
    return [b + b"pipe" for b in payloads(n)]


def with_ratios(rows: list[dict]) -> dict[str, Any]:
    by = {r["client"]: r for r in rows}
    o, nv, p = by["oracle"], by["naive"], by["pipeline"]
    return {"rows": rows, "pipeline_vs_oracle": round(p["files_per_s"] / o["files_per_s"], 3),
            "naive_vs_oracle": round(nv["files_per_s"] / o["files_per_s"], 3),
            "pipeline_vs_naive": round(p["files_per_s"] / nv["files_per_s"], 3)}


def _one(url: str, n: int, work: Path, who: str, **pipeline_cfg: Any) -> list[dict]:
    data = payloads(n) if who != "pipeline" else payloads_shifted(n)
    fn = {"oracle": lambda: oracle_client(url, data), "naive": lambda: naive_client(url, data),
          "pipeline": lambda: pipeline_client(url, data, work, **pipeline_cfg)}[who]
    work.mkdir(parents=True, exist_ok=True)
    return [asyncio.run(measure(url, who, fn, n))]


def _scenario(name: str, n: int, work: Path, *serve_args: str) -> dict[str, Any]:
    rows = []
    for who in ("oracle", "naive", "pipeline"):
        with serve(*serve_args, "--allow-http-webhooks") as url:
            rows.extend(_one(url, n, work / who, who))
    return {"scenario": name, **with_ratios(rows)}


def scenario_storm(n: int, work: Path, pairs: int = 3) -> dict[str, Any]:
    """The fixed and the adaptive window, one after the other, ``pairs`` times: one pair's ratio
    moved from 0.73 to 1.18 between runs on the same code (the same seeded faults, 166 429s
    each; where they fall, on a submit or a poll, moves a run by seconds), so the figure is the
    median of the pairs', with their range."""
    rows, ratios = [], []
    for i in range(pairs):
        pair = []
        for adaptive in (False, True):
            with serve("--latency", "0.5", "--fault", "http_429=0:0.2", "--fault", "http_5xx=0:0.05",
                       "--fault", "retry_after=1") as url:
                row = _one(url, n, work / f"p{i}a{int(adaptive)}", "pipeline", concurrency__adaptive=adaptive,
                           retries__max_attempts=10)[0]
                row["client"] = "pipeline adaptive" if adaptive else "pipeline fixed 64"
                pair.append(row)
        rows.extend(pair)
        ratios.append(round(pair[1]["files_per_s"] / pair[0]["files_per_s"], 3))
    return {"scenario": "storm", "rows": rows, "pair_ratios": ratios,
            "adaptive_vs_fixed": round(statistics.median(ratios), 3)}


def scenario_premium(n: int, work: Path) -> dict[str, Any]:
    with serve("--latency", "0.5", "--profile", "premium") as url:
        row = _one(url, n, work, "pipeline", rate_limits__plan="premium")[0]
    per_min = row["files_per_s"] * 60
    total_calls = row["api_calls_per_file"] * n
    return {"scenario": "premium", "rows": [row], "submits_per_min": round(per_min, 1),
            "of_limit": round(per_min / 300, 3), "share_429": round(row["rate_limited"] / max(1, total_calls), 4)}


def _peak_rss_of(cmd: list[str], env: dict, cwd: Path) -> tuple[int, float, str]:
    import subprocess

    proc = subprocess.run(["/usr/bin/env", "python3", "-c",
                           "import resource,subprocess,sys;p=subprocess.run(sys.argv[1:]);"
                           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr);"
                           "sys.exit(p.returncode)", *cmd], env=env, cwd=cwd, capture_output=True, text=True)
    rss_kb = int(proc.stderr.strip().splitlines()[-1])
    return proc.returncode, rss_kb / 1024, proc.stderr


def scenario_memory(n: int, work: Path) -> dict[str, Any]:
    env = dict(os.environ, PIPELINE_BENCH_TOKEN=TOKEN)
    rows = []
    with serve("--latency", "0.05") as url:
        for size in (n, 4 * n):
            w = work / f"m{size}"
            write_tree(w / "in", [b + f"m{size}".encode() for b in payloads(size)])
            cfg = write_config(w, url, concurrency__jobs_in_flight=64, concurrency__min_jobs_in_flight=1)
            t0 = time.perf_counter()
            code, rss, err = _peak_rss_of([sys.executable, "-m", "pipeline", "run", str(cfg)], env, ROOT)
            rows.append({"files": size, "exit": code, "peak_rss_mb": round(rss, 1),
                         "seconds": round(time.perf_counter() - t0, 1)})
    first = first_submit_on_sparse_tree(work / "sparse")
    return {"scenario": "memory", "rows": rows, "rss_growth_mb": round(rows[1]["peak_rss_mb"] - rows[0]["peak_rss_mb"], 1),
            "first_submit_s": first}


def first_submit_on_sparse_tree(root: Path, entries: int = 1_000_000, images: int = 100) -> float:
    """Seconds from `pipeline run` starting to the server's first job, on a tree of ``entries``
    names of which ``images`` match (the rest are .txt files)."""
    import subprocess

    from bench.walk_tree import make_tree

    if not (root / "in").exists():
        make_tree(root / "in", entries, 1000)  # empty *.png names
        for p in (root / "in").rglob("*.png"):
            p.rename(p.with_suffix(".txt"))
        blobs = payloads(images)
        for i in range(images):  # spread through the tree, the first one early
            d = root / "in" / f"d{(i * (entries // 1000)) // images:05d}"
            (d / f"img{i:03d}.png").write_bytes(blobs[i])
    env = dict(os.environ, PIPELINE_BENCH_TOKEN=TOKEN)
    with serve() as url:
        cfg = write_config(root, url)
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "pipeline", "run", str(cfg)], env=env, cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while True:
                c = asyncio.run(counters(url))
                if c.get("jobs_created", 0) >= 1:
                    return round(time.perf_counter() - t0, 3)
                if proc.poll() is not None:
                    return float("nan")
                time.sleep(0.01)
        finally:
            proc.kill()
            proc.wait()


def scenario_stop(n: int, work: Path, grace: float = 5.0) -> dict[str, Any]:
    import subprocess

    env = dict(os.environ, PIPELINE_BENCH_TOKEN=TOKEN)
    write_tree(work / "in", payloads(n))
    with serve("--latency", "30") as url:
        cfg = write_config(work, url, shutdown_grace_s=grace)
        proc = subprocess.Popen([sys.executable, "-m", "pipeline", "run", str(cfg)], env=env, cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        while asyncio.run(counters(url)).get("jobs_created", 0) < 64:
            time.sleep(0.05)
        t0 = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(grace + 120)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = None
        seconds = time.perf_counter() - t0
    return {"scenario": "stop", "files": n, "grace_s": grace, "exit": code, "seconds_to_exit": round(seconds, 2),
            "within_grace_plus_5": seconds <= grace + 5, "within_grace": seconds <= grace}


def scenario_embedded(pages: int, work: Path) -> dict[str, Any]:
    """The embedded default (RapidOCR, ``api.embedded.workers`` processes) on real pages beside
    the same engine pool fed directly, as many pages at once as it has workers."""
    shared = ROOT.parent / "shared" / "data"
    files = sorted(p for p in shared.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".tif", ".tiff"))
    files = files[:pages]
    if not files:
        return {"scenario": "embedded", "skipped": f"no pages under {shared}"}
    import shutil

    from pipeline.inputs.prepare import prepare_file
    from pipeline.ocr.pool import EngineRunner

    (work / "in").mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(files):
        shutil.copy(f, work / "in" / f"{i:03d}{f.suffix.lower()}")

    from pipeline.config import EmbeddedConfig

    workers = EmbeddedConfig().workers

    async def engine_alone() -> float:
        runner = EngineRunner("rapidocr", workers=workers)
        await runner.start()
        try:
            prepared = [prepare_file(f).pages[0].data for f in files]  # what the engine is sent
            slots = asyncio.Semaphore(workers)

            async def one(blob: bytes) -> None:
                async with slots:
                    await runner.recognize(blob, "en")

            t0 = time.perf_counter()
            await asyncio.gather(*(one(b) for b in prepared))
            return time.perf_counter() - t0
        finally:
            await runner.close()

    alone = asyncio.run(engine_alone())
    cfg = work / "config.yaml"
    cfg.write_text(f"input: {work / 'in'}\noutput: {work / 'out'}\nprogress: off\n")
    from pipeline.config import load_config
    from pipeline.run.runner import Runner

    async def run() -> tuple[int, dict]:
        r = Runner(load_config(cfg), stream=io.StringIO())
        code = await r.run()
        return int(code), r.report or {}

    code, report = asyncio.run(run())
    seconds = report.get("duration_s", float("nan"))
    return {"scenario": "embedded", "pages": len(files), "exit": code, "workers": workers,
            "engine_pages_per_min": round(60 * len(files) / alone, 2),
            "pipeline_pages_per_min": round(60 * len(files) / seconds, 2),
            "pipeline_vs_engine": round(alone / seconds, 3)}


SCENARIOS = {
    "steady": (lambda q, w: _scenario("steady", 500 if q else 2000, w, "--latency", "0.5")),
    "lognormal": (lambda q, w: _scenario("lognormal", 300 if q else 1000, w, "--latency", "2",
                                         "--fault", "latency_sigma=0.978")),
    "queueing": (lambda q, w: _scenario("queueing", 150 if q else 400, w, "--fault-engine-slots", "2",
                                        "--fault-engine-seconds", "0.3")),
    "storm": (lambda q, w: scenario_storm(300 if q else 1000, w)),
    "premium": (lambda q, w: scenario_premium(150 if q else 500, w)),
    "stop": (lambda q, w: scenario_stop(5000 if q else 20000, w)),
    "memory": (lambda q, w: scenario_memory(2500 if q else 10000, w)),
    "embedded": (lambda q, w: scenario_embedded(4 if q else 8, w)),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.control", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", action="append", choices=list(SCENARIOS))
    args = ap.parse_args(argv)
    for name in args.only or list(SCENARIOS):
        with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
            try:
                result = SCENARIOS[name](args.quick, Path(tmp))
            except Exception as exc:  # noqa: BLE001 - one scenario failing must not hide the others
                result = {"scenario": name, "error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps({"bench": "control", **result}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
