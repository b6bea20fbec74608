"""Discovery over HTTP: ``GET /v1/streams?live=1&limit=&cursor=`` (anyone).

The live streams, most viewers first (summed over every hub), with their
title and totals; paged by an opaque cursor that never repeats or skips a
stream while viewer counts move (gifting/store/discovery.py).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute

from gifting.api.routing import ApiRoute, QueryChoice, QueryInt, QueryText
from gifting.api.schemas import StreamPage
from gifting.core.errors import CursorExpired
from gifting.state import app_state
from gifting.store.discovery import Discovery

__all__ = ["list_streams", "routes"]

LIVE = QueryChoice("live", ("1",), description="only live streams are listed: `1` (the default)")
LIMIT = QueryInt("limit", default=20, minimum=1, maximum=100, description="streams per page")
CURSOR = QueryText("cursor", max_length=64, description="the previous page's `next`")


async def list_streams(request: Request) -> JSONResponse:
    """Live streams, most viewers first: ``{"streams": [...], "next": cursor | null}``.

    Viewers are the viewer connections of every hub (overlays aside); ties go
    to the newer stream. The first page ranks the streams; later pages (by
    `cursor`) follow that ranking for 10 minutes, so each live stream shows
    once; one that ended since is left out, so a page may hold fewer than
    `limit`. `live` may only be `1`.
    """
    LIVE.read(request)
    limit = LIMIT.read(request)
    cursor = CURSOR.read(request)
    state = app_state(request)
    listed, nxt = await Discovery(state.redis, state.keys).page(limit, cursor)
    return JSONResponse({
        "streams": [
            {
                "stream": s.stream,
                "creator": s.creator,
                "title": s.title,
                "viewers": s.viewers,
                "totals": {"coins": s.coins, "gifts": s.gifts},
            }
            for s in listed
        ],
        "next": nxt,
    })  # fmt: skip


routes: list[BaseRoute] = [
    ApiRoute("/v1/streams", list_streams, "GET", answer=StreamPage, query=[LIVE, LIMIT, CURSOR],
             errors=[CursorExpired]),
]  # fmt: skip
