"""Room event log on Redis: seq, capped history (cursors) and pub/sub to every hub.

On a Redis Cluster the events go over sharded pub/sub (``SPUBLISH`` on the
room's channel, which hashes to the room's slot; the hubs read them with
:class:`gifting.hub.sharded_broker.ShardedRoomBroker`), elsewhere ``PUBLISH``.

:meth:`RoomLog.emit` is atomic (emit.lua, one slot: the room's) and, with a
marker, idempotent by event id. Delivery between hubs is Redis pub/sub (at
most once, in order per channel); the history stream is what makes overlays
whole again after a gap (``since=cursor``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from redis.asyncio import Redis

from gifting.clock import now_ms
from gifting.core.boxes import drop_tasks as box_drop_tasks
from gifting.core.catalog import Catalog
from gifting.core.entries import SpendEntry
from gifting.core.errors import Conflict
from gifting.core.events import spend_event
from gifting.core.goals import GoalState
from gifting.core.guests import Guest, decode_guests
from gifting.core.hype import hype_config
from gifting.core.levels import level_up_event, level_up_event_ids
from gifting.store.box_calls import create_call as box_create_call
from gifting.store.cluster import is_cluster
from gifting.store.deadlines import Deadlines
from gifting.store.goals import goals_from_hash
from gifting.store.history import HistoryEntry, history_since, parse_cursor
from gifting.store.hype import HypeDeadlines, HypeState, hype_from_fields
from gifting.store.keys import Keys
from gifting.store.retire import settle_failure
from gifting.store.scripts import ScriptCall, Scripts
from gifting.store.streams import Totals
from gifting.store.videos import video_emit_call

__all__ = [
    "Emitted",
    "HistoryEntry",
    "RoomLog",
    "RoomSnapshot",
    "frame_envelope",
    "parse_cursor",
    "parse_envelope",
]

_json = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Emitted:
    """Where an event landed in its room."""

    seq: int
    cursor: str
    replayed: bool


@dataclass(frozen=True, slots=True)
class RoomSnapshot:
    """A room's state at one seq (read at once by snapshot.lua): the events after
    ``seq`` are exactly those it does not cover."""

    seq: int
    cursor: str  # "" when the history is empty
    creator: str
    creator_name: str
    title: str
    live: bool
    goals: list[GoalState]
    totals: Totals
    #: The stream's guests at that seq (a later change arrives as a ``guests`` event).
    guests: tuple[Guest, ...] = ()
    #: The running hype (possibly past its expiry, not ended yet), or None.
    hype: HypeState | None = None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _pairs(flat: Sequence[bytes | str]) -> dict[str, str]:
    return {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}


def frame_envelope(seq: int, cursor: str, body: bytes) -> bytes:
    """The pub/sub payload of an event: ``<seq>|<cursor>|<body>``."""
    return b"%d|%s|%s" % (seq, cursor.encode(), body)


def parse_envelope(payload: bytes) -> HistoryEntry:
    """Split a pub/sub payload back into seq, cursor and body."""
    seq, cursor, body = payload.split(b"|", 2)
    return HistoryEntry(int(seq), cursor.decode(), body)


class RoomLog:
    """Emit room events and read a room's recent history."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        catalog: Catalog,
        *,
        max_events: int = 10_000,
        max_age_s: int = 600,
        marker_ttl_s: int = 7 * 24 * 3600,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.catalog = catalog
        self.scripts = Scripts(redis)
        #: How emit.lua publishes: sharded pub/sub on a cluster.
        self.publish = "SPUBLISH" if is_cluster(redis) else "PUBLISH"
        self.max_events = max_events
        self.max_age_s = max_age_s
        self.marker_ttl_s = marker_ttl_s
        self.clock = clock
        #: The catalog's hype as emit.lua reads it ("" without one).
        self.hype_config = hype_config(catalog.hype)
        self.hype = HypeDeadlines(redis, keys)
        self._deadlines: Deadlines | None = None

    @property
    def deadlines(self) -> Deadlines:
        """Where a box drop's open and close are scheduled (built on first use)."""
        if self._deadlines is None:
            self._deadlines = Deadlines(self.redis, self.keys)
        return self._deadlines

    async def schedule_boxes(self, entries: Sequence[SpendEntry]) -> None:
        """Schedule the open and close of every treasure box dropped among ``entries``.

        Called after their emission (which creates the box) by the hub's
        settle step and by the persister's repair: both schedule the same
        due times, so the second changes nothing; a deadline that ran
        already and is scheduled again finds its box settled (a no-op).
        """
        for e in entries:
            if e.kind == "box" and e.stream:
                for task, due in box_drop_tasks(e.stream, e.event, e.ts, e.item, e.coins):
                    await self.deadlines.schedule(task, due)

    def emit_args(
        self,
        stream: str,
        body: Mapping[str, Any],
        *,
        once: bool = True,
        sender: str = "",
        sender_name: str = "",
        coins: int = 0,
        gifts: int = 0,
        item_field: str = "",
        until_retired: bool = False,
        not_after: int | None = None,
        fingerprint: str = "",
        marker_ttl_s: int | None = None,
        spend_event_id: str = "",
        spend_ts: int | None = None,
        hype_end: str = "",
    ) -> tuple[list[str], list[str | int]]:
        """KEYS and ARGV of emit.lua for one event (for batching in a pipeline).

        ``once``: keep a marker so the event is emitted once (for the
        idempotency TTL, or with ``until_retired`` without expiry until the
        persister retires it: a spend's). ``not_after`` (unix ms): past it
        Redis refuses a first emission (``stale``). ``fingerprint`` (with
        ``once``) is kept with the event's marker: emitting the same event id
        with another fingerprint is refused (:class:`Conflict`). ``marker_ttl_s``
        overrides the marker's lifetime for an event retried only briefly.
        ``spend_event_id`` and ``spend_ts``: the event is a spend's, whose first
        emission counts toward the room's goals and hype (emit.lua, "Goals", "Hype").
        ``hype_end``: the event ends that hype instance, if it still runs and ran
        out (the status is then "gone" or "early": see gifting/store/hype.py).
        """
        k = self.keys
        keys = [
            k.room_emitted(stream, str(body["event"])),
            k.room_seq(stream),
            k.room_history(stream),
            k.stream_totals(stream),
            k.stream_top(stream),
            k.stream_names(stream),
            k.stream_goals(stream),
            k.stream_hype(stream),
            k.stream_hype_window(stream),
        ]
        min_id = max(self.clock() - self.max_age_s * 1000, 0)
        args: list[str | int] = [
            _json.encode(body).decode(),
            self.max_events,
            min_id,
            (-1 if until_retired else marker_ttl_s or self.marker_ttl_s) if once else 0,
            k.room_channel(stream),
            sender,
            sender_name,
            coins,
            gifts,
            item_field,
            "" if not_after is None else not_after,
            self.publish,
            fingerprint,
            spend_event_id,
            "" if spend_ts is None else str(spend_ts),
            _json.encode(stream).decode(),
            self.hype_config,
            hype_end,
        ]
        return keys, args

    async def emit(self, stream: str, body: Mapping[str, Any], **kw: Any) -> Emitted:
        """Emit one event to its room (see :meth:`emit_args` for the options).

        Raises :class:`Conflict` when the event id was emitted with another fingerprint.
        """
        keys, args = self.emit_args(stream, body, **kw)
        status, seq, cursor = await self.scripts.run("emit", keys, args)
        if status == "conflict":
            raise Conflict("this message id was already used with another payload")
        return Emitted(int(seq), cursor, status == "replay")

    def spend_emit_args(
        self, entry: SpendEntry, *, not_after: int | None = None
    ) -> tuple[list[str], list[str | int]]:
        """emit.lua arguments for the room event of a settled spend outbox entry.

        Its marker has no expiry until the persister retires it; ``not_after``
        is the emission's deadline (see :mod:`gifting.store.retire`). A spend
        the platform keeps (a creator's own effect or highlight: no
        ``creator``) is shown but adds nothing to the room's totals or top.
        """
        body = spend_event(entry, self.catalog)
        gift = entry.kind == "gift"
        return self.emit_args(
            entry.stream,
            body,
            sender=entry.user,
            sender_name=entry.name,
            coins=entry.coins if entry.creator else 0,
            gifts=entry.count if gift else 0,
            item_field=f"gift:{entry.item}" if gift else "",
            until_retired=True,
            not_after=not_after,
            spend_event_id=entry.event,
            spend_ts=entry.ts,
        )

    def spend_emit_calls(
        self, entry: SpendEntry, *, not_after: int | None = None
    ) -> list[ScriptCall]:
        """The emit.lua calls of a settled spend: its event, then its ``level_up`` events.

        The debit that moved the sender's lifetime total across a level's
        threshold causes a ``level_up`` per threshold crossed
        (:func:`~gifting.core.levels.levels_reached`), emitted right after the
        spend's event with ids derived from the spend's: the hub and the
        persister's repair both build them, and the room's marker lets one
        emission of each through. Like the spend's, it is
        refused past ``not_after``, and its marker lives until the persister
        retires the spend (:mod:`gifting.store.retire`).
        """
        calls = [ScriptCall("emit", *self.spend_emit_args(entry, not_after=not_after))]
        if not entry.stream:
            return calls
        if entry.kind == "box":
            # A treasure box: its state is created first (idempotent, like the emission),
            # then its ``box_dropped`` (the drop's own event) shows it (gifting/store/boxes.py).
            calls.insert(0, box_create_call(self.keys, entry, not_after=not_after))
        for event, level in level_up_event_ids(
            self.catalog, entry.event, entry.lifetime, entry.coins
        ):
            body = level_up_event(entry.stream, event, entry.ts, entry.user, entry.name, level)
            args = self.emit_args(entry.stream, body, until_retired=True, not_after=not_after)
            calls.append(ScriptCall("emit", *args))
        return calls

    async def emit_spend(self, entry: SpendEntry, *, not_after: int | None = None) -> Emitted:
        """Emit the room event of a settled spend (and its ``level_up``), once each.

        Refused past ``not_after``; returns the spend's emission.
        """
        calls = self.spend_emit_calls(entry, not_after=not_after)
        replies = [await self.scripts.run(c.name, c.keys, c.args) for c in calls]
        # The spend's own emission: after the box's creation for a box drop.
        status, seq, cursor = replies[1 if entry.kind == "box" else 0]
        return Emitted(int(seq), cursor, status == "replay")

    async def aclose(self) -> None:
        """Close the private pipeline connections of the batch calls (not the Redis client)."""
        await self.scripts.close()
        if self._deadlines is not None:
            await self._deadlines.aclose()

    async def emit_spends(
        self, entries: Sequence[SpendEntry], not_after: int | None = None
    ) -> None:
        """Emit the room events of settled spends, once each, in one pipeline (repair path).

        One EXISTS per event first (the marker emit.lua sets): the hub emitted
        almost all of them already, and only the rest run the script, refused
        past ``not_after`` (then :class:`~gifting.store.retire.LateSettle` is
        raised, like any failure: the caller retries the batch).
        """
        every = [
            c for e in entries if e.stream for c in self.spend_emit_calls(e, not_after=not_after)
        ]
        # A gift on a video counts in the video's totals and history (gifting/store/videos.py).
        every += [self.video_emit_call(e, not_after=not_after) for e in entries if e.video]
        # KEYS[1] of emit.lua is the event's marker (a level_up has its own).
        shown = await self.scripts.exists_many([c.keys[0] for c in every], lane="repair")
        calls = [c for c, done in zip(every, shown, strict=True) if not done]
        for reply in await self.scripts.run_many(calls):
            failure = settle_failure(reply)
            if failure is not None:
                raise failure
        await self.schedule_boxes(entries)
        if self.hype_config:
            # Every spend has been emitted by now (here or by its hub): a hype one of them
            # started has its deadline, even if the hub died right after the emission.
            await self.hype.ensure({e.stream for e in entries if e.stream})

    def video_emit_call(self, entry: SpendEntry, *, not_after: int | None = None) -> ScriptCall:
        """The emit.lua call counting a gift on a video in the video's totals and history."""
        min_id = max(self.clock() - self.max_age_s * 1000, 0)
        return video_emit_call(
            self.keys, entry, self.catalog, max_events=self.max_events, min_id=min_id,
            publish=self.publish, not_after=not_after,
        )  # fmt: skip

    async def since(self, stream: str, cursor: str, limit: int = 20_000) -> list[HistoryEntry]:
        """The events after ``cursor``, oldest first; raise CursorExpired if some were trimmed."""
        k = self.keys
        return await history_since(
            self.redis, k.room_history(stream), k.room_seq(stream), cursor, limit
        )

    async def snapshot(self, stream: str, top_n: int = 3) -> RoomSnapshot:
        """The room's stream, totals, top gifters, goals, seq and cursor, read at once."""
        k = self.keys
        keys = [
            k.stream(stream),
            k.stream_totals(stream),
            k.stream_top(stream),
            k.stream_names(stream),
            k.room_seq(stream),
            k.room_history(stream),
            k.stream_goals(stream),
            k.stream_hype(stream),
        ]
        reply = await self.scripts.run_raw("snapshot", keys, [top_n])
        seq, cursor, info_flat, totals_flat, top_flat, goals_flat, hype_flat = reply
        info = _pairs(info_flat)
        totals = {name: int(value) for name, value in _pairs(totals_flat).items()}
        coins = totals.get("coins", 0)
        top = [
            {"user": _text(top_flat[i]), "name": _text(top_flat[i + 2]),
             "coins": int(float(top_flat[i + 1]))}
            for i in range(0, len(top_flat), 3)
        ]  # fmt: skip
        return RoomSnapshot(
            seq=int(seq),
            cursor=_text(cursor),
            creator=info["creator"],
            creator_name=info["creator_name"],
            title=info["title"],
            live=info["live"] == "1",
            goals=goals_from_hash(_pairs(goals_flat)),
            hype=hype_from_fields(hype_flat or [None] * 4),
            totals=Totals(coins, totals.get("gifts", 0), top),
            guests=decode_guests(info.get("guests")),
        )

    async def last_cursor(self, stream: str) -> str | None:
        """The cursor of the room's latest event, or ``None`` for an empty room."""
        rows = await self.redis.xrevrange(self.keys.room_history(stream), "+", "-", count=1)
        if not rows:
            return None
        i, f = rows[0]
        return f"{i.decode()}_{int(f[b's'])}"
