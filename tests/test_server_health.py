"""``/healthz`` and ``/metrics`` on the in-memory server: no token needed (probes carry none),
queue depth and finished jobs from the store, Prometheus text an exposition parser accepts."""

from __future__ import annotations

import re

import aiohttp

from pipeline.server import EmbeddedServer, FaultConfig, ServerConfig
from test_server_support import TOKEN, png, submit, wait_done

SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*\})? '
                    r'-?[0-9.e+-]+$')


async def test_health_and_metrics_report_the_queue_and_finished_jobs():
    cfg = ServerConfig(engine="fast", tokens=(TOKEN,), faults=FaultConfig(engine_slots=1, engine_seconds=600.0))
    async with EmbeddedServer(cfg) as srv, aiohttp.ClientSession() as http:
        ids = [(await submit(http, srv.base_url, image=png(text=f"h{i}")))[1]["data"]["request_id"] for i in range(3)]
        for _ in range(2000):
            async with http.get(srv.base_url + "/healthz") as r:
                health = await r.json()
            if health["running"] == 1:
                break
        assert r.status == 200 and health["status"] == "ok" and health["store"] == "memory"
        assert (health["queued"], health["running"], health["role"]) == (2, 1, "all")
        async with http.get(srv.base_url + "/metrics") as r:
            text = await r.text()
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        for line in text.splitlines():
            assert line.startswith("# HELP ") or line.startswith("# TYPE ") or SAMPLE.match(line), line
        assert "pipeline_jobs_queued 2" in text and "pipeline_jobs_running 1" in text
        assert 'pipeline_submits_total{role="all"} 3' in text
        srv.faults.engine_slots = 0   # a new job skips the queue and finishes
        rid = (await submit(http, srv.base_url, image=png(text="free")))[1]["data"]["request_id"]
        assert (await wait_done(http, srv.base_url, rid))["status"] == "done"
        async with http.get(srv.base_url + "/healthz") as r:
            health = await r.json()
        assert (health["done_last_minute"], health["queued"], health["running"]) == (1, 2, 1)
        assert health["p50_ms"] >= 0 and len(ids) == 3


async def test_liveness_and_readiness_are_apart_and_a_drain_is_not_ready():
    async with EmbeddedServer(ServerConfig(engine="fast", tokens=(TOKEN,))) as srv, aiohttp.ClientSession() as http:
        for route in ("/livez", "/readyz"):
            async with http.get(srv.base_url + route) as r:
                assert r.status == 200, route
        await srv.state.drain()            # SIGTERM: leave the rotation, stay alive until the end
        async with http.get(srv.base_url + "/readyz") as r:
            assert r.status == 503 and (await r.json())["status"] == "draining"
        async with http.get(srv.base_url + "/livez") as r:
            assert r.status == 200
