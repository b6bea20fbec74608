"""Profile badges: display, not money (the ``badge`` field of the wallet hash).

Buying one is a spend (spend.lua, kind ``badge``); showing it is this field,
set after the spend succeeded.
"""

from __future__ import annotations

from redis.asyncio import Redis

from gifting.store.keys import Keys


class Badges:
    """Set and read the badge a user shows."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def set_badge(self, user: str, badge: str, *, only_if_unset: bool = False) -> None:
        """Show ``badge`` on the user's events (field ``badge`` of the wallet hash).

        ``only_if_unset`` (HSETNX) is for a replayed purchase: it restores a
        badge lost to a crash without undoing a newer badge bought since.
        """
        key = self._keys.wallet(user)
        if only_if_unset:
            await self._redis.hsetnx(key, "badge", badge)
        else:
            await self._redis.hset(key, "badge", badge)

    async def badge_of(self, user: str) -> str | None:
        """The badge shown on the user's events, or ``None``."""
        raw = await self._redis.hget(self._keys.wallet(user), "badge")
        return None if raw is None else raw.decode()
