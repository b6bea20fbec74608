"""Monthly budgets (docs/contract.md §3.2): a spend never takes the sender past the budget."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from gifting.core.catalog import Catalog
from gifting.core.errors import BadRequest, BudgetExceeded, GiftingError
from gifting.store.keys import Keys
from gifting.store.ledger import MAX_BUDGET, Budget, Ledger, SpendResult

from .support import FakeClock, buy, gift_order, of_type, outbox_entries, snapshot

pytestmark = pytest.mark.cluster


async def test_spends_up_to_exactly_the_budget_then_the_next_coin_is_refused(
    ledger: Ledger, redis: Redis, keys: Keys, catalog: Catalog
) -> None:
    await buy(ledger, "ann", "coins_350")
    assert await ledger.set_budget("ann", 100) == Budget(100, 0, "2026-01")
    for i in range(9):
        await ledger.spend(gift_order(catalog, "ann", f"r{i}", "rosa"), live=True)
    last = await ledger.spend(gift_order(catalog, "ann", "roses", "rose", 10), live=True)
    assert last.balance == 250
    assert (await ledger.wallet("ann")).budget == Budget(100, 100, "2026-01")

    before = await snapshot(redis, keys.prefix, skip=(":spend:ann:over",))
    with pytest.raises(BudgetExceeded):
        await ledger.spend(gift_order(catalog, "ann", "over", "rose"), live=True)
    assert await snapshot(redis, keys.prefix, skip=(":spend:ann:over",)) == before
    wallet = await ledger.wallet("ann")
    assert (wallet.coins, wallet.budget.spent) == (250, 100)
    assert len(of_type(await outbox_entries(redis, keys), "spend")) == 10


async def test_budget_under_concurrency_is_never_exceeded(
    ledger: Ledger, redis: Redis, keys: Keys, catalog: Catalog
) -> None:
    await buy(ledger, "bea", "coins_350")
    await ledger.set_budget("bea", 37)

    async def one(i: int) -> SpendResult | GiftingError:
        try:
            return await ledger.spend(gift_order(catalog, "bea", f"c{i}", "rose"), live=True)
        except GiftingError as e:
            return e

    outcomes = await asyncio.gather(*(one(i) for i in range(50)))
    assert sum(isinstance(r, SpendResult) for r in outcomes) == 37
    assert all(type(r) is BudgetExceeded for r in outcomes if not isinstance(r, SpendResult))
    wallet = await ledger.wallet("bea")
    assert (wallet.coins, wallet.budget.spent) == (350 - 37, 37)
    assert len(of_type(await outbox_entries(redis, keys), "spend")) == 37


async def test_month_rollover_frees_the_budget(
    ledger: Ledger, catalog: Catalog, clock: FakeClock
) -> None:
    await buy(ledger, "cid", "coins_350")
    await ledger.set_budget("cid", 30)
    clock.set("2026-01-31T23:59:59.999Z")
    await ledger.spend(gift_order(catalog, "cid", "jan1", "doughnut"), live=True)  # 30
    with pytest.raises(BudgetExceeded):
        await ledger.spend(gift_order(catalog, "cid", "jan2", "rose"), live=True)
    assert (await ledger.wallet("cid")).budget == Budget(30, 30, "2026-01")

    clock.set("2026-02-01T00:00:00Z")
    assert (await ledger.wallet("cid")).budget == Budget(30, 0, "2026-02")
    ok = await ledger.spend(gift_order(catalog, "cid", "feb1", "perfume"), live=True)
    assert ok.balance == 350 - 30 - 20
    assert (await ledger.wallet("cid")).budget == Budget(30, 20, "2026-02")
    with pytest.raises(BudgetExceeded):
        await ledger.spend(gift_order(catalog, "cid", "feb2", "rosa", 2), live=True)
    # December to January crosses a year too.
    clock.set("2026-12-31T23:59:59Z")
    await ledger.spend(gift_order(catalog, "cid", "dec", "doughnut"), live=True)
    clock.set("2027-01-01T00:00:00Z")
    await ledger.spend(gift_order(catalog, "cid", "jan27", "doughnut"), live=True)
    assert (await ledger.wallet("cid")).budget == Budget(30, 30, "2027-01")


async def test_budget_none_removes_the_limit_and_zero_blocks_every_spend(
    ledger: Ledger, catalog: Catalog
) -> None:
    await buy(ledger, "dee")
    await ledger.set_budget("dee", 0)
    with pytest.raises(BudgetExceeded):
        await ledger.spend(gift_order(catalog, "dee", "z", "rose"), live=True)
    assert await ledger.set_budget("dee", None) == Budget(None, 0, "2026-01")
    assert (
        await ledger.spend(gift_order(catalog, "dee", "a", "doughnut", 2), live=True)
    ).balance == 10
    # Lowered below what was already spent this month: the next spend is refused.
    await ledger.set_budget("dee", 59)
    with pytest.raises(BudgetExceeded):
        await ledger.spend(gift_order(catalog, "dee", "b", "rose"), live=True)
    assert (await ledger.wallet("dee")).coins == 10
    # Clearing a budget that is not set is fine.
    await ledger.set_budget("dee", None)
    assert await ledger.set_budget("dee", None) == Budget(None, 60, "2026-01")
    assert await ledger.set_budget("dee", MAX_BUDGET) == Budget(MAX_BUDGET, 60, "2026-01")


@pytest.mark.parametrize(
    "bad", [-1, MAX_BUDGET + 1, 2**63, 2**64, True, False, 1.5, 10.0, "10", [10], {"m": 1}]
)
async def test_invalid_budget_is_refused_and_changes_nothing(
    ledger: Ledger, redis: Redis, keys: Keys, bad: object
) -> None:
    await buy(ledger, "eve")
    await ledger.set_budget("eve", 50)
    before = await snapshot(redis, keys.prefix)
    with pytest.raises(BadRequest):
        await ledger.set_budget("eve", bad)
    assert await snapshot(redis, keys.prefix) == before
    assert (await ledger.wallet("eve")).budget.monthly == 50


@pytest.mark.parametrize("user", ["", "a b", "x:y", "{w01}", "z" * 65, None])
async def test_budget_of_an_invalid_user_is_refused(
    ledger: Ledger, redis: Redis, keys: Keys, user: object
) -> None:
    with pytest.raises(BadRequest):
        await ledger.set_budget(user, 10)  # type: ignore[arg-type]
    assert await snapshot(redis, keys.prefix) == {}
