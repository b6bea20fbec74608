"""Moderation on Redis: a creator's moderators, blocked users, hidden room events.

A creator names moderators (``Keys.moderators``, in the creator's slot); the
creator and their moderators may block users and hide comments in any of the
creator's streams.

A block is enforced by spend.lua, atomically with the debit: it is written in
the *blocked user's* wallet shard (``Keys.block_by_creator`` for every stream
of the creator, ``Keys.block_in_stream`` for one stream), which is the slot
every spend of that user runs in. Redis runs commands of one slot in order,
so once :meth:`Moderation.block` has returned, no spend of the user in its
scope is debited, on one Redis or a cluster alike, with one write and no
fan-out to every shard. The listings (``Keys.stream_blocks``,
``Keys.creator_blocks``) live in the stream's and the creator's slots: a
block is listed before it is enforced and unenforced before it is unlisted,
so the listing always shows every block in force (a retry finishes an
operation cut short).

Hiding emits a ``hidden`` room event through the room's normal emission
(:meth:`gifting.store.rooms.RoomLog.emit`, once per target: its event id
derives from the target's), so live overlays, viewers and overlays resuming
from a cursor all see it once, in room order. Nothing here moves money.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
from redis.asyncio import Redis

from gifting.clock import now_ms
from gifting.core.errors import BadRequest, Forbidden, NotFound
from gifting.core.events import hidden_event, hidden_event_id
from gifting.core.ids import check_id
from gifting.store.keys import Keys
from gifting.store.rooms import RoomLog
from gifting.store.streams import Stream, Streams

Scope = Literal["stream", "creator"]
SCOPES: tuple[Scope, ...] = ("stream", "creator")
#: At most this many moderators per creator.
MAX_MODERATORS = 100
#: The room events a moderator may hide.
HIDEABLE_KINDS = frozenset({"comment", "highlight"})
#: How many recent room events :meth:`Moderation.hide` searches for its target.
_HISTORY_PAGE = 1000

_json = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Block:
    """One block: ``user`` may not spend or comment in ``stream`` (or all ``creator``'s)."""

    user: str
    scope: Scope
    creator: str
    stream: str  # the stream it was set in (its scope when ``scope`` is "stream")
    by: str
    at: int

    def to_public(self) -> dict[str, Any]:
        """The wire form of the block."""
        return {
            "user": self.user, "scope": self.scope, "stream": self.stream,
            "creator": self.creator, "by": self.by, "at": self.at,
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class Moderator:
    """A user the creator named moderator: ``by`` (the creator) ``at`` (unix ms)."""

    user: str
    by: str
    at: int

    def to_public(self) -> dict[str, Any]:
        """The wire form."""
        return {"user": self.user, "at": self.at}


@dataclass(frozen=True, slots=True)
class Hidden:
    """A hidden room event: the ``hidden`` event's id, the target, whether it was new."""

    stream: str
    event: str
    target: str
    changed: bool


def check_scope(scope: object) -> Scope:
    """``scope`` if it is "stream" or "creator", else raise ``BadRequest``."""
    if scope == "stream":
        return "stream"
    if scope == "creator":
        return "creator"
    raise BadRequest('scope must be "stream" or "creator"')


class Moderation:
    """Moderators, blocks and hidden events of a creator's streams."""

    def __init__(
        self, redis: Redis, keys: Keys, streams: Streams, clock: Callable[[], int] = now_ms
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.streams = streams
        self.clock = clock

    # -- moderators ----------------------------------------------------------------
    async def add_moderator(self, creator: str, user: object) -> tuple[Moderator, bool]:
        """Name ``user`` a moderator of ``creator``'s streams; (moderator, whether it is new)."""
        check_id(creator, "creator")
        name = check_id(user, "user")
        if name == creator:
            raise BadRequest("a creator moderates their own streams already")
        key = self.keys.moderators(creator)
        raw = await self.redis.hget(key, name)
        if raw is not None:
            return _moderator(name, raw), False
        if await self.redis.hlen(key) >= MAX_MODERATORS:
            raise BadRequest(f"a creator has at most {MAX_MODERATORS} moderators")
        now = self.clock()
        if not await self.redis.hsetnx(key, name, _json.encode({"by": creator, "at": now})):
            return _moderator(name, await self.redis.hget(key, name) or b"{}"), False
        return Moderator(name, creator, now), True

    async def remove_moderator(self, creator: str, user: object) -> bool:
        """Remove a moderator; whether they were one (removing a non-moderator is a no-op)."""
        name = check_id(user, "user")
        return bool(await self.redis.hdel(self.keys.moderators(creator), name))

    async def moderators(self, creator: str) -> list[Moderator]:
        """The creator's moderators, oldest first."""
        raw = await self.redis.hgetall(self.keys.moderators(creator))
        found = [_moderator(u.decode(), v) for u, v in raw.items()]
        return sorted(found, key=lambda m: (m.at, m.user))

    async def is_moderator(self, creator: str, user: str) -> bool:
        """Whether ``user`` moderates ``creator``'s streams."""
        return bool(await self.redis.hexists(self.keys.moderators(creator), user))

    async def authorize(self, stream_id: str, actor: str) -> Stream:
        """The stream, if ``actor`` is its creator or one of the creator's moderators."""
        stream = await self.streams.get(stream_id)
        if actor != stream.creator and not await self.is_moderator(stream.creator, actor):
            raise Forbidden("only the stream's creator or a moderator can do this")
        return stream

    # -- blocks --------------------------------------------------------------------
    async def block(
        self, stream_id: str, actor: str, user: object, scope: object
    ) -> tuple[Block, bool]:
        """Block ``user`` in the stream or every stream of its creator; (block, whether new).

        Once this returns, spend.lua refuses every spend of ``user`` in the
        scope with ``blocked`` (see the module docstring). Idempotent: a block
        already in force is returned as it was set.
        """
        name = check_id(user, "user")
        chosen = check_scope(scope)
        stream = await self.authorize(stream_id, actor)
        if name == stream.creator:
            raise BadRequest("the creator cannot be blocked in their own streams")
        if name == actor:
            raise BadRequest("you cannot block yourself")
        if actor != stream.creator and await self.is_moderator(stream.creator, name):
            raise Forbidden("only the creator can block a moderator")
        listing, enforced = self._block_keys(stream, name, chosen)
        prior = await self.redis.hget(listing, name)
        if prior is not None:
            block = _block(name, prior)
            # A block cut short between its listing and its enforcement is finished here.
            await self.redis.hset(enforced, mapping={"by": block.by, "at": str(block.at)})
            return block, False
        block = Block(name, chosen, stream.creator, stream.stream, actor, self.clock())
        await self.redis.hset(listing, name, _json.encode(block.to_public()))
        await self.redis.hset(enforced, mapping={"by": actor, "at": str(block.at)})
        return block, True

    async def unblock(
        self, stream_id: str, actor: str, user: object, scope: object = None
    ) -> list[Block]:
        """Lift ``user``'s blocks in this stream (``scope``: only that one); the ones lifted.

        Without ``scope`` both the stream's block and the creator-wide one are
        lifted (whatever keeps the user out of this stream). Idempotent.
        """
        name = check_id(user, "user")
        scopes = SCOPES if scope is None else (check_scope(scope),)
        stream = await self.authorize(stream_id, actor)
        lifted: list[Block] = []
        for chosen in scopes:
            listing, enforced = self._block_keys(stream, name, chosen)
            prior = await self.redis.hget(listing, name)
            await self.redis.delete(enforced)  # unenforced first: the listing stays a superset
            if prior is not None and await self.redis.hdel(listing, name):
                lifted.append(_block(name, prior))
        return lifted

    async def blocks(self, stream_id: str, actor: str) -> list[Block]:
        """The blocks that apply in the stream (its own and its creator's), oldest first."""
        stream = await self.authorize(stream_id, actor)
        own = await self.redis.hgetall(self.keys.stream_blocks(stream.stream))
        wide = await self.redis.hgetall(self.keys.creator_blocks(stream.creator))
        found = [_block(u.decode(), v) for u, v in [*own.items(), *wide.items()]]
        return sorted(found, key=lambda b: (b.at, b.user, b.scope))

    async def is_blocked(self, user: str, creator: str, stream: str) -> bool:
        """Whether ``user`` is blocked in ``stream`` of ``creator`` (one EXISTS, user's slot)."""
        k = self.keys
        found = await self.redis.exists(
            k.block_by_creator(user, creator), k.block_in_stream(user, stream)
        )
        return bool(found)

    def _block_keys(self, stream: Stream, user: str, scope: Scope) -> tuple[str, str]:
        k = self.keys
        if scope == "creator":
            return k.creator_blocks(stream.creator), k.block_by_creator(user, stream.creator)
        return k.stream_blocks(stream.stream), k.block_in_stream(user, stream.stream)

    # -- hidden events ---------------------------------------------------------------
    async def hide(self, roomlog: RoomLog, stream_id: str, actor: str, target: object) -> Hidden:
        """Emit ``hidden`` for a comment or highlight of the room, once per target.

        The target must be among the room's recent events (its history) and
        be a comment or a highlight; hiding it again answers the same event.
        """
        event = check_id(target, "event")
        stream = await self.authorize(stream_id, actor)
        hidden_id = hidden_event_id(event)
        if await self.redis.exists(self.keys.room_emitted(stream.stream, hidden_id)):
            return Hidden(stream.stream, hidden_id, event, False)
        kind = await self._kind_of(stream.stream, event)
        if kind is None:
            raise NotFound("no such event in the stream's recent history")
        if kind not in HIDEABLE_KINDS:
            raise BadRequest("only comments and highlighted comments can be hidden")
        body = hidden_event(stream.stream, hidden_id, self.clock(), event)
        emitted = await roomlog.emit(stream.stream, body)
        return Hidden(stream.stream, hidden_id, event, not emitted.replayed)

    async def _kind_of(self, stream: str, event: str) -> str | None:
        """The kind of room event ``event`` in the stream's history (newest first), or None."""
        needle = b'"event":' + _json.encode(event)
        history = self.keys.room_history(stream)
        upper = "+"
        while True:
            rows = await self.redis.xrevrange(history, upper, "-", count=_HISTORY_PAGE)
            for _id, fields in rows:
                data = fields.get(b"d", b"")
                if needle in data:
                    body = msgspec.json.decode(data)
                    if isinstance(body, dict) and body.get("event") == event:
                        return str(body.get("kind", ""))
            if len(rows) < _HISTORY_PAGE:
                return None
            upper = "(" + rows[-1][0].decode()


def _moderator(user: str, raw: bytes) -> Moderator:
    data = msgspec.json.decode(raw)
    return Moderator(user, str(data.get("by", "")), int(data.get("at", 0)))


def _block(user: str, raw: bytes) -> Block:
    data = msgspec.json.decode(raw)
    scope = check_scope(data.get("scope"))
    return Block(
        user, scope, str(data.get("creator", "")), str(data.get("stream", "")),
        str(data.get("by", "")), int(data.get("at", 0)),
    )  # fmt: skip
