"""The hub's sharded pub/sub on a real cluster: a room's events come from its slot's master,
and follow the slot when it moves to another master."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest

from gifting.core.catalog import load_catalog
from gifting.hub.sharded_broker import ShardedRoomBroker
from gifting.store.cluster import is_cluster
from gifting.store.keys import Keys
from gifting.store.rooms import HistoryEntry, RoomLog
from tests.cluster_support import SlotMover

pytestmark = pytest.mark.cluster


async def _next(got: asyncio.Queue[HistoryEntry]) -> HistoryEntry:
    return await asyncio.wait_for(got.get(), 5)


async def test_room_events_follow_their_slot_to_another_master(redis: Any, keys: Keys) -> None:
    if not is_cluster(redis):
        pytest.skip("sharded pub/sub is for a cluster (a single Redis uses RoomBroker)")
    roomlog = RoomLog(redis, keys, load_catalog())
    assert roomlog.publish == "SPUBLISH"
    # A stream whose slot holds no other test's keys (the session's cluster keeps every
    # test's keys; the migration below moves only this room's, and Redis will not hand
    # over a slot that still holds keys: the test failed once on such a collision).
    for _ in range(200):
        stream = f"s{secrets.token_hex(4)}"
        if await redis.cluster_countkeysinslot(redis.keyslot(keys.room_seq(stream))) == 0:
            break
    broker = ShardedRoomBroker(redis)
    await broker.start()
    got: asyncio.Queue[HistoryEntry] = asyncio.Queue()
    try:
        await broker.subscribe(keys.room_channel(stream), got.put_nowait)
        first = redis.get_node_from_key(keys.room_channel(stream)).name
        assert broker.homes == {keys.room_channel(stream): first}
        await roomlog.emit(stream, {"event": "e1", "type": "comment"})
        assert (await _next(got)).seq == 1
        slot = redis.keyslot(keys.room_seq(stream))
        with SlotMover(redis, slot) as mover:
            mover.begin_migration()
            for key in [keys.room_seq(stream), keys.room_history(stream),
                        keys.room_emitted(stream, "e1")]:  # fmt: skip
                mover.migrate(key)
            mover.finish_migration()  # Redis unsubscribes the channel on the old master
            for _ in range(100):
                if broker.homes.get(keys.room_channel(stream)) == mover.target_name:
                    break
                await asyncio.sleep(0.05)
            assert broker.homes == {keys.room_channel(stream): mover.target_name}
            await roomlog.emit(stream, {"event": "e2", "type": "comment"})  # a MOVED on the way
            assert (await _next(got)).seq == 2
            mover.move_back(
                [keys.room_seq(stream), keys.room_history(stream),
                 keys.room_emitted(stream, "e1"), keys.room_emitted(stream, "e2")]
            )  # fmt: skip
            for _ in range(100):
                if broker.homes.get(keys.room_channel(stream)) == first:
                    break
                await asyncio.sleep(0.05)
            await roomlog.emit(stream, {"event": "e3", "type": "comment"})
            assert (await _next(got)).seq == 3
        await broker.unsubscribe(keys.room_channel(stream))
        assert broker.homes == {}
    finally:
        await broker.stop()
        await roomlog.aclose()
