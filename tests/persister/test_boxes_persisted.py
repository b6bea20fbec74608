"""Treasure boxes through the persister: the ledger agrees, the audit passes, also mid-flight.

Real Redis and PostgreSQL. The drop's process dies before creating its box
(no settle step): the persister's repair of the drop's outbox entry creates
it, and it opens and closes as usual. The audit passes while the box is
open (its coins in ``boxes:escrow``) and after it settled (dropped = claimed
+ returned), and catches a box whose claims do not add up.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import asyncpg
import pytest_asyncio
from redis.asyncio import Redis

from gifting.core.boxes import box_id_of, price_box
from gifting.core.catalog import Catalog
from gifting.persister.audit import run_audit
from gifting.records import wallet_history
from gifting.store.boxes import Boxes
from gifting.store.keys import Keys
from gifting.store.ledger import Ledger, SpendOrder, spend_entry
from gifting.store.rooms import RoomLog

from .conftest import ConsumerFactory
from .support import caught_up

STREAM = "s1"


def _ms() -> int:
    return int(time.time() * 1000)


@pytest_asyncio.fixture(loop_scope="session")
async def rooms(redis: Redis, keys: Keys, catalog: Catalog) -> AsyncIterator[RoomLog]:
    r = RoomLog(redis, keys, catalog)
    yield r
    await r.aclose()


async def _fund(ledger: Ledger, *users: str) -> None:
    p = ledger.catalog.packages["coins_350"]
    for u in users:
        await ledger.purchase(f"p-{u}", u, "coins_350", p.price.amount, p.price.currency)


async def _coins(pool: asyncpg.Pool, account: str) -> int:
    return int(
        await pool.fetchval(
            "SELECT COALESCE(SUM(amount), 0)::bigint FROM postings WHERE account = $1", account
        )
    )


async def test_a_box_dropped_by_a_dead_hub_is_created_by_the_persister_and_audited(
    redis: Redis,
    keys: Keys,
    catalog: Catalog,
    pool: asyncpg.Pool,
    rooms: RoomLog,
    make_consumer: ConsumerFactory,
) -> None:
    consumer = make_consumer(on_spends=rooms.emit_spends)
    await consumer.ensure_groups()
    # Dropped 10.5 s ago (its clock), so it is open now by Redis's.
    dropper = Ledger(redis, keys, catalog, clock=lambda: _ms() - 10_500)
    await _fund(dropper, "drop", "a", "b")
    order = SpendOrder("drop", "Drop", "b1", price_box(101, 3, 10), STREAM, "creator1")
    result = await dropper.spend(order, live=True)  # ... and its hub died here
    box = box_id_of(result.event)
    assert await redis.exists(keys.box(STREAM, box)) == 0
    await consumer.run_once()
    await consumer.run_once()
    assert await redis.exists(keys.box(STREAM, box)) == 1  # the repair created it

    boxes = Boxes(redis, keys, rooms)
    try:
        assert (await boxes.claim(STREAM, box, "a", "A", "k")).share == 34
        assert (await boxes.claim(STREAM, box, "b", "B", "k")).share == 34
        while await consumer.run_once():
            pass
        report = await run_audit(pool, redis, keys, catalog, catch_up_s=5)
        assert report.ok, report.render()  # mid-flight: the box is open
        assert report.totals["coins in open boxes"] == 101 - 68
        assert await _coins(pool, "boxes:escrow") == 33

        await redis.hset(keys.box(STREAM, box), "closes_at", _ms() - 1)  # the window is over
        await boxes.close(f"{STREAM}|{box}")
        while await consumer.run_once():
            pass
        await caught_up(redis, keys)
        report = await run_audit(pool, redis, keys, catalog, catch_up_s=5)
        assert report.ok, report.render()
        assert await _coins(pool, "boxes:escrow") == 0
        assert await _coins(pool, "user:drop:coins") == 350 - 101 + 33
        assert await _coins(pool, "user:a:coins") == 350 + 34
        types = dict(
            await pool.fetch(
                "SELECT type, COUNT(*) FROM ledger_events WHERE type LIKE 'box%' GROUP BY type"
            )
        )
        assert types == {"box_claim": 2, "box_return": 1}
        # Each side reads its part in its wallet history.
        (claim, *_), _ = await wallet_history(pool, "a")
        assert (claim["type"], claim["coins"], claim["box"], claim["order"]) == (
            "box_claim", 34, box, 1,
        )  # fmt: skip
        back, drop, *_ = (await wallet_history(pool, "drop"))[0]
        assert (back["type"], back["coins"], back["claimed"], back["claims"]) == (
            "box_return", 33, 68, 2,
        )  # fmt: skip
        assert (drop["type"], drop["kind"], drop["coins"], drop["item"]) == (
            "spend", "box", -101, "3:10",
        )  # fmt: skip

        # A second settlement of the same box in the ledger is caught.
        await pool.execute(
            "UPDATE ledger_events SET payload = jsonb_set(payload, '{claimed}', '67') "
            "WHERE type = 'box_return'"
        )
        broken = await run_audit(pool, redis, keys, catalog, catch_up_s=5)
        assert not broken.ok
        assert f"box:{box}:returned+claimed" in broken.render()
    finally:
        await boxes.aclose()


async def test_entries_of_boxes_round_trip_and_post_balanced(
    redis: Redis, keys: Keys, catalog: Catalog, rooms: RoomLog
) -> None:
    from gifting.persister.postings import imbalance, parse_entry
    from tests.store.support import outbox_entries

    dropper = Ledger(redis, keys, catalog, clock=lambda: _ms() - 10_500)
    await _fund(dropper, "drop", "a")
    order = SpendOrder("drop", "Drop", "b1", price_box(100, 2, 10), STREAM, "creator1")
    result = await dropper.spend(order, live=True)
    await rooms.emit_spend(spend_entry(order, result, _ms() - 10_500))
    boxes = Boxes(redis, keys, rooms)
    box = box_id_of(result.event)
    await boxes.claim(STREAM, box, "a", "A", "k")
    await redis.hset(keys.box(STREAM, box), "closes_at", _ms() - 1)
    await boxes.close(f"{STREAM}|{box}")
    await boxes.aclose()
    seen = set()
    for e in await outbox_entries(redis, keys):
        event = parse_entry(e.pop("_id"), e)
        assert not imbalance(event.postings)
        seen.add((event.type, event.kind))
    assert {("spend", "box"), ("box_claim", ""), ("box_return", "")} <= seen


def test_the_box_rules_name_what_is_wrong_and_what_may_be_in_flight() -> None:
    from gifting.persister.box_audit import BoxRow, box_problems, in_flight

    def row(**kw: object) -> BoxRow:
        base: dict[str, object] = {
            "box": "q1", "coins": 101, "winners": 4, "claimed": 51, "claims": 2,
            "returned": None, "sealed_claimed": None, "sealed_claims": None,
        }  # fmt: skip
        base.update(kw)
        return BoxRow(**base)  # type: ignore[arg-type]

    open_box = row()
    assert box_problems(open_box) == [] and not in_flight(open_box)
    assert open_box.open_coins == 50
    settled = row(returned=50, sealed_claimed=51, sealed_claims=2)
    assert box_problems(settled) == [] and settled.open_coins == 0
    # The return persisted before one claim credit (another shard): in flight.
    early = row(claimed=26, claims=1, returned=50, sealed_claimed=51, sealed_claims=2)
    assert in_flight(early)
    assert [p[0] for p in box_problems(early)] == ["box:q1:claims", "box:q1:claimed"]
    # Returned too much; more claims than winners; claims without a drop.
    assert [p[0] for p in box_problems(row(returned=51, sealed_claimed=51, sealed_claims=2))] == [
        "box:q1:returned+claimed"
    ]
    assert [p[0] for p in box_problems(row(claims=5))] == ["box:q1:claims"]
    assert [p[0] for p in box_problems(row(claimed=102))] == ["box:q1:claimed"]
    orphan = row(coins=None, winners=None)
    assert in_flight(orphan) and box_problems(orphan)[0][0] == "box:q1:dropped"
