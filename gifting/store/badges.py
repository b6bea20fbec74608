"""Profile badges: display, not money. Which badges a user owns, and the one shown.

Buying one is a spend (spend.lua, kind ``badge``); owning it is this module's
job, done after the spend succeeded (and again by the persister for every badge
spend it writes, in case the debit's process died first): badge.lua adds it to the user's set of
owned badges (``Keys.badges_owned``) and sets the wallet's ``badge`` field to
the best owned (:func:`gifting.core.badges.best_badge`: the dearest, so a
cheaper badge bought later never replaces it). Both keys are in the user's
wallet slot, so spend.lua reads the shown badge with the debit, on one Redis or
a Cluster. PostgreSQL keeps the durable record (``badges_owned``, written by
the persister from the badge spends).
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from gifting.core.badges import badge_ranking
from gifting.core.catalog import Catalog
from gifting.store.keys import Keys
from gifting.store.scripts import ScriptCall, Scripts


class Badges:
    """Grant bought badges and read the ones a user owns and shows."""

    def __init__(self, redis: Redis, keys: Keys, scripts: Scripts, catalog: Catalog) -> None:
        self._redis = redis
        self._keys = keys
        self._scripts = scripts
        self._catalog = catalog

    async def grant(self, user: str, badge: str) -> str:
        """Add ``badge`` to the user's badges; return the badge shown now (atomic, idempotent).

        The shown badge is the dearest owned, whatever order purchases land in.
        """
        keys = [self._keys.wallet(user), self._keys.badges_owned(user)]
        (shown,) = await self._scripts.run("badge", keys, [badge, *badge_ranking(self._catalog)])
        return shown

    async def grant_many(self, grants: Sequence[tuple[str, str]]) -> None:
        """Grant each (user, badge) in one pipeline (each call atomic and idempotent)."""
        ranking = badge_ranking(self._catalog)
        calls = [
            ScriptCall(
                "badge", [self._keys.wallet(user), self._keys.badges_owned(user)], [badge, *ranking]
            )
            for user, badge in grants
        ]
        for reply in await self._scripts.run_many(calls, lane="persister"):
            if isinstance(reply, Exception):
                raise reply

    async def badge_of(self, user: str) -> str | None:
        """The badge shown on the user's events, or ``None``."""
        raw = await self._redis.hget(self._keys.wallet(user), "badge")
        return None if raw is None else raw.decode()

    async def marks_of(self, user: str) -> tuple[str | None, int]:
        """The badge the user shows (or ``None``) and their lifetime coins spent (one read)."""
        badge, lifetime = await self._redis.hmget(self._keys.wallet(user), ["badge", "lifetime"])
        return (None if badge is None else badge.decode()), int(lifetime or 0)

    async def owned(self, user: str) -> set[str]:
        """The badges the user owns (the shown one included, even from before the set)."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.smembers(self._keys.badges_owned(user))
        pipe.hget(self._keys.wallet(user), "badge")
        members, shown = await pipe.execute()
        owned = {m.decode() for m in members}
        if shown is not None:
            owned.add(shown.decode())
        return owned
