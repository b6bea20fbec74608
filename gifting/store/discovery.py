"""The listing of live streams (``GET /v1/streams``), most-watched first, paged.

Live streams are a sorted set by start time (``Keys.live_streams``: added by
``Streams.create``, removed by ``Streams.end``). A first page ranks all of
them by their fresh viewers (:mod:`gifting.store.presence`) and, when more
than one page, keeps the ranking as a list under a new snapshot id for
:data:`RANKING_TTL_S`; the cursor is an offset into it. Each page shows the
current viewers, title and totals of its streams; a stream that ended since
the ranking is left out of the later pages (so a page may hold fewer than
``limit``), and a stream that started since appears on the next first page.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from redis.asyncio import Redis

from gifting.clock import now_ms
from gifting.core.discovery import Ranked, format_cursor, parse_cursor, rank
from gifting.core.errors import CursorExpired
from gifting.store.keys import Keys
from gifting.store.presence import Presence

#: How long a listing's ranking stays pageable (a later cursor: ``cursor_expired``).
RANKING_TTL_S: Final = 600


@dataclass(frozen=True, slots=True)
class Listed:
    """One live stream in the listing."""

    stream: str
    creator: str
    title: str
    viewers: int
    coins: int
    gifts: int


class Discovery:
    """Pages of the live streams, most viewers first."""

    def __init__(self, redis: Redis, keys: Keys, clock: Callable[[], int] = now_ms) -> None:
        self.redis = redis
        self.keys = keys
        self.presence = Presence(redis, keys)
        self.clock = clock

    async def page(self, limit: int, cursor: str | None) -> tuple[list[Listed], str | None]:
        """One page of ``limit`` live streams and the cursor of the next (None: the last).

        Raises ``BadRequest`` for a cursor this listing did not give and
        ``CursorExpired`` for one whose ranking is gone.
        """
        if cursor is None:
            ids, total, snapshot, offset = await self._rank(limit)
        else:
            snapshot, offset = parse_cursor(cursor)
            key = self.keys.discovery_ranking(snapshot)
            pipe = self.redis.pipeline(transaction=False)
            pipe.lrange(key, offset, offset + limit - 1)
            pipe.llen(key)
            raw, total = await pipe.execute()
            if total == 0:
                raise CursorExpired("this listing's cursor has expired: list again without cursor")
            ids = [i.decode() for i in raw]
        nxt = format_cursor(snapshot, offset + limit) if offset + limit < total else None
        return await self._describe(ids), nxt

    async def _rank(self, limit: int) -> tuple[list[str], int, str, int]:
        live = await self.redis.zrange(self.keys.live_streams(), 0, -1, withscores=True)
        created = {s.decode(): int(score) for s, score in live}
        viewers = await self.presence.viewers_many(created, self.clock())
        ranked = rank(Ranked(s, c, viewers[s]) for s, c in created.items())
        snapshot = secrets.token_urlsafe(12)
        if len(ranked) > limit:
            key = self.keys.discovery_ranking(snapshot)
            pipe = self.redis.pipeline(transaction=True)  # one key: one slot
            pipe.rpush(key, *ranked)
            pipe.expire(key, RANKING_TTL_S)
            await pipe.execute()
        return ranked[:limit], len(ranked), snapshot, 0

    async def _describe(self, ids: list[str]) -> list[Listed]:
        if not ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for stream in ids:
            pipe.hmget(self.keys.stream(stream), ["creator", "title", "live"])
            pipe.hmget(self.keys.stream_totals(stream), ["coins", "gifts"])
        answers = await pipe.execute()
        viewers = await self.presence.viewers_many(ids, self.clock())
        out: list[Listed] = []
        for i, stream in enumerate(ids):
            (creator, title, live), (coins, gifts) = answers[2 * i], answers[2 * i + 1]
            if live != b"1":
                continue  # ended since the ranking
            out.append(
                Listed(
                    stream,
                    (creator or b"").decode(),
                    (title or b"").decode(),
                    viewers[stream],
                    int(coins or 0),
                    int(gifts or 0),
                )
            )
        return out
