"""Leaderboards from the durable record (PostgreSQL, migration 0007): past periods.

The persister adds each new credit to ``board_supporters`` and
``board_creators`` in the transaction that inserts it; these reads rank them
in the board order of :mod:`gifting.core.boards` (coins, most first; ties by
user id).
"""

from __future__ import annotations

import asyncpg

from gifting.core.boards import BoardEntry

__all__ = ["creators_of_period", "supporters_of_period"]

_SUPPORTERS = """
SELECT user_id, name, coins FROM board_supporters
WHERE creator_id = $1 AND period = $2
ORDER BY coins DESC, user_id LIMIT $3
"""

_CREATORS = """
SELECT creator_id, coins FROM board_creators
WHERE period = $1
ORDER BY coins DESC, creator_id LIMIT $2
"""


async def supporters_of_period(
    pool: asyncpg.Pool[asyncpg.Record], creator: str, label: str, limit: int
) -> list[BoardEntry]:
    """The creator's top ``limit`` supporters of period ``label`` as persisted."""
    rows = await pool.fetch(_SUPPORTERS, creator, label, limit)
    return [BoardEntry(r["user_id"], r["name"], int(r["coins"])) for r in rows]


async def creators_of_period(
    pool: asyncpg.Pool[asyncpg.Record], label: str, limit: int
) -> list[BoardEntry]:
    """The top ``limit`` creators of period ``label`` as persisted."""
    rows = await pool.fetch(_CREATORS, label, limit)
    return [BoardEntry(r["creator_id"], r["creator_id"], int(r["coins"])) for r in rows]
