"""The hub of one process: its rooms, the broker, the gift path and live features.

Built once by the lifespan (gifting/app.py) and shared by every WebSocket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

from redis.asyncio import Redis

from gifting.clock import now_ms
from gifting.config import Settings
from gifting.core.catalog import Catalog
from gifting.core.errors import GiftingError, RateLimited, StreamNotLive
from gifting.core.events import (
    comment_event,
    goal_event,
    leaderboard_event,
    sender_of,
    streak_end_event,
    stream_ended_event,
)
from gifting.core.ids import new_id
from gifting.core.pricing import check_comment
from gifting.hub.broker import RoomBroker
from gifting.hub.room import Member, Room
from gifting.hub.spends import Settled, SpendPipeline
from gifting.store.keys import Keys
from gifting.store.ledger import Ledger
from gifting.store.rooms import RoomLog
from gifting.store.streams import Streams

log = logging.getLogger(__name__)
LEADERBOARD_INTERVAL_S = 1.0


@dataclass(slots=True)
class TokenBucket:
    """A per-sender rate limit: ``rate`` tokens a second, up to ``burst``."""

    rate: float
    burst: float
    tokens: float = 0.0
    stamp: float = field(default_factory=time.monotonic)

    def take(self) -> bool:
        """Take one token if there is one."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class Hub:
    """Rooms of this process, fed by Redis pub/sub; the gift path; combos and leaderboards."""

    def __init__(
        self,
        settings: Settings,
        redis: Redis,
        keys: Keys,
        catalog: Catalog,
        ledger: Ledger,
        streams: Streams,
        rooms: RoomLog,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.keys = keys
        self.catalog = catalog
        self.ledger = ledger
        self.streams = streams
        self.roomlog = rooms
        self.broker = RoomBroker(redis, f"{keys.prefix}:hub:control")
        self.pipeline = SpendPipeline(ledger, streams, rooms, on_settled=self._on_settled)
        self.rooms: dict[str, Room] = {}
        self._joining: dict[str, asyncio.Lock] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._streaks: dict[tuple[str, str, str], asyncio.TimerHandle] = {}
        self._dirty: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._ticker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the broker, the gift path and the leaderboard ticker."""
        await self.broker.start()
        self.pipeline.start()
        self._ticker = asyncio.get_running_loop().create_task(self._leaderboard_loop())

    async def stop(self) -> None:
        """Close every connection (1001: reconnect elsewhere) and stop."""
        for room in list(self.rooms.values()):
            room.close_all(1001, "server shutting down")
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        for handle in self._streaks.values():
            handle.cancel()
        await self.pipeline.stop()
        await self.broker.stop()

    # -- rooms -------------------------------------------------------------------
    async def join(self, stream: str, member: Member) -> Room:
        """Add ``member`` to the room of ``stream``, subscribing this hub if it is the first."""
        lock = self._joining.setdefault(stream, asyncio.Lock())
        async with lock:
            room = self.rooms.get(stream)
            if room is None:
                room = Room(stream, self.roomlog.since, self.settings.viewer_batch_ms / 1000)
                last = await self.roomlog.last_cursor(stream)
                if last is not None:
                    room.last_cursor = last
                    room.last_seq = int(last.rsplit("_", 1)[1])
                self.rooms[stream] = room
                await self.broker.subscribe(self.keys.room_channel(stream), room.receive)
            room.add(member)
            return room

    async def leave(self, room: Room, member: Member) -> None:
        """Remove ``member``; the last one out unsubscribes the hub from the room."""
        room.remove(member)
        lock = self._joining.setdefault(room.stream, asyncio.Lock())
        async with lock:
            if room.empty and self.rooms.get(room.stream) is room:
                del self.rooms[room.stream]
                await self.broker.unsubscribe(self.keys.room_channel(room.stream))
                self._joining.pop(room.stream, None)

    async def recover(self, room: Room, member: Member, cursor: str) -> None:
        """Send an overlay the events after ``cursor``, then switch it to live, gap-free.

        The member joined with ``pending`` set, so live events wait while the
        history is read; both are merged by seq so nothing shows twice.
        """
        missed = await self.roomlog.since(room.stream, cursor)
        waiting = member.pending or []
        member.pending = None
        for entry in sorted([*missed, *waiting], key=lambda e: e.seq):
            member.give(entry)

    def release(self, member: Member) -> None:
        """Switch a member waiting in recovery to live, delivering what waited."""
        waiting = member.pending or []
        member.pending = None
        for entry in waiting:
            member.give(entry)

    # -- the gift path -------------------------------------------------------------
    def allow(self, user: str) -> None:
        """Apply the per-sender rate limit, or raise ``RateLimited``."""
        bucket = self._buckets.get(user)
        if bucket is None:
            bucket = TokenBucket(self.settings.rate_per_s, self.settings.rate_burst)
            bucket.tokens = float(self.settings.rate_burst)
            self._buckets[user] = bucket
            if len(self._buckets) > 100_000:
                self._buckets.clear()
        if not bucket.take():
            raise RateLimited("too many messages; slow down")

    async def comment(self, stream: str, user: str, name: str, client_id: str, text: object) -> str:
        """Post a free comment to the room, once per client id; returns its event id."""
        body_text = check_comment(text)
        if not await self.streams.is_live(stream):
            raise StreamNotLive("the stream is not live")
        event = f"m{client_id}.{user}"[:120]
        body = comment_event(stream, event, now_ms(), sender_of(user, name), body_text)
        await self.roomlog.emit(stream, body)
        return event

    def _on_settled(self, s: Settled) -> None:
        o = s.order
        self._dirty.add(o.stream)
        p = o.priced
        if p.kind == "gift" and p.streakable:
            key = (o.sender, o.stream, p.item)
            old = self._streaks.pop(key, None)
            if old is not None:
                old.cancel()
            delay = self.settings.combo_window_ms / 1000
            self._streaks[key] = asyncio.get_running_loop().call_later(
                delay, self._end_streak, key, o.sender_name, s.result.combo
            )

    def _end_streak(self, key: tuple[str, str, str], name: str, combo: int) -> None:
        self._streaks.pop(key, None)
        sender, stream, gift = key
        now = now_ms()
        body = streak_end_event(stream, new_id("k", now), now, sender_of(sender, name), gift, combo)
        self._spawn(self.roomlog.emit(stream, body, once=False))

    def _spawn(self, coro: object) -> None:
        async def run() -> None:
            try:
                await coro  # type: ignore[misc]
            except Exception as exc:
                log.warning("room event failed: %s", exc)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _leaderboard_loop(self) -> None:
        while True:
            await asyncio.sleep(LEADERBOARD_INTERVAL_S)
            dirty, self._dirty = self._dirty, set()
            for stream in dirty:
                try:
                    await self.emit_standings(stream)
                except GiftingError:
                    pass
                except Exception as exc:
                    log.warning("leaderboard for %s failed: %s", stream, exc)

    async def emit_standings(self, stream: str) -> None:
        """Emit the stream's leaderboard and, if a goal is set, its progress."""
        info = await self.streams.get(stream)
        totals = await self.streams.totals(info)
        now = now_ms()
        await self.roomlog.emit(
            stream, leaderboard_event(stream, new_id("l", now), now, totals.top), once=False
        )
        if info.goal is not None:
            body = goal_event(
                stream,
                new_id("g", now),
                now,
                info.goal.target,
                totals.goal_progress,
                info.goal.gift,
            )
            await self.roomlog.emit(stream, body, once=False)

    async def end_stream(self, stream: str) -> None:
        """Emit ``stream_ended``; every hub closes the room's connections after it."""
        now = now_ms()
        await self.roomlog.emit(stream, stream_ended_event(stream, f"x{stream}", now))
