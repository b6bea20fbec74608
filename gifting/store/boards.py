"""The live leaderboards in Redis: reading what credit.lua and emit.lua keep.

credit.lua adds each credit, once, to the credited user's supporters of the
spend's ISO week and month and to its shard's top creators of both periods
(every key in the creator's wallet shard ``{wNN}``; see
:meth:`gifting.store.keys.Keys.board_supporters`). emit.lua keeps each
stream's top gifters (``stream_top``). This module reads them in the board
order of :mod:`gifting.core.boards`: a sorted set orders ties by member
descending when read high to low, so each read also fetches every member
tied with the last one taken, and the order is settled in Python.

The platform's top creators are the merge of each shard's top N: a creator
is in exactly one shard, so every member of the overall top N is in its own
shard's top N, and the merge is exact.
"""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from gifting.core.boards import BoardEntry, ranked
from gifting.store.keys import Keys

__all__ = ["Boards"]


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


class Boards:
    """Read the live boards (the period in progress, and a stream's top gifters)."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def _top(self, zset: str, limit: int) -> list[tuple[str, int]]:
        """The first ``limit`` members of ``zset`` in board order, with their coins."""
        top = await self.redis.zrevrange(zset, 0, limit - 1, withscores=True)
        rows = {_text(m): int(s) for m, s in top}
        if len(top) == limit:  # members tied with the last one taken may sort before it
            last = int(top[-1][1])
            for m in await self.redis.zrangebyscore(zset, last, last):
                rows.setdefault(_text(m), last)
        ordered = sorted(rows.items(), key=lambda r: (-r[1], r[0]))
        return ordered[:limit]

    async def _named(self, names_key: str, top: list[tuple[str, int]]) -> list[BoardEntry]:
        if not top:
            return []
        names = await self.redis.hmget(names_key, [u for u, _ in top])
        return [
            BoardEntry(u, _text(n) if n else u, c) for (u, c), n in zip(top, names, strict=True)
        ]

    async def supporters(self, creator: str, label: str, limit: int) -> list[BoardEntry]:
        """The creator's top ``limit`` supporters in period ``label`` (empty: nothing live)."""
        top = await self._top(self.keys.board_supporters(creator, label), limit)
        return await self._named(self.keys.board_names(creator), top)

    async def creators(self, label: str, limit: int) -> list[BoardEntry]:
        """The top ``limit`` creators of period ``label``, merged over every wallet shard."""
        tops = await asyncio.gather(
            *(self._top(self.keys.board_creators(s, label), limit) for s in range(self.keys.shards))
        )
        return ranked((BoardEntry(c, c, coins) for top in tops for c, coins in top), limit)

    async def stream(self, stream: str, limit: int) -> list[BoardEntry]:
        """The stream's top ``limit`` gifters (every coin it received, by sender)."""
        top = await self._top(self.keys.stream_top(stream), limit)
        return await self._named(self.keys.stream_names(stream), top)
