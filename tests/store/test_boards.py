"""The live leaderboards: credit.lua counts each credit once, in the spend's period.

Run on one Redis and on a 3-master cluster (every key of a credit in the
creator's slot; the top creators merged over the shards). The spends are
dated in 2037 (its calendar is 2026's: 2037-12-31 is in ISO week 53): the
board keys expire by Redis's own clock, after their period.
"""

from __future__ import annotations

import itertools

import pytest
from redis.asyncio import Redis

from gifting.core.boards import BoardEntry
from gifting.core.catalog import Catalog
from gifting.core.errors import BadRequest
from gifting.core.periods import month_of, week_of
from gifting.store.boards import Boards
from gifting.store.keys import Keys, shard_of
from gifting.store.ledger import Ledger, SpendResult, spend_entry
from gifting.store.rooms import RoomLog
from gifting.store.scripts import ScriptCall

from .support import CREATOR, STREAM, FakeClock, buy, gift_order, iso_ms, snapshot

pytestmark = pytest.mark.cluster
_ids = itertools.count()


async def credit(
    ledger: Ledger, creator: str, sender: str, coins: int, at: str, name: str = ""
) -> str:
    """A credit of ``coins`` from ``sender`` for a spend made at ``at``; returns its spend id."""
    spend_event = f"e{next(_ids):023x}"
    await ledger.credit_creator(
        spend_event=spend_event, creator=creator, coins=coins, stream=STREAM, sender=sender,
        sender_name=name or sender.title(), spend_ts=iso_ms(at),
    )  # fmt: skip
    return spend_event


def users(entries: list[BoardEntry]) -> list[tuple[str, int]]:
    return [(e.user, e.coins) for e in entries]


async def test_a_credit_counts_once_in_the_week_and_month_of_its_spend(
    ledger: Ledger, redis: Redis, keys: Keys, clock: FakeClock
) -> None:
    clock.set("2037-12-02T10:00:00Z")
    boards = Boards(redis, keys)
    spend = await credit(ledger, "rita", "sam", 30, "2037-12-02T09:00:00Z", "Sam")
    await ledger.credit_creator(
        spend_event=spend,
        creator="rita",
        coins=30,
        stream=STREAM,
        sender="sam",
        sender_name="Sam",
        spend_ts=iso_ms("2037-12-02T09:00:00Z"),
    )  # fmt: skip  (a replay of the same spend: nothing more)
    await credit(ledger, "rita", "sam", 5, "2037-12-02T09:30:00Z", "Sammy")
    assert users(await boards.supporters("rita", "2037-W49", 10)) == [("sam", 35)]
    assert users(await boards.supporters("rita", "2037-12", 10)) == [("sam", 35)]
    assert [e.name for e in await boards.supporters("rita", "2037-W49", 10)] == ["Sammy"]
    assert users(await boards.creators("2037-W49", 10)) == [("rita", 35)]
    assert users(await boards.creators("2037-12", 10)) == [("rita", 35)]
    assert (await ledger.wallet("rita")).received == 35  # the boards follow the money


async def test_week_and_month_boundaries_follow_the_spend_time_not_the_credit_time(
    ledger: Ledger, redis: Redis, keys: Keys, clock: FakeClock
) -> None:
    boards = Boards(redis, keys)
    clock.set("2037-12-07T00:00:05Z")  # the credit runs Monday; the spend was on Sunday
    await credit(ledger, "rita", "sam", 1, "2037-12-06T23:59:59.999Z")
    await credit(ledger, "rita", "sam", 2, "2037-12-07T00:00:00Z")
    assert users(await boards.supporters("rita", "2037-W49", 10)) == [("sam", 1)]
    assert users(await boards.supporters("rita", "2037-W50", 10)) == [("sam", 2)]
    clock.set("2037-12-01T00:00:01Z")
    await credit(ledger, "rita", "ann", 4, "2037-11-30T23:59:59.999Z")
    await credit(ledger, "rita", "ann", 8, "2037-12-01T00:00:00Z")
    assert users(await boards.supporters("rita", "2037-11", 10)) == [("ann", 4)]
    assert users(await boards.supporters("rita", "2037-W49", 10)) == [("ann", 12), ("sam", 1)]
    clock.set("2038-01-01T00:00:01Z")
    await credit(ledger, "rita", "bo", 16, "2037-12-31T23:00:00Z")  # ISO week 53 of 2026
    await credit(ledger, "rita", "bo", 32, "2038-01-01T00:00:00Z")  # still 2037-W53
    assert users(await boards.supporters("rita", "2037-W53", 10)) == [("bo", 48)]
    assert users(await boards.supporters("rita", "2038-01", 10)) == [("bo", 32)]
    assert users(await boards.supporters("rita", "2037-12", 10))[0] == ("bo", 16)


async def test_ranks_ties_and_limit(ledger: Ledger, redis: Redis, keys: Keys) -> None:
    boards = Boards(redis, keys)
    at = "2037-12-02T09:00:00Z"
    for sender, coins in [("d", 5), ("b", 5), ("a", 9), ("c", 5), ("e", 1), ("f", 5)]:
        await credit(ledger, "rita", sender, coins, at)
    top = users(await boards.supporters("rita", "2037-W49", 10))
    assert top == [("a", 9), ("b", 5), ("c", 5), ("d", 5), ("f", 5), ("e", 1)]
    # The cut falls inside a tie: the smaller user ids first, whatever Redis's order.
    assert users(await boards.supporters("rita", "2037-W49", 3)) == top[:3]
    assert users(await boards.supporters("rita", "2037-W49", 1)) == top[:1]
    assert await boards.supporters("nobody", "2037-W49", 10) == []


async def test_top_creators_merged_over_the_shards_are_exact(
    ledger: Ledger, redis: Redis, keys: Keys
) -> None:
    boards = Boards(redis, keys)
    at = "2037-12-02T09:00:00Z"
    # Twelve creators over several shards, two of them heavy in one shard.
    creators = [f"cr{i}" for i in range(12)]
    assert len({shard_of(c, keys.shards) for c in creators}) > 3
    expected: dict[str, int] = {}
    for i, c in enumerate(creators):
        coins = 10 * (i % 5) + 3
        for n in range(2):
            await credit(ledger, c, f"fan{n}", coins, at)
        expected[c] = 2 * coins
    want = sorted(expected.items(), key=lambda kv: (-kv[1], kv[0]))
    for limit in (1, 3, 5, 12, 100):
        assert users(await boards.creators("2037-W49", limit)) == want[:limit]
    assert users(await boards.creators("2037-12", 100)) == want


async def test_a_late_credit_of_an_ended_period_leaves_no_live_key(
    ledger: Ledger, redis: Redis, keys: Keys, clock: FakeClock
) -> None:
    clock.set("2037-12-20T12:00:00Z")
    await credit(ledger, "rita", "sam", 7, "2020-11-10T12:00:00Z")  # a repair, long after
    assert await redis.exists(keys.board_supporters("rita", "2020-W46")) == 0
    assert await redis.exists(keys.board_supporters("rita", "2020-11")) == 0
    assert await redis.exists(keys.board_creators(keys.shard_of("rita"), "2020-W46")) == 0
    assert (await ledger.wallet("rita")).received == 7  # the money itself is credited
    await credit(ledger, "rita", "sam", 1, "2037-12-20T11:00:00Z")
    week = week_of(iso_ms("2037-12-20T11:00:00Z"))
    ttl = await redis.pexpiretime(keys.board_supporters("rita", week.label))
    assert week.end_ms < ttl <= week.end_ms + 2 * 86_400_000
    month = month_of(iso_ms("2037-12-20T11:00:00Z"))
    assert await redis.pexpiretime(keys.board_names("rita")) > month.end_ms


async def test_settle_and_repair_count_each_spend_once(
    ledger: Ledger, redis: Redis, keys: Keys, catalog: Catalog, clock: FakeClock
) -> None:
    """The hub's settle and the persister's repair, each replayed: one count per spend.

    The repair runs after the week ended; the spend still counts in its own week.
    """
    clock.set("2037-12-06T23:59:00Z")
    await buy(ledger, "amy", "coins_350")
    rooms = RoomLog(redis, keys, catalog, clock=clock)
    orders = [gift_order(catalog, "amy", f"g{i}", "rosa", 2) for i in range(4)]
    results = await ledger.debit_many(orders, live={STREAM: True}, now=clock())
    entries = [
        spend_entry(o, r, clock()) for o, r in zip(orders, results, strict=True)
        if isinstance(r, SpendResult)
    ]  # fmt: skip
    emits = [ScriptCall("emit", *rooms.spend_emit_args(e)) for e in entries[:2]]
    assert await ledger.settle_many(entries[:2], emits) == []  # the hub settled two
    assert await ledger.settle_many(entries[:2], emits) == []
    clock.set("2037-12-07T00:05:00Z")  # the hub died; the persister repairs on Monday
    assert await ledger.repair_credits(entries) == 2
    assert await ledger.repair_credits(entries) == 0
    boards = Boards(redis, keys)
    assert [
        (e.user, e.name, e.coins) for e in await boards.supporters(CREATOR, "2037-W49", 10)
    ] == [("amy", "Amy", 80)]
    assert await boards.supporters(CREATOR, "2037-W50", 10) == []
    assert (await ledger.wallet(CREATOR)).received == 80
    await ledger.aclose()


async def test_a_refused_credit_changes_no_board(ledger: Ledger, redis: Redis, keys: Keys) -> None:
    before = await snapshot(redis, keys.prefix)
    with pytest.raises(BadRequest):
        await credit(ledger, "rita", "sam", 0, "2037-12-02T09:00:00Z")
    assert await snapshot(redis, keys.prefix) == before
