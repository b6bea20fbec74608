"""RoomLog.snapshot: the stream, totals, top gifters, seq and cursor of one moment."""

from __future__ import annotations

from redis.asyncio import Redis

from gifting.core.catalog import Catalog
from gifting.store.keys import Keys
from gifting.store.rooms import RoomLog
from gifting.store.streams import Streams


async def test_a_snapshot_agrees_with_what_streams_reads_one_key_at_a_time(
    redis: Redis, keys: Keys, catalog: Catalog
) -> None:
    streams, roomlog = Streams(redis, keys, catalog), RoomLog(redis, keys, catalog)
    s = await streams.create("carol", "Carol", "on air")
    empty = await roomlog.snapshot(s.stream)
    assert (empty.seq, empty.cursor, empty.goals) == (0, "", [])
    assert empty.totals.coins == 0 and empty.totals.top == []
    assert (empty.creator, empty.creator_name, empty.title, empty.live) == (
        "carol", "Carol", "on air", True,
    )  # fmt: skip
    await streams.set_goal(s.stream, "carol", 500, "rose")
    for i, (user, item, coins) in enumerate(
        [("ann", "rose", 1), ("bob", "doughnut", 30), ("ann", "rose", 5), ("cyd", "rose", 2)]
    ):
        body = {"kind": "gift", "stream": s.stream, "event": f"e{i}", "ts": 0}
        await roomlog.emit(
            s.stream, body, sender=user, sender_name=user.upper(), coins=coins, gifts=1,
            item_field=f"gift:{item}", spend_event_id=f"e{i}", spend_ts=0,
        )  # fmt: skip
    last = await roomlog.emit(s.stream, {"kind": "comment", "stream": s.stream, "event": "m"})
    snap = await roomlog.snapshot(s.stream, top_n=2)
    assert (snap.seq, snap.cursor) == (5, last.cursor)
    # The rose goal counts roses (three), not their coins.
    assert [(g.spec.id, g.spec.gift, g.progress) for g in snap.goals] == [("goal", "rose", 3)]
    assert snap.goals == await streams.goals.read(s.stream)
    read = await streams.totals(await streams.get(s.stream), top_n=2)
    assert snap.totals == read
    assert snap.totals.coins == 38
    assert snap.totals.top == [
        {"user": "bob", "name": "BOB", "coins": 30}, {"user": "ann", "name": "ANN", "coins": 6},
    ]  # fmt: skip
