"""Benchmark: the fleet over PostgreSQL beside the in-memory server, on this machine.

Two figures, each measured side by side with the in-memory server (``pipeline serve`` as one
process) so the ratio, not the absolute number, is what carries between machines:

* ``fleet_jobs``: jobs per second through the store with the instant ``fast`` engine, i.e. the
  cost of the store itself (insert, claim with SKIP LOCKED, lease, complete, status reads):
  one API replica and two workers against the in-memory server, ``--jobs`` submitted with
  ``--in-flight`` concurrent clients, each polling until its job is done.
* ``fleet_webhooks``: seconds from the first submit until the receiver has every ``job.completed``
  (``--jobs`` / 4 jobs, each with a webhook, fast engine), the fleet's database outbox (any
  member's dispatcher claims the event row, posts it, marks it sent) beside the in-memory
  server's direct sender. The cost of delivering at least once through the database.
* ``fleet_pages``: pages per minute with a real engine (``--engine``, RapidOCR by default) on
  the scribe benchmark scans from ../shared/data, with 1, 2 and 4 worker processes, beside the
  in-memory server with one engine worker. On a two-core machine 2 and 4 workers share the same
  two cores, so the figure shows where adding workers stops paying on one machine: beyond it
  the fleet scales by machines, not processes.

PostgreSQL is a throwaway cluster (``initdb``/``pg_ctl``, as the tests make it). Prints a table
and one JSON line per figure.

    python -m bench.fleet [--jobs 1000] [--in-flight 32] [--pages 12] [--engine rapidocr]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import shutil
import sys
import time
from pathlib import Path

import aiohttp
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_fleet_support import TOKEN, Fleet, auth, start_cluster  # noqa: E402
from test_server_support import Receiver  # noqa: E402

from pipeline.server import EmbeddedServer, ServerConfig  # noqa: E402

V1 = "/api/v1/client"
SCANS = ROOT.parent.parent / "shared" / "data" / "scribeocr-benchmark" / "img"
SCANS_ALT = Path("/work/shared/data/scribeocr-benchmark/img")


def small_png(i: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (160, 160), color=i % 256).save(buf, "PNG")
    return buf.getvalue()


async def submit_one(http: aiohttp.ClientSession, base_url: str, image: bytes, webhook_url: str | None = None) -> str:
    data = aiohttp.FormData()
    data.add_field("image", image, filename="p.png", content_type="image/png")
    data.add_field("model", "Nanonets_Ocr_S_F16")
    if webhook_url:
        data.add_field("webhook_url", webhook_url)
    async with http.post(base_url + V1 + "/img2txt", data=data, headers=auth()) as r:
        assert r.status == 200, await r.text()
        return (await r.json())["data"]["request_id"]


async def one_job(http: aiohttp.ClientSession, base_url: str, image: bytes) -> None:
    rid = await submit_one(http, base_url, image)
    pause = 0.01
    while True:
        async with http.get(f"{base_url}{V1}/request-status/{rid}", headers=auth()) as r:
            status = (await r.json())["data"]["status"]
        if status in ("done", "error"):
            assert status == "done", rid
            return
        await asyncio.sleep(pause)
        pause = min(pause * 1.5, 0.5)


async def drive(base_url: str, images: list[bytes], in_flight: int) -> float:
    """Seconds to get every image done with ``in_flight`` concurrent submit-and-poll clients."""
    queue = list(images)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=in_flight + 4)) as http:
        async def client() -> None:
            while queue:
                await one_job(http, base_url, queue.pop())
        t0 = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(in_flight)))
        return time.perf_counter() - t0


async def webhooks_s(base_url: str, images: list[bytes], in_flight: int) -> float:
    """Seconds from the first submit until every ``job.completed`` has reached a receiver."""
    async with Receiver() as hook, aiohttp.ClientSession() as http:
        queue = list(images)

        async def client() -> None:
            while queue:
                await submit_one(http, base_url, queue.pop(), hook.url)
        t0 = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(in_flight)))
        await hook.wait(lambda got: sum(h["X-DeAPI-Event"] == "job.completed" for h, _ in got) >= len(images),
                        timeout=600)
        return time.perf_counter() - t0


async def webhooks_memory(images: list[bytes], in_flight: int) -> float:
    async with EmbeddedServer(ServerConfig(engine="fast", tokens=(TOKEN,), allow_http_webhooks=True)) as srv:
        return await webhooks_s(srv.base_url, images, in_flight)


async def webhooks_fleet(cluster, images: list[bytes], in_flight: int) -> float:
    fleet = Fleet(cluster.create_database())
    try:
        async with aiohttp.ClientSession() as http:
            (api,), _ = await fleet.start(http, 1, 2, lease=30.0)
        return await webhooks_s(api.base_url, images, in_flight)
    finally:
        fleet.stop()


async def in_memory(images: list[bytes], in_flight: int, engine: str, engine_workers: int = 1) -> float:
    cfg = ServerConfig(engine=engine, engine_workers=engine_workers, tokens=(TOKEN,))
    async with EmbeddedServer(cfg) as srv:
        await drive(srv.base_url, images[:2], 2)  # warm the engine
        return await drive(srv.base_url, images, in_flight)


async def in_fleet(cluster, images: list[bytes], in_flight: int, engine: str, workers: int) -> float:
    fleet = Fleet(cluster.create_database())
    try:
        async with aiohttp.ClientSession() as http:
            api = fleet.add("api", lease=30.0, name="api")
            await api.ready(http)
            members = [fleet.add("worker", "--engine", engine, lease=30.0, name=f"w{i}") for i in range(workers)]
            for m in members:
                await m.ready(http, polls=12000)
        await drive(api.base_url, images[:2], 2)
        return await drive(api.base_url, images, in_flight)
    finally:
        fleet.stop()


def scans(n: int) -> list[bytes]:
    folder = SCANS if SCANS.is_dir() else SCANS_ALT
    files = sorted(folder.glob("*.png"))
    if not files:
        return []
    return [files[i % len(files)].read_bytes() for i in range(n)]


async def main_async(args: argparse.Namespace) -> list[dict]:
    rows = []
    cluster = start_cluster()
    try:
        images = [small_png(i) for i in range(args.jobs)]
        mem_s = await in_memory(images, args.in_flight, "fast")
        fleet_s = await in_fleet(cluster, images, args.in_flight, "fast", 2)
        rows.append({"bench": "fleet_jobs", "jobs": args.jobs, "in_flight": args.in_flight,
                     "memory_jobs_per_s": round(args.jobs / mem_s, 1), "fleet_jobs_per_s": round(args.jobs / fleet_s, 1),
                     "ratio": round(mem_s / fleet_s, 3)})
        print(f"fast engine, {args.jobs} jobs, {args.in_flight} in flight: memory {args.jobs / mem_s:.0f} jobs/s, "
              f"fleet (1 API + 2 workers) {args.jobs / fleet_s:.0f} jobs/s", flush=True)
        hooked = images[:max(8, args.jobs // 4)]
        mem_s = await webhooks_memory(hooked, args.in_flight)
        fleet_s = await webhooks_fleet(cluster, hooked, args.in_flight)
        rows.append({"bench": "fleet_webhooks", "jobs": len(hooked), "memory_s": round(mem_s, 2),
                     "fleet_s": round(fleet_s, 2), "ratio": round(mem_s / fleet_s, 3)})
        print(f"webhooks, {len(hooked)} jobs: every job.completed received after {mem_s:.2f} s (memory), "
              f"{fleet_s:.2f} s (fleet outbox)", flush=True)
        pages = scans(args.pages)
        if not pages:
            rows.append({"bench": "fleet_pages", "skipped": "no scans in ../shared/data/scribeocr-benchmark/img"})
            return rows
        mem_s = await in_memory(pages, 4, args.engine)
        row = {"bench": "fleet_pages", "engine": args.engine, "pages": len(pages),
               "memory_pages_per_min": round(len(pages) / mem_s * 60, 1)}
        print(f"{args.engine}, {len(pages)} pages: memory server {row['memory_pages_per_min']} pages/min", flush=True)
        for n in (1, 2, 4):
            s = await in_fleet(cluster, pages, max(4, 2 * n), args.engine, n)
            row[f"workers_{n}_pages_per_min"] = round(len(pages) / s * 60, 1)
            print(f"  fleet, {n} worker(s): {row[f'workers_{n}_pages_per_min']} pages/min", flush=True)
        row["ratio_1_worker"] = round(row["workers_1_pages_per_min"] / row["memory_pages_per_min"], 3)
        rows.append(row)
    finally:
        cluster.stop()
        shutil.rmtree(cluster.root, ignore_errors=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--in-flight", type=int, default=32)
    ap.add_argument("--pages", type=int, default=12)
    ap.add_argument("--engine", default="rapidocr", choices=("rapidocr", "tesseract"))
    args = ap.parse_args(argv)
    for row in asyncio.run(main_async(args)):
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
