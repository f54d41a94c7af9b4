"""Run the server in-process on an ephemeral loopback port (tests, benchmarks, embedded default)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .app import STATE, create_app
from .config import FaultConfig, ServerConfig
from .counters import Counters


class EmbeddedServer:
    def __init__(self, config: ServerConfig | None = None) -> None:
        self.config = config or ServerConfig()
        self.app = create_app(self.config)
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    @property
    def state(self) -> Any:
        return self.app[STATE]

    @property
    def counters(self) -> Counters:
        return self.state.counters

    @property
    def faults(self) -> FaultConfig:
        return self.state.faults

    def release_stuck_jobs(self) -> None:
        self.state.release_stuck_jobs()

    async def start(self) -> "EmbeddedServer":
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://{self.config.host}:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "EmbeddedServer":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
