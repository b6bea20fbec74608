"""The typed outbox entries against real Redis: XADD/XRANGE, and what each Lua script appends."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from redis.asyncio import Redis

from gifting.core.catalog import Catalog
from gifting.core.entries import (
    CashoutHoldEntry,
    CashoutSettleEntry,
    CreditEntry,
    Entry,
    PurchaseEntry,
    RefundEntry,
    SpendEntry,
    from_fields,
)
from gifting.core.errors import BadRequest, Blocked
from gifting.core.ids import credit_event_id
from gifting.store.keys import Keys
from gifting.store.ledger import Ledger, SpendOrder, spend_entry
from tests.core.test_entries import entries

from .support import (
    CREATOR,
    STREAM,
    FakeClock,
    badge_order,
    buy,
    gift_order,
    highlight_order,
)

pytestmark = pytest.mark.cluster


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(entry=entries)
async def test_every_entry_round_trips_through_xadd_and_xrange(
    redis: Redis, keys: Keys, entry: Entry
) -> None:
    stream = f"{keys.prefix}:entries"
    entry_id = await redis.xadd(stream, dict(entry.to_fields()))
    [(_, fields)] = await redis.xrange(stream, entry_id, entry_id)
    assert from_fields(fields) == entry
    await redis.delete(stream)


async def _outbox(redis: Redis, keys: Keys) -> list[Entry]:
    """Every entry the scripts appended to the test's outboxes, parsed, oldest first per shard."""
    found: list[Entry] = []
    for key in keys.outboxes():
        for _, fields in await redis.xrange(key):
            found.append(from_fields(fields))
    return found


async def test_what_every_lua_script_appends_parses_as_its_typed_entry(
    ledger: Ledger, redis: Redis, keys: Keys, catalog: Catalog, clock: FakeClock
) -> None:
    bought = {(await buy(ledger, "alice", "coins_17500")).purchase_id}
    gift = gift_order(catalog, "alice", "g1", "rose", 3)
    gifted = await ledger.spend(gift, live=True)
    lit = highlight_order(catalog, "alice", "h1", "tier1", "hello ü")
    lit_result = await ledger.spend(lit, live=True)
    badge = badge_order(catalog, "alice", "b1", "supporter")
    badge_result = await ledger.spend(badge, live=True)
    assert await ledger.grant_badge("alice", "supporter") == "supporter"  # shown from now on
    diamonds = await ledger.credit_creator(
        spend_event=gifted.event, creator=CREATOR, coins=gift.priced.coins, stream=STREAM,
        sender="alice",
    )  # fmt: skip
    carol = await buy(ledger, "carol")
    bought.add(carol.purchase_id)
    refund = await ledger.refund(carol.purchase_id)
    # Enough diamonds for two cash-outs: one paid, one failed.
    big = gift_order(catalog, "alice", "g2", "sports_car", 2)
    big_result = await ledger.spend(big, live=True)
    await ledger.credit_creator(
        spend_event=big_result.event, creator=CREATOR, coins=big.priced.coins, stream=STREAM,
        sender="alice",
    )  # fmt: skip
    unit = catalog.cashout_min_diamonds
    paid = await ledger.request_cashout(CREATOR, unit, "r1")
    await ledger.settle_cashout(paid.cashout, "paid")
    failed = await ledger.request_cashout(CREATOR, unit, "r2")
    await ledger.settle_cashout(failed.cashout, "failed")

    parsed = await _outbox(redis, keys)
    by_type: dict[str, list[Entry]] = {}
    for e in parsed:
        by_type.setdefault(e.type, []).append(e)
    assert {t: len(v) for t, v in by_type.items()} == {
        "purchase": 2, "refund": 1, "spend": 4, "credit": 2, "cashout_hold": 2,
        "cashout_paid": 1, "cashout_failed": 1,
    }  # fmt: skip

    assert {e.purchase_id for e in by_type["purchase"] if isinstance(e, PurchaseEntry)} == bought
    [refunded] = by_type["refund"]
    assert isinstance(refunded, RefundEntry)
    assert (refunded.user, refunded.coins, refunded.balance) == ("carol", refund.coins, 0)

    spends = {e.client_id: e for e in by_type["spend"] if isinstance(e, SpendEntry)}
    # The hub's view of a settled spend is exactly what spend.lua appended.
    assert spends["g1"] == spend_entry(gift, gifted, clock())
    assert spends["h1"] == spend_entry(lit, lit_result, clock())
    assert spends["h1"].text == "hello ü" and spends["h1"].kind == "highlight"
    assert spends["b1"] == spend_entry(badge, badge_result, clock())
    assert spends["b1"].stream == spends["b1"].creator == ""
    # The badge shown when debited rides on the entry (spend.lua reads it with the debit).
    assert spends["g2"] == spend_entry(big, big_result, clock())
    assert (spends["g1"].badge, spends["g2"].badge, big_result.badge) == (
        "",
        "supporter",
        "supporter",
    )

    credits = {e.spend_event: e for e in by_type["credit"] if isinstance(e, CreditEntry)}
    credit = credits[gifted.event]
    assert credit == CreditEntry(
        user=CREATOR, spend_event=gifted.event, coins=gift.priced.coins, stream=STREAM,
        sender="alice", diamonds=diamonds, event=credit_event_id(gifted.event), ts=clock(),
    )  # fmt: skip
    holds = {e.cashout: e for e in by_type["cashout_hold"] if isinstance(e, CashoutHoldEntry)}
    assert holds[paid.cashout].diamonds == unit
    assert (holds[paid.cashout].amount, holds[paid.cashout].currency) == (paid.amount, "USD")
    [settled_paid] = by_type["cashout_paid"]
    assert isinstance(settled_paid, CashoutSettleEntry)
    assert (settled_paid.outcome, settled_paid.cashout, settled_paid.diamonds) == (
        "paid",
        paid.cashout,
        unit,
    )
    [settled_failed] = by_type["cashout_failed"]
    assert isinstance(settled_failed, CashoutSettleEntry) and settled_failed.outcome == "failed"


async def test_a_spend_without_text_appends_no_text_field(
    ledger: Ledger, redis: Redis, keys: Keys, catalog: Catalog
) -> None:
    await buy(ledger, "dora")
    order = SpendOrder("dora", "", "m1", gift_order(catalog, "dora", "x").priced, STREAM, CREATOR)
    await ledger.spend(order, live=True)
    raw = [f for key in keys.outboxes() for _, f in await redis.xrange(key)]
    spend = next(f for f in raw if f[b"type"] == b"spend")
    assert b"text" not in spend
    assert SpendEntry.from_fields(spend).name == ""


async def test_a_gift_on_a_video_appends_its_entry_and_reads_the_creators_block(
    ledger: Ledger, redis: Redis, keys: Keys, catalog: Catalog, clock: FakeClock
) -> None:
    await buy(ledger, "alice", "coins_700")
    video = replace(gift_order(catalog, "alice", "v1", "rose", 4, stream=""), video="vid1")
    result = await ledger.spend(video, live=True)
    [entry] = [e for e in await _outbox(redis, keys) if isinstance(e, SpendEntry)]
    assert entry == spend_entry(video, result, clock())
    assert (entry.video, entry.stream, entry.creator, entry.combo) == ("vid1", "", CREATOR, 0)
    # A block by the creator (in every stream) refuses a gift on their video, in the
    # debit's own slot; a block in one stream does not.
    await redis.hset(keys.block_in_stream("alice", STREAM), mapping={"by": CREATOR})
    assert (await ledger.spend(replace(video, client_id="v2"), live=True)).balance == 696 - 4
    await redis.hset(keys.block_by_creator("alice", CREATOR), mapping={"by": CREATOR})
    with pytest.raises(Blocked):
        await ledger.spend(replace(video, client_id="v3"), live=True)
    assert (await ledger.wallet("alice")).coins == 700 - 8
    # Only a gift to its creator, in no stream, is sent on a video.
    for bad in (replace(video, client_id="v4", stream=STREAM),
                replace(video, client_id="v5", creator="")):  # fmt: skip
        with pytest.raises(BadRequest):
            await ledger.spend(bad, live=True)
