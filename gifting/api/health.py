"""``/healthz`` (the process answers) and ``/readyz`` (its dependencies answer).

Orchestrators restart a process whose ``/healthz`` fails and stop routing to
one whose ``/readyz`` fails; the two must not be confused, so ``/healthz``
touches nothing outside the process.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute

from gifting.api.routing import ApiRoute
from gifting.api.schemas import Health, Ready
from gifting.state import app_state

__all__ = ["healthz", "readyz", "routes"]

log = logging.getLogger("gifting.api")

#: How long one dependency may take to answer a readiness probe.
CHECK_TIMEOUT_S: Final = 2.0


async def healthz(request: Request) -> JSONResponse:
    """200 while the process serves requests."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """200 when Redis (and PostgreSQL and every registered check) answers, else 503."""
    state = app_state(request)
    checks = dict(state.readiness)
    pool = state.pg_pool
    if pool is not None and "postgres" not in checks:
        checks["postgres"] = lambda: pool.fetchval("SELECT 1")
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                await check()
        except Exception as exc:  # a readiness probe reports failures, it does not raise
            log.warning("readiness check %s failed: %r", name, exc)
            results[name] = f"failed: {type(exc).__name__}"
        else:
            results[name] = "ok"
    if all(r == "ok" for r in results.values()):
        return JSONResponse({"status": "ready", "checks": results})
    failed = ", ".join(n for n, r in results.items() if r != "ok")
    return JSONResponse(
        {"code": "unavailable", "message": f"not ready: {failed}", "checks": results},
        status_code=503,
        headers={"Retry-After": "1"},
    )


routes: list[BaseRoute] = [
    ApiRoute("/healthz", healthz, "GET", answer=Health, tags=["health"]),
    ApiRoute("/readyz", readyz, "GET", answer=Ready, tags=["health"]),
]
