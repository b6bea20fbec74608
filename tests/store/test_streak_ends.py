"""A streak's end with no hub at all: any process's deadline runner (the persister's) ends it.

spend.lua schedules the end in the sender's shard with the debit; the
``streak`` handler emits ``streak_end`` once the window has passed, with an
id derived from the streak's last gift, whoever runs it and however often.
"""

from __future__ import annotations

import json

import pytest
from redis.asyncio import Redis

from gifting.core.catalog import Catalog
from gifting.core.pricing import price_gift
from gifting.core.streaks import streak_end_event_id
from gifting.store.deadlines import DeadlineRunner, Deadlines
from gifting.store.due_tasks import DueContext, due_batch_handlers, due_handlers
from gifting.store.keys import Keys
from gifting.store.ledger import Ledger, SpendOrder
from gifting.store.rooms import RoomLog
from gifting.store.streaks import STREAK_END_GRACE_MS

from .support import FakeClock, buy

pytestmark = pytest.mark.cluster
WINDOW_MS = 3000  # the Ledger's default combo window


def runner(
    redis: Redis, keys: Keys, catalog: Catalog, ledger: Ledger, clock: FakeClock
) -> DeadlineRunner:
    roomlog = RoomLog(redis, keys, catalog)
    deadlines = Deadlines(redis, keys)
    ctx = DueContext(redis, keys, catalog, roomlog, ledger, deadlines, WINDOW_MS, clock)
    # As every process builds it: streak ends a take at a time (the batch handler).
    return DeadlineRunner(
        deadlines, due_handlers(ctx), batch_handlers=due_batch_handlers(ctx), clock=clock
    )


async def streak_ends(redis: Redis, keys: Keys, stream: str) -> list[dict[str, object]]:
    rows = await redis.xrange(keys.room_history(stream))
    bodies = [json.loads(f[b"d"]) for _, f in rows]
    return [b for b in bodies if b["kind"] == "streak_end"]


async def test_the_last_gift_of_a_streak_schedules_its_one_end(
    redis: Redis, keys: Keys, catalog: Catalog, ledger: Ledger, clock: FakeClock
) -> None:
    await buy(ledger, "ann", "coins_350")
    rose = price_gift(catalog, "rose", 2)
    events = []
    for i in range(3):
        r = await ledger.spend(SpendOrder("ann", "Ann", f"r{i}", rose, "s1", "cara"), live=True)
        events.append(r.event)
        clock.advance(1000)
    # One deadline: each gift continuing the streak replaced the previous one.
    shard_due = keys.shard_due(keys.shard_of("ann"))
    assert await redis.zcard(shard_due) == 1
    # Due when the handler will take it: a window and the grace after the last gift.
    ((_, due),) = await redis.zrange(shard_due, 0, -1, withscores=True)
    assert due == clock() - 1000 + WINDOW_MS + STREAK_END_GRACE_MS
    # A non-streakable spend schedules nothing.
    hearts = price_gift(catalog, "hand_hearts", 1)
    await ledger.spend(SpendOrder("ann", "Ann", "h", hearts, "s1", "cara"), live=True)
    assert await redis.zcard(shard_due) == 1

    two = [runner(redis, keys, catalog, ledger, clock) for _ in range(2)]
    try:
        clock.advance(WINDOW_MS - 1000)  # 3 s after the last gift: not past the grace yet
        assert [await r.run_due() for r in two] == [0, 0]
        assert await streak_ends(redis, keys, "s1") == []
        clock.advance(200)
        await two[0].run_due()
        await two[1].run_due()
        # A deadline run again (its runner died before removing it) shows nothing new.
        await Deadlines(redis, keys).schedule("streak|" + json.dumps({
            "u": "ann", "n": "Ann", "s": "s1", "g": "rose", "c": "6",
            "t": str(clock() - 10_000), "e": events[-1], "l": "6", "b": "",
        }), 0)  # fmt: skip
        await two[1].run_due()
    finally:
        for r in two:
            await r.stop()
    (end,) = await streak_ends(redis, keys, "s1")
    assert end["event"] == streak_end_event_id(events[-1])
    assert end["combo"] == 6
    assert end["sender"] == {"id": "ann", "name": "Ann", "level": 1}
    assert await redis.zcard(shard_due) == 0


async def test_a_streak_replaced_before_its_end_ran_still_ends_with_its_own_count(
    redis: Redis, keys: Keys, catalog: Catalog, ledger: Ledger, clock: FakeClock
) -> None:
    """Every runner lagging (all hubs busy or down): a new streak of the same gift, after
    the window, moves the old one's state to a member of its own; both end, each once."""
    await buy(ledger, "bo", "coins_350")
    rose = price_gift(catalog, "rose", 1)
    old = []
    for i in range(2):
        old.append(
            await ledger.spend(SpendOrder("bo", "Bo", f"o{i}", rose, "s1", "cara"), live=True)
        )
    clock.advance(WINDOW_MS + 1000)  # past the window; nobody ended the streak yet
    new = await ledger.spend(SpendOrder("bo", "Bo", "n0", rose, "s1", "cara"), live=True)
    assert new.combo == 1
    assert await redis.zcard(keys.shard_due(keys.shard_of("bo"))) == 2
    r = runner(redis, keys, catalog, ledger, clock)
    try:
        clock.advance(WINDOW_MS + STREAK_END_GRACE_MS)
        await r.run_due()
        await r.run_due()
    finally:
        await r.stop()
    ends = await streak_ends(redis, keys, "s1")
    assert [(e["combo"], e["event"]) for e in ends] == [
        (2, streak_end_event_id(old[-1].event)), (1, streak_end_event_id(new.event)),
    ]  # fmt: skip
    assert all(e["sender"]["name"] == "Bo" for e in ends)
