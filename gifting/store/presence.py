"""Presence in Redis: each hub's viewers per stream, and their fresh sum.

One hash per stream (``Keys.stream_viewers``, in the room's slot), one field
per hub: ``"<count>:<expires ms>"``. A hub writes its fields on every beat
(HSET and PEXPIRE of one key: no cross-slot command) and deletes a field
when its last viewer of the stream leaves; a report that was not refreshed
stops counting at its expiry, and the key itself expires with it when no
hub refreshes it any more. Readers drop expired fields they meet.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from redis.asyncio import Redis

from gifting.core.discovery import fresh_viewers, presence_value
from gifting.store.keys import Keys


class Presence:
    """Report this hub's viewer counts; read the fresh totals of every hub."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def report(
        self, hub: str, counts: Mapping[str, int], gone: Iterable[str], expires_ms: int, ttl_ms: int
    ) -> None:
        """Write ``hub``'s viewers of each stream in ``counts`` (fresh until ``expires_ms``),
        and delete its field of each stream in ``gone`` (no viewer of it left), in one
        round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for stream, count in counts.items():
            key = self.keys.stream_viewers(stream)
            pipe.hset(key, hub, presence_value(count, expires_ms))
            pipe.pexpire(key, ttl_ms)
        for stream in gone:
            pipe.hdel(self.keys.stream_viewers(stream), hub)
        if len(pipe):
            await pipe.execute()

    async def viewers_many(self, streams: Iterable[str], now_ms: int) -> dict[str, int]:
        """The fresh viewers of each stream (summed over hubs), in one round trip;
        expired reports met on the way are deleted."""
        ids = list(dict.fromkeys(streams))
        if not ids:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for stream in ids:
            pipe.hgetall(self.keys.stream_viewers(stream))
        out: dict[str, int] = {}
        cleanup = self.redis.pipeline(transaction=False)
        for stream, fields in zip(ids, await pipe.execute(), strict=True):
            out[stream], stale = fresh_viewers(fields, now_ms)
            if stale:
                cleanup.hdel(self.keys.stream_viewers(stream), *stale)
        if len(cleanup):
            await cleanup.execute()
        return out
