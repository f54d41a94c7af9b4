"""Run the server in-process on an ephemeral loopback port (tests, benchmarks, embedded default).

``async with EmbeddedServer(cfg) as srv`` binds ``cfg.host`` (127.0.0.1) on port ``cfg.port``
(0 = any free port) and exposes the live ``counters`` and ``faults`` so a test can flip a fault
mid-run and read what the server saw.
"""

from __future__ import annotations

from aiohttp import web

from .app import STATE, ServerState, create_app
from .config import ServerConfig
from .counters import Counters
from .faults import FaultConfig


class EmbeddedServer:
    def __init__(self, config: ServerConfig | None = None) -> None:
        self.config = config or ServerConfig()
        self.app = create_app(self.config)
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self.port = 0

    @property
    def state(self) -> ServerState:
        return self.app[STATE]

    @property
    def counters(self) -> Counters:
        return self.state.counters

    @property
    def faults(self) -> FaultConfig:
        return self.state.faults

    def release_stuck_jobs(self) -> int:
        """Let jobs held by ``job_never_finish`` complete; returns how many were released."""
        return self.state.release_stuck_jobs()

    async def start(self) -> "EmbeddedServer":
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        try:
            site = web.TCPSite(self._runner, self.config.host, self.config.port)
            await site.start()
        except BaseException:
            await self._runner.cleanup()
            self._runner = None
            raise
        self.port = self._runner.addresses[0][1]
        host = self.config.host if ":" not in self.config.host else f"[{self.config.host}]"
        self.base_url = f"http://{host}:{self.port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "EmbeddedServer":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
