"""The ledger's batch calls: debit_many (the hub's debits), settle_many and repair_credits."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from gifting.core.catalog import Catalog
from gifting.core.errors import Forbidden, InsufficientFunds, StreamNotLive, Unavailable
from gifting.store.keys import Keys, shard_of
from gifting.store.ledger import Ledger, SpendOrder, SpendResult, spend_entry
from gifting.store.rooms import RoomLog
from gifting.store.scripts import ScriptCall

from .support import CREATOR, STREAM, FakeClock, badge_order, buy, gift_order

pytestmark = pytest.mark.cluster


def _other_shard(user: str, prefix: str = "u") -> str:
    return next(f"{prefix}{i}" for i in range(100) if shard_of(f"{prefix}{i}") != shard_of(user))


async def test_debit_many_answers_each_order_in_place(
    ledger: Ledger, redis: Redis, keys: Keys, catalog: Catalog, clock: FakeClock
) -> None:
    await buy(ledger, "kim", "coins_350")
    broke = _other_shard("kim")
    await buy(ledger, broke)
    # The other user's outbox is not a stream: their script call fails in Redis.
    await redis.set(keys.outbox(shard_of(broke)), "not a stream")
    orders = [
        gift_order(catalog, "kim", "a", "rosa"),  # 10
        SpendOrder("kim", "Kim", "own", gift_order(catalog, "kim", "x").priced, STREAM, "kim"),
        gift_order(catalog, "kim", "ended", "rose", stream="s-ended"),
        gift_order(catalog, broke, "b", "rose"),
        badge_order(catalog, "kim", "badge", "super_fan"),  # more than kim has
        gift_order(catalog, "kim", "c", "rose"),
        gift_order(catalog, "kim", "unknown", "rose", stream="s-unknown"),
    ]
    live = {STREAM: True, "s-ended": False}  # s-unknown: missing, so not live
    got = await ledger.debit_many(orders, live=live, now=clock())
    assert [type(g) for g in got] == [
        SpendResult, Forbidden, StreamNotLive, Unavailable, InsufficientFunds, SpendResult,
        StreamNotLive,
    ]  # fmt: skip
    assert isinstance(got[0], SpendResult) and isinstance(got[5], SpendResult)
    assert (got[0].balance, got[5].balance) == (340, 339)
    assert (await ledger.debit_many(orders[:1], live=live, now=clock()))[0] == SpendResult(
        got[0].event, 340, 1, True
    )
    assert await ledger.debit_many([], live={}, now=clock()) == []


async def test_settle_many_credits_and_emits_once(
    ledger: Ledger, redis: Redis, keys: Keys, catalog: Catalog, clock: FakeClock
) -> None:
    await buy(ledger, "amy", "coins_350")
    rooms = RoomLog(redis, keys, catalog, clock=clock)
    orders = [gift_order(catalog, "amy", f"g{i}", "rosa", 2) for i in range(3)]
    results = await ledger.debit_many(orders, live={STREAM: True}, now=clock())
    entries = [
        spend_entry(o, r, clock()) for o, r in zip(orders, results, strict=True)
        if isinstance(r, SpendResult)
    ]  # fmt: skip
    emits = [ScriptCall("emit", *rooms.spend_emit_args(e)) for e in entries]
    assert await ledger.settle_many(entries, emits) == []
    assert await ledger.settle_many(entries, emits) == []  # a replay changes nothing
    creator = await ledger.wallet(CREATOR)
    assert creator.received == 60 and creator.diamonds == 30
    history = await redis.xrange(keys.room_history(STREAM))
    assert len(history) == 3
    await ledger.aclose()


async def test_repair_credits_runs_only_the_missing_credits(
    ledger: Ledger, catalog: Catalog, clock: FakeClock
) -> None:
    await buy(ledger, "bo", "coins_350")
    orders = [gift_order(catalog, "bo", f"g{i}", "rosa") for i in range(5)]
    orders.append(badge_order(catalog, "bo", "b", "supporter"))
    await buy(ledger, "bo", "coins_7000")
    now = clock()
    results = await ledger.debit_many(orders, live={STREAM: True}, now=now)
    entries = [
        spend_entry(o, r, now) for o, r in zip(orders, results, strict=True)
        if isinstance(r, SpendResult)
    ]  # fmt: skip
    assert len(entries) == 6
    await ledger.credit_creator(
        spend_event=entries[0].event, creator=CREATOR, coins=10, stream=STREAM, sender="bo"
    )
    assert await ledger.repair_credits(entries, chunk=2) == 4  # not the credited one, no badge
    assert await ledger.repair_credits(entries) == 0
    creator = await ledger.wallet(CREATOR)
    assert creator.received == 50 and creator.diamonds == 25
    await ledger.aclose()
