"""Moderation over HTTP: moderators, blocks, hidden events, and their durable history.

* ``POST /v1/moderators`` ``{"user"}`` (role ``creator``): name a moderator of
  all the caller's streams; ``DELETE /v1/moderators/{user}``; ``GET /v1/moderators``.
* ``POST /v1/streams/{id}/blocks`` ``{"user","scope":"stream"|"creator"}``,
  ``DELETE /v1/streams/{id}/blocks/{user}[?scope=]``, ``GET /v1/streams/{id}/blocks``
  (the stream's creator or one of the creator's moderators).
* ``POST /v1/streams/{id}/events/{event}/hide``: a ``hidden`` room event.
* ``GET /v1/streams/{id}/moderation?limit=&before=``: who did what, when,
  in the stream (and the creator-wide blocks set from it), newest first,
  from PostgreSQL.

The store (:mod:`gifting.store.moderation`) enforces; this module checks the
caller, answers, counts each action that changed something
(``gifting_moderation_actions_total``) and records it in PostgreSQL
(``moderation_actions``). The record is written after the action took
effect: a moderation action must work while the database is down, so a
failed write is logged and counted (``gifting_moderation_history_failures_total``)
rather than refused.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from prometheus_client import Counter
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute

from gifting.api.http import principal, read_body_as
from gifting.api.routing import ApiRoute, QueryChoice, QueryInt
from gifting.api.schemas import MAX_SAFE_INTEGER, EmptyBody
from gifting.api.tool_schemas import (
    BlockBody,
    Blocks,
    BlockSet,
    EventHidden,
    ModerationHistory,
    ModeratorAdded,
    ModeratorBody,
    ModeratorRemoved,
    Moderators,
    Unblocked,
)
from gifting.auth import CREATOR
from gifting.core.errors import Forbidden, NotFound, Unavailable
from gifting.core.ids import check_id
from gifting.state import AppState, app_state
from gifting.store.moderation import SCOPES, Moderation
from gifting.store.wiring import build_roomlog

__all__ = [
    "add_moderator",
    "block_user",
    "hide_event",
    "list_blocks",
    "list_moderators",
    "moderation_history",
    "remove_moderator",
    "routes",
    "unblock_user",
]

log = logging.getLogger(__name__)

ACTIONS = Counter(
    "gifting_moderation_actions_total",
    "Moderation actions that changed something (moderator_added, moderator_removed, block, "
    "unblock, hide)",
    ["action"],
)
HISTORY_FAILURES = Counter(
    "gifting_moderation_history_failures_total",
    "Moderation actions that took effect but could not be recorded in PostgreSQL",
)

MAX_HISTORY = 200
LIMIT = QueryInt("limit", default=50, minimum=1, maximum=MAX_HISTORY)
BEFORE = QueryInt(
    "before", default=MAX_SAFE_INTEGER, minimum=1, maximum=MAX_SAFE_INTEGER,
    description="the `next` of the previous page: actions older than this id",
)  # fmt: skip
SCOPE = QueryChoice("scope", SCOPES, description="lift only the block of this scope")

_INSERT = """
INSERT INTO moderation_actions (creator_id, stream_id, actor_id, action, target_user,
                                target_event, scope, ts)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
"""
_HISTORY = """
SELECT id, creator_id, stream_id, actor_id, action, target_user, target_event, scope, ts
FROM moderation_actions
WHERE (stream_id = $1 OR (creator_id = $2 AND stream_id IS NULL)) AND id < $3
ORDER BY id DESC
LIMIT $4
"""
_DOWN = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


def _moderation(state: AppState) -> Moderation:
    return Moderation(state.redis, state.keys, state.streams)


async def _record(
    state: AppState,
    *,
    creator: str,
    stream: str | None,
    actor: str,
    action: str,
    user: str | None = None,
    event: str | None = None,
    scope: str | None = None,
    ts: int,
) -> None:
    """Count an action that changed something and record it in PostgreSQL (best effort)."""
    ACTIONS.labels(action).inc()
    pool = state.pg_pool
    if pool is None:
        log.warning("no PostgreSQL: moderation action %s by %s is not recorded", action, actor)
        return
    try:
        await pool.execute(_INSERT, creator, stream, actor, action, user, event, scope, ts)
    except _DOWN as exc:
        HISTORY_FAILURES.inc()
        log.error(
            "moderation action %s by %s in %s took effect but is not recorded: %s",
            action, actor, stream or creator, exc,
        )  # fmt: skip


def _stream_id(request: Request) -> str:
    return check_id(request.path_params["stream"], "stream")


# -- moderators -----------------------------------------------------------------------
async def add_moderator(request: Request) -> JSONResponse:
    """Name a moderator of all the caller's streams (role ``creator``): ``{"user"}``."""
    caller = principal(request)
    caller.require_role(CREATOR)
    user = (await read_body_as(request, ModeratorBody)).user
    state = app_state(request)
    moderator, added = await _moderation(state).add_moderator(caller.user, user)
    if added:
        await _record(
            state, creator=caller.user, stream=None, actor=caller.user,
            action="moderator_added", user=user, ts=moderator.at,
        )  # fmt: skip
    return JSONResponse({**moderator.to_public(), "creator": caller.user, "added": added})


async def remove_moderator(request: Request) -> JSONResponse:
    """Remove a moderator (role ``creator``); removing a non-moderator is a no-op 200."""
    caller = principal(request)
    caller.require_role(CREATOR)
    user = check_id(request.path_params["user"], "user")
    state = app_state(request)
    removed = await _moderation(state).remove_moderator(caller.user, user)
    if removed:
        await _record(
            state, creator=caller.user, stream=None, actor=caller.user,
            action="moderator_removed", user=user, ts=state.streams.clock(),
        )  # fmt: skip
    return JSONResponse({"user": user, "creator": caller.user, "removed": removed})


async def list_moderators(request: Request) -> JSONResponse:
    """The caller's moderators (role ``creator``), oldest first."""
    caller = principal(request)
    caller.require_role(CREATOR)
    found = await _moderation(app_state(request)).moderators(caller.user)
    return JSONResponse({"creator": caller.user, "moderators": [m.to_public() for m in found]})


# -- blocks ---------------------------------------------------------------------------
async def block_user(request: Request) -> JSONResponse:
    """Block ``{"user","scope"}`` in the stream or every stream of its creator."""
    caller = principal(request)
    stream_id = _stream_id(request)
    body = await read_body_as(request, BlockBody)
    user, scope = body.user, body.scope
    state = app_state(request)
    block, added = await _moderation(state).block(stream_id, caller.user, user, scope)
    if added:
        await _record(
            state, creator=block.creator, stream=stream_id, actor=caller.user,
            action="block", user=user, scope=scope, ts=block.at,
        )  # fmt: skip
    return JSONResponse({**block.to_public(), "added": added})


async def unblock_user(request: Request) -> JSONResponse:
    """Lift the user's blocks in the stream (``?scope=`` to lift only one kind)."""
    caller = principal(request)
    stream_id = _stream_id(request)
    user = check_id(request.path_params["user"], "user")
    scope = SCOPE.read(request)
    state = app_state(request)
    moderation = _moderation(state)
    lifted = await moderation.unblock(stream_id, caller.user, user, scope)
    for block in lifted:
        await _record(
            state, creator=block.creator, stream=stream_id, actor=caller.user,
            action="unblock", user=user, scope=block.scope, ts=state.streams.clock(),
        )  # fmt: skip
    return JSONResponse({"user": user, "lifted": [b.to_public() for b in lifted]})


async def list_blocks(request: Request) -> JSONResponse:
    """The blocks in force in the stream: its own and its creator's, oldest first."""
    caller = principal(request)
    stream_id = _stream_id(request)
    found = await _moderation(app_state(request)).blocks(stream_id, caller.user)
    return JSONResponse({"stream": stream_id, "blocks": [b.to_public() for b in found]})


# -- hidden events --------------------------------------------------------------------
async def hide_event(request: Request) -> JSONResponse:
    """Hide a comment or highlight: one ``hidden`` room event; idempotent."""
    caller = principal(request)
    stream_id = _stream_id(request)
    target = check_id(request.path_params["event"], "event")
    await read_body_as(request, EmptyBody, allow_empty=True)
    state = app_state(request)
    roomlog = state.roomlog
    own = roomlog is None
    if roomlog is None:  # an HTTP-only app: emit through a room log of its own
        roomlog = build_roomlog(state.settings, state.redis, state.catalog)
    try:
        hidden = await _moderation(state).hide(roomlog, stream_id, caller.user, target)
    finally:
        if own:
            await roomlog.aclose()
    if hidden.changed:
        stream = await state.streams.get(stream_id)
        await _record(
            state, creator=stream.creator, stream=stream_id, actor=caller.user,
            action="hide", event=target, ts=state.streams.clock(),
        )  # fmt: skip
    return JSONResponse(
        {"stream": stream_id, "event": hidden.event, "target": target, "hidden": True}
    )


# -- history --------------------------------------------------------------------------
def _action(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": int(row["id"]), "action": row["action"], "actor": row["actor_id"],
        "creator": row["creator_id"], "stream": row["stream_id"], "user": row["target_user"],
        "event": row["target_event"], "scope": row["scope"], "ts": int(row["ts"]),
    }  # fmt: skip


async def moderation_history(request: Request) -> JSONResponse:
    """Who did what, when, in the stream (and moderator changes of its creator), newest first.

    ``?limit=`` (at most 200) and ``?before=<id>`` page back; ``next`` is the
    ``before`` of the next page, ``null`` at the end.
    """
    caller = principal(request)
    stream_id = _stream_id(request)
    limit = LIMIT.read(request)
    before = BEFORE.read(request)
    state = app_state(request)
    stream = await _moderation(state).authorize(stream_id, caller.user)
    pool = state.pg_pool
    if pool is None:
        raise Unavailable("the ledger database is not available")
    try:
        rows = await pool.fetch(_HISTORY, stream_id, stream.creator, before, limit)
    except _DOWN:
        raise Unavailable("the ledger database is not reachable; retry later") from None
    actions = [_action(r) for r in rows]
    following = actions[-1]["id"] if len(actions) == limit else None
    return JSONResponse({"stream": stream_id, "actions": actions, "next": following})


_STAFF = [Forbidden, NotFound]  # not the creator nor a moderator; no such stream

routes: list[BaseRoute] = [
    ApiRoute("/v1/moderators", add_moderator, "POST", body=ModeratorBody, answer=ModeratorAdded,
             auth="creator", tags=["moderation"]),
    ApiRoute("/v1/moderators", list_moderators, "GET", answer=Moderators, auth="creator",
             tags=["moderation"]),
    ApiRoute("/v1/moderators/{user}", remove_moderator, "DELETE", answer=ModeratorRemoved,
             auth="creator", tags=["moderation"]),
    ApiRoute("/v1/streams/{stream}/blocks", block_user, "POST", body=BlockBody, answer=BlockSet,
             auth="bearer", errors=_STAFF, tags=["moderation"]),
    ApiRoute("/v1/streams/{stream}/blocks", list_blocks, "GET", answer=Blocks, auth="bearer",
             errors=_STAFF, tags=["moderation"]),
    ApiRoute("/v1/streams/{stream}/blocks/{user}", unblock_user, "DELETE", answer=Unblocked,
             auth="bearer", query=[SCOPE], errors=_STAFF, tags=["moderation"]),
    ApiRoute("/v1/streams/{stream}/events/{event}/hide", hide_event, "POST", body=EmptyBody,
             body_optional=True, answer=EventHidden, auth="bearer", errors=_STAFF,
             tags=["moderation"]),
    ApiRoute("/v1/streams/{stream}/moderation", moderation_history, "GET",
             answer=ModerationHistory, auth="bearer", query=[LIMIT, BEFORE], errors=_STAFF,
             tags=["moderation"]),
]  # fmt: skip
