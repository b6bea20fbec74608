"""Reads from the durable record (PostgreSQL): wallet history, earnings, cash-outs, spend ids.

Plain async functions over an asyncpg pool, returning JSON-ready dicts. What
they show lags Redis by the persister's lag (usually milliseconds): a spend
appears here once the persister has committed it.

Wallet history pages newest first with an opaque cursor (the last entry's
outbox position and event id, base64url); a bad cursor raises ``BadRequest``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any, Final

import asyncpg

from gifting.core.accounts import (
    creator_received,
    user_coins,
    user_diamonds,
    user_held,
)
from gifting.core.errors import BadRequest
from gifting.core.fields import INT64_MAX
from gifting.core.idempotency import KeptSpend, SpendId

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "cashout_history",
    "creator_earnings",
    "decode_cursor",
    "encode_cursor",
    "kept_spends",
    "wallet_history",
]

DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 200
_CURSOR: Final = re.compile(r"(\d{1,19})-(\d{1,19}):([A-Za-z0-9._~@+\-/=!#$%&*^|]{1,64})")

Position = tuple[int, int, str]


def encode_cursor(position: Position) -> str:
    """The opaque cursor after the entry at ``position`` (outbox ms, outbox seq, event id)."""
    ms, seq, event_id = position
    return base64.urlsafe_b64encode(f"{ms}-{seq}:{event_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    """Decode a cursor from :func:`encode_cursor`, or raise ``BadRequest``."""
    if not cursor or len(cursor) > 200 or not cursor.isascii():
        raise BadRequest("invalid cursor")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadRequest("invalid cursor") from None
    match = _CURSOR.fullmatch(raw)
    if match is None or int(match[1]) > INT64_MAX or int(match[2]) > INT64_MAX:
        raise BadRequest("invalid cursor")
    return int(match[1]), int(match[2]), match[3]


def _check_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be an integer between 1 and {MAX_LIMIT}")
    return limit


_HISTORY = """
SELECT e.event_id, e.type, e.ts, e.outbox_ms, e.outbox_seq, e.payload,
       COALESCE(SUM(p.amount) FILTER (WHERE p.account = $2), 0) AS coins,
       COALESCE(SUM(p.amount) FILTER (WHERE p.account = $3), 0) AS diamonds,
       COALESCE(SUM(p.amount) FILTER (WHERE p.account = $4), 0) AS held
FROM ledger_events e
LEFT JOIN postings p ON p.event_id = e.event_id
WHERE e.user_id = $1
  AND ($5::bigint IS NULL
       OR (e.outbox_ms, e.outbox_seq, e.event_id) < ($5, $6::bigint, $7::text))
GROUP BY e.event_id
ORDER BY e.outbox_ms DESC, e.outbox_seq DESC, e.event_id DESC
LIMIT $8
"""

_INT_FIELDS: Final = ("count", "unit", "balance", "combo", "amount", "order", "claimed", "claims")
_DETAILS: Final[dict[str, tuple[str, ...]]] = {
    "purchase": ("purchase_id", "package", "amount", "currency", "balance"),
    "refund": ("purchase_id", "balance"),
    "spend": (
        "kind",
        "item",
        "count",
        "unit",
        "stream",
        "creator",
        "text",
        "balance",
        "combo",
        "video",
    ),
    "credit": ("stream", "sender", "spend_event", "video"),
    "cashout_hold": ("cashout", "amount", "currency"),
    "cashout_paid": ("cashout",),
    "cashout_failed": ("cashout",),
    "cashout_cancelled": ("cashout",),
    "box_claim": ("box", "stream", "dropper", "order", "balance"),
    "box_return": ("box", "stream", "claimed", "claims", "balance"),
}


def _history_entry(row: asyncpg.Record) -> dict[str, Any]:
    payload: dict[str, str] = json.loads(row["payload"])
    entry: dict[str, Any] = {
        "event": row["event_id"],
        "type": row["type"],
        "ts": int(row["ts"]),
        "coins": int(row["coins"]),
        "diamonds": int(row["diamonds"]),
    }
    if row["held"]:
        entry["diamonds_held"] = int(row["held"])
    for name in _DETAILS.get(str(row["type"]), ()):
        value = payload.get(name)
        if value is None or (value == "" and name in ("stream", "creator", "text")):
            continue
        entry[name] = int(value) if name in _INT_FIELDS else value
    if row["type"] == "credit":
        entry["coins_received"] = int(payload.get("coins", "0"))
    return entry


async def wallet_history(
    pool: asyncpg.Pool, user: str, *, limit: int = DEFAULT_LIMIT, cursor: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of ``user``'s ledger events, newest first, and the cursor of the next page.

    "Newest" is Redis' order: every event of a user sits in that user's outbox
    stream, so the outbox entry id orders them exactly as the money moved
    (``ts`` comes from the hub's clock and may tie within a millisecond).

    Each entry: ``event``, ``type``, ``ts``, ``coins`` and ``diamonds`` (the
    change to the user's balances), ``diamonds_held`` when it moved, and the
    type's details (item, count, stream, balance after, purchase or cash-out
    id...). The next cursor is ``None`` on the last page.
    """
    limit = _check_limit(limit)
    after = decode_cursor(cursor) if cursor is not None else (None, None, None)
    rows = await pool.fetch(
        _HISTORY,
        user,
        user_coins(user),
        user_diamonds(user),
        user_held(user),
        *after,
        limit + 1,
    )
    entries = [_history_entry(r) for r in rows[:limit]]
    following = None
    if len(rows) > limit:
        last = rows[limit - 1]
        following = encode_cursor(
            (int(last["outbox_ms"]), int(last["outbox_seq"]), str(last["event_id"]))
        )
    return entries, following


async def creator_earnings(
    pool: asyncpg.Pool, creator: str, *, limit: int = MAX_LIMIT
) -> dict[str, Any]:
    """A creator's earnings: totals and, per stream (latest first), coins and diamonds.

    ``coins`` are the coins received from gifts, effects and highlighted
    comments; ``diamonds`` the diamonds credited for them.
    """
    limit = _check_limit(limit)
    rows = await pool.fetch(
        """
        SELECT e.stream_id, e.coins, e.diamonds, e.gifts, e.spends, e.last_ts,
               t.first_ts AS started
        FROM creator_earnings e LEFT JOIN stream_totals t ON t.stream_id = e.stream_id
        WHERE e.creator_id = $1
        ORDER BY e.last_ts DESC, e.stream_id
        LIMIT $2
        """,
        creator,
        limit,
    )
    totals = await pool.fetchrow(
        """
        SELECT COALESCE(SUM(coins), 0) AS coins, COALESCE(SUM(diamonds), 0) AS diamonds,
               COALESCE(SUM(gifts), 0) AS gifts, COUNT(*) AS streams
        FROM creator_earnings WHERE creator_id = $1
        """,
        creator,
    )
    received = await pool.fetchval(
        "SELECT COALESCE(SUM(amount), 0) FROM postings WHERE account = $1",
        creator_received(creator),
    )
    assert totals is not None
    return {
        "creator": creator,
        "totals": {
            "coins": int(totals["coins"]),
            "diamonds": int(totals["diamonds"]),
            "gifts": int(totals["gifts"]),
            "streams": int(totals["streams"]),
            "coins_received": int(received),
        },
        "streams": [
            {
                "stream": r["stream_id"],
                "coins": int(r["coins"]),
                "diamonds": int(r["diamonds"]),
                "gifts": int(r["gifts"]),
                "spends": int(r["spends"]),
                "first_ts": None if r["started"] is None else int(r["started"]),
                "last_ts": int(r["last_ts"]),
            }
            for r in rows
        ],
    }


async def cashout_history(
    pool: asyncpg.Pool, user: str, *, limit: int = DEFAULT_LIMIT
) -> list[dict[str, Any]]:
    """``user``'s cash-outs as persisted, newest first (status held, paid or failed)."""
    limit = _check_limit(limit)
    rows = await pool.fetch(
        """
        SELECT cashout_id, diamonds, amount, currency, status, created_ts, settled_ts
        FROM cashouts WHERE user_id = $1
        ORDER BY created_ts DESC NULLS LAST, cashout_id DESC
        LIMIT $2
        """,
        user,
        limit,
    )
    return [
        {
            "cashout": r["cashout_id"],
            "diamonds": int(r["diamonds"]),
            "amount": None
            if r["amount"] is None
            else {"amount": int(r["amount"]), "currency": r["currency"]},
            "status": r["status"],
            "created": None if r["created_ts"] is None else int(r["created_ts"]),
            "settled": None if r["settled_ts"] is None else int(r["settled_ts"]),
        }
        for r in rows
    ]


_KEPT_SPENDS = """
SELECT k.sender_id, k.client_id, k.event_id, k.status, k.balance, k.combo, k.fingerprint
FROM unnest($1::text[], $2::text[]) AS q(sender_id, client_id)
JOIN spend_ids k USING (sender_id, client_id)
"""


async def kept_spends(pool: asyncpg.Pool, ids: list[SpendId]) -> dict[SpendId, KeptSpend]:
    """The original results PostgreSQL keeps for any of ``ids`` (one query, by primary key).

    The hub asks this once per debit batch, for every id of the batch: a
    debited spend's id is here from the persister's commit on, for ever.
    """
    if not ids:
        return {}
    rows = await pool.fetch(_KEPT_SPENDS, [s for s, _ in ids], [c for _, c in ids])
    return {
        (str(r["sender_id"]), str(r["client_id"])): KeptSpend(
            event=str(r["event_id"]),
            status=str(r["status"]),
            balance=int(r["balance"]),
            combo=int(r["combo"]),
            fingerprint=str(r["fingerprint"]),
        )
        for r in rows
    }
