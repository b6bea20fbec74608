"""The webhook worker: reads the rooms of subscribed creators and delivers their events.

One worker runs in every process that serves the app with a PostgreSQL pool
(the ``feed`` extension); only the one holding a PostgreSQL session advisory
lock (:data:`FEED_LOCK_ID`, on a connection it keeps) works, the others wait
to take over. The lock dies with its connection, so a crashed leader's
successor starts within about a second, and no two processes deliver for a
subscription at once (docs/architecture.md, "The event feed").

The leader, every ``GIFTING_WEBHOOK_POLL_MS``:

1. **collects**: for each creator with a subscription, reads each of their
   streams' room history (Redis), and the ``video_gift`` history of each of
   their videos (position ``video:<id>``), after its durable position
   (``webhook_feed_positions``), and in one transaction writes a delivery row
   per matching subscription and the new position. A restart reads on from
   there; an event read twice is kept once.
2. keeps one **sender task** per subscription. A sender POSTs its due
   deliveries (at most ``GIFTING_WEBHOOK_CONCURRENCY`` at a time, each
   bounded by ``GIFTING_WEBHOOK_TIMEOUT_S`` in all), records every attempt,
   and schedules a retry with capped, jittered exponential backoff
   (:func:`gifting.core.feed.backoff_s`) until the delivery is older than
   ``GIFTING_WEBHOOK_GIVE_UP_S``: then it is ``failed`` (logged, shown in the
   deliveries route). A stalled receiver holds only its own sender: rooms
   never wait on a delivery (the worker only reads their history).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import Final

import asyncpg
import httpx
import msgspec
from asyncpg.pool import PoolConnectionProxy
from redis.asyncio import Redis

from gifting.api.signatures import SIGNATURE_HEADER, sign
from gifting.clock import now_ms
from gifting.config import Settings
from gifting.core.errors import CursorExpired
from gifting.core.feed import backoff_s
from gifting.feed.store import Delivery, NewDelivery, Subscription, SubscriptionStore
from gifting.store.keys import Keys
from gifting.store.rooms import HistoryEntry, RoomLog, parse_cursor
from gifting.store.streams import Streams
from gifting.store.videos import Videos

__all__ = ["FEED_LOCK_ID", "FeedWorker"]

log = logging.getLogger("gifting.feed")

#: The leader's advisory lock key ("webhook" in ASCII).
FEED_LOCK_ID: Final = 0x776562686F6F6B
#: Room events read per stream per round.
PAGE: Final = 500
START: Final = "0-0_0"
#: The longest error text kept per attempt.
MAX_ERROR: Final = 300


class _EventHead(msgspec.Struct):
    kind: str = ""
    event: str = ""
    ts: int = 0


_head = msgspec.json.Decoder(_EventHead)


def video_place(video: str) -> str:
    """The feed's name of a video's history (its position and deliveries' ``stream_id``)."""
    return f"video:{video}"


def _entry_json(entry: HistoryEntry) -> str:
    """The event's JSON as delivered: the room event with its seq and cursor."""
    head = b'{"seq":%d,"cursor":"%s",' % (entry.seq, entry.cursor.encode())
    return (head + entry.body[1:]).decode()


async def _cancel_all(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` and wait for them, cancelling again any that swallowed it.

    (On Python 3.11 a cancel that lands as an inner ``wait_for`` completes is
    lost; the drivers use ``wait_for`` for their timeouts.)
    """
    pending = {t for t in tasks if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.5)


class FeedWorker:
    """Collects room events into webhook deliveries and sends them (one leader at a time)."""

    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool[asyncpg.Record],
        redis: Redis,
        keys: Keys,
        roomlog: RoomLog,
        streams: Streams,
        *,
        clock: Callable[[], int] = now_ms,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.store = SubscriptionStore(pool)
        self.redis = redis
        self.keys = keys
        self.roomlog = roomlog
        self.streams = streams
        self.videos = Videos(redis, keys, roomlog.catalog)
        self.clock = clock
        self.rand = rand
        self.poll_s = settings.webhook_poll_ms / 1000
        self.leading = False
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._senders: dict[str, asyncio.Task[None]] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._client = httpx.AsyncClient(
            # No total connection cap: each sender holds at most its concurrency, so a
            # stalled receiver cannot take the connections of another.
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": "gifting-webhooks/1"},
        )

    def start(self) -> None:
        """Start competing for the leader's lock, then work while holding it."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop the senders and the loop, release the lock, close the HTTP client."""
        self._stopping.set()
        if self._task is not None:
            await _cancel_all([self._task])
        await self._client.aclose()

    async def _pause(self, seconds: float) -> None:
        """Sleep, or return early once the worker is stopping."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    # -- leadership -----------------------------------------------------------------
    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                async with self.pool.acquire() as conn:
                    if await conn.fetchval("SELECT pg_try_advisory_lock($1)", FEED_LOCK_ID):
                        try:
                            await self._lead(conn)
                        finally:
                            await self._stop_senders()
                            with contextlib.suppress(Exception):
                                await conn.execute("SELECT pg_advisory_unlock($1)", FEED_LOCK_ID)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("feed worker: %r; retrying", exc)
            await self._pause(max(self.poll_s * 2, 0.2))

    async def _lead(self, conn: PoolConnectionProxy[asyncpg.Record]) -> None:
        self.leading = True
        log.info("feed worker: leading the webhook deliveries")
        try:
            while not self._stopping.is_set():
                # The lock lives as long as this connection: a broken one ends the lead.
                await conn.fetchval("SELECT 1")
                subs = await self.store.active()
                self._sync_senders(subs)
                try:
                    await self._collect(subs)
                except Exception as exc:  # a Redis hiccup: try again next round
                    log.warning("feed worker: collecting failed: %r", exc)
                await self._pause(self.poll_s)
        finally:
            self.leading = False

    # -- collecting -----------------------------------------------------------------
    async def _collect(self, subs: list[Subscription]) -> None:
        by_creator: dict[str, list[Subscription]] = {}
        for sub in subs:
            by_creator.setdefault(sub.creator, []).append(sub)
        if not by_creator:
            return
        positions = await self.store.positions()
        for creator, mine in by_creator.items():
            await self._collect_creator(creator, mine, positions)

    async def _collect_creator(
        self, creator: str, subs: list[Subscription], positions: dict[str, tuple[str, bool]]
    ) -> None:
        wanted = {s.stream for s in subs}
        # A stream first seen here is read from the start of its history, unless it
        # ended before the oldest subscription (minus the history's age): nothing new.
        old_ms = min(s.created_ms for s in subs) - self.settings.history_max_age_s * 1000
        todo: list[tuple[str, str]] = []
        unknown_old: list[str] = []
        for raw, score in await self.redis.zrange(
            self.keys.streams_of(creator), 0, -1, withscores=True
        ):
            stream = raw.decode() if isinstance(raw, bytes) else str(raw)
            if None not in wanted and stream not in wanted:
                continue
            position = positions.get(stream)
            if position is None and score < old_ms:
                unknown_old.append(stream)
            elif position is None or not position[1]:
                todo.append((stream, position[0] if position else START))
        if unknown_old:
            live = await self.streams.live_many(unknown_old)
            todo.extend((stream, START) for stream in unknown_old if live.get(stream))
        for stream, cursor in todo:
            await self._collect_stream(creator, stream, cursor, subs)
        if any(s.stream is None and "video_gift" in s.kinds for s in subs):
            await self._collect_videos(creator, subs, positions)

    async def _collect_videos(
        self, creator: str, subs: list[Subscription], positions: dict[str, tuple[str, bool]]
    ) -> None:
        """Read the creator's videos that had an event past their position (one round
        trip finds them: each video's last seq against the seq of its cursor)."""
        raw = await self.redis.zrange(self.keys.videos_of(creator), 0, -1)
        videos = [v.decode() if isinstance(v, bytes) else str(v) for v in raw]
        last = await self.videos.last_seqs(videos)
        for video in videos:
            position = positions.get(video_place(video))
            cursor = position[0] if position else START
            if last[video] > parse_cursor(cursor)[1]:
                await self._collect_stream(creator, video, cursor, subs, video=True)

    async def _read(self, stream: str, cursor: str) -> list[HistoryEntry]:
        try:
            return await self.roomlog.since(stream, cursor, PAGE)
        except CursorExpired:
            if cursor != START:
                log.warning(
                    "feed worker: stream %s: events after %s left the room history before "
                    "they were read (was the worker down longer than GIFTING_HISTORY_MAX_AGE?); "
                    "reading on from the oldest kept", stream, cursor,
                )  # fmt: skip
            rows = await self.redis.xrange(self.keys.room_history(stream), "-", "+", count=PAGE)
            return [
                HistoryEntry(int(f[b"s"]), f"{i.decode()}_{int(f[b's'])}", f[b"d"]) for i, f in rows
            ]

    async def _read_video(self, video: str, cursor: str) -> list[HistoryEntry]:
        try:
            return await self.videos.since(video, cursor, PAGE)
        except CursorExpired:
            log.warning(
                "feed worker: video %s: events after %s left its history before they were "
                "read; reading on from the oldest kept", video, cursor,
            )  # fmt: skip
            rows = await self.redis.xrange(self.keys.video_history(video), "-", "+", count=PAGE)
            return [
                HistoryEntry(int(f[b"s"]), f"{i.decode()}_{int(f[b's'])}", f[b"d"]) for i, f in rows
            ]

    async def _collect_stream(
        self,
        creator: str,
        stream: str,
        cursor: str,
        subs: list[Subscription],
        *,
        video: bool = False,
    ) -> None:
        """Read one stream's (or, with ``video``, one video's) history into deliveries.

        A video's position and deliveries are keyed ``video:<id>`` (no stream
        id holds a colon); a video never ends.
        """
        place = video_place(stream) if video else stream
        while True:
            page = await (self._read_video(stream, cursor) if video else self._read(stream, cursor))
            if not page:
                if not video and cursor == START and not await self.streams.is_live(stream):
                    await self.store.advance(stream, creator, cursor, True, [], self.clock())
                return
            ended = False
            new: list[NewDelivery] = []
            for entry in page:
                head = _head.decode(entry.body)
                ended = ended or head.kind == "stream_ended"
                body: str | None = None
                for sub in subs:
                    if sub.wants(place, head.kind, head.ts):
                        body = body or _entry_json(entry)
                        new.append(
                            NewDelivery(sub.id, head.event, place, head.kind, entry.seq, body)
                        )
            cursor = page[-1].cursor
            woken = await self.store.advance(place, creator, cursor, ended, new, self.clock())
            for sub_id in woken:
                event = self._wake.get(sub_id)
                if event is not None:
                    event.set()
            if ended or len(page) < PAGE:
                return

    # -- sending --------------------------------------------------------------------
    def _sync_senders(self, subs: list[Subscription]) -> None:
        current = {s.id: s for s in subs}
        for sub_id in list(self._senders):
            if sub_id not in current:
                self._senders.pop(sub_id).cancel()
                self._wake.pop(sub_id, None)
        loop = asyncio.get_running_loop()
        for sub_id, sub in current.items():
            task = self._senders.get(sub_id)
            if task is None or task.done():
                self._wake[sub_id] = asyncio.Event()
                self._senders[sub_id] = loop.create_task(self._send_loop(sub))

    async def _stop_senders(self) -> None:
        tasks = list(self._senders.values())
        self._senders.clear()
        self._wake.clear()
        await _cancel_all(tasks)

    async def _send_loop(self, sub: Subscription) -> None:
        wake = self._wake[sub.id]
        limit = self.settings.webhook_concurrency
        while not self._stopping.is_set():
            try:
                due = await self.store.due(sub.id, self.clock(), limit)
                if due:
                    await asyncio.gather(*(self._attempt(sub, d) for d in due))
                    continue
                next_ms = await self.store.next_due_ms(sub.id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("feed worker: subscription %s: %r", sub.id, exc)
                next_ms = None
            wait = self.poll_s * 4
            if next_ms is not None:
                wait = min(wait, max((next_ms - self.clock()) / 1000, 0.0))
            wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), wait)

    async def _attempt(self, sub: Subscription, d: Delivery) -> None:
        """POST one delivery, then record the attempt and what comes next."""
        s = self.settings
        body = d.body.encode()
        at = self.clock()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(sub.secret, body, at // 1000),
            "X-Gifting-Event": d.event,
            "X-Gifting-Subscription": sub.id,
            "X-Gifting-Attempt": str(d.attempts + 1),
        }
        status: int | None = None
        error: str | None = None
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(s.webhook_timeout_s):
                async with self._client.stream(
                    "POST", sub.url, content=body, headers=headers, timeout=s.webhook_timeout_s
                ) as response:
                    status = response.status_code  # the body is never read
        except TimeoutError:
            error = f"timeout after {s.webhook_timeout_s:g} s"
        except httpx.TimeoutException:
            error = f"timeout after {s.webhook_timeout_s:g} s"
        except httpx.HTTPError as exc:
            error = (f"{type(exc).__name__}: {exc}")[:MAX_ERROR]
        latency_ms = int((time.perf_counter() - t0) * 1000)
        if status is not None and not 200 <= status < 300:
            error = f"HTTP {status}"
        next_ms: int | None = None
        if error is None:
            state = "delivered"
        else:
            delay_ms = int(
                backoff_s(d.attempts + 1, s.webhook_backoff_s, s.webhook_backoff_max_s, self.rand)
                * 1000
            )
            now = self.clock()
            if now + delay_ms - d.created_ms > s.webhook_give_up_s * 1000:
                state = "failed"
                log.warning(
                    "webhook %s: event %s given up after %d attempts (last: %s)",
                    sub.id, d.event, d.attempts + 1, error,
                )  # fmt: skip
            else:
                state, next_ms = "pending", now + delay_ms
        await self.store.record_attempt(
            d, at_ms=at, status=status, latency_ms=latency_ms, error=error, state=state,
            next_ms=next_ms,
        )  # fmt: skip
