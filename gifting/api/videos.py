"""Gifts on videos over HTTP: register a video (creators), read it (anyone), gift it (bearer).

A gift on a video is a spend like a live gift, with no room to fan out to:
spend.lua debits the sender once per client id (a retry answers the same, the
same id with another payload is 409 ``conflict``; PostgreSQL's ``spend_ids``
are asked first, as for badges), within the budget, refused when the creator
blocked the sender (``blocked``) or for a self-gift (``forbidden``). Then, in
one round trip, credit.lua credits the creator's running total and emit.lua
counts the gift in the video's totals, top gifters and history
(:mod:`gifting.store.videos`). Both are idempotent by the spend's event id: if
this process dies before them, the persister repairs them from the outbox.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute

from gifting.api.http import principal, read_body_as
from gifting.api.routing import ApiRoute, QueryInt
from gifting.api.schemas import (
    Video as VideoAnswer,
)
from gifting.api.schemas import (
    VideoBody,
    VideoCreated,
    VideoGiftBody,
    VideoGiftSent,
    VideoList,
)
from gifting.api.wallet import kept_result
from gifting.auth import CREATOR
from gifting.clock import now_ms
from gifting.core.entries import SpendEntry
from gifting.core.errors import (
    BadRequest,
    Blocked,
    BudgetExceeded,
    Conflict,
    Forbidden,
    GiftingError,
    InsufficientFunds,
    NotFound,
    UnknownItem,
)
from gifting.core.ids import check_id
from gifting.core.pricing import price_gift
from gifting.state import AppState, app_state
from gifting.store.ledger import SpendOrder, spend_entry
from gifting.store.videos import Video, Videos

__all__ = ["create_video", "get_video", "gift_video", "list_videos", "routes", "videos_of"]

log = logging.getLogger(__name__)

MAX_VIDEOS_LISTED = 100
VIDEOS_LIMIT = QueryInt("limit", default=50, minimum=1, maximum=MAX_VIDEOS_LISTED)
_INSERT_VIDEO = (
    "INSERT INTO videos (video_id, creator_id, title, created_ms) VALUES ($1, $2, $3, $4) "
    "ON CONFLICT (video_id) DO NOTHING"
)


def videos_of(state: AppState) -> Videos:
    """The videos store on the app's Redis (cheap: built per call)."""
    s = state.settings
    return Videos(
        state.redis, state.keys, state.catalog, max_events=s.history_max_events,
        max_age_s=s.history_max_age_s,
    )  # fmt: skip


async def _public(videos: Videos, video: Video) -> dict[str, Any]:
    totals = await videos.totals(video.video)
    return {
        "video": video.video,
        "creator": video.creator,
        "creator_name": video.creator_name,
        "title": video.title,
        "created": video.created,
        "totals": {"coins": totals.coins, "gifts": totals.gifts},
        "top": totals.top,
    }


def _video_id(request: Request) -> str:
    return check_id(request.path_params["video"], "video")


async def create_video(request: Request) -> JSONResponse:
    """Register a published video (role ``creator``): ``{"title"}`` → 201 with its id."""
    caller = principal(request)
    caller.require_role(CREATOR)
    body = await read_body_as(request, VideoBody)
    state = app_state(request)
    videos = videos_of(state)
    video = await videos.create(caller.user, caller.name, body.title)
    if state.pg_pool is not None:  # the durable record (Redis holds the live one)
        try:
            await state.pg_pool.execute(
                _INSERT_VIDEO, video.video, video.creator, video.title, video.created
            )
        except (OSError, asyncpg.PostgresError) as exc:
            log.error("video %s registered in Redis, not in PostgreSQL: %s", video.video, exc)
    return JSONResponse(await _public(videos, video), status_code=201)


async def get_video(request: Request) -> JSONResponse:
    """A video's public view: creator, title, totals and top gifters (anyone)."""
    videos = videos_of(app_state(request))
    video = await videos.get(_video_id(request))
    return JSONResponse(await _public(videos, video))


async def list_videos(request: Request) -> JSONResponse:
    """A creator's video ids, newest first (``?limit=``, 1..100, default 50; anyone)."""
    creator = check_id(request.path_params["creator"], "creator")
    limit = VIDEOS_LIMIT.read(request)
    ids = await videos_of(app_state(request)).of_creator(creator, limit)
    return JSONResponse({"creator": creator, "videos": ids})


async def gift_video(request: Request) -> JSONResponse:
    """Send a gift on a video: ``{"id", "gift", "count"}`` → ``{"event", "balance", ...}``.

    Debited and credited exactly like a live gift; idempotent by the sender's ``id``.
    """
    caller = principal(request)
    video_id = _video_id(request)
    body = await read_body_as(request, VideoGiftBody)
    state = app_state(request)
    videos = videos_of(state)
    video = await videos.get(video_id)
    priced = price_gift(state.catalog, body.gift, body.count)
    order = SpendOrder(
        sender=caller.user, sender_name=caller.name, client_id=body.id, priced=priced,
        creator=video.creator, video=video.video,
    )  # fmt: skip
    result = await kept_result(state, order)
    if result is None:
        now = now_ms()
        (outcome,) = await state.ledger.debit_many([order], live={}, now=now)
        if isinstance(outcome, GiftingError):
            raise outcome
        result = outcome
        if not result.replayed:
            await _settle(state, videos, spend_entry(order, result, now), now)
    return JSONResponse(
        {
            "id": body.id,
            "event": result.event,
            "balance": result.balance,
            "video": video.video,
            "gift": priced.item,
            "count": priced.count,
            "coins": priced.coins,
        },
        headers={"Idempotent-Replayed": "true" if result.replayed else "false"},
    )


async def _settle(state: AppState, videos: Videos, entry: SpendEntry, now: int) -> None:
    """Credit the creator and count the gift on the video, in one round trip.

    A failure here is logged, never answered: the debit stands, and the
    persister repairs the credit and the count from the outbox entry.
    """
    deadline = state.ledger.settle_deadline(now)
    try:
        failures = await state.ledger.settle_many(
            [entry], [videos.emit_call(entry, not_after=deadline)], not_after=deadline
        )
    except Exception as exc:
        failures = [exc]
    for failure in failures:
        log.warning(
            "video gift %s debited, its settle failed (the persister repairs it): %r",
            entry.event, failure,
        )  # fmt: skip


_REPLAYED = {"Idempotent-Replayed": "true when this answers a retry of an earlier call"}

routes: list[BaseRoute] = [
    ApiRoute("/v1/videos", create_video, "POST", body=VideoBody, answer=VideoCreated,
             status=201, auth="creator"),
    ApiRoute("/v1/videos/{video}", get_video, "GET", answer=VideoAnswer,
             errors=[BadRequest, NotFound]),
    ApiRoute("/v1/videos/{video}/gifts", gift_video, "POST", body=VideoGiftBody,
             answer=VideoGiftSent, auth="bearer",
             errors=[BadRequest, NotFound, UnknownItem, Forbidden, Blocked, InsufficientFunds,
                     BudgetExceeded, Conflict],
             answer_headers=_REPLAYED),
    ApiRoute("/v1/creators/{creator}/videos", list_videos, "GET", answer=VideoList,
             errors=[BadRequest], query=[VIDEOS_LIMIT]),
]  # fmt: skip
