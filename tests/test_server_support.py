"""Shared helpers for the server conformance tests (``test_server_*.py``); this file holds no tests.

Everything here talks real HTTP to a real ``EmbeddedServer`` on loopback: images are made with
Pillow, a webhook receiver is a small aiohttp app, and waiting is done on events or on the
server's own answers, never on sleeps that hope for timing.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any, Callable

import aiohttp
from aiohttp import web
from PIL import Image

from helpers import text_page

TOKEN = "conformance-token"
OTHER_TOKEN = "second-token"
SECRET = "s" * 40
V1 = "/api/v1/client"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
MODEL = "Nanonets_Ocr_S_F16"


def png(size: tuple[int, int] = (300, 200), text: str = "hello") -> bytes:
    buf = io.BytesIO()
    text_page(text, size).save(buf, "PNG")
    return buf.getvalue()


def encoded(fmt: str, size: tuple[int, int] = (300, 200), **kw: Any) -> bytes:
    buf = io.BytesIO()
    img = text_page(fmt, size, mode="RGB")
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def form(image: bytes | None = None, filename: str = "page.png", **fields: Any) -> aiohttp.FormData:
    f = aiohttp.FormData()
    if image is not None:
        f.add_field("image", io.BytesIO(image), filename=filename, content_type="image/png")
    fields.setdefault("model", MODEL)
    for k, v in fields.items():
        if v is not None:
            f.add_field(k, v)
    return f


class Clock:
    """An injectable wall clock: tests move it instead of sleeping."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def submit(http: aiohttp.ClientSession, base_url: str, headers: dict[str, str] = AUTH,
                 **fields: Any) -> tuple[int, dict]:
    async with http.post(base_url + V1 + "/img2txt", data=form(**fields), headers=headers) as r:
        return r.status, await r.json()


async def get_status(http: aiohttp.ClientSession, base_url: str, rid: str, headers: dict[str, str] = AUTH
                     ) -> tuple[int, dict]:
    async with http.get(f"{base_url}{V1}/request-status/{rid}", headers=headers) as r:
        return r.status, await r.json()


async def wait_done(http: aiohttp.ClientSession, base_url: str, rid: str, polls: int = 2000) -> dict:
    """Poll until the job is terminal (each poll yields to the server; bounded by count, not time)."""
    for _ in range(polls):
        code, body = await get_status(http, base_url, rid)
        assert code == 200, body
        if body["data"]["status"] in ("done", "error"):
            return body["data"]
        await asyncio.sleep(0.005)
    raise AssertionError(f"job {rid} never finished")


async def wait_for(predicate: Callable[[], bool], polls: int = 2000) -> None:
    for _ in range(polls):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never became true")


class Receiver:
    """A webhook receiver on loopback: records every delivery; answers from a script of statuses."""

    def __init__(self, answers: list[int] | None = None, default: int = 200) -> None:
        self.answers = list(answers or [])
        self.default = default
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.changed = asyncio.Condition()
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _hook(self, request: web.Request) -> web.Response:
        raw = await request.read()
        async with self.changed:
            self.received.append((dict(request.headers), raw))
            self.changed.notify_all()
        status = self.answers.pop(0) if self.answers else self.default
        headers = {"Location": "https://example.org/elsewhere"} if 300 <= status < 400 else None
        return web.Response(status=status, headers=headers)

    async def wait(self, predicate: Callable[[list[tuple[dict[str, str], bytes]]], bool], timeout: float = 20) -> None:
        async def until() -> None:
            async with self.changed:
                await self.changed.wait_for(lambda: predicate(self.received))
        await asyncio.wait_for(until(), timeout)

    def events(self) -> list[str]:
        return [h["X-DeAPI-Event"] for h, _ in self.received]

    async def __aenter__(self) -> "Receiver":
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/hook"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


def image_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as im:
        return im.size
