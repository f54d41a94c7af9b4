"""Liveness and readiness, kept apart: a database outage makes a member not ready, never dead.

Why two probes: Kubernetes restarts a pod whose liveness probe fails and takes a pod out of the
Service while its readiness probe fails. Restarting every pod because the database is away for a
few minutes helps nothing (they all come back to the same outage) and kills the pages in hand;
a worker whose claim loop has ended, on the other hand, will never read another page and only a
restart helps it.

* ``GET /livez``: 200 while this process's loops run (claim loops, sweeper, webhook outbox);
  503 ``{"status": "dead"}`` when one has ended. It never touches the database.
* ``GET /readyz``: 200 when the store answers and the member is not draining; 503 with
  ``Retry-After`` otherwise (a draining API replica leaves the rotation before it stops).

``/healthz`` stays the combined view (fleet figures; 503 when the store is away or a loop is dead).
An API request that meets an outage is answered 503 with ``Retry-After`` (``store_unavailable``),
which the pipeline's client already retries as transient.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from aiohttp import web

log = logging.getLogger("pipeline.server.probes")

OUTAGE_RETRY_AFTER_S = 5   # what a client is told to wait during a database outage


def store_unavailable(exc: BaseException) -> web.Response:
    """The answer to a request that met a database outage: 503, JSON envelope, ``Retry-After``."""
    log.warning("store unavailable: %s: %s", type(exc).__name__, str(exc).strip()[:200])
    return web.json_response({"message": "The service is temporarily unavailable (its database cannot be "
                                         "reached). Retry after the given delay."},
                             status=503, headers={"Retry-After": str(OUTAGE_RETRY_AFTER_S)})


def add_probe_routes(app: web.Application, state: Callable[[], Any]) -> None:
    """``/livez`` and ``/readyz`` for ``state()``, a ``ServerState`` (``alive``, ``draining``, ``store``)."""

    async def livez(request: web.Request) -> web.Response:
        st = state()
        return web.json_response({"status": "ok" if st.alive else "dead", "draining": st.draining},
                                 status=200 if st.alive else 503)

    async def readyz(request: web.Request) -> web.Response:
        st = state()
        if st.draining:
            return web.json_response({"status": "draining"}, status=503, headers={"Retry-After": "1"})
        try:
            await st.store.ping()
        except Exception as exc:
            return web.json_response({"status": "unavailable", "store": st.store.kind, "error": type(exc).__name__},
                                     status=503, headers={"Retry-After": str(OUTAGE_RETRY_AFTER_S)})
        return web.json_response({"status": "ready", "store": st.store.kind})

    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)


__all__ = ["OUTAGE_RETRY_AFTER_S", "add_probe_routes", "store_unavailable"]
