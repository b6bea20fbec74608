"""spend_many.lua: a wallet shard's spends in one call, each exactly as spend.lua alone.

The hub's debits (:meth:`Ledger.debit_many`) group a batch by wallet shard
and run one spend_many.lua call per shard. These tests hold it to spend.lua:
the same code (checked on the text), the same outcomes and Redis state for a
mixed sequence (checked by running it both ways), and one spend's failure in
Redis leaving the others and its own wallet alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.asyncio import Redis

from gifting.core.catalog import Catalog
from gifting.core.errors import (
    Blocked,
    BudgetExceeded,
    Conflict,
    GiftingError,
    InsufficientFunds,
    StreamNotLive,
    Unavailable,
)
from gifting.store.keys import Keys, shard_of
from gifting.store.ledger import Ledger, SpendOrder, SpendResult
from gifting.store.spends import spend_many_call, split_many

from .support import CREATOR, STREAM, FakeClock, badge_order, buy, gift_order

pytestmark = pytest.mark.cluster

LUA = Path(__file__).parents[2] / "gifting" / "store" / "lua"


def _same_shard(user: str, count: int, prefix: str) -> list[str]:
    return [f"{prefix}{i}" for i in range(2000) if shard_of(f"{prefix}{i}") == shard_of(user)][
        :count
    ]


def test_spend_many_runs_spend_lua_s_own_code() -> None:
    spend = (LUA / "spend.lua").read_text()
    body = spend[spend.index("local prev = redis.call('HMGET', KEYS[2]") :]
    many = (LUA / "spend_many.lua").read_text()
    assert "local function spend(KEYS, ARGV)\n" + body + "end\n" in many


def test_a_batch_call_takes_only_one_shard() -> None:
    from gifting.store.scripts import ScriptCall

    a = ScriptCall("spend", ["w1", "r1", "{w01}:outbox", "c", "g", "b1", "b2"], [1])
    b = ScriptCall("spend", ["w2", "r2", "{w02}:outbox", "c", "g", "b1", "b2"], [1])
    assert spend_many_call([a]).keys == ["{w01}:outbox", "w1", "r1", "c", "g", "b1", "b2"]
    assert spend_many_call([a]).args == [1, 1, 1]
    with pytest.raises(ValueError):
        spend_many_call([a, b])
    with pytest.raises(ValueError):
        split_many(["ok"] * 4, 1)


def _orders(catalog: Catalog, users: list[str]) -> list[SpendOrder]:
    rich, poor, capped, blocked = users
    return [
        gift_order(catalog, rich, "a", "rosa"),  # 10: ok
        gift_order(catalog, rich, "b", "rose"),  # ok, a combo? no: another gift
        gift_order(catalog, rich, "b", "rose"),  # the same id again: a replay
        gift_order(catalog, rich, "b", "rosa"),  # the same id, another payload: conflict
        gift_order(catalog, poor, "c", "rosa"),  # 10 of 1: insufficient
        gift_order(catalog, poor, "d", "rose"),  # then the one coin: ok
        gift_order(catalog, capped, "e", "rosa"),  # over the monthly budget
        gift_order(catalog, blocked, "f", "rose"),  # blocked by the creator
        gift_order(catalog, rich, "g", "rose", stream="s-ended"),  # not live
        badge_order(catalog, rich, "h", "super_fan"),  # more than rich has
        gift_order(catalog, rich, "i", "rose"),  # a combo of the rose above
    ]


async def _setup(ledger: Ledger, redis: Redis, keys: Keys, users: list[str]) -> None:
    rich, poor, capped, blocked = users
    await buy(ledger, rich, "coins_350")
    await buy(ledger, poor, "coins_70")
    await ledger.debit_many(
        [gift_order(ledger.catalog, poor, "drain", "rose", 69)], live={STREAM: True}, now=0
    )
    await buy(ledger, capped, "coins_70")
    await ledger.set_budget(capped, 5)
    await buy(ledger, blocked, "coins_70")
    await redis.set(keys.block_by_creator(blocked, CREATOR), "1")


def _shape(outcome: SpendResult | GiftingError) -> tuple[object, ...]:
    if isinstance(outcome, SpendResult):
        return ("ok", outcome.balance, outcome.combo, outcome.replayed, outcome.badge)
    return (type(outcome).__name__,)


async def test_a_shard_s_batch_answers_and_writes_as_spend_lua_one_by_one(
    redis: Redis, key_prefix: str, catalog: Catalog, clock: FakeClock
) -> None:
    users = _same_shard("kim", 4, "m")
    live = {STREAM: True, "s-ended": False}
    one_keys, many_keys = Keys(f"{key_prefix}:one"), Keys(f"{key_prefix}:many")
    one = Ledger(redis, one_keys, catalog, clock=clock)
    many = Ledger(redis, many_keys, catalog, clock=clock)
    for ledger, k in ((one, one_keys), (many, many_keys)):
        await _setup(ledger, redis, k, users)
    orders = _orders(catalog, users)
    alone = [(await one.debit_many([o], live=live, now=clock()))[0] for o in orders]
    batch = await many.debit_many(orders, live=live, now=clock())
    assert [_shape(o) for o in batch] == [_shape(o) for o in alone]
    assert [type(o) for o in batch] == [
        SpendResult, SpendResult, SpendResult, Conflict, InsufficientFunds, SpendResult,
        BudgetExceeded, Blocked, StreamNotLive, InsufficientFunds, SpendResult,
    ]  # fmt: skip
    assert isinstance(batch[2], SpendResult) and isinstance(batch[1], SpendResult)
    assert batch[2].replayed and batch[2].event == batch[1].event
    assert isinstance(batch[10], SpendResult) and batch[10].combo == 2
    outbox_one = await redis.xrange(one_keys.outbox(shard_of("kim")))
    outbox_many = await redis.xrange(many_keys.outbox(shard_of("kim")))
    # four purchases, the drain, then four debits (a, b, d, i)
    assert len(outbox_many) == len(outbox_one) == 4 + 1 + 4
    for user in users:
        w_one = await redis.hgetall(one_keys.wallet(user))
        w_many = await redis.hgetall(many_keys.wallet(user))
        w_one.pop(b"pos")
        pos = w_many.pop(b"pos")
        assert w_many == w_one
        # pos: the outbox id of the wallet's last event
        assert pos == [i for i, f in outbox_many if f[b"user"] == user.encode()][-1]


async def test_a_spend_that_fails_in_redis_fails_alone_and_writes_nothing(
    ledger: Ledger, redis: Redis, keys: Keys, catalog: Catalog, clock: FakeClock
) -> None:
    a, b, c = _same_shard("kim", 3, "f")
    for user in (a, b, c):
        await buy(ledger, user, "coins_70")
    # b's combo record is not a hash: its spend fails in its checks, before any write.
    await redis.set(keys.combo(b, STREAM), "not a hash")
    before = await redis.hgetall(keys.wallet(b))
    orders = [gift_order(catalog, u, "x", "rose") for u in (a, b, c)]
    got = await ledger.debit_many(orders, live={STREAM: True}, now=clock())
    assert [type(g) for g in got] == [SpendResult, Unavailable, SpendResult]
    assert await redis.hgetall(keys.wallet(b)) == before
    assert not await redis.exists(keys.spend_result(b, "x"))
    users = [f[b"user"].decode() for _, f in await redis.xrange(keys.outbox(shard_of("kim")))]
    assert users.count(b) == 1 and users.count(a) == 2 and users.count(c) == 2  # buy + gift
    # Fixed, the same id debits: nothing of the failed try was kept.
    await redis.delete(keys.combo(b, STREAM))
    (again,) = await ledger.debit_many(orders[1:2], live={STREAM: True}, now=clock())
    assert isinstance(again, SpendResult) and not again.replayed and again.balance == 69


async def test_a_batch_over_many_shards_runs_one_call_per_shard(
    ledger: Ledger, redis: Redis, keys: Keys, catalog: Catalog, clock: FakeClock
) -> None:
    users = [f"v{i}" for i in range(40)]
    for user in users:
        await buy(ledger, user, "coins_70")
    orders = [gift_order(catalog, u, f"g{j}", "rose") for j in range(2) for u in users]
    got = await ledger.debit_many(orders, live={STREAM: True}, now=clock())
    assert all(isinstance(g, SpendResult) for g in got)
    assert [g.balance for g in got if isinstance(g, SpendResult)] == [69] * 40 + [68] * 40
    for user in users:
        assert await redis.hget(keys.wallet(user), "coins") == b"68"
