"""Price quotes: size buckets, one price request per bucket cached in the state store across runs,
through the shared rate limiter, and the estimate error against per-file quotes on the samples.

The real client asks the project's own server (whose price grows with the uploaded pixels, like
deAPI's price-calculation by width and height); the server's counters count the requests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import TOKEN
from helpers import distinct_png, run_pipeline, write_config
from pipeline.deapi import ClientSettings, DeapiClient
from pipeline.exitcodes import ExitCode
from pipeline.run.pricing import BUCKET_ERROR, PriceBook, bucket, bucket_side
from pipeline.run.state import StateStore

MODEL = "Nanonets_Ocr_S_F16"
SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def test_bucket_sides_are_a_geometric_grid_within_its_half_step():
    sides = [bucket_side(n) for n in range(128, 4097)]           # the API's sizes
    assert sides == sorted(sides)                                 # monotonic
    assert len(set(sides)) == 41                                  # 8 steps an octave over 5 octaves
    assert bucket(1024, 2048) == (1024, 2048)                     # powers of two are grid values
    half_step = 2 ** (1 / 16)
    for n in range(100, 5000):
        assert 1 / half_step - 0.002 <= bucket_side(n) / n <= half_step + 0.002
    assert BUCKET_ERROR == pytest.approx(2 ** (1 / 8) - 1)


async def test_one_price_request_per_bucket_cached_across_runs(tmp_path, server):
    # Six files in three size buckets (300x200 and 302x201 share one): three price requests.
    sizes = [(300, 200), (302, 201), (800, 600), (801, 600), (1500, 1000), (1500, 1000)]
    for i, size in enumerate(sizes):
        distinct_png(tmp_path / "in" / f"f{i}.png", seed=i, size=size)
    assert len({bucket(*s) for s in sizes}) == 3
    cfg = write_config(tmp_path, server.base_url)
    code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK
    assert server.counters.price_calls == 3 and report["cost"]["price_requests"] == 3
    assert report["cost"]["pages_submitted"] == 6
    ledger = server.state.ledger
    expected = sum(ledger.quote(*bucket(*s)) for s in sizes)
    assert report["cost"]["quoted_cost"] == pytest.approx(expected)
    # A second run over new files of the same sizes asks nothing: the quotes are in the state store.
    for i, size in enumerate(sizes):
        distinct_png(tmp_path / "in" / f"g{i}.png", seed=100 + i, size=size)
    code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK and report["cost"]["pages_submitted"] == 6
    assert server.counters.price_calls == 3 and report["cost"]["price_requests"] == 0
    state = StateStore(tmp_path / "out" / ".pipeline" / "state.sqlite")
    try:
        price, quoted_at = state.get_quote(f"{MODEL}|en|text|{bucket(800, 600)[0]}x{bucket(800, 600)[1]}")
        assert price == pytest.approx(ledger.quote(*bucket(800, 600))) and quoted_at > 0
    finally:
        state.close()


async def test_a_quote_older_than_its_age_is_asked_again(tmp_path, server):
    now = [1_000_000.0]
    state = StateStore(tmp_path / "state.sqlite")
    try:
        async with DeapiClient(server.base_url, TOKEN, ClientSettings()) as api:
            book = PriceBook(state, api, model=MODEL, language="en", format="text", max_age_s=3600,
                             clock=lambda: now[0])
            first = await book.quote(1000, 700)
            await book.quote(1010, 705)           # same bucket, fresh: from the cache
            assert (book.requests, book.cache_hits, server.counters.price_calls) == (1, 1, 1)
            now[0] += 3601
            assert await book.quote(1000, 700) == first
            assert book.requests == 2 and server.counters.price_calls == 2
    finally:
        state.close()


async def test_concurrent_pages_of_one_bucket_make_one_request(tmp_path, server):
    import asyncio

    state = StateStore(tmp_path / "state.sqlite")
    try:
        async with DeapiClient(server.base_url, TOKEN, ClientSettings()) as api:
            book = PriceBook(state, api, model=MODEL, language="en", format="text", max_age_s=3600)
            quotes = await asyncio.gather(*(book.quote(2000 + i, 1500) for i in range(8)))
    finally:
        state.close()
    assert len(set(quotes)) == 1 and server.counters.price_calls == 1


async def test_price_requests_go_through_the_shared_rate_limiter(tmp_path, server):
    state = StateStore(tmp_path / "state.sqlite")
    try:
        async with DeapiClient(server.base_url, TOKEN, ClientSettings(plan="basic")) as api:
            book = PriceBook(state, api, model=MODEL, language="en", format="text", max_age_s=3600)
            for w in (300, 600, 1200):
                await book.quote(w, 400)
            assert api.limiter.limits("price") == (50, 200)          # Basic's own price limits
            assert api.limiter.used_today("price") == 3              # counted as the price endpoint
            assert api.limiter.used_today("submit") == 0
    finally:
        state.close()


async def test_bucket_estimate_error_on_the_samples_is_within_the_stated_bound():
    """Every sample page's bucket quote against its own per-file quote (by the image itself),
    measured by the benchmark that gives docs/cost.md its figures."""
    from bench.price_buckets import EXTS, measure

    files = sorted(p for p in SAMPLES.rglob("*") if p.suffix.lower() in EXTS)
    r = await measure("samples", files)
    assert r["pages"] >= 7 and r["price_requests"] < r["pages"]
    assert r["max_abs_error"] <= BUCKET_ERROR + 0.005
    assert abs(r["total_error"]) <= BUCKET_ERROR
