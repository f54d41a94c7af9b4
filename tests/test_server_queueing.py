"""The queueing fault (``engine_slots`` x ``engine_seconds``): with the instant ``fast`` engine,
jobs genuinely wait ``pending`` for one of N slots, hold it ``processing`` while their progress
moves, and are served first come first served; the queue depth shows in ``/_admin/counters``.
Driven over real HTTP; the waits are on the server's own answers, bounded by count."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from pipeline.server import EmbeddedServer, FaultConfig, ServerConfig
from pipeline.server.cli import serve_from_args
from pipeline.server.slots import SlotGate
from test_server_cli import parse
from test_server_support import AUTH, TOKEN, get_status, png, submit, wait_done

JOBS = 6


async def counters(http: aiohttp.ClientSession, base_url: str) -> dict:
    async with http.get(base_url + "/_admin/counters", headers=AUTH) as r:
        assert r.status == 200
        return await r.json()


async def until_counters(http: aiohttp.ClientSession, base_url: str, predicate, polls: int = 4000) -> dict:
    for _ in range(polls):
        snap = await counters(http, base_url)
        if predicate(snap):
            return snap
        await asyncio.sleep(0.002)
    raise AssertionError(f"counters never matched: {snap}")


async def test_jobs_queue_for_slots_and_are_served_in_submission_order():
    cfg = ServerConfig(engine="fast", tokens=(TOKEN,), admin=True,
                       faults=FaultConfig(engine_slots=2, engine_seconds=0.3))
    async with EmbeddedServer(cfg) as srv, aiohttp.ClientSession() as http:
        ids = []
        for i in range(JOBS):
            code, body = await submit(http, srv.base_url, image=png(text=f"page {i}"))
            assert code == 200
            ids.append(body["data"]["request_id"])
        snap = await until_counters(http, srv.base_url, lambda s: s["engine_slots_busy"] == 2)
        assert snap["engine_slots_waiting"] == JOBS - 2          # the queue depth
        statuses = [(await get_status(http, srv.base_url, rid))[1]["data"] for rid in ids]
        assert [s["status"] for s in statuses[2:]] == ["pending"] * (JOBS - 2)
        assert [s["status"] for s in statuses[:2]] == ["processing"] * 2
        assert all(10.0 <= s["progress"] < 100.0 for s in statuses[:2])
        assert all(s["progress"] == 0.0 for s in statuses[2:])
        # progress moves while a slot is held
        first = statuses[0]["progress"]
        for _ in range(4000):
            data = (await get_status(http, srv.base_url, ids[0]))[1]["data"]
            if data["status"] == "done" or data["progress"] > first:
                break
            await asyncio.sleep(0.002)
        assert data["status"] == "done" or data["progress"] > first
        done = [await wait_done(http, srv.base_url, rid) for rid in ids]
        assert all(d["status"] == "done" for d in done)
        jobs = [srv.state.store.get(rid) for rid in ids]
        assert [j.slot_grant for j in jobs] == list(range(JOBS))  # first come, first served
        # never more than two at once: job i began only after i - 1 earlier jobs had finished
        for i, job in enumerate(jobs[2:], start=2):
            assert sum(1 for other in jobs[:i] if other.finished <= job.started) >= i - 1
        snap = await counters(http, srv.base_url)
        assert snap["engine_slots_busy"] == 0 and snap["engine_slots_waiting"] == 0


async def test_slots_widen_live_and_turn_off():
    cfg = ServerConfig(engine="fast", tokens=(TOKEN,), admin=True,
                       faults=FaultConfig(engine_slots=1, engine_seconds=600.0))
    async with EmbeddedServer(cfg) as srv, aiohttp.ClientSession() as http:
        ids = [(await submit(http, srv.base_url, image=png(text=f"p{i}")))[1]["data"]["request_id"] for i in range(3)]
        await until_counters(http, srv.base_url, lambda s: s["engine_slots_busy"] == 1 and s["engine_slots_waiting"] == 2)
        async with http.post(srv.base_url + "/_admin/faults", json={"engine_slots": 0}, headers=AUTH) as r:
            assert r.status == 200 and (await r.json())["engine_slots"] == 0
        code, body = await submit(http, srv.base_url, image=png(text="skips the queue"))
        assert (await wait_done(http, srv.base_url, body["data"]["request_id"]))["status"] == "done"
        left = [(await get_status(http, srv.base_url, rid))[1]["data"]["status"] for rid in ids]
        assert left == ["processing", "pending", "pending"]  # the queued ones still wait their turn


async def test_gate_hands_a_cancelled_grant_on():
    gate = SlotGate(lambda: 1)
    assert await gate.acquire() == 0
    waiter = asyncio.create_task(gate.acquire())
    nxt = asyncio.create_task(gate.acquire())
    await asyncio.sleep(0)
    assert gate.waiting == 2
    waiter.cancel()
    gate.release()
    assert await nxt in (1, 2) and gate.busy == 1
    with pytest.raises(asyncio.CancelledError):
        await waiter


def test_command_line_options_reach_the_faults(capsys):
    from pipeline.server.cli import config_from_args

    f = config_from_args(parse("--token", "t", "--fault-engine-slots", "2", "--fault-engine-seconds", "0.3")).faults
    assert (f.engine_slots, f.engine_seconds) == (2, 0.3)
    f = config_from_args(parse("--token", "t", "--fault", "engine_slots=3", "--fault", "engine_seconds=1.5")).faults
    assert (f.engine_slots, f.engine_seconds) == (3, 1.5)
    assert serve_from_args(parse("--token", "t", "--fault-engine-seconds", "-1")) == 2
    assert "--fault-engine-seconds must be >= 0" in capsys.readouterr().err
