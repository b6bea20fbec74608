"""The audit's Redis side: each wallet against the ledger at the wallet's own outbox position.

Every event that changes a user's money is added to the outbox of the user's
wallet shard by the script that changes the wallet, and that script records
the event's outbox id in the wallet hash (``pos``). A wallet read at any
moment (one ``HMGET``: atomic) therefore equals the sum of the user's ledger
events up to ``pos`` — once the persister has acknowledged that far, whatever
traffic came after. So the audit needs no quiet moment: it reads the wallets,
waits until each shard's outbox is persisted through the largest ``pos`` read
there, and compares each wallet with the ledger at its ``pos``.

Events the ledger holds past a wallet's ``pos`` are either newer than the
read (the wallet moved on: re-read, its ``pos`` is past them) or events Redis
lost (a failover): the wallet never reaches them, and the audit says so.

Pure SQL and Redis reads; the rules and the report live in
:mod:`gifting.persister.audit`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from redis.asyncio import Redis

from gifting.persister.progress import parse_id
from gifting.persister.writer import Connection
from gifting.store.keys import Keys

__all__ = [
    "WALLET_FIELDS",
    "WalletRead",
    "ledger_at",
    "ledger_past",
    "read_wallets",
    "scan_wallet_users",
    "wallet_positions",
]

#: The money fields of a wallet hash, compared with the ledger.
WALLET_FIELDS: Final = ("coins", "diamonds", "held", "paid", "received", "earned")
#: A position after every event: the ledger of a wallet without ``pos``.
_END: Final = (2**62, 0)
_CHUNK: Final = 500


@dataclass(frozen=True, slots=True)
class WalletRead:
    """One wallet as read at one instant: its money fields and its outbox position."""

    fields: dict[str, int]
    pos: str | None

    def position(self) -> tuple[int, int]:
        """``pos`` as an ordered pair (after everything when the wallet has none)."""
        return _END if self.pos is None else parse_id(self.pos)


async def scan_wallet_users(redis: Redis, keys: Keys) -> list[str]:
    """Every user with a wallet hash under ``keys.prefix`` (SCAN: every node of a cluster)."""
    pattern = re.compile(rf"{re.escape(keys.prefix)}:\{{w\d+\}}:wallet:([^:]+)")
    users: list[str] = []
    async for raw in redis.scan_iter(match=f"{keys.prefix}:*:wallet:*", count=1000):
        key = raw.decode() if isinstance(raw, bytes) else str(raw)
        match = pattern.fullmatch(key)
        if match is not None:
            users.append(match[1])
    return users


async def read_wallets(redis: Redis, keys: Keys, users: Iterable[str]) -> dict[str, WalletRead]:
    """The money fields and ``pos`` of each user's wallet; users without one are left out."""
    names = [*WALLET_FIELDS, "pos"]
    wanted = list(dict.fromkeys(users))
    out: dict[str, WalletRead] = {}
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        pipe = redis.pipeline(transaction=False)
        for user in chunk:
            pipe.hmget(keys.wallet(user), names)
        for user, values in zip(chunk, await pipe.execute(), strict=True):
            if all(v is None for v in values):
                continue
            *money, pos = values
            fields = {
                f: int(v) if v is not None else 0 for f, v in zip(WALLET_FIELDS, money, strict=True)
            }
            position = None if pos is None else (pos.decode() if isinstance(pos, bytes) else pos)
            out[user] = WalletRead(fields, position)
    return out


def wallet_positions(wallets: Mapping[str, WalletRead], keys: Keys) -> dict[str, str]:
    """Per outbox stream, the largest ``pos`` of the wallets read in its shard."""
    best: dict[str, str] = {}
    for user, wallet in wallets.items():
        if wallet.pos is None:
            continue
        stream = keys.outbox(keys.shard_of(user))
        held = best.get(stream)
        if held is None or parse_id(wallet.pos) > parse_id(held):
            best[stream] = wallet.pos
    return best


def _position_arrays(
    positions: Mapping[str, tuple[int, int]],
) -> tuple[list[str], list[int], list[int]]:
    users = sorted(positions)
    return users, [positions[u][0] for u in users], [positions[u][1] for u in users]


_AT_POSITION: Final = """
WITH w AS (
  SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS w(user_id, ms, seq)
), e AS (
  SELECT e.event_id, e.user_id, e.type, e.payload
  FROM w JOIN ledger_events e
    ON e.user_id = w.user_id AND (e.outbox_ms, e.outbox_seq) <= (w.ms, w.seq)
), p AS (
  SELECT e.user_id,
    COALESCE(SUM(p.amount) FILTER (WHERE p.account = 'user:' || e.user_id || ':coins'), 0)
      AS coins,
    COALESCE(SUM(p.amount) FILTER (WHERE p.account = 'user:' || e.user_id || ':diamonds'), 0)
      AS diamonds,
    COALESCE(SUM(p.amount) FILTER (WHERE p.account = 'user:' || e.user_id || ':held'), 0)
      AS held,
    COALESCE(SUM(p.amount) FILTER (WHERE p.account = 'user:' || e.user_id || ':paid'), 0)
      AS paid
  FROM e JOIN postings p ON p.event_id = e.event_id
  GROUP BY e.user_id
), c AS (
  SELECT user_id, SUM((payload->>'coins')::bigint) AS received,
         SUM((payload->>'diamonds')::bigint) AS earned
  FROM e WHERE type = 'credit' GROUP BY user_id
)
SELECT COALESCE(p.user_id, c.user_id) AS user_id,
       COALESCE(p.coins, 0)::bigint AS coins, COALESCE(p.diamonds, 0)::bigint AS diamonds,
       COALESCE(p.held, 0)::bigint AS held, COALESCE(p.paid, 0)::bigint AS paid,
       COALESCE(c.received, 0)::bigint AS received, COALESCE(c.earned, 0)::bigint AS earned
FROM p FULL JOIN c ON c.user_id = p.user_id
"""


async def ledger_at(
    conn: Connection, positions: Mapping[str, tuple[int, int]]
) -> dict[str, dict[str, int]]:
    """Each user's wallet fields as the ledger derives them from the user's events up to a position.

    ``positions``: user -> (ms, seq) of an outbox id. Users without events are
    left out (their fields are all zero).
    """
    rows = await conn.fetch(_AT_POSITION, *_position_arrays(positions))
    return {str(r["user_id"]): {f: int(r[f]) for f in WALLET_FIELDS} for r in rows}


_PAST_POSITION: Final = """
WITH w AS (
  SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS w(user_id, ms, seq)
)
SELECT e.user_id,
       (array_agg(e.outbox_id ORDER BY e.outbox_ms DESC, e.outbox_seq DESC))[1] AS last
FROM ledger_events e LEFT JOIN w ON w.user_id = e.user_id
WHERE w.user_id IS NULL OR (e.outbox_ms, e.outbox_seq) > (w.ms, w.seq)
GROUP BY e.user_id
"""


async def ledger_past(conn: Connection, positions: Mapping[str, tuple[int, int]]) -> dict[str, str]:
    """Users with ledger events past their position, or without one: user -> last outbox id."""
    rows = await conn.fetch(_PAST_POSITION, *_position_arrays(positions))
    return {str(r["user_id"]): str(r["last"]) for r in rows}
