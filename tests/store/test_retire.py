"""Retirement of idempotency records, and the deadlines that make it safe (store/retire.py)."""

from __future__ import annotations

from redis.asyncio import Redis

from gifting.core.catalog import Catalog
from gifting.core.entries import SpendEntry
from gifting.core.levels import level_up_event_id
from gifting.store.keys import Keys
from gifting.store.ledger import Ledger, SpendResult, spend_entry
from gifting.store.retire import LateSettle, repair_deadline, retire_calls
from gifting.store.rooms import RoomLog
from gifting.store.scripts import ScriptCall

from .support import CREATOR, STREAM, FakeClock, buy, gift_order, snapshot


async def _spend(ledger: Ledger, catalog: Catalog, clock: FakeClock, client_id: str) -> SpendEntry:
    order = gift_order(catalog, "amy", client_id, "rose")
    result = await ledger.spend(order, live=True)
    assert isinstance(result, SpendResult)
    return spend_entry(order, result, clock())


async def test_a_debited_spends_records_keep_no_expiry_until_retired(
    ledger: Ledger, redis: Redis, keys: Keys, catalog: Catalog, clock: FakeClock
) -> None:
    await buy(ledger, "amy")
    rooms = RoomLog(redis, keys, catalog, clock=clock)
    entry = await _spend(ledger, catalog, clock, "m1")
    emit = ScriptCall("emit", *rooms.spend_emit_args(entry))
    assert await ledger.settle_many([entry], [emit]) == []
    records = [
        keys.spend_result("amy", "m1"),
        keys.credit_done(CREATOR, entry.event),
        keys.room_emitted(STREAM, entry.event),
    ]
    assert [await redis.ttl(k) for k in records] == [-1, -1, -1]
    # A refused spend moved no money: it keeps its result for the idempotency TTL only.
    refused = gift_order(catalog, "amy", "too-much", "universe")
    await ledger.debit_many([refused], live={STREAM: True}, now=clock())
    assert 0 < await redis.ttl(keys.spend_result("amy", "too-much")) <= 7 * 24 * 3600

    assert await ledger.retire([entry], keep_s=60) == 3
    assert all(0 < t <= 60 for t in [await redis.ttl(k) for k in records])
    assert await ledger.retire([entry], keep_s=600) == 0
    assert all(0 < t <= 60 for t in [await redis.ttl(k) for k in records])  # never lengthened
    await redis.delete(records[1])
    assert await ledger.retire([entry], keep_s=30) == 2
    await ledger.aclose()
    await rooms.aclose()


async def test_a_credit_or_emission_past_its_deadline_writes_nothing(
    ledger: Ledger, redis: Redis, keys: Keys, catalog: Catalog, clock: FakeClock
) -> None:
    await buy(ledger, "amy")
    rooms = RoomLog(redis, keys, catalog, clock=clock)
    entry = await _spend(ledger, catalog, clock, "late")
    before = await snapshot(redis, keys.prefix)
    past = int((await redis.time())[0]) * 1000 - 1  # Redis's clock decides
    emit = ScriptCall("emit", *rooms.spend_emit_args(entry, not_after=past))
    failures = await ledger.settle_many([entry], [emit], not_after=past)
    assert [type(f) for f in failures] == [LateSettle, LateSettle]
    assert await snapshot(redis, keys.prefix) == before
    try:
        await ledger.repair_credits([entry], not_after=past)
    except LateSettle:
        pass
    else:
        raise AssertionError("a repair past its deadline ran")
    assert await snapshot(redis, keys.prefix) == before

    # Within the deadline both run; past it again, a done step is still a replay.
    future = repair_deadline(int((await redis.time())[0]) * 1000, 3600)
    emit = ScriptCall("emit", *rooms.spend_emit_args(entry, not_after=future))
    assert await ledger.settle_many([entry], [emit], not_after=future) == []
    assert (await ledger.wallet(CREATOR)).received == 1
    emit = ScriptCall("emit", *rooms.spend_emit_args(entry, not_after=past))
    assert await ledger.settle_many([entry], [emit], not_after=past) == []
    assert await ledger.repair_credits([entry], not_after=past) == 0
    assert (await ledger.wallet(CREATOR)).received == 1
    assert len(await redis.xrange(keys.room_history(STREAM))) == 1
    await ledger.aclose()
    await rooms.aclose()


def test_retiring_a_spend_shortens_the_marker_of_each_level_up_it_caused(
    keys: Keys, catalog: Catalog
) -> None:
    entry = SpendEntry(
        user="sam", name="Sam", client_id="c1", kind="gift", item="rose", count=120, unit=1,
        coins=120, stream=STREAM, creator=CREATOR, event="e0a1", ts=1, balance=0, combo=120,
        lifetime=120,
    )  # fmt: skip
    room = {
        k for c in retire_calls(keys, [entry], 60, catalog) for k in c.keys if "emitted" in k
    }  # fmt: skip
    # 0 -> 120 coins crossed levels 1 and 2: the spend's marker and both level_ups'.
    assert room == {
        keys.room_emitted(STREAM, "e0a1"),
        keys.room_emitted(STREAM, level_up_event_id("e0a1", 1)),
        keys.room_emitted(STREAM, level_up_event_id("e0a1")),
    }
