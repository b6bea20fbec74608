"""Spends against the real Redis: exactly-once debits under concurrency and retries.

docs/contract.md §3.1 (acked iff debited exactly once; a retry replays; the same id
with another payload is rejected), 3.2 (never below zero, refused when the
stream is not live) and 7 (the result of every id is kept, failures too).
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict

import pytest
from redis.asyncio import Redis

from gifting.core.catalog import Catalog
from gifting.core.entries import CreditArgs
from gifting.core.errors import (
    BudgetExceeded,
    Conflict,
    GiftingError,
    InsufficientFunds,
    StreamNotLive,
)
from gifting.store.credits import credit_call
from gifting.store.keys import Keys
from gifting.store.ledger import Ledger, SpendOrder, SpendResult
from gifting.store.scripts import ScriptCall, Scripts, script_source
from gifting.store.spends import spend_call, spend_outcome

from .support import (
    FakeClock,
    buy,
    coins_of,
    effect_order,
    gift_order,
    of_type,
    outbox_entries,
    snapshot,
)

pytestmark = pytest.mark.cluster

TASKS = 50


async def _run_in_tasks(
    ledger: Ledger, orders: list[SpendOrder], tasks: int = TASKS
) -> list[tuple[SpendOrder, SpendResult | GiftingError]]:
    """Fire ``orders`` from ``tasks`` concurrent tasks; every outcome, in no set order."""
    outcomes: list[tuple[SpendOrder, SpendResult | GiftingError]] = []

    async def worker(mine: list[SpendOrder]) -> None:
        for order in mine:
            try:
                outcomes.append((order, await ledger.spend(order, live=True)))
            except GiftingError as e:
                outcomes.append((order, e))

    await asyncio.gather(*(worker(orders[i::tasks]) for i in range(tasks)))
    return outcomes


# --------------------------------------------------------------------------- storm


async def test_storm_of_concurrent_spends_debits_exactly_what_wallets_can_afford(
    ledger: Ledger, redis: Redis, keys: Keys, catalog: Catalog
) -> None:
    # Ten wallets of 70 coins, each hit with one price: the affordable count is exact.
    fixed = ["rose", "finger_heart", "rosa", "perfume", "doughnut", "rosa", "cap", "rosa",
             "finger_heart", "perfume"]  # fmt: skip
    fixed_users = [f"fixed{i}" for i in range(len(fixed))]
    # Five more wallets get mixed prices: the outcome depends on the order, so
    # the balance chain in the outbox is checked instead.
    mixed_users = [f"mixed{i}" for i in range(5)]
    mixed_gifts = ["rose", "finger_heart", "rosa", "perfume", "doughnut", "cap"]
    for user in fixed_users + mixed_users:
        assert (await buy(ledger, user)).balance == 70

    rng = random.Random(1)
    orders: list[SpendOrder] = []
    for n in range(2000):
        i = n % (len(fixed_users) + len(mixed_users))
        if i < len(fixed_users):
            user, gift = fixed_users[i], fixed[i]
        else:
            user, gift = mixed_users[i - len(fixed_users)], rng.choice(mixed_gifts)
        orders.append(gift_order(catalog, user, f"m{n}", gift))
    rng.shuffle(orders)

    lowest: dict[str, int] = {}
    done = asyncio.Event()

    async def watch_balances() -> None:
        users = fixed_users + mixed_users
        while not done.is_set():
            pipe = redis.pipeline(transaction=False)
            for u in users:
                pipe.hget(keys.wallet(u), "coins")
            for u, raw in zip(users, await pipe.execute(), strict=True):
                lowest[u] = min(lowest.get(u, 70), int(raw))
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch_balances())
    outcomes = await _run_in_tasks(ledger, orders)
    done.set()
    await watcher

    assert len(outcomes) == 2000
    assert all(v >= 0 for v in lowest.values()), lowest
    ok = [(o, r) for o, r in outcomes if isinstance(r, SpendResult)]
    errors = [r for _, r in outcomes if not isinstance(r, SpendResult)]
    assert all(type(e) is InsufficientFunds for e in errors), {type(e) for e in errors}
    assert all(r.balance >= 0 and not r.replayed for _, r in ok)

    wins = Counter(o.sender for o, _ in ok)
    affordable = {u: 70 // catalog.gifts[g].coins for u, g in zip(fixed_users, fixed, strict=True)}
    assert sum(affordable.values()) == 127
    assert {u: wins[u] for u in fixed_users} == affordable
    for u, g in zip(fixed_users, fixed, strict=True):
        price = catalog.gifts[g].coins
        # Each success saw its own balance: the debits were serialized.
        seen = sorted(r.balance for o, r in ok if o.sender == u)
        assert seen == sorted(70 - k * price for k in range(1, affordable[u] + 1))
        assert (await ledger.wallet(u)).coins == 70 % price

    entries = await outbox_entries(redis, keys)
    spends = of_type(entries, "spend")
    assert len(spends) == len(ok)
    assert Counter(e["event"] for e in spends) == Counter(r.event for _, r in ok)
    assert len({(e["user"], e["client_id"]) for e in spends}) == len(spends)

    # Mixed wallets: in outbox order each debit takes exactly its price off the last balance.
    for u in mixed_users:
        balance = 70
        for e in (e for e in spends if e["user"] == u):
            balance -= int(e["coins"])
            assert int(e["balance"]) == balance >= 0
        assert (await ledger.wallet(u)).coins == balance
    # Every refusal was a real shortage: the balance it saw was below its price.
    for order, r in outcomes:
        if isinstance(r, InsufficientFunds):
            seen = await redis.hget(keys.spend_result(order.sender, order.client_id), "balance")
            assert int(seen) < order.priced.coins

    balances = [(await ledger.wallet(u)).coins for u in fixed_users + mixed_users]
    assert coins_of(entries, "purchase") == 70 * 15 == sum(balances) + coins_of(entries, "spend")


# --------------------------------------------------------------------------- retries


async def test_same_id_from_many_tasks_debits_once_and_replays_the_same_ack(
    ledger: Ledger, redis: Redis, keys: Keys, catalog: Catalog
) -> None:
    await buy(ledger, "alice")
    await ledger.spend(gift_order(catalog, "alice", "warmup", "rosa"), live=True)  # combo 1
    order = gift_order(catalog, "alice", "c-17", "rosa", 2)
    outcomes = await _run_in_tasks(ledger, [order] * 200)

    results = [r for _, r in outcomes]
    assert all(isinstance(r, SpendResult) for r in results)
    acks = {(r.event, r.balance, r.combo) for r in results if isinstance(r, SpendResult)}
    assert len(acks) == 1
    event, balance, combo = acks.pop()
    assert (balance, combo) == (40, 3)
    assert sum(1 for r in results if isinstance(r, SpendResult) and not r.replayed) == 1

    assert (await ledger.wallet("alice")).coins == 40
    spends = of_type(await outbox_entries(redis, keys), "spend")
    assert [e["event"] for e in spends if e["client_id"] == "c-17"] == [event]
    # The combo counted the message once, not once per retry.
    assert await redis.hget(keys.combo("alice", "s1"), "count") == b"3"


async def test_same_id_with_different_payloads_concurrently_one_payload_wins(
    ledger: Ledger, redis: Redis, keys: Keys, catalog: Catalog
) -> None:
    await buy(ledger, "bob")
    payloads = [
        gift_order(catalog, "bob", "c-1", "rosa", 1),
        gift_order(catalog, "bob", "c-1", "rosa", 2),
        gift_order(catalog, "bob", "c-1", "perfume", 1),
        gift_order(catalog, "bob", "c-1", "rosa", 1, stream="s2"),
        effect_order(catalog, "bob", "c-1", "confetti"),
    ]
    orders = [payloads[i % len(payloads)] for i in range(250)]
    random.Random(7).shuffle(orders)
    outcomes = await _run_in_tasks(ledger, orders)

    winners = {o for o, r in outcomes if isinstance(r, SpendResult)}
    assert len(winners) == 1
    winner = winners.pop()
    events = set()
    for order, r in outcomes:
        if order == winner:
            assert isinstance(r, SpendResult)
            events.add(r.event)
        else:
            assert type(r) is Conflict, r
    assert len(events) == 1
    fresh = [r for o, r in outcomes if isinstance(r, SpendResult) and not r.replayed]
    assert len(fresh) == 1

    assert (await ledger.wallet("bob")).coins == 70 - winner.priced.coins
    spends = of_type(await outbox_entries(redis, keys), "spend")
    assert [e["event"] for e in spends] == list(events)
    assert int(spends[0]["coins"]) == winner.priced.coins


async def test_conflicting_retry_after_success_changes_nothing(
    ledger: Ledger, redis: Redis, key_prefix: str, catalog: Catalog
) -> None:
    await buy(ledger, "carol")
    first = await ledger.spend(gift_order(catalog, "carol", "x", "rosa"), live=True)
    before = await snapshot(redis, key_prefix)
    for other in (
        gift_order(catalog, "carol", "x", "rosa", 2),
        gift_order(catalog, "carol", "x", "rose"),
        gift_order(catalog, "carol", "x", "rosa", stream="s9"),
    ):
        with pytest.raises(Conflict):
            await ledger.spend(other, live=True)
    assert await snapshot(redis, key_prefix) == before
    again = await ledger.spend(gift_order(catalog, "carol", "x", "rosa"), live=True)
    assert (again.event, again.balance, again.combo, again.replayed) == (
        first.event, first.balance, first.combo, True,
    )  # fmt: skip


async def test_message_ids_are_per_sender(
    ledger: Ledger, redis: Redis, keys: Keys, catalog: Catalog
) -> None:
    await buy(ledger, "dave")
    await buy(ledger, "erin")
    a = await ledger.spend(gift_order(catalog, "dave", "same", "rosa"), live=True)
    b = await ledger.spend(gift_order(catalog, "erin", "same", "perfume"), live=True)
    assert a.event != b.event and not a.replayed and not b.replayed
    assert (await ledger.wallet("dave")).coins == 60
    assert (await ledger.wallet("erin")).coins == 50


async def test_failed_id_stays_failed_after_a_top_up(
    ledger: Ledger, redis: Redis, keys: Keys, catalog: Catalog
) -> None:
    await buy(ledger, "frank")
    await ledger.spend(gift_order(catalog, "frank", "m1", "doughnut", 2), live=True)  # 60
    short = gift_order(catalog, "frank", "m2", "rosa", 2)  # 20 > 10
    with pytest.raises(InsufficientFunds):
        await ledger.spend(short, live=True)
    await buy(ledger, "frank")  # 80 now: m2 would be affordable
    outcomes = await _run_in_tasks(ledger, [short] * 50)
    assert all(type(r) is InsufficientFunds for _, r in outcomes)
    assert (await ledger.wallet("frank")).coins == 80
    # The same id with another payload is still a conflict, not a fresh try.
    with pytest.raises(Conflict):
        await ledger.spend(gift_order(catalog, "frank", "m2", "rose"), live=True)
    # A new id is a new try.
    ok = await ledger.spend(gift_order(catalog, "frank", "m3", "rosa", 2), live=True)
    assert ok.balance == 60
    spends = of_type(await outbox_entries(redis, keys), "spend")
    assert [e["client_id"] for e in spends] == ["m1", "m3"]


async def test_budget_refusal_stays_failed_after_the_budget_is_lifted(
    ledger: Ledger, catalog: Catalog
) -> None:
    await buy(ledger, "gina")
    await ledger.set_budget("gina", 5)
    order = gift_order(catalog, "gina", "b1", "rosa")
    with pytest.raises(BudgetExceeded):
        await ledger.spend(order, live=True)
    await ledger.set_budget("gina", None)
    with pytest.raises(BudgetExceeded):
        await ledger.spend(order, live=True)
    assert (await ledger.spend(gift_order(catalog, "gina", "b2", "rosa"), live=True)).balance == 60


# --------------------------------------------------------------------------- live


async def test_spend_on_a_stream_not_live_debits_nothing(
    ledger: Ledger, redis: Redis, keys: Keys, catalog: Catalog
) -> None:
    await buy(ledger, "hank")
    wallet_before = await redis.hgetall(keys.wallet("hank"))
    outbox_before = await outbox_entries(redis, keys)
    order = gift_order(catalog, "hank", "n1", "rosa")
    with pytest.raises(StreamNotLive):
        await ledger.spend(order, live=False)
    assert await redis.hgetall(keys.wallet("hank")) == wallet_before
    assert await outbox_entries(redis, keys) == outbox_before
    assert not await redis.exists(keys.combo("hank", "s1"))
    # The refusal is that id's result for good (the stream does not come back).
    with pytest.raises(StreamNotLive):
        await ledger.spend(order, live=True)
    assert await redis.hgetall(keys.wallet("hank")) == wallet_before


async def test_retry_of_a_spend_acked_while_live_replays_after_the_stream_ended(
    ledger: Ledger, redis: Redis, keys: Keys, catalog: Catalog, clock: FakeClock
) -> None:
    await buy(ledger, "ivy")
    order = gift_order(catalog, "ivy", "g1", "rosa")
    first = await ledger.spend(order, live=True)
    clock.advance(60_000)
    again = await ledger.spend(order, live=False)
    assert again == SpendResult(first.event, 60, 1, True)
    with pytest.raises(StreamNotLive):
        await ledger.spend(gift_order(catalog, "ivy", "g2", "rosa"), live=False)
    assert (await ledger.wallet("ivy")).coins == 60
    assert len(of_type(await outbox_entries(redis, keys), "spend")) == 1


async def test_combo_counts_a_streak_within_the_window_only(
    ledger: Ledger, catalog: Catalog, clock: FakeClock
) -> None:
    await buy(ledger, "jay", "coins_350")
    spend = ledger.spend
    assert (await spend(gift_order(catalog, "jay", "1", "rose", 3), live=True)).combo == 3
    clock.advance(3000)
    assert (await spend(gift_order(catalog, "jay", "2", "rose", 2), live=True)).combo == 5
    clock.advance(3001)
    assert (await spend(gift_order(catalog, "jay", "3", "rose"), live=True)).combo == 1
    assert (await spend(gift_order(catalog, "jay", "4", "gg"), live=True)).combo == 1
    assert (await spend(gift_order(catalog, "jay", "5", "gg", stream="s2"), live=True)).combo == 1
    assert (await spend(gift_order(catalog, "jay", "6", "hand_hearts"), live=True)).combo == 0


# --------------------------------------------------------------------------- run_many


async def test_run_many_returns_results_in_order_and_reloads_after_script_flush(
    ledger: Ledger, redis: Redis, keys: Keys, catalog: Catalog, clock: FakeClock
) -> None:
    scripts = Scripts(redis)
    await buy(ledger, "kim")
    now = clock()
    orders = [gift_order(catalog, "kim", f"p{i}", "rosa", 2) for i in range(5)]  # 20 each
    calls = [spend_call(keys, o, live=True, now=now) for o in orders]
    broken = ScriptCall("spend", calls[0].keys[:1], ["not", "enough"])
    replies = await scripts.run_many([*calls[:2], broken, *calls[2:]])
    assert isinstance(replies[2], Exception)
    good = [r for i, r in enumerate(replies) if i != 2]
    assert all(isinstance(r, list) for r in good)
    outcomes: list[object] = []
    for r in good:
        assert isinstance(r, list)
        try:
            outcomes.append(spend_outcome(r).balance)
        except InsufficientFunds:
            outcomes.append("short")
    assert outcomes == [50, 30, 10, "short", "short"]

    # Redis forgets its scripts (a restart, SCRIPT FLUSH): the pipeline reloads them.
    await buy(ledger, "kim")  # 80
    await redis.script_flush()
    more = [gift_order(catalog, "kim", f"q{i}", "rosa") for i in range(3)]
    replies = await scripts.run_many(
        [spend_call(keys, o, live=True, now=now) for o in more]
        + [spend_call(keys, orders[0], live=True, now=now)]
    )
    results = [spend_outcome(r) for r in replies if isinstance(r, list)]
    assert [r.balance for r in results] == [70, 60, 50, 50]
    assert [r.replayed for r in results] == [False, False, False, True]
    assert await scripts.run_many([]) == []

    # The single-call path reloads too.
    await redis.script_flush()
    assert (await ledger.spend(gift_order(catalog, "kim", "r1", "rosa"), live=True)).balance == 40
    per_id: defaultdict[str, int] = defaultdict(int)
    for e in of_type(await outbox_entries(redis, keys), "spend"):
        per_id[e["client_id"]] += 1
    assert dict(per_id) == {"p0": 1, "p1": 1, "p2": 1, "q0": 1, "q1": 1, "q2": 1, "r1": 1}

    # Only some of the scripts lost: the results still come back at their places.
    await redis.script_flush()
    await redis.script_load(script_source("spend"))
    credit = credit_call(
        keys,
        CreditArgs(
            user="creator1", spend_event=results[0].event, coins=10, stream="s1", sender="kim"
        ),
        share_bps=catalog.creator_share_bps, now=now,
    )  # fmt: skip
    mixed = await scripts.run_many(
        [credit, spend_call(keys, gift_order(catalog, "kim", "t1", "rosa"), live=True, now=now),
         credit]
    )  # fmt: skip
    assert mixed == [["ok", "5"], ["ok", "30", *mixed[1][2:]], ["replay", "5"]]
    await scripts.close()
