"""A money script made to fail after its checks changes nothing (docs/contract.md §7).

Redis does not roll back a script that fails half-way, so every script makes
the outbox append its first write. Turning the outbox stream into a plain
string makes that XADD fail with WRONGTYPE after every check has passed: the
call must raise and leave every key exactly as it was, and a retry of the same
id once the outbox is back must apply the operation once.
"""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from gifting.core.catalog import Catalog
from gifting.core.errors import InsufficientFunds
from gifting.store.keys import Keys, shard_of
from gifting.store.ledger import Ledger

from .support import buy, gift_order, of_type, outbox_entries, snapshot

pytestmark = pytest.mark.cluster


async def break_outbox(redis: Redis, keys: Keys, user: str) -> str:
    """Replace the outbox stream of ``user``'s shard by a string; return its key."""
    key = keys.outbox(shard_of(user))
    await redis.delete(key)
    await redis.set(key, "not a stream")
    return key


async def test_failed_spend_leaves_wallet_result_and_combo_untouched(
    ledger: Ledger, redis: Redis, keys: Keys, catalog: Catalog
) -> None:
    await buy(ledger, "alice")
    await ledger.spend(gift_order(catalog, "alice", "m1", "rosa"), live=True)  # combo 1
    await ledger.set_budget("alice", 1000)
    outbox = await break_outbox(redis, keys, "alice")
    before = await snapshot(redis, keys.prefix)

    order = gift_order(catalog, "alice", "m2", "rosa", 2)
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await ledger.spend(order, live=True)
    assert await snapshot(redis, keys.prefix) == before
    assert not await redis.exists(keys.spend_result("alice", "m2"))
    assert await redis.hget(keys.combo("alice", "s1"), "count") == b"1"
    # Refusals need no outbox entry, so they still answer while the outbox is broken.
    with pytest.raises(InsufficientFunds):
        await ledger.spend(gift_order(catalog, "alice", "m3", "universe"), live=True)

    await redis.delete(outbox)
    ok = await ledger.spend(order, live=True)
    assert (ok.balance, ok.combo, ok.replayed) == (40, 3, False)
    spends = of_type(await outbox_entries(redis, keys), "spend")
    assert [e["client_id"] for e in spends] == ["m2"]
    assert (await ledger.wallet("alice")).budget.spent == 30


async def test_failed_purchase_credits_nothing_and_the_retry_credits_once(
    ledger: Ledger, redis: Redis, keys: Keys
) -> None:
    await buy(ledger, "bob")
    outbox = await break_outbox(redis, keys, "bob")
    # The owner index (its own slot) is written before the script: leave it out.
    before = await snapshot(redis, keys.prefix, skip=("purchase-owner",))
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await ledger.purchase("p-1", "bob", "coins_350", 499, "USD")
    assert await snapshot(redis, keys.prefix, skip=("purchase-owner",)) == before
    assert not await redis.exists(keys.purchase("bob", "p-1"))

    await redis.delete(outbox)
    first = await ledger.purchase("p-1", "bob", "coins_350", 499, "USD")
    assert (first.coins, first.balance, first.replayed) == (350, 420, False)
    assert (await ledger.purchase("p-1", "bob", "coins_350", 499, "USD")).replayed
    assert len(of_type(await outbox_entries(redis, keys), "purchase")) == 1


async def test_failed_refund_claws_nothing_and_the_retry_claws_once(
    ledger: Ledger, redis: Redis, keys: Keys
) -> None:
    await ledger.purchase("p-2", "cat", "coins_70", 99, "USD")
    outbox = await break_outbox(redis, keys, "cat")
    before = await snapshot(redis, keys.prefix)
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await ledger.refund("p-2")
    assert await snapshot(redis, keys.prefix) == before

    await redis.delete(outbox)
    assert (await ledger.refund("p-2")).replayed is False
    assert (await ledger.refund("p-2")).replayed is True
    assert (await ledger.wallet("cat")).coins == 0
    assert len(of_type(await outbox_entries(redis, keys), "refund")) == 1


async def test_failed_credit_leaves_diamonds_and_marker_untouched(
    ledger: Ledger, redis: Redis, keys: Keys
) -> None:
    async def credit() -> int:
        return await ledger.credit_creator(
            spend_event="e-1", creator="cre", coins=3, stream="s1", sender="v"
        )

    await ledger.credit_creator(spend_event="e-0", creator="cre", coins=1, stream="s1", sender="v")
    outbox = await break_outbox(redis, keys, "cre")
    before = await snapshot(redis, keys.prefix)
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await credit()
    assert await snapshot(redis, keys.prefix) == before
    assert not await redis.exists(keys.credit_done("cre", "e-1"))

    await redis.delete(outbox)
    assert await credit() == 2
    assert await credit() == 2
    w = await ledger.wallet("cre")
    assert (w.received, w.earned, w.diamonds) == (4, 2, 2)
    assert len(of_type(await outbox_entries(redis, keys), "credit")) == 1


async def test_failed_cashout_hold_and_settle_change_nothing(
    ledger: Ledger, redis: Redis, keys: Keys
) -> None:
    await ledger.credit_creator(
        spend_event="e-0", creator="cre", coins=20_000, stream="s1", sender="v"
    )
    outbox = await break_outbox(redis, keys, "cre")
    before = await snapshot(redis, keys.prefix)
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await ledger.request_cashout("cre", 4000, "r1")
    assert await snapshot(redis, keys.prefix) == before
    assert await ledger.cashouts("cre") == []

    await redis.delete(outbox)
    held = await ledger.request_cashout("cre", 4000, "r1")
    assert held.status == "held"
    await break_outbox(redis, keys, "cre")
    before = await snapshot(redis, keys.prefix)
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await ledger.settle_cashout(held.cashout, "paid")
    assert await snapshot(redis, keys.prefix) == before

    await redis.delete(outbox)
    assert (await ledger.settle_cashout(held.cashout, "paid")).status == "paid"
    w = await ledger.wallet("cre")
    assert (w.diamonds, w.held, w.paid) == (6000, 0, 4000)
    types = [e["type"] for e in await outbox_entries(redis, keys)]
    assert types.count("cashout_paid") == 1 and "cashout_hold" not in types  # deleted above
