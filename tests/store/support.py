"""Helpers of the ledger tests: a hand-moved clock, Redis state snapshots, outbox reads."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis

from gifting.core.catalog import Catalog
from gifting.core.pricing import price_badge, price_effect, price_gift, price_highlight
from gifting.store.keys import Keys
from gifting.store.ledger import Ledger, PurchaseResult, SpendOrder

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
STREAM = "s1"
CREATOR = "creator1"
_purchase_ids = itertools.count()


def iso_ms(iso: str) -> int:
    """Unix ms of an ISO-8601 instant like ``2026-01-31T23:59:59Z``."""
    return (datetime.fromisoformat(iso) - EPOCH) // timedelta(milliseconds=1)


class FakeClock:
    """A clock the test moves by hand; pass it as ``Ledger(clock=...)``."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    @classmethod
    def at(cls, iso: str) -> FakeClock:
        return cls(iso_ms(iso))

    def __call__(self) -> int:
        return self.ms

    def set(self, iso: str) -> None:
        self.ms = iso_ms(iso)

    def advance(self, ms: int) -> None:
        self.ms += ms


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


async def snapshot(redis: Redis, prefix: str, *, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every key of the test (``prefix:*``) with its type and full value.

    Two equal snapshots mean nothing at all changed in the test's keyspace.
    Keys whose name contains any string in ``skip`` are left out.
    """
    state: dict[str, Any] = {}
    async for raw_key in redis.scan_iter(match=f"{prefix}:*", count=1000):
        key = _text(raw_key)
        if any(s in key for s in skip):
            continue
        kind = _text(await redis.type(raw_key))
        value: Any
        if kind == "hash":
            value = sorted((await redis.hgetall(raw_key)).items())
        elif kind == "string":
            value = await redis.get(raw_key)
        elif kind == "stream":
            value = await redis.xrange(raw_key)
        elif kind == "zset":
            value = await redis.zrange(raw_key, 0, -1, withscores=True)
        else:  # pragma: no cover - the ledger uses no other types
            value = kind
        state[key] = (kind, value)
    return state


async def outbox_entries(redis: Redis, keys: Keys) -> list[dict[str, str]]:
    """Every entry of every outbox stream (``Keys.outboxes()``), decoded, with its ``_id``."""
    entries: list[dict[str, str]] = []
    for key in keys.outboxes():
        if _text(await redis.type(key)) != "stream":
            continue
        for entry_id, fields in await redis.xrange(key):
            entry = {_text(k): _text(v) for k, v in fields.items()}
            entry["_id"] = _text(entry_id)
            entries.append(entry)
    return entries


def of_type(entries: list[dict[str, str]], kind: str) -> list[dict[str, str]]:
    """The outbox entries of one ``type`` (spend, purchase, refund, credit, cashout_*)."""
    return [e for e in entries if e["type"] == kind]


def coins_of(entries: list[dict[str, str]], kind: str) -> int:
    """Sum of the ``coins`` field of the entries of one type."""
    return sum(int(e["coins"]) for e in of_type(entries, kind))


def new_purchase_id() -> str:
    """A purchase id never used before in this session."""
    return f"pur-{next(_purchase_ids)}"


async def buy(ledger: Ledger, user: str, package: str = "coins_70") -> PurchaseResult:
    """Credit ``user`` one package at its catalog price, under a fresh purchase id."""
    p = ledger.catalog.packages[package]
    return await ledger.purchase(new_purchase_id(), user, package, p.price.amount, p.price.currency)


def gift_order(
    catalog: Catalog,
    sender: str,
    client_id: str,
    gift: str = "rose",
    count: int = 1,
    *,
    stream: str = STREAM,
    creator: str = CREATOR,
) -> SpendOrder:
    """A priced gift from ``sender`` to ``creator`` in ``stream``."""
    return SpendOrder(
        sender, sender.title(), client_id, price_gift(catalog, gift, count), stream, creator
    )


def effect_order(catalog: Catalog, sender: str, client_id: str, effect: str) -> SpendOrder:
    """A priced live-stream effect."""
    return SpendOrder(
        sender, sender.title(), client_id, price_effect(catalog, effect), STREAM, CREATOR
    )


def highlight_order(
    catalog: Catalog, sender: str, client_id: str, tier: str, text: str
) -> SpendOrder:
    """A priced highlighted comment."""
    return SpendOrder(
        sender,
        sender.title(),
        client_id,
        price_highlight(catalog, tier, text),
        STREAM,
        CREATOR,
        text,
    )


def badge_order(catalog: Catalog, sender: str, client_id: str, badge: str) -> SpendOrder:
    """A priced profile badge (no stream, no creator: the platform keeps the coins)."""
    return SpendOrder(sender, sender.title(), client_id, price_badge(catalog, badge))
