"""Leaderboards over HTTP (anyone): a stream's top gifters, a creator's top supporters
by ISO week or month, and the platform's top creators by period.

``GET /v1/streams/{stream}/leaderboard``,
``GET /v1/creators/{creator}/leaderboard?period=week|month&at=2026-W49|2026-12``,
``GET /v1/leaderboards/creators?period=week|month&at=...``; each takes
``?limit=`` (1..100) and answers ``{"period","at","entries":[{"rank","user",
"name","coins"}]}``. The period in progress (``at`` absent: the current one,
UTC) is read from Redis, where credit.lua keeps it live; if Redis has nothing
for it (its keys lost), from PostgreSQL. A past period is read from
PostgreSQL (503 ``unavailable`` without it). Only coins credited to a user
count: the credited user's board (a host, a guest, a video's creator); a
creator's own effects, kept by the platform, do not.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute

from gifting.api.routing import ApiRoute, QueryChoice, QueryInt, QueryText
from gifting.api.schemas import Leaderboard
from gifting.board_records import creators_of_period, supporters_of_period
from gifting.clock import now_ms
from gifting.core.boards import MAX_BOARD, BoardEntry, board_answer
from gifting.core.errors import BadRequest, NotFound, Unavailable
from gifting.core.ids import check_id
from gifting.core.periods import PERIOD_KINDS, Period, current_period, parse_period
from gifting.state import app_state
from gifting.store.boards import Boards

__all__ = ["creator_board", "routes", "stream_board", "top_creators"]

_T = TypeVar("_T")
LIMIT = QueryInt("limit", default=10, minimum=1, maximum=MAX_BOARD, description="places shown")
PERIOD = QueryChoice("period", PERIOD_KINDS, description="`week` (the default) or `month`")
AT = QueryText(
    "at", max_length=16, description="`2026-W49` (ISO week) or `2026-12`; absent: the current"
)
_DOWN = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError)


def _period(request: Request) -> Period:
    return parse_period(PERIOD.read(request), AT.read(request), now_ms=now_ms())


def _is_current(period: Period) -> bool:
    return current_period(period.kind, now_ms()).label == period.label


async def _durable(read: Awaitable[_T]) -> _T:
    try:
        return await read
    except _DOWN:
        raise Unavailable("the ledger database is not reachable; retry later") from None


async def _board(
    period: Period,
    live: Callable[[], Awaitable[list[BoardEntry]]],
    durable: Callable[[], Awaitable[list[BoardEntry]]] | None,
) -> list[BoardEntry]:
    """The live board for the current period (else PostgreSQL's), PostgreSQL's for others."""
    current = _is_current(period)
    if current and (entries := await live()):
        return entries
    if durable is None:
        if current:
            return []
        raise Unavailable("past periods are read from the ledger database, not available here")
    return await _durable(durable())


async def creator_board(request: Request) -> JSONResponse:
    """A creator's top supporters of an ISO week or a month (`at` absent: the current one).

    Coins credited to the creator (as host, guest or video creator) by each
    sender in the period of the spend's time, UTC.
    """
    creator = check_id(request.path_params["creator"], "creator")
    limit = LIMIT.read(request)
    period = _period(request)
    state = app_state(request)
    pool = state.pg_pool
    entries = await _board(
        period,
        lambda: Boards(state.redis, state.keys).supporters(creator, period.label, limit),
        (lambda: supporters_of_period(pool, creator, period.label, limit)) if pool else None,
    )
    return JSONResponse(board_answer(period.kind, period.label, entries))


async def top_creators(request: Request) -> JSONResponse:
    """The top creators of an ISO week or a month by coins received (`at` absent: current)."""
    limit = LIMIT.read(request)
    period = _period(request)
    state = app_state(request)
    pool = state.pg_pool
    entries = await _board(
        period,
        lambda: Boards(state.redis, state.keys).creators(period.label, limit),
        (lambda: creators_of_period(pool, period.label, limit)) if pool else None,
    )
    return JSONResponse(board_answer(period.kind, period.label, entries))


async def stream_board(request: Request) -> JSONResponse:
    """A stream's top gifters: every coin it received, by sender (live, from Redis)."""
    stream_id = check_id(request.path_params["stream"], "stream")
    limit = LIMIT.read(request)
    state = app_state(request)
    await state.streams.get(stream_id)  # NotFound for a stream that never was
    entries = await Boards(state.redis, state.keys).stream(stream_id, limit)
    return JSONResponse(board_answer("stream", stream_id, entries))


routes: list[BaseRoute] = [
    ApiRoute("/v1/streams/{stream}/leaderboard", stream_board, "GET", answer=Leaderboard,
             query=[LIMIT], errors=[BadRequest, NotFound], tags=["leaderboards"]),
    ApiRoute("/v1/creators/{creator}/leaderboard", creator_board, "GET", answer=Leaderboard,
             query=[LIMIT, PERIOD, AT], errors=[BadRequest], tags=["leaderboards"]),
    ApiRoute("/v1/leaderboards/creators", top_creators, "GET", answer=Leaderboard,
             query=[LIMIT, PERIOD, AT], errors=[BadRequest], tags=["leaderboards"]),
]  # fmt: skip
