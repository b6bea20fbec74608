"""Live streams (rooms): who created them, whether they are live, goals and totals.

A stream's keys share the hash tag ``{r:<stream>}``. The spend script never
reads them (they live in another slot): the hub reads ``live`` just before a
spend (:meth:`Streams.live_many`, once per batch). That read is one round
trip old when the script runs, so :meth:`Streams.end` first closes the
stream's gate in every wallet shard (``Keys.stream_gate``: 16 small writes,
each in its own slot), and spend.lua refuses a spend whose shard's gate is
closed. Once ``end`` has returned, no spend to the stream is debited.

Each gate also counts the spends spend.lua debited to the stream in its
shard, and emit.lua counts the spends the room has shown, so the hub can
hold ``stream_ended`` until every debited gift was shown before it
(:meth:`Streams.wait_shown`).
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from gifting.clock import now_ms
from gifting.core.catalog import Catalog
from gifting.core.errors import BadRequest, Forbidden, NotFound, StreamNotLive
from gifting.core.goals import GoalState, check_goals
from gifting.core.guests import Guest, check_guests, decode_guests, encode_guests, guest_names
from gifting.core.ids import check_id, new_id
from gifting.store.goals import Goals
from gifting.store.keys import Keys

MAX_TITLE_LENGTH = 200
#: The id of the goal the older ``PUT .../goal`` sets.
LEGACY_GOAL_ID = "goal"
#: How long an ended stream's gates are kept: far longer than any batch takes from
#: its live read to its scripts (bounded by the Redis timeout), short enough that
#: ended streams do not pile up gates.
ENDED_GATE_TTL_S = 24 * 3600
_SHOWN_POLL_S = 0.02


@dataclass(frozen=True, slots=True)
class Stream:
    """A stream as stored: its creator, title, state and overlay key (goals: :mod:`.goals`)."""

    stream: str
    creator: str
    creator_name: str
    title: str
    live: bool
    overlay_key: str
    created: int
    ended: int | None
    #: The stream's current guests (who may receive gifts besides the creator).
    guests: tuple[Guest, ...] = ()


@dataclass(frozen=True, slots=True)
class Totals:
    """Coins and gifts a stream received, and its top gifters."""

    coins: int
    gifts: int
    top: list[dict[str, Any]]


def _s(raw: dict[bytes, bytes], field: str, default: str = "") -> str:
    value = raw.get(field.encode())
    return default if value is None else value.decode()


class Streams:
    """Create, read, end and set goals on streams."""

    def __init__(
        self, redis: Redis, keys: Keys, catalog: Catalog, clock: Callable[[], int] = now_ms
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.catalog = catalog
        self.clock = clock
        self.goals = Goals(redis, keys)

    async def create(self, creator: str, creator_name: str, title: object) -> Stream:
        """Start a live stream for ``creator`` with a fresh overlay key."""
        check_id(creator, "creator")
        if not isinstance(title, str):
            raise BadRequest("title must be a string")
        if len(title) > MAX_TITLE_LENGTH:
            raise BadRequest(f"title is longer than {MAX_TITLE_LENGTH} characters")
        if any(ord(c) < 32 for c in title):
            raise BadRequest("title must not contain control characters")
        now = self.clock()
        stream_id = new_id("s", now)
        key = secrets.token_urlsafe(24)
        await self.redis.hset(
            self.keys.stream(stream_id),
            mapping={
                "creator": creator,
                "creator_name": creator_name,
                "title": title,
                "live": "1",
                "overlay_key": key,
                "created": str(now),
            },
        )
        await self.redis.zadd(self.keys.streams_of(creator), {stream_id: now})
        await self.redis.zadd(self.keys.live_streams(), {stream_id: now})
        return Stream(stream_id, creator, creator_name, title, True, key, now, None)

    async def get(self, stream_id: str) -> Stream:
        """Read a stream, or raise ``NotFound``."""
        check_id(stream_id, "stream")
        raw = await self.redis.hgetall(self.keys.stream(stream_id))
        if not raw:
            raise NotFound("no such stream")
        ended = _s(raw, "ended")
        return Stream(
            stream_id,
            _s(raw, "creator"),
            _s(raw, "creator_name"),
            _s(raw, "title"),
            _s(raw, "live") == "1",
            _s(raw, "overlay_key"),
            int(_s(raw, "created", "0")),
            int(ended) if ended else None,
            decode_guests(raw.get(b"guests")),
        )

    async def is_live(self, stream_id: str) -> bool:
        """Whether the stream exists and is live (one HGET)."""
        return bool(await self.redis.hget(self.keys.stream(stream_id), "live") == b"1")

    async def live_many(self, stream_ids: Iterable[str]) -> dict[str, bool]:
        """Whether each stream exists and is live, in one round trip (a pipeline of HGETs)."""
        ids = list(dict.fromkeys(stream_ids))
        if not ids:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for stream_id in ids:
            pipe.hget(self.keys.stream(stream_id), "live")
        return {s: v == b"1" for s, v in zip(ids, await pipe.execute(), strict=True)}

    async def check_overlay_key(self, stream_id: str, key: str) -> Stream:
        """Return the stream if ``key`` is its overlay key, else raise ``Forbidden``.

        An unknown stream gets the same refusal as a wrong key: a guess learns nothing.
        """
        try:
            stream = await self.get(stream_id)
        except NotFound:
            raise Forbidden("wrong overlay key") from None
        if not hmac.compare_digest(stream.overlay_key.encode(), key.encode()):
            raise Forbidden("wrong overlay key")
        return stream

    async def end(self, stream_id: str, user: str) -> tuple[Stream, bool]:
        """End the stream (only its creator may); returns (stream, whether it was live).

        Closes the stream's gate in every wallet shard first (also when the
        stream had ended already: a retry finishes an end cut short), then
        flips ``live``. Once this returns, no spend to the stream is debited.
        """
        stream = await self.get(stream_id)
        if stream.creator != user:
            raise Forbidden("only the stream's creator can end it")
        now = self.clock()
        pipe = self.redis.pipeline(transaction=False)
        for gate in self.keys.stream_gates(stream_id):
            pipe.hset(gate, "ended", str(now))
            pipe.expire(gate, ENDED_GATE_TTL_S)
        await pipe.execute()
        if stream.live:
            await self.redis.hset(
                self.keys.stream(stream_id), mapping={"live": "0", "ended": str(now)}
            )
        await self.redis.zrem(self.keys.live_streams(), stream_id)  # also on a retried end
        return await self.get(stream_id), stream.live

    async def debited(self, stream_id: str) -> int:
        """How many spends to the stream were debited (its gates' counts, one round trip)."""
        pipe = self.redis.pipeline(transaction=False)
        for gate in self.keys.stream_gates(stream_id):
            pipe.hget(gate, "debits")
        return sum(int(n) for n in await pipe.execute() if n is not None)

    async def shown(self, stream_id: str) -> int:
        """How many spends the stream's room has shown (emit.lua counts each once)."""
        return int(await self.redis.hget(self.keys.stream_totals(stream_id), "spends") or 0)

    async def wait_shown(self, stream_id: str, timeout_s: float) -> bool:
        """Wait until the room has shown every spend debited to the ended stream.

        The hub that debited a spend shows it right after the ack, and the
        persister shows what a crashed hub left; so this normally returns in
        a few milliseconds. False after ``timeout_s`` (the room then shows
        ``stream_ended`` before a late gift: the caller logs it).
        """
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            debited = await self.debited(stream_id)
            if await self.shown(stream_id) >= debited:
                return True
            if asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(_SHOWN_POLL_S)

    async def set_goals(self, stream_id: str, user: str, raw: object) -> list[GoalState]:
        """Replace the stream's goals (its creator only; at most three, checked first).

        A goal keeps its progress when its id and gift are unchanged
        (gifting/core/goals.py); bad input raises before anything changes.
        """
        stream = await self.get(stream_id)
        if stream.creator != user:
            raise Forbidden("only the stream's creator can set its goals")
        specs = check_goals(raw, self.catalog)
        return await self.goals.replace(stream_id, specs)

    async def set_goal(self, stream_id: str, user: str, target: object, gift: object) -> GoalState:
        """Set one goal (``PUT .../goal``, the older call): ``target`` coins, or of one gift's
        count; it replaces the list by the single goal ``"goal"``."""
        raw = [{"id": LEGACY_GOAL_ID, "title": "", "target": target, "gift": gift, "steps": []}]
        (goal,) = await self.set_goals(stream_id, user, raw)
        return goal

    async def record_spend(
        self,
        stream_id: str,
        sender: str,
        sender_name: str,
        kind: str,
        item: str,
        count: int,
        coins: int,
    ) -> None:
        """Add a settled spend to the stream's totals and leaderboard (not money: display)."""
        totals = self.keys.stream_totals(stream_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hincrby(totals, "coins", coins)
        if kind == "gift":
            pipe.hincrby(totals, "gifts", count)
            pipe.hincrby(totals, f"gift:{item}", coins)
        pipe.zincrby(self.keys.stream_top(stream_id), coins, sender)
        pipe.hset(self.keys.stream_names(stream_id), sender, sender_name)
        await pipe.execute()

    async def totals(self, stream: Stream, top_n: int = 3) -> Totals:
        """The stream's totals and top ``top_n`` gifters."""
        raw = await self.redis.hgetall(self.keys.stream_totals(stream.stream))
        top = await self.redis.zrevrange(
            self.keys.stream_top(stream.stream), 0, top_n - 1, withscores=True
        )
        names = (
            await self.redis.hmget(self.keys.stream_names(stream.stream), [u for u, _ in top])
            if top
            else []
        )
        return Totals(
            int(_s(raw, "coins", "0")),
            int(_s(raw, "gifts", "0")),
            [
                {"user": u.decode(), "name": (n or u).decode(), "coins": int(score)}
                for (u, score), n in zip(top, names, strict=True)
            ],
        )

    # -- guests (multi-guest LIVE) -----------------------------------------------------
    async def set_guests(
        self, stream_id: str, user: str, guests: Iterable[tuple[object, object]]
    ) -> Stream:
        """Replace the stream's guest list (its creator only; a live stream); return the stream.

        ``guests``: ``(user, name | None)`` pairs, checked by
        :func:`gifting.core.guests.check_guests` before anything is written.
        An ended stream is refused (``stream_not_live``): it takes no gifts.
        Last write wins between two concurrent calls by the creator.
        """
        stream = await self.get(stream_id)
        if stream.creator != user:
            raise Forbidden("only the stream's creator can set its guests")
        checked = check_guests(stream.creator, guests)
        if not stream.live:
            raise StreamNotLive("the stream has ended: it has no guests")
        await self.redis.hset(self.keys.stream(stream_id), "guests", encode_guests(checked))
        return await self.get(stream_id)

    async def admission_many(
        self, stream_ids: Iterable[str]
    ) -> tuple[dict[str, bool], dict[str, dict[str, str]]]:
        """Each stream's live flag and guests (``user -> name``), in one round trip.

        The spend batch's read (gifting/hub/spends.py): one HMGET per stream,
        pipelined, as :meth:`live_many` (which it replaces on the gift path).
        """
        ids = list(dict.fromkeys(stream_ids))
        if not ids:
            return {}, {}
        pipe = self.redis.pipeline(transaction=False)
        for stream_id in ids:
            pipe.hmget(self.keys.stream(stream_id), ["live", "guests"])
        live: dict[str, bool] = {}
        guests: dict[str, dict[str, str]] = {}
        for stream_id, (flag, raw) in zip(ids, await pipe.execute(), strict=True):
            live[stream_id] = flag == b"1"
            guests[stream_id] = guest_names(decode_guests(raw))
        return live, guests
