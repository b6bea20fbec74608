"""Acked money survives a Redis crash (SIGKILL, restart from the append-only file).

``private_redis`` runs with ``appendfsync always``: Redis fsyncs a script's
writes before it replies, so whatever the client saw acked is on disk. After a
restart every acked spend must still be there (balance, stored result, outbox
entry) and a retry of its id must replay the original ack. Requests whose
outcome the client never learnt (the connection died first) are settled by
retrying their ids: each is then applied exactly once.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gifting.core.catalog import Catalog
from gifting.core.errors import GiftingError, InsufficientFunds
from gifting.embedded import EmbeddedRedis
from gifting.store.keys import Keys
from gifting.store.ledger import Ledger, PurchaseResult, SpendOrder, SpendResult

from .support import FakeClock, buy, coins_of, gift_order, of_type, outbox_entries

USERS = [f"fan{i}" for i in range(5)]
GIFTS = ["rose", "finger_heart", "rosa", "perfume", "doughnut", "cap", "hand_hearts"]
LOST = (RedisConnectionError, RedisTimeoutError, OSError)


def storm(catalog: Catalog, n: int, seed: int) -> list[SpendOrder]:
    rng = random.Random(seed)
    return [
        gift_order(catalog, rng.choice(USERS), f"m{i}", rng.choice(GIFTS), rng.choice([1, 2, 3]))
        for i in range(n)
    ]


async def test_every_acked_spend_survives_sigkill_and_restart(
    private_redis: EmbeddedRedis, catalog: Catalog, clock: FakeClock
) -> None:
    keys = Keys("crash")
    client = Redis.from_url(private_redis.url)
    ledger = Ledger(client, keys, catalog, clock=clock)
    purchases: list[PurchaseResult] = []
    for user in USERS:
        purchases.append(await buy(ledger, user, "coins_350"))
        purchases.append(await buy(ledger, user, "coins_70"))
    outcomes: dict[SpendOrder, SpendResult | GiftingError] = {}

    async def worker(mine: list[SpendOrder]) -> None:
        for order in mine:
            try:
                outcomes[order] = await ledger.spend(order, live=True)
            except GiftingError as e:
                outcomes[order] = e

    orders = storm(catalog, 300, seed=11)
    await asyncio.gather(*(worker(orders[i::20]) for i in range(20)))
    acked = {o: r for o, r in outcomes.items() if isinstance(r, SpendResult)}
    assert 20 < len(acked) < 300
    balances = {u: (await ledger.wallet(u)).coins for u in USERS}

    private_redis.kill()
    await client.aclose()
    private_redis.restart()

    client = Redis.from_url(private_redis.url)
    try:
        ledger = Ledger(client, keys, catalog, clock=clock)
        assert {u: (await ledger.wallet(u)).coins for u in USERS} == balances
        for order, before in outcomes.items():
            try:
                after: SpendResult | GiftingError = await ledger.spend(order, live=True)
            except GiftingError as e:
                after = e
            if isinstance(before, SpendResult):
                assert isinstance(after, SpendResult)
                assert (after.event, after.balance, after.combo) == (
                    before.event, before.balance, before.combo,
                )  # fmt: skip
                assert after.replayed
            else:
                assert type(after) is type(before) is InsufficientFunds
        for p in purchases:
            again = await ledger.purchase(p.purchase_id, p.user, *_price(catalog, p.coins))
            assert (again.coins, again.balance, again.replayed) == (p.coins, p.balance, True)
        assert {u: (await ledger.wallet(u)).coins for u in USERS} == balances

        entries = await outbox_entries(client, keys)
        spends = of_type(entries, "spend")
        assert Counter(e["event"] for e in spends) == Counter(r.event for r in acked.values())
        assert len(of_type(entries, "purchase")) == len(purchases)
        assert coins_of(entries, "purchase") == sum(balances.values()) + coins_of(entries, "spend")
        # The restarted server lost its script cache: a pipeline reloads it.
        again = list(acked)[:5]
        replies = await ledger.debit_many(again, live={o.stream: True for o in again}, now=clock())
        assert all(isinstance(r, SpendResult) and r.replayed for r in replies)
        await ledger.aclose()
    finally:
        await client.aclose()


def _price(catalog: Catalog, coins: int) -> tuple[str, int, str]:
    package = next(p for p in catalog.packages.values() if p.coins == coins)
    return package.id, package.price.amount, package.price.currency


async def test_spends_cut_off_by_a_crash_apply_once_when_retried(
    private_redis: EmbeddedRedis, catalog: Catalog, clock: FakeClock
) -> None:
    keys = Keys("crash")
    client = Redis.from_url(private_redis.url)
    ledger = Ledger(client, keys, catalog, clock=clock)
    for user in USERS:
        await buy(ledger, user, "coins_700")
    acked: dict[SpendOrder, SpendResult] = {}
    refused: set[SpendOrder] = set()
    unknown: set[SpendOrder] = set()
    crashed, enough_acked = asyncio.Event(), asyncio.Event()

    async def worker(mine: list[SpendOrder]) -> None:
        for i, order in enumerate(mine):
            if crashed.is_set():
                unknown.update(mine[i:])  # never sent
                return
            try:
                acked[order] = await ledger.spend(order, live=True)
                if len(acked) >= 60:
                    enough_acked.set()
            except InsufficientFunds:
                refused.add(order)
            except LOST:
                unknown.update(mine[i:])  # the first: sent, outcome unknown
                return

    async def crash() -> None:
        await enough_acked.wait()
        private_redis.kill()  # SIGKILL while the other tasks have spends in flight
        crashed.set()

    orders = storm(catalog, 400, seed=12)
    await asyncio.gather(crash(), *(worker(orders[i::25]) for i in range(25)))
    assert len(acked) >= 60
    assert unknown
    await client.aclose()
    private_redis.restart()

    client = Redis.from_url(private_redis.url)
    try:
        ledger = Ledger(client, keys, catalog, clock=clock)
        for order, first in acked.items():
            again = await ledger.spend(order, live=True)
            assert (again.event, again.balance, again.replayed) == (
                first.event,
                first.balance,
                True,
            )
        settled: dict[SpendOrder, str] = {o: r.event for o, r in acked.items()}
        for order in sorted(unknown, key=lambda o: int(o.client_id[1:])):
            try:
                r = await ledger.spend(order, live=True)
            except InsufficientFunds:
                continue
            settled[order] = r.event
            # A retry of the retry replays: the id is settled for good.
            assert (await ledger.spend(order, live=True)).event == r.event

        entries = await outbox_entries(client, keys)
        spends = of_type(entries, "spend")
        assert Counter(e["event"] for e in spends) == Counter(settled.values())
        assert len({(e["user"], e["client_id"]) for e in spends}) == len(spends)
        for user in USERS:
            mine = [e for e in spends if e["user"] == user]
            balance = 700
            for e in mine:  # in outbox (= execution) order, each debit once
                balance -= int(e["coins"])
                assert int(e["balance"]) == balance >= 0
            assert (await ledger.wallet(user)).coins == balance
        assert coins_of(entries, "purchase") == 700 * len(USERS)
    finally:
        await client.aclose()
