"""Purchases and refunds at the ledger level: once per provider purchase id.

docs/contract.md §4 (a webhook replay is the same 200, same id with another body 409,
amount or currency not the package's 422; a refund replay claws nothing more)
and 3.6 (bad input changes nothing).
"""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from gifting.core.catalog import Catalog
from gifting.core.errors import (
    BadRequest,
    Conflict,
    GiftingError,
    InsufficientFunds,
    NotFound,
    UnknownItem,
    Unprocessable,
)
from gifting.store.keys import Keys
from gifting.store.ledger import Ledger, PurchaseResult

from .support import buy, coins_of, gift_order, of_type, outbox_entries, snapshot

pytestmark = pytest.mark.cluster

# --------------------------------------------------------------------------- refunds


async def test_refund_claws_back_into_a_negative_balance_that_refuses_spends(
    ledger: Ledger, redis: Redis, keys: Keys, catalog: Catalog
) -> None:
    first = await ledger.purchase("p-1", "amy", "coins_70", 99, "USD")
    assert first == PurchaseResult("p-1", "amy", 70, 70, False)
    await ledger.spend(gift_order(catalog, "amy", "s1", "doughnut", 2), live=True)  # 60
    refund = await ledger.refund("p-1")
    assert refund == PurchaseResult("p-1", "amy", 70, -60, False)
    assert (await ledger.wallet("amy")).coins == -60

    before = await snapshot(redis, keys.prefix, skip=(":spend:",))
    for i, gift in enumerate(["rose", "rosa", "universe"]):
        with pytest.raises(InsufficientFunds):
            await ledger.spend(gift_order(catalog, "amy", f"neg{i}", gift), live=True)
    assert await snapshot(redis, keys.prefix, skip=(":spend:",)) == before

    # A replayed refund claws nothing more, also when fired concurrently.
    replays = await asyncio.gather(*(ledger.refund("p-1") for _ in range(20)))
    assert set(replays) == {PurchaseResult("p-1", "amy", 70, -60, True)}
    assert (await ledger.wallet("amy")).coins == -60

    assert (await ledger.purchase("p-2", "amy", "coins_70", 99, "USD")).balance == 10
    ok = await ledger.spend(gift_order(catalog, "amy", "s2", "rosa"), live=True)
    assert ok.balance == 0
    # The first refusals stay refused (their ids keep their results).
    with pytest.raises(InsufficientFunds):
        await ledger.spend(gift_order(catalog, "amy", "neg0", "rose"), live=True)

    entries = await outbox_entries(redis, keys)
    assert len(of_type(entries, "refund")) == 1
    assert coins_of(entries, "refund") == 70
    purchased = coins_of(entries, "purchase") - coins_of(entries, "refund")
    assert purchased == (await ledger.wallet("amy")).coins + coins_of(entries, "spend") == 70


async def test_concurrent_first_refunds_claw_back_once(
    ledger: Ledger, redis: Redis, keys: Keys
) -> None:
    await ledger.purchase("p-9", "ben", "coins_350", 499, "USD")
    results = await asyncio.gather(*(ledger.refund("p-9") for _ in range(30)))
    assert sum(not r.replayed for r in results) == 1
    assert {(r.coins, r.balance) for r in results} == {(350, 0)}
    assert (await ledger.wallet("ben")).coins == 0
    assert len(of_type(await outbox_entries(redis, keys), "refund")) == 1


@pytest.mark.parametrize("purchase_id", ["never-bought", "p-x"])
async def test_refund_of_an_unknown_purchase_is_not_found(
    ledger: Ledger, redis: Redis, keys: Keys, purchase_id: str
) -> None:
    await ledger.purchase("p-x-other", "cat", "coins_70", 99, "USD")
    before = await snapshot(redis, keys.prefix)
    with pytest.raises(NotFound):
        await ledger.refund(purchase_id)
    assert await snapshot(redis, keys.prefix) == before


@pytest.mark.parametrize("purchase_id", ["", "a b", "x:y", "{w00}", "p" * 65, "\x00", None, 7])
async def test_refund_with_a_malformed_id_is_a_bad_request(
    ledger: Ledger, redis: Redis, keys: Keys, purchase_id: object
) -> None:
    await buy(ledger, "cy")
    before = await snapshot(redis, keys.prefix)
    with pytest.raises(BadRequest):
        await ledger.refund(purchase_id)  # type: ignore[arg-type]
    assert await snapshot(redis, keys.prefix) == before


# --------------------------------------------------------------------------- purchases


async def test_purchase_replay_returns_the_first_result_and_credits_once(
    ledger: Ledger, redis: Redis, keys: Keys, catalog: Catalog
) -> None:
    first = await ledger.purchase("p-7", "dan", "coins_700", 999, "USD")
    assert first == PurchaseResult("p-7", "dan", 700, 700, False)
    await ledger.spend(gift_order(catalog, "dan", "g", "cap"), live=True)  # 601 left
    again = await ledger.purchase("p-7", "dan", "coins_700", 999, "USD")
    assert again == PurchaseResult("p-7", "dan", 700, 700, True)
    assert (await ledger.wallet("dan")).coins == 601
    entries = of_type(await outbox_entries(redis, keys), "purchase")
    assert len(entries) == 1
    assert (entries[0]["purchase_id"], entries[0]["coins"], entries[0]["balance"]) == (
        "p-7", "700", "700",
    )  # fmt: skip
    assert (entries[0]["amount"], entries[0]["currency"]) == ("999", "USD")


async def test_concurrent_deliveries_of_one_purchase_credit_once(
    ledger: Ledger, redis: Redis, keys: Keys
) -> None:
    results = await asyncio.gather(
        *(ledger.purchase("p-c", "eli", "coins_350", 499, "USD") for _ in range(40))
    )
    assert {(r.coins, r.balance) for r in results} == {(350, 350)}
    assert sum(not r.replayed for r in results) == 1
    assert (await ledger.wallet("eli")).coins == 350
    assert len(of_type(await outbox_entries(redis, keys), "purchase")) == 1


async def test_one_purchase_id_claimed_concurrently_by_many_users_credits_one(
    ledger: Ledger, redis: Redis, keys: Keys
) -> None:
    users = [f"u{i}" for i in range(20)]

    async def claim(user: str) -> PurchaseResult | GiftingError:
        try:
            return await ledger.purchase("p-race", user, "coins_70", 99, "USD")
        except GiftingError as e:
            return e

    outcomes = await asyncio.gather(*(claim(u) for u in users))
    winners = [r for r in outcomes if isinstance(r, PurchaseResult)]
    assert len(winners) == 1
    assert all(type(r) is Conflict for r in outcomes if not isinstance(r, PurchaseResult))
    coins = {u: (await ledger.wallet(u)).coins for u in users}
    assert sorted(coins.values()) == [0] * 19 + [70]
    assert coins[winners[0].user] == 70
    assert len(of_type(await outbox_entries(redis, keys), "purchase")) == 1


@pytest.mark.parametrize(
    ("user", "package", "amount"),
    [("fay", "coins_350", 499), ("gus", "coins_70", 99), ("gus", "coins_350", 499)],
)
async def test_same_purchase_id_with_another_user_or_package_conflicts(
    ledger: Ledger, redis: Redis, keys: Keys, user: str, package: str, amount: int
) -> None:
    await ledger.purchase("p-5", "fay", "coins_70", 99, "USD")
    before = await snapshot(redis, keys.prefix)
    with pytest.raises(Conflict):
        await ledger.purchase("p-5", user, package, amount, "USD")
    assert await snapshot(redis, keys.prefix) == before
    # The first payload still replays; a refund claws back from the first buyer.
    assert (await ledger.purchase("p-5", "fay", "coins_70", 99, "USD")).replayed
    assert (await ledger.refund("p-5")).user == "fay"
    assert (await ledger.wallet("gus")).coins == 0


@pytest.mark.parametrize(
    ("amount", "currency"),
    [(98, "USD"), (100, "USD"), (0, "USD"), (-99, "USD"), (99, "EUR"), (99, "usd"), (99, "")],
)
async def test_amount_or_currency_not_the_packages_is_unprocessable(
    ledger: Ledger, redis: Redis, keys: Keys, amount: int, currency: str
) -> None:
    await buy(ledger, "hal")
    before = await snapshot(redis, keys.prefix)
    with pytest.raises(Unprocessable):
        await ledger.purchase("p-u", "hal", "coins_70", amount, currency)
    assert await snapshot(redis, keys.prefix) == before
    # The correct delivery of the same purchase id still works afterwards.
    ok = await ledger.purchase("p-u", "hal", "coins_70", 99, "USD")
    assert (ok.coins, ok.balance, ok.replayed) == (70, 140, False)


@pytest.mark.parametrize(
    ("purchase_id", "user", "package", "amount", "currency", "error"),
    [
        ("p-b", "ivy", "coins_71", 99, "USD", UnknownItem),
        ("p-b", "ivy", "", 99, "USD", UnknownItem),
        ("p-b", "ivy", "coins_70", True, "USD", BadRequest),
        ("p-b", "ivy", "coins_70", 99.0, "USD", BadRequest),
        ("p-b", "ivy", "coins_70", "99", "USD", BadRequest),
        ("p-b", "ivy", "coins_70", None, "USD", BadRequest),
        ("p-b", "ivy", "coins_70", 99, None, BadRequest),
        ("p-b", "ivy", "coins_70", 99, b"USD", BadRequest),
        ("p-b", "", "coins_70", 99, "USD", BadRequest),
        ("p-b", "iv y", "coins_70", 99, "USD", BadRequest),
        ("p-b", "ivy:x", "coins_70", 99, "USD", BadRequest),
        ("p-b", "{ivy}", "coins_70", 99, "USD", BadRequest),
        ("p-b", "i" * 65, "coins_70", 99, "USD", BadRequest),
        ("", "ivy", "coins_70", 99, "USD", BadRequest),
        ("p b", "ivy", "coins_70", 99, "USD", BadRequest),
        ("p\n", "ivy", "coins_70", 99, "USD", BadRequest),
        ("p:b", "ivy", "coins_70", 99, "USD", BadRequest),
        ("{p}", "ivy", "coins_70", 99, "USD", BadRequest),
        ("p" * 65, "ivy", "coins_70", 99, "USD", BadRequest),
    ],
)
async def test_malformed_purchase_is_refused_and_changes_nothing(
    ledger: Ledger,
    redis: Redis,
    keys: Keys,
    purchase_id: str,
    user: str,
    package: str,
    amount: object,
    currency: object,
    error: type[GiftingError],
) -> None:
    await buy(ledger, "ivy")
    before = await snapshot(redis, keys.prefix)
    with pytest.raises(error) as caught:
        await ledger.purchase(purchase_id, user, package, amount, currency)
    assert not isinstance(caught.value, Unprocessable)
    assert await snapshot(redis, keys.prefix) == before


async def test_purchase_ids_of_the_maximum_length_work(ledger: Ledger) -> None:
    pid, user = "p" * 64, "u" * 64
    assert (await ledger.purchase(pid, user, "coins_70", 99, "USD")).balance == 70
    assert (await ledger.refund(pid)).balance == 0
