"""Leases in Redis: which process owns something now (a persister's outbox shards).

A lease is a string key holding its owner's name with a time to live: taken
with ``SET NX PX`` (atomic: one owner at a time), renewed and released only
by its owner (lease.lua: compare-and-set). An owner that dies stops renewing;
its leases expire and another process takes them. A lease is a hint for
sharing work, never a lock that money depends on: an owner that was paused
past its lease may still finish a batch another owner also handles, and the
work must stay idempotent for that (the persister's is: PostgreSQL dedupes by
event id).

Membership: every process that shares the work also heartbeats into one
sorted set (score: when its heartbeat expires), so each can count the live
ones and take its fair share.
"""

from __future__ import annotations

from collections.abc import Callable

from redis.asyncio import Redis

from gifting.clock import now_ms
from gifting.store.scripts import script_source

__all__ = ["Leases"]


class Leases:
    """Take, renew and release leases for ``owner``; count the live members of a group."""

    def __init__(
        self, redis: Redis, owner: str, ttl_ms: int, *, clock: Callable[[], int] = now_ms
    ) -> None:
        self.redis = redis
        self.owner = owner
        self.ttl_ms = ttl_ms
        self.clock = clock
        self._script = redis.register_script(script_source("lease"))

    async def take(self, key: str) -> bool:
        """Take the lease ``key`` if nobody holds it (or we do already: renewed)."""
        if await self.redis.set(key, self.owner, nx=True, px=self.ttl_ms):
            return True
        return await self.renew(key)

    async def renew(self, key: str) -> bool:
        """Extend our lease ``key``; False if it is not ours (expired and taken, or gone)."""
        return bool(await self._script(keys=[key], args=[self.owner, "renew", self.ttl_ms]))

    async def release(self, key: str) -> bool:
        """Give up our lease ``key`` now (someone else may take it at once)."""
        return bool(await self._script(keys=[key], args=[self.owner, "release", 0]))

    async def holder(self, key: str) -> str | None:
        """Who holds ``key`` now, or None."""
        raw = await self.redis.get(key)
        return None if raw is None else raw.decode()

    async def heartbeat(self, members: str) -> int:
        """Say we are alive in the group ``members`` (for one TTL); return how many are."""
        now = self.clock()
        pipe = self.redis.pipeline(transaction=False)
        pipe.zadd(members, {self.owner: now + self.ttl_ms})
        pipe.zremrangebyscore(members, "-inf", now)
        pipe.zcard(members)
        *_, live = await pipe.execute()
        return max(1, int(live))

    async def leave(self, members: str) -> None:
        """Leave the group ``members`` (the others take our share at their next look)."""
        await self.redis.zrem(members, self.owner)
