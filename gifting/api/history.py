"""The caller's durable history, read from PostgreSQL (the persister's ledger).

``GET /v1/wallet/history?limit=&cursor=`` pages the caller's ledger events
newest first: ``{"entries": [...], "next": cursor | null}``.
``GET /v1/earnings`` gives the caller's earnings as a creator, per stream.
``GET /v1/wallet/cashouts`` lists the caller's cash-outs as persisted.
Both need a bearer token and show only the caller's own record. They lag the
live balances by the persister's lag; 503 ``unavailable`` when the app has no
PostgreSQL pool.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute

from gifting.api.http import principal
from gifting.api.routing import ApiRoute, QueryInt, QueryText
from gifting.api.schemas import Earnings, History, PersistedCashouts
from gifting.core.errors import Unavailable
from gifting.records import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    cashout_history,
    creator_earnings,
    wallet_history,
)
from gifting.state import app_state

__all__ = ["get_cashout_history", "get_earnings", "get_wallet_history", "routes"]

_T = TypeVar("_T")
LIMIT = QueryInt("limit", default=DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
STREAMS_LIMIT = QueryInt("limit", default=MAX_LIMIT, minimum=1, maximum=MAX_LIMIT)
CURSOR = QueryText("cursor", max_length=256, description="the previous page's `next`")
# The database being down is a 503 (retry later), not an internal error.
_DOWN = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
)


async def _ledger(call: Awaitable[_T]) -> _T:
    try:
        return await call
    except _DOWN:
        raise Unavailable("the ledger database is not reachable; retry later") from None


def _pool(request: Request) -> asyncpg.Pool:
    pool = app_state(request).pg_pool
    if pool is None:
        raise Unavailable("the ledger database is not available")
    return pool


async def get_wallet_history(request: Request) -> JSONResponse:
    """A page of the caller's ledger events, newest first."""
    caller = principal(request)
    limit = LIMIT.read(request)
    cursor = CURSOR.read(request)
    entries, following = await _ledger(
        wallet_history(_pool(request), caller.user, limit=limit, cursor=cursor)
    )
    return JSONResponse({"entries": entries, "next": following})


async def get_earnings(request: Request) -> JSONResponse:
    """The caller's coins received and diamonds earned, in total and per stream."""
    caller = principal(request)
    limit = STREAMS_LIMIT.read(request)
    return JSONResponse(await _ledger(creator_earnings(_pool(request), caller.user, limit=limit)))


async def get_cashout_history(request: Request) -> JSONResponse:
    """The caller's cash-outs from the durable record, newest first."""
    caller = principal(request)
    limit = LIMIT.read(request)
    rows = await _ledger(cashout_history(_pool(request), caller.user, limit=limit))
    return JSONResponse({"cashouts": rows})


routes: list[BaseRoute] = [
    ApiRoute("/v1/wallet/history", get_wallet_history, "GET", answer=History, auth="bearer",
             query=[LIMIT, CURSOR]),
    ApiRoute("/v1/earnings", get_earnings, "GET", answer=Earnings, auth="bearer",
             query=[STREAMS_LIMIT]),
    ApiRoute("/v1/wallet/cashouts", get_cashout_history, "GET", answer=PersistedCashouts,
             auth="bearer", query=[LIMIT]),
]  # fmt: skip
