"""Shared helpers for the fleet tests (``test_fleet_*.py``); this file holds no tests.

A throwaway PostgreSQL cluster per test session: ``initdb`` and ``pg_ctl`` from Debian's
``postgresql`` package, run as an unprivileged user (PostgreSQL refuses to run as root),
listening on a free loopback port, no fsync (a test cluster need not survive a power cut),
removed at the end. Each test gets a fresh database in it. Fleet members are real
``python -m pipeline serve`` processes on loopback, so ``kill -9`` kills what it would kill in
production. Without PostgreSQL a developer's run skips these tests and says why; CI (``CI=true``)
fails instead, so a missing install step cannot turn the fleet tests into silent skips.
"""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "fleet-token"
OTHER = "fleet-other-token"
SECRET = "w" * 40


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bin() -> Path | None:
    """The directory of initdb/pg_ctl: on PATH, else the newest /usr/lib/postgresql/*/bin."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(dirs[-1]).parent if dirs else None


def unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI must run the fleet tests: {reason} (.ci/run installs postgresql)")
    pytest.skip(f"fleet tests need PostgreSQL: {reason} (apt-get install postgresql)")


@dataclass
class Cluster:
    bindir: Path
    root: Path
    port: int
    user: str | None            # the unprivileged user the server runs as (None: we are not root)
    databases: list[str] = field(default_factory=list)

    def dsn(self, db: str = "postgres") -> str:
        return f"postgresql://fleet@127.0.0.1:{self.port}/{db}"

    def _run(self, *argv: str) -> subprocess.CompletedProcess:
        kw = {"user": self.user} if self.user else {}
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=self.root, **kw)

    def start(self) -> None:
        data = self.root / "data"
        r = self._run(str(self.bindir / "initdb"), "-D", str(data), "-U", "fleet", "--auth=trust", "-E", "UTF8",
                      "--no-sync", "--no-instructions")
        if r.returncode:
            raise RuntimeError(f"initdb failed: {r.stderr[-2000:]}")
        self.start_again()

    def start_again(self) -> None:
        """Start the stopped server on its data directory and port (a database restart)."""
        data = self.root / "data"
        opts = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.root} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        r = self._run(str(self.bindir / "pg_ctl"), "-D", str(data), "-l", str(self.root / "log"), "-o", opts,
                      "-w", "-t", "60", "start")
        if r.returncode:
            log = (self.root / "log").read_text(errors="replace")[-2000:] if (self.root / "log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {r.stderr[-1000:]} {log}")

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server; ``fast`` is a clean restart's first half (this cluster commits asynchronously,
        so ``immediate`` may lose the last commits)."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-m", mode, "stop")

    def create_database(self) -> str:
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        self.databases.append(name)
        return self.dsn(name)


def start_cluster() -> Cluster:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("the psycopg package is not installed")
    bindir = pg_bin()
    if bindir is None:
        unavailable("initdb/pg_ctl not found on PATH or in /usr/lib/postgresql/*/bin")
    user = None
    root = Path(tempfile.mkdtemp(prefix="pipeline-pg-"))
    if os.geteuid() == 0:
        for name in ("postgres", "nobody"):
            try:
                pw = pwd.getpwnam(name)
            except KeyError:
                continue
            user = name
            os.chown(root, pw.pw_uid, pw.pw_gid)
            break
        else:
            unavailable("running as root and no unprivileged user (postgres, nobody) to run PostgreSQL as")
    cluster = Cluster(bindir, root, free_port(), user)
    try:
        cluster.start()
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return cluster


# -- fleet members as real processes -----------------------------------------------------------

class Member:
    """One ``python -m pipeline serve`` process of the fleet."""

    def __init__(self, dsn: str, role: str, *extra: str, lease: float = 1.0, name: str = "") -> None:
        self.role, self.port = role, free_port()
        self.name = name or f"{role}-{self.port}"
        self.base_url = f"http://127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", "pipeline", "serve", "--store", dsn, "--role", role, "--port", str(self.port),
                "--engine", "fast", "--token", TOKEN, "--token", OTHER, "--webhook-secret", SECRET,
                "--allow-http-webhooks", "--webhook-time-scale", "0.001", "--lease", str(lease),
                "--worker-id", self.name, "--admin", *extra]
        env = {k: v for k, v in os.environ.items() if k not in ("DEAPI_API_KEY", "PIPELINE_STORE")}
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    async def ready(self, http: aiohttp.ClientSession, polls: int = 3000) -> None:
        for _ in range(polls):
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.proc.returncode}: {self.output()}")
            try:
                async with http.get(self.base_url + "/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.01)
        raise AssertionError(f"{self.name} never became healthy: {self.output()}")

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-3000:]

    def kill(self) -> None:
        """kill -9: no drain, no cleanup, exactly a crash or an OOM kill."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def terminate(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


class Fleet:
    """API replicas and workers over one database; every member is stopped at the end."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.members: list[Member] = []

    def add(self, role: str, *extra: str, lease: float = 1.0, name: str = "") -> Member:
        m = Member(self.dsn, role, *extra, lease=lease, name=name)
        self.members.append(m)
        return m

    async def start(self, http: aiohttp.ClientSession, apis: int = 2, workers: int = 3, *extra: str,
                    lease: float = 1.0) -> tuple[list[Member], list[Member]]:
        # the first member migrates the new database alone; the rest start side by side
        first = self.add("api", *extra, lease=lease, name="api-0")
        await first.ready(http)
        rest_api = [self.add("api", *extra, lease=lease, name=f"api-{i}") for i in range(1, apis)]
        work = [self.add("worker", *extra, lease=lease, name=f"worker-{i}") for i in range(workers)]
        for m in rest_api + work:
            await m.ready(http)
        return [first, *rest_api], work

    async def api_and_slow_worker(self, http: aiohttp.ClientSession, hold_s: float, name: str
                                  ) -> tuple[Member, Member]:
        """One API replica and one worker whose every page holds its engine slot ``hold_s`` (lease 30 s)."""
        api = self.add("api", name="api-0")
        await api.ready(http)
        worker = self.add("worker", "--fault-engine-slots", "1", "--fault-engine-seconds", str(hold_s), name=name,
                          lease=30.0)
        await worker.ready(http)
        return api, worker

    def stop(self) -> None:
        for m in self.members:
            m.kill()
            m.log.close()


async def scrape(http, members) -> list[dict[str, float]]:
    """Every member's /metrics as {series: value}, as Prometheus scrapes each pod."""
    out = []
    for m in members:
        async with http.get(m.base_url + "/metrics") as r:
            assert r.status == 200
            text = await r.text()
        out.append({line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines()
                    if line and not line.startswith("#")})
    return out


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": "application/json"}


class AlternatingProxy:
    """A load balancer on loopback that sends each request to the next replica in turn
    (records which one served it), as a round-robin balancer in front of a fleet does."""

    def __init__(self, backends: list[str]) -> None:
        self.backends = backends
        self.served: list[str] = []
        self.base_url = ""
        self._runner = None
        self._session: aiohttp.ClientSession | None = None

    async def _forward(self, request):
        from aiohttp import web

        backend = self.backends[len(self.served) % len(self.backends)]
        self.served.append(backend)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("content-length", "transfer-encoding")}
        assert self._session is not None
        async with self._session.request(request.method, backend + request.path_qs, headers=headers,
                                         data=await request.read(), allow_redirects=False) as r:
            body = await r.read()
            keep = {k: v for k, v in r.headers.items()
                    if k.lower() not in ("content-length", "transfer-encoding", "content-encoding", "connection")}
            return web.Response(status=r.status, body=body, headers=keep)

    async def __aenter__(self) -> "AlternatingProxy":
        from aiohttp import web

        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.cleanup()
        await self._session.close()
