"""Creator diamonds: credits on the running total (docs/contract.md §2) and cash-outs.

Conservation for each creator: diamonds earned = floor(coins received × bps /
10,000) = diamond balance + diamonds held for cash-out + diamonds paid out.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import random

import pytest
from redis.asyncio import Redis

from gifting.core.catalog import Catalog
from gifting.core.errors import (
    BadRequest,
    BudgetExceeded,
    Conflict,
    GiftingError,
    InsufficientFunds,
    NotFound,
)
from gifting.core.ids import credit_event_id
from gifting.core.money import diamonds_earned, diamonds_for_spend
from gifting.store.keys import Keys, shard_of
from gifting.store.ledger import Cashout, Ledger, SpendResult

from .support import FakeClock, buy, gift_order, of_type, outbox_entries, snapshot

pytestmark = pytest.mark.cluster

_setup_events = itertools.count()


async def earn(ledger: Ledger, creator: str, diamonds: int) -> None:
    """Credit ``creator`` ``2 × diamonds`` coins of gifts (5,000 bps, from an even total)."""
    await ledger.credit_creator(
        spend_event=f"e-setup-{next(_setup_events)}", creator=creator, coins=2 * diamonds,
        stream="s1", sender="fan",
    )  # fmt: skip


async def assert_conserved(ledger: Ledger, creator: str) -> None:
    w = await ledger.wallet(creator)
    assert w.earned == diamonds_earned(w.received, ledger.catalog.creator_share_bps)
    assert w.earned == w.diamonds + w.held + w.paid
    assert min(w.diamonds, w.held, w.paid) >= 0


# --------------------------------------------------------------------------- credits


async def test_hundred_roses_earn_fifty_diamonds_on_the_running_total(
    ledger: Ledger, redis: Redis, keys: Keys, catalog: Catalog
) -> None:
    await buy(ledger, "viewer", "coins_350")
    credited = []
    for i in range(100):
        r = await ledger.spend(gift_order(catalog, "viewer", f"rose{i}", "rose"), live=True)
        credited.append(
            await ledger.credit_creator(
                spend_event=r.event, creator="creator1", coins=1, stream="s1", sender="viewer"
            )
        )
    # A per-gift floor would pay floor(1 × 0.5) = 0 for every Rose.
    assert credited == [0, 1] * 50
    w = await ledger.wallet("creator1")
    assert (w.diamonds, w.earned, w.received) == (50, 50, 100)
    credits = of_type(await outbox_entries(redis, keys), "credit")
    assert len(credits) == 100
    assert sum(int(e["diamonds"]) for e in credits) == 50
    spend_events = {e["event"] for e in of_type(await outbox_entries(redis, keys), "spend")}
    assert {e["spend_event"] for e in credits} == spend_events
    assert {e["event"] for e in credits} == {credit_event_id(s) for s in spend_events}


async def test_credit_is_idempotent_by_spend_event_also_concurrently(
    ledger: Ledger, redis: Redis, keys: Keys
) -> None:
    async def credit(event: str, coins: int) -> int:
        return await ledger.credit_creator(
            spend_event=event, creator="cre", coins=coins, stream="s1", sender="v"
        )

    assert await credit("e-1", 1) == 0
    results = await asyncio.gather(*(credit("e-2", 1) for _ in range(40)))
    assert results == [1] * 40
    # A late retry returns the first credit's diamonds although the total moved on.
    assert await credit("e-3", 3) == 1
    assert await credit("e-1", 1) == 0
    assert await credit("e-2", 1) == 1
    w = await ledger.wallet("cre")
    assert (w.received, w.earned, w.diamonds) == (5, 2, 2)
    credits = of_type(await outbox_entries(redis, keys), "credit")
    assert sorted(e["spend_event"] for e in credits) == ["e-1", "e-2", "e-3"]


@pytest.mark.parametrize("bps", [5000, 3333, 1, 9999, 10000])
async def test_randomized_credits_always_hold_floor_of_total_times_share(
    redis: Redis, keys: Keys, catalog: Catalog, clock: FakeClock, bps: int
) -> None:
    ledger = Ledger(redis, keys, dataclasses.replace(catalog, creator_share_bps=bps), clock=clock)
    rng = random.Random(bps)
    total = 0
    for i in range(120):
        coins = rng.choice(
            [1, 1, 1, 5, 10, 99, 34_999, rng.randint(1, 10**6), rng.randint(1, 10**12)]
        )
        got = await ledger.credit_creator(
            spend_event=f"e{i}", creator="big", coins=coins, stream="s", sender="v"
        )
        assert got == diamonds_for_spend(total, coins, bps)
        total += coins
        w = await ledger.wallet("big")
        assert w.received == total
        assert w.diamonds == w.earned == total * bps // 10_000
    credits = of_type(await outbox_entries(redis, keys), "credit")
    assert sum(int(e["diamonds"]) for e in credits) == total * bps // 10_000


async def test_randomized_spends_credit_half_the_coins_received(
    ledger: Ledger, redis: Redis, keys: Keys, catalog: Catalog
) -> None:
    rng = random.Random(5)
    viewers = [f"v{i}" for i in range(4)]
    for v in viewers:
        await buy(ledger, v, "coins_3500")
    gifts = ["rose", "finger_heart", "rosa", "perfume", "cap", "hand_hearts", "corgi", "swan"]
    received = 0
    for i in range(150):
        v = rng.choice(viewers)
        order = gift_order(catalog, v, f"m{i}", rng.choice(gifts), rng.choice([1, 1, 2, 3, 7]))
        try:
            r = await ledger.spend(order, live=True)
        except InsufficientFunds:
            continue
        await ledger.credit_creator(
            spend_event=r.event, creator="creator1", coins=order.priced.coins, stream="s1",
            sender=v,
        )  # fmt: skip
        received += order.priced.coins
        assert (await ledger.wallet("creator1")).diamonds == received * 5000 // 10_000
    assert received > 3000
    entries = await outbox_entries(redis, keys)
    assert received == sum(int(e["coins"]) for e in of_type(entries, "spend"))
    await assert_conserved(ledger, "creator1")


# --------------------------------------------------------------------------- cash-outs


@pytest.mark.parametrize(
    ("diamonds", "error"),
    [
        (1998, BadRequest),  # below the 2,000 minimum
        (2001, BadRequest),  # odd: the unit is 2 diamonds (one cent)
        (0, BadRequest),
        (-2, BadRequest),
        (-2000, BadRequest),
        (10**12 + 2, BadRequest),
        (2**63, BadRequest),
        (True, BadRequest),
        (2000.0, BadRequest),
        ("2000", BadRequest),
        (None, BadRequest),
        (10_002, InsufficientFunds),  # more than the balance
        (20_000, InsufficientFunds),
    ],
)
async def test_invalid_cashout_request_is_refused_and_changes_nothing(
    ledger: Ledger, redis: Redis, keys: Keys, diamonds: object, error: type[GiftingError]
) -> None:
    await earn(ledger, "cre", 10_000)
    before = await snapshot(redis, keys.prefix)
    with pytest.raises(error) as caught:
        await ledger.request_cashout("cre", diamonds, "req-1")
    assert type(caught.value) is error
    assert await snapshot(redis, keys.prefix) == before
    # The request id was not burnt by the refusal.
    ok = await ledger.request_cashout("cre", 10_000, "req-1")
    assert (ok.status, ok.diamonds) == ("held", 10_000)


@pytest.mark.parametrize("request_id", ["", "a b", "a:b", "{w00}", "r" * 65, "\t", None])
async def test_cashout_with_a_malformed_request_id_is_refused(
    ledger: Ledger, redis: Redis, keys: Keys, request_id: object
) -> None:
    await earn(ledger, "cre", 10_000)
    before = await snapshot(redis, keys.prefix)
    with pytest.raises(BadRequest):
        await ledger.request_cashout("cre", 2000, request_id)  # type: ignore[arg-type]
    assert await snapshot(redis, keys.prefix) == before


async def test_paid_cashout_takes_the_diamonds_for_good(
    ledger: Ledger, redis: Redis, keys: Keys, clock: FakeClock
) -> None:
    await earn(ledger, "cre", 10_000)
    held = await ledger.request_cashout("cre", 4000, "r1")
    assert held.cashout.startswith(f"co{shard_of('cre'):02d}-")
    assert (held.user, held.status, held.diamonds, held.amount, held.currency) == (
        "cre", "held", 4000, 2000, "USD",
    )  # fmt: skip
    w = await ledger.wallet("cre")
    assert (w.diamonds, w.held, w.paid) == (6000, 4000, 0)

    clock.advance(1000)
    paid = await ledger.settle_cashout(held.cashout, "paid")
    assert paid == dataclasses.replace(held, status="paid")
    w = await ledger.wallet("cre")
    assert (w.diamonds, w.held, w.paid) == (6000, 0, 4000)

    before = await snapshot(redis, keys.prefix)
    assert await ledger.settle_cashout(held.cashout, "paid") == paid  # replay
    with pytest.raises(Conflict):
        await ledger.settle_cashout(held.cashout, "failed")
    assert await snapshot(redis, keys.prefix) == before

    entries = await outbox_entries(redis, keys)
    assert [e["type"] for e in entries if e["type"].startswith("cashout")] == [
        "cashout_hold", "cashout_paid",
    ]  # fmt: skip
    assert await ledger.cashouts("cre") == [paid]
    await assert_conserved(ledger, "cre")


async def test_failed_cashout_returns_the_diamonds(
    ledger: Ledger, redis: Redis, keys: Keys
) -> None:
    await earn(ledger, "cre", 10_000)
    held = await ledger.request_cashout("cre", 10_000, "r1")
    assert (await ledger.wallet("cre")).diamonds == 0
    failed = await ledger.settle_cashout(held.cashout, "failed")
    assert failed.status == "failed"
    w = await ledger.wallet("cre")
    assert (w.diamonds, w.held, w.paid) == (10_000, 0, 0)

    before = await snapshot(redis, keys.prefix)
    assert await ledger.settle_cashout(held.cashout, "failed") == failed
    with pytest.raises(Conflict):
        await ledger.settle_cashout(held.cashout, "paid")
    assert await snapshot(redis, keys.prefix) == before
    await assert_conserved(ledger, "cre")


async def test_concurrent_settles_one_outcome_wins(
    ledger: Ledger, redis: Redis, keys: Keys
) -> None:
    await earn(ledger, "cre", 10_000)
    held = await ledger.request_cashout("cre", 6000, "r1")

    async def settle(outcome: str) -> Cashout | GiftingError:
        try:
            return await ledger.settle_cashout(held.cashout, outcome)
        except GiftingError as e:
            return e

    outcomes = await asyncio.gather(*(settle(["paid", "failed"][i % 2]) for i in range(40)))
    finals = {r.status for r in outcomes if isinstance(r, Cashout)}
    assert len(finals) == 1
    final = finals.pop()
    conflicts = [r for r in outcomes if not isinstance(r, Cashout)]
    assert len(conflicts) == 20 and all(type(r) is Conflict for r in conflicts)
    w = await ledger.wallet("cre")
    assert (w.diamonds, w.held, w.paid) == ((4000, 0, 6000) if final == "paid" else (10_000, 0, 0))
    settles = [e for e in await outbox_entries(redis, keys) if e["type"] == f"cashout_{final}"]
    assert len(settles) == 1
    await assert_conserved(ledger, "cre")


@pytest.mark.parametrize(
    ("cashout_id", "outcome", "error"),
    [
        ("co03-e0000000000012345abcd", "paid", NotFound),
        ("co99-x", "paid", NotFound),
        ("zz", "paid", NotFound),
        ("co", "paid", NotFound),
        ("co 03", "paid", BadRequest),
        ("", "paid", BadRequest),
        (None, "paid", BadRequest),
        ("HELD", "done", BadRequest),
        ("HELD", "PAID", BadRequest),
        ("HELD", None, BadRequest),
        ("HELD", "held", BadRequest),
    ],
)
async def test_bad_settle_is_refused_and_changes_nothing(
    ledger: Ledger,
    redis: Redis,
    keys: Keys,
    cashout_id: str | None,
    outcome: object,
    error: type[GiftingError],
) -> None:
    await earn(ledger, "cre", 10_000)
    held = await ledger.request_cashout("cre", 2000, "r1")
    before = await snapshot(redis, keys.prefix)
    with pytest.raises(error):
        await ledger.settle_cashout(held.cashout if cashout_id == "HELD" else cashout_id, outcome)  # type: ignore[arg-type]
    assert await snapshot(redis, keys.prefix) == before


async def test_cashout_request_is_idempotent_by_request_id(
    ledger: Ledger, redis: Redis, keys: Keys, clock: FakeClock
) -> None:
    await earn(ledger, "cre", 10_000)
    await earn(ledger, "other", 10_000)
    first = await ledger.request_cashout("cre", 2000, "r1")
    clock.advance(1)
    assert await ledger.request_cashout("cre", 2000, "r1") == first
    results = await asyncio.gather(*(ledger.request_cashout("cre", 4000, "r2") for _ in range(30)))
    assert len(set(results)) == 1
    w = await ledger.wallet("cre")
    assert (w.diamonds, w.held) == (4000, 6000)

    before = await snapshot(redis, keys.prefix)
    with pytest.raises(Conflict):
        await ledger.request_cashout("cre", 2002, "r1")
    assert await snapshot(redis, keys.prefix) == before
    # A request id belongs to its creator: another creator's "r1" is its own.
    theirs = await ledger.request_cashout("other", 3000, "r1")
    assert theirs.cashout != first.cashout and theirs.user == "other"
    # A settled cash-out still replays by its request id.
    await ledger.settle_cashout(first.cashout, "paid")
    again = await ledger.request_cashout("cre", 2000, "r1")
    assert (again.cashout, again.status) == (first.cashout, "paid")
    holds = [e for e in await outbox_entries(redis, keys) if e["type"] == "cashout_hold"]
    assert len(holds) == 3
    assert [c.cashout for c in await ledger.cashouts("cre")] == [results[0].cashout, first.cashout]
    await assert_conserved(ledger, "cre")


async def test_concurrent_cashouts_never_hold_more_than_the_balance(
    ledger: Ledger, redis: Redis, keys: Keys
) -> None:
    await earn(ledger, "cre", 10_000)

    async def request(i: int) -> Cashout | GiftingError:
        try:
            return await ledger.request_cashout("cre", 2000, f"r{i}")
        except GiftingError as e:
            return e

    outcomes = await asyncio.gather(*(request(i) for i in range(20)))
    assert sum(isinstance(r, Cashout) for r in outcomes) == 5
    assert all(type(r) is InsufficientFunds for r in outcomes if not isinstance(r, Cashout))
    w = await ledger.wallet("cre")
    assert (w.diamonds, w.held) == (0, 10_000)
    await assert_conserved(ledger, "cre")


async def test_daily_cap_refuses_then_frees_up_the_next_day(
    ledger: Ledger, redis: Redis, keys: Keys, clock: FakeClock, catalog: Catalog
) -> None:
    cap = catalog.cashout_daily_cap_diamonds
    assert cap == 200_000
    await earn(ledger, "cre", 1_000_000)
    clock.set("2026-03-10T23:00:00Z")
    with pytest.raises(BudgetExceeded):
        await ledger.request_cashout("cre", cap + 2, "too-big")
    await ledger.request_cashout("cre", cap - 2000, "a")
    await ledger.request_cashout("cre", 2000, "b")
    before = await snapshot(redis, keys.prefix)
    with pytest.raises(BudgetExceeded):
        await ledger.request_cashout("cre", 2000, "c")
    assert await snapshot(redis, keys.prefix) == before

    clock.set("2026-03-11T00:00:00Z")
    outcomes = await asyncio.gather(
        *(ledger.request_cashout("cre", 40_000, f"d{i}") for i in range(10)),
        return_exceptions=True,
    )
    assert sum(isinstance(r, Cashout) for r in outcomes) == 5
    assert all(type(r) is BudgetExceeded for r in outcomes if not isinstance(r, Cashout))
    w = await ledger.wallet("cre")
    assert (w.diamonds, w.held) == (1_000_000 - 2 * cap, 2 * cap)
    await assert_conserved(ledger, "cre")


async def test_spends_credits_and_cashouts_conserve_diamonds(
    ledger: Ledger, redis: Redis, keys: Keys, catalog: Catalog
) -> None:
    await buy(ledger, "whale", "coins_17500")
    events: list[tuple[SpendResult, int]] = []
    for i, gift in enumerate(["money_gun", "swan", "train", "galaxy", "fireworks", "rose"] * 3):
        r = await ledger.spend(gift_order(catalog, "whale", f"w{i}", gift), live=True)
        events.append((r, catalog.gifts[gift].coins))
    for r, coins in events + events[:5]:  # some credits delivered twice
        await ledger.credit_creator(
            spend_event=r.event, creator="creator1", coins=coins, stream="s1", sender="whale"
        )
    received = sum(c for _, c in events)
    a = await ledger.request_cashout("creator1", 2000, "a")
    b = await ledger.request_cashout("creator1", 2002, "b")
    c = await ledger.request_cashout("creator1", 2004, "c")
    await ledger.settle_cashout(a.cashout, "paid")
    await ledger.settle_cashout(b.cashout, "failed")
    w = await ledger.wallet("creator1")
    assert w.received == received and w.earned == received // 2
    assert (w.held, w.paid) == (c.diamonds, a.diamonds)
    await assert_conserved(ledger, "creator1")
    entries = await outbox_entries(redis, keys)
    assert sum(int(e["diamonds"]) for e in of_type(entries, "credit")) == w.earned
    assert sum(int(e["diamonds"]) for e in of_type(entries, "cashout_paid")) == w.paid
