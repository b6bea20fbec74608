"""Webhook subscriptions and their delivery log in PostgreSQL (0005_webhooks.sql).

Every call is one statement or one transaction; the worker's progress (a
stream's cursor) commits with the deliveries it created, so a crash between
reading Redis and writing here reads the same events again and the unique
(subscription, event) key keeps them once.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import asyncpg

from gifting.core.errors import BadRequest, Forbidden, NotFound

__all__ = [
    "MAX_SUBSCRIPTIONS",
    "Delivery",
    "NewDelivery",
    "Subscription",
    "SubscriptionStore",
]

#: Active subscriptions per creator.
MAX_SUBSCRIPTIONS: Final = 20


@dataclass(frozen=True, slots=True)
class Subscription:
    """One webhook subscription."""

    id: str
    creator: str
    url: str
    kinds: tuple[str, ...]
    stream: str | None
    secret: str
    created_ms: int

    def public(self) -> dict[str, Any]:
        """The subscription as the API shows it (never the secret)."""
        return {
            "id": self.id, "url": self.url, "kinds": list(self.kinds), "stream": self.stream,
            "created": self.created_ms,
        }  # fmt: skip

    def wants(self, stream: str, kind: str, ts: int) -> bool:
        """Whether an event of ``kind`` in ``stream`` at ``ts`` (unix ms) is for it."""
        return (
            kind in self.kinds
            and (self.stream is None or self.stream == stream)
            and ts >= self.created_ms
        )


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A room event to deliver to one subscription."""

    subscription: str
    event: str
    stream: str
    kind: str
    seq: int
    body: str


@dataclass(frozen=True, slots=True)
class Delivery:
    """A pending delivery the worker is to try."""

    id: int
    subscription: str
    event: str
    body: str
    attempts: int
    created_ms: int


def _subscription(row: asyncpg.Record) -> Subscription:
    return Subscription(
        row["id"], row["creator_id"], row["url"], tuple(row["kinds"]), row["stream_id"],
        row["secret"], row["created_ms"],
    )  # fmt: skip


class SubscriptionStore:
    """The subscriptions, stream positions, deliveries and attempts tables."""

    def __init__(self, pool: asyncpg.Pool[asyncpg.Record]) -> None:
        self.pool = pool

    # -- subscriptions ------------------------------------------------------------
    async def create(
        self, creator: str, url: str, kinds: Sequence[str], stream: str | None, now_ms: int
    ) -> Subscription:
        """A new subscription with a fresh id and secret (``secrets``); at most
        :data:`MAX_SUBSCRIPTIONS` active per creator (``BadRequest`` past it)."""
        sub = Subscription(
            f"wh_{secrets.token_hex(8)}", creator, url, tuple(kinds), stream,
            f"whsec_{secrets.token_hex(32)}", now_ms,
        )  # fmt: skip
        async with self.pool.acquire() as conn, conn.transaction():
            # One creator's creates in turn, so the cap holds under concurrent calls.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"wh:{creator}")
            count = await conn.fetchval(
                "SELECT count(*) FROM webhook_subscriptions "
                "WHERE creator_id = $1 AND deleted_ms IS NULL",
                creator,
            )
            if count >= MAX_SUBSCRIPTIONS:
                raise BadRequest(f"a creator may have at most {MAX_SUBSCRIPTIONS} subscriptions")
            await conn.execute(
                "INSERT INTO webhook_subscriptions "
                "(id, creator_id, url, kinds, stream_id, secret, created_ms) "
                "VALUES ($1,$2,$3,$4,$5,$6,$7)",
                sub.id, creator, url, list(kinds), stream, sub.secret, now_ms,
            )  # fmt: skip
        return sub

    async def owned(self, creator: str, sub_id: str) -> Subscription:
        """The active subscription ``sub_id`` of ``creator``: NotFound, or Forbidden if
        it is another creator's."""
        row = await self.pool.fetchrow(
            "SELECT id, creator_id, url, kinds, stream_id, secret, created_ms "
            "FROM webhook_subscriptions WHERE id = $1 AND deleted_ms IS NULL",
            sub_id,
        )
        if row is None:
            raise NotFound("no such webhook subscription")
        if row["creator_id"] != creator:
            raise Forbidden("this webhook subscription belongs to another creator")
        return _subscription(row)

    async def list_of(self, creator: str) -> list[Subscription]:
        """The creator's active subscriptions, oldest first."""
        rows = await self.pool.fetch(
            "SELECT id, creator_id, url, kinds, stream_id, secret, created_ms "
            "FROM webhook_subscriptions "
            "WHERE creator_id = $1 AND deleted_ms IS NULL ORDER BY created_ms, id",
            creator,
        )
        return [_subscription(r) for r in rows]

    async def active(self) -> list[Subscription]:
        """Every active subscription (the worker's view)."""
        rows = await self.pool.fetch(
            "SELECT id, creator_id, url, kinds, stream_id, secret, created_ms "
            "FROM webhook_subscriptions WHERE deleted_ms IS NULL"
        )
        return [_subscription(r) for r in rows]

    async def delete(self, creator: str, sub_id: str, now_ms: int) -> None:
        """Deactivate a subscription; its pending deliveries are cancelled."""
        await self.owned(creator, sub_id)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE webhook_subscriptions SET deleted_ms = $2 "
                "WHERE id = $1 AND deleted_ms IS NULL",
                sub_id, now_ms,
            )  # fmt: skip
            await conn.execute(
                "UPDATE webhook_deliveries SET state = 'cancelled' "
                "WHERE subscription_id = $1 AND state = 'pending'",
                sub_id,
            )

    async def attempts(self, sub_id: str, limit: int) -> list[dict[str, Any]]:
        """The subscription's latest delivery attempts, newest first."""
        rows = await self.pool.fetch(
            "SELECT a.attempt, a.at_ms, a.status, a.latency_ms, a.error, a.next_ms, "
            "d.event_id, d.kind, d.stream_id, d.seq, d.state "
            "FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id "
            "WHERE a.subscription_id = $1 ORDER BY a.id DESC LIMIT $2",
            sub_id, limit,
        )  # fmt: skip
        return [
            {
                "event": r["event_id"], "kind": r["kind"], "stream": r["stream_id"],
                "seq": r["seq"], "attempt": r["attempt"], "at": r["at_ms"],
                "status": r["status"], "latency_ms": r["latency_ms"], "error": r["error"],
                "next_retry": r["next_ms"], "delivery": r["state"],
            }
            for r in rows
        ]  # fmt: skip

    # -- the worker's side ----------------------------------------------------------
    async def positions(self) -> dict[str, tuple[str, bool]]:
        """Every stream's read position: stream → (cursor, ended)."""
        rows = await self.pool.fetch("SELECT stream_id, cursor, ended FROM webhook_feed_positions")
        return {r["stream_id"]: (r["cursor"], r["ended"]) for r in rows}

    async def advance(
        self,
        stream: str,
        creator: str,
        cursor: str,
        ended: bool,
        deliveries: Sequence[NewDelivery],
        now_ms: int,
    ) -> list[str]:
        """Record the deliveries read from ``stream`` and its new position, at once.

        Returns the subscriptions that got a new delivery.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            created: list[str] = []
            if deliveries:
                rows = await conn.fetch(
                    "INSERT INTO webhook_deliveries "
                    "(subscription_id, event_id, stream_id, kind, seq, body, created_ms, next_ms) "
                    "SELECT s.id, u.event, u.stream, u.kind, u.seq, u.body, $7, $7 "
                    "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], "
                    "$6::text[]) AS u(sub, event, stream, kind, seq, body) "
                    "JOIN webhook_subscriptions s ON s.id = u.sub AND s.deleted_ms IS NULL "
                    "ON CONFLICT (subscription_id, event_id) DO NOTHING RETURNING subscription_id",
                    [d.subscription for d in deliveries], [d.event for d in deliveries],
                    [d.stream for d in deliveries], [d.kind for d in deliveries],
                    [d.seq for d in deliveries], [d.body for d in deliveries], now_ms,
                )  # fmt: skip
                created = sorted({r["subscription_id"] for r in rows})
            await conn.execute(
                "INSERT INTO webhook_feed_positions (stream_id, creator_id, cursor, ended) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT (stream_id) DO UPDATE "
                "SET cursor = EXCLUDED.cursor, ended = EXCLUDED.ended",
                stream, creator, cursor, ended,
            )  # fmt: skip
        return created

    async def due(self, sub_id: str, now_ms: int, limit: int) -> list[Delivery]:
        """The subscription's pending deliveries due by ``now_ms``, oldest event first."""
        rows = await self.pool.fetch(
            "SELECT id, subscription_id, event_id, body, attempts, created_ms "
            "FROM webhook_deliveries WHERE subscription_id = $1 AND state = 'pending' "
            "AND next_ms <= $2 ORDER BY next_ms, id LIMIT $3",
            sub_id, now_ms, limit,
        )  # fmt: skip
        return [
            Delivery(r["id"], r["subscription_id"], r["event_id"], r["body"], r["attempts"],
                     r["created_ms"])
            for r in rows
        ]  # fmt: skip

    async def next_due_ms(self, sub_id: str) -> int | None:
        """When the subscription's next pending delivery is due, if it has one."""
        value = await self.pool.fetchval(
            "SELECT min(next_ms) FROM webhook_deliveries "
            "WHERE subscription_id = $1 AND state = 'pending'",
            sub_id,
        )
        return None if value is None else int(value)

    async def record_attempt(
        self,
        delivery: Delivery,
        *,
        at_ms: int,
        status: int | None,
        latency_ms: int,
        error: str | None,
        state: str,
        next_ms: int | None,
    ) -> None:
        """One try and its outcome: the attempt row, and the delivery's new state."""
        attempt = delivery.attempts + 1
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO webhook_attempts (delivery_id, subscription_id, attempt, at_ms, "
                "status, latency_ms, error, next_ms) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
                delivery.id, delivery.subscription, attempt, at_ms, status, latency_ms,
                error, next_ms,
            )  # fmt: skip
            await conn.execute(
                "UPDATE webhook_deliveries SET attempts = $2, state = $3, "
                "next_ms = COALESCE($4, next_ms) WHERE id = $1 AND state = 'pending'",
                delivery.id, attempt, state, next_ms,
            )  # fmt: skip
