"""Price quotes from the API, asked once per (model, size bucket) and cached in the state store.

Why buckets: deAPI prices an OCR job by the upload's width and height
(``POST img2txt/price-calculation``), and on the Basic plan that endpoint has its own limits
(50 a minute, 200 a day): one call per file would spend them on the first few hundred files
of a night. A tree of scans has few distinct page sizes once they are grouped, so each
dimension is rounded to the nearest step of a geometric grid of ratio ``2 ** (1/8)``
(about 9 %: 128, 140, 152, 166, 181, 197, 215, 234, 256, ... 4096) and the API is asked
about the bucket's own size. A dimension is then at most ``2 ** (1/16) - 1`` = 4.4 % off its
bucket, so a price that grows with the pixel count is off by at most about 9 % for one page,
less on a whole tree (the roundings go both ways); docs/cost.md has the measured figures.

A quote is kept in ``price_quotes`` with the time it was asked and asked again after
``budget.quote_max_age_days``. The calls go through the client, hence through the run's shared
rate limiter as their own endpoint (``price``). Identical buckets asked at once by several
workers make one call. A server without the price route (404) is asked once per run: the
answer is remembered and every later quote fails the same way without a call (a 2,000-file
run used to make 700 extra calls).
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any, Callable, Protocol

from pipeline.deapi.errors import NotFoundError

STEPS_PER_OCTAVE = 8
#: the largest relative error of one page's quote from its bucket, for a price proportional to pixels
BUCKET_ERROR = (2 ** (1 / (2 * STEPS_PER_OCTAVE))) ** 2 - 1


class PriceApi(Protocol):  # what this module needs of the deAPI client
    async def price(self, *, model: str, width: int | None = None, height: int | None = None,
                    language: str | None = None, format: str | None = None) -> float: ...


def bucket_side(pixels: int) -> int:
    """The grid value nearest (in ratio) to ``pixels``: round(2 ** (k/8)) for the nearest k."""
    if pixels <= 1:
        return 1
    k = round(STEPS_PER_OCTAVE * math.log2(pixels))
    return int(round(2 ** (k / STEPS_PER_OCTAVE)))


def bucket(width: int, height: int) -> tuple[int, int]:
    return bucket_side(width), bucket_side(height)


class PriceBook:
    """Quotes for pages by their upload size; ``requests`` counts the price calls made."""

    def __init__(self, state: Any, api: PriceApi, *, model: str, language: str | None, format: str | None,
                 max_age_s: float, clock: Callable[[], float] = time.time) -> None:
        self.state, self.api = state, api
        self.model, self.language, self.format = model, language, format
        self.max_age_s = max_age_s
        self.clock = clock
        self.requests = 0
        self.cache_hits = 0
        self._asking: dict[str, asyncio.Future] = {}
        self.no_route: Exception | None = None   # the price route answered 404: not asked again this run

    def _key(self, size: tuple[int, int]) -> str:
        return f"{self.model}|{self.language or ''}|{self.format or ''}|{size[0]}x{size[1]}"

    async def quote(self, width: int, height: int) -> float:
        """The bucket's price for a page of ``width`` x ``height`` uploaded pixels."""
        size = bucket(width, height)
        key = self._key(size)
        cached = self.state.get_quote(key)
        if cached is not None and self.clock() - cached[1] <= self.max_age_s:
            self.cache_hits += 1
            return cached[0]
        if self.no_route is not None:
            raise self.no_route
        pending = self._asking.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._asking[key] = future
        try:
            self.requests += 1
            price = await self.api.price(model=self.model, width=size[0], height=size[1],
                                         language=self.language, format=self.format)
            self.state.put_quote(key, price, self.clock())
            future.set_result(price)
            return price
        except NotFoundError as exc:
            self.no_route = exc
            future.set_exception(exc)
            future.exception()
            raise
        except BaseException as exc:
            future.set_exception(exc if isinstance(exc, Exception) else asyncio.CancelledError())
            future.exception()  # retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._asking[key]

    def snapshot(self) -> dict[str, Any]:
        return {"price_requests": self.requests, "quote_cache_hits": self.cache_hits,
                "price_route_missing": self.no_route is not None,
                "bucket_error_max": round(BUCKET_ERROR, 4)}


def price_book(config: Any, state: Any, api: PriceApi) -> PriceBook:
    """The run's price book for its model, language and format."""
    a = config.api
    return PriceBook(state, api, model=a.model, language=a.language, format=a.format,
                     max_age_s=config.budget.quote_max_age_days * 86400)
