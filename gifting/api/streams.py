"""Live streams over HTTP: create (creators), read (anyone), end and set goals (its creator).

The overlay key is a secret: it is shown to the creator when the stream is
created (and again on ``GET /v1/streams/{id}/overlay``), never in the public
view. Ending a stream and changing its goal tell the hub through
:attr:`gifting.app.AppState.room_events` so overlays see ``stream_ended`` and
``goal`` events; the hub's hooks are idempotent, so a retried end is harmless.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute

from gifting.api.http import principal, read_body_as
from gifting.api.routing import ApiRoute
from gifting.api.schemas import (
    EmptyBody,
    GoalBody,
    GoalsBody,
    GoalSet,
    GoalsSet,
    GuestsBody,
    GuestsSet,
    Overlay,
    StreamBody,
    StreamCreated,
)
from gifting.api.schemas import Stream as StreamAnswer
from gifting.auth import CREATOR
from gifting.core.errors import BadRequest, Forbidden, NotFound, StreamNotLive, UnknownItem
from gifting.core.goals import GoalState
from gifting.core.guests import guests_event, guests_view
from gifting.core.ids import check_id, new_id
from gifting.state import app_state
from gifting.store.streams import Stream, Streams, Totals

__all__ = [
    "create_stream",
    "end_stream",
    "get_overlay",
    "get_stream",
    "routes",
    "set_goal",
    "set_goals",
    "set_guests",
    "stream_to_public",
]


def stream_to_public(
    stream: Stream, totals: Totals, goals: Sequence[GoalState] = ()
) -> dict[str, Any]:
    """The public view of a stream (docs/contract.md §4); never holds the overlay key.

    ``goals``: every goal with its progress; ``goal`` is the first, in the
    single-goal form older clients read.
    """
    return {
        "stream": stream.stream,
        "creator": stream.creator,
        "creator_name": stream.creator_name,
        "title": stream.title,
        "live": stream.live,
        "created": stream.created,
        "ended": stream.ended,
        "totals": {"coins": totals.coins, "gifts": totals.gifts},
        "top": totals.top,
        "goal": goals[0].legacy_view() if goals else None,
        "goals": [g.view() for g in goals],
        "guests": guests_view(stream.guests),
    }


async def _public(streams: Streams, stream: Stream) -> dict[str, Any]:
    goals = await streams.goals.read(stream.stream)
    return stream_to_public(stream, await streams.totals(stream), goals)


def _overlay(request: Request, stream: Stream) -> dict[str, str]:
    public_url = app_state(request).settings.public_url
    base = (public_url or str(request.base_url)).rstrip("/")
    return {
        "stream": stream.stream,
        "overlay_key": stream.overlay_key,
        "overlay_url": f"{base}/overlay/{quote(stream.stream)}?key={quote(stream.overlay_key)}",
    }


def _stream_id(request: Request) -> str:
    return check_id(request.path_params["stream"], "stream")


async def create_stream(request: Request) -> JSONResponse:
    """Start a live stream (role ``creator``): ``{"title"}`` → 201 with the overlay key and URL."""
    caller = principal(request)
    caller.require_role(CREATOR)
    body = await read_body_as(request, StreamBody)
    state = app_state(request)
    stream = await state.streams.create(caller.user, caller.name, body.title)
    return JSONResponse(
        {**await _public(state.streams, stream), **_overlay(request, stream)}, status_code=201
    )


async def get_stream(request: Request) -> JSONResponse:
    """A stream's public view: state, totals, top gifters and goal (anyone)."""
    streams = app_state(request).streams
    stream = await streams.get(_stream_id(request))
    return JSONResponse(await _public(streams, stream))


async def get_overlay(request: Request) -> JSONResponse:
    """The overlay key and URL again, for the stream's creator only."""
    caller = principal(request)
    stream = await app_state(request).streams.get(_stream_id(request))
    if stream.creator != caller.user:
        raise Forbidden("only the stream's creator can see its overlay key")
    return JSONResponse(_overlay(request, stream))


async def end_stream(request: Request) -> JSONResponse:
    """End the stream (its creator only); ending an ended stream is a no-op 200."""
    caller = principal(request)
    stream_id = _stream_id(request)
    await read_body_as(request, EmptyBody, allow_empty=True)
    state = app_state(request)
    stream, _was_live = await state.streams.end(stream_id, caller.user)
    if state.room_events is not None:
        await state.room_events.stream_ended(stream)
    return JSONResponse(await _public(state.streams, stream))


async def set_goal(request: Request) -> JSONResponse:
    """Set the goal (its creator only): ``{"target": coins, "gift": id | null}``."""
    caller = principal(request)
    stream_id = _stream_id(request)
    body = await read_body_as(request, GoalBody)
    state = app_state(request)
    await state.streams.set_goal(stream_id, caller.user, body.target, body.gift)
    stream = await state.streams.get(stream_id)
    if state.room_events is not None:
        await state.room_events.goal_changed(stream)
    public = await _public(state.streams, stream)
    return JSONResponse({"stream": stream.stream, "goal": public["goal"], "goals": public["goals"]})


async def set_goals(request: Request) -> JSONResponse:
    """Replace the goals (its creator only): ``{"goals": [{"id","title","target","gift",
    "steps"}]}``, at most three; a goal with the same id and gift keeps its progress."""
    caller = principal(request)
    stream_id = _stream_id(request)
    body = await read_body_as(request, GoalsBody)
    state = app_state(request)
    raw = [msgspec.structs.asdict(g) for g in body.goals]
    goals = await state.streams.set_goals(stream_id, caller.user, raw)
    if state.room_events is not None:
        await state.room_events.goal_changed(await state.streams.get(stream_id))
    return JSONResponse({"stream": stream_id, "goals": [g.view() for g in goals]})


async def set_guests(request: Request) -> JSONResponse:
    """Set the guest list (its creator only, a live stream): ``{"guests": [user | {user,name}]}``.

    At most 8, no duplicates, never the creator. A change is told to the room
    as a ``guests`` event (overlays show who is on stage, and whom a gift is for).
    """
    caller = principal(request)
    stream_id = _stream_id(request)
    body = await read_body_as(request, GuestsBody)
    pairs = [(g, None) if isinstance(g, str) else (g.user, g.name) for g in body.guests]
    state = app_state(request)
    before = await state.streams.get(stream_id)
    stream = await state.streams.set_guests(stream_id, caller.user, pairs)
    if state.roomlog is not None and stream.guests != before.guests:
        now = state.streams.clock()
        event = guests_event(stream.stream, new_id("u", now), now, stream.guests)
        await state.roomlog.emit(stream.stream, event, once=False)
    return JSONResponse({"stream": stream.stream, "guests": guests_view(stream.guests)})


_CREATORS = [BadRequest, Forbidden, NotFound]  # a bad id; another's stream; no stream

routes: list[BaseRoute] = [
    ApiRoute("/v1/streams", create_stream, "POST", body=StreamBody, answer=StreamCreated,
             status=201, auth="creator"),
    ApiRoute("/v1/streams/{stream}", get_stream, "GET", answer=StreamAnswer,
             errors=[BadRequest, NotFound]),
    ApiRoute("/v1/streams/{stream}/overlay", get_overlay, "GET", answer=Overlay, auth="bearer",
             errors=_CREATORS),
    ApiRoute("/v1/streams/{stream}/end", end_stream, "POST", body=EmptyBody, body_optional=True,
             answer=StreamAnswer, auth="bearer", errors=_CREATORS),
    ApiRoute("/v1/streams/{stream}/goal", set_goal, "PUT", body=GoalBody, answer=GoalSet,
             auth="bearer", errors=[*_CREATORS, UnknownItem]),
    ApiRoute("/v1/streams/{stream}/goals", set_goals, "PUT", body=GoalsBody, answer=GoalsSet,
             auth="bearer", errors=[*_CREATORS, UnknownItem]),
    ApiRoute("/v1/streams/{stream}/guests", set_guests, "PUT", body=GuestsBody,
             answer=GuestsSet, auth="bearer", errors=[*_CREATORS, StreamNotLive]),
]  # fmt: skip
