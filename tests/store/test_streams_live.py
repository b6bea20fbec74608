"""Streams.live_many: the live flags of a batch's streams in one round trip."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from gifting.core.catalog import Catalog
from gifting.store.keys import Keys
from gifting.store.streams import Streams

pytestmark = pytest.mark.cluster


async def test_live_many_tells_live_ended_and_unknown_streams_apart(
    redis: Redis, keys: Keys, catalog: Catalog
) -> None:
    streams = Streams(redis, keys, catalog)
    live = await streams.create("carol", "Carol", "on air")
    ended = await streams.create("carol", "Carol", "over")
    await streams.end(ended.stream, "carol")
    flags = await streams.live_many([live.stream, ended.stream, "s-unknown", live.stream])
    assert flags == {live.stream: True, ended.stream: False, "s-unknown": False}
    assert [await streams.is_live(s) for s in flags] == list(flags.values())
    assert await streams.live_many([]) == {}


async def test_admission_many_reads_live_flags_and_guest_lists_at_once(
    redis: Redis, keys: Keys, catalog: Catalog
) -> None:
    """The spend batch's read: both, for every stream, one round trip."""
    streams = Streams(redis, keys, catalog)
    live = await streams.create("carol", "Carol", "on air")
    alone = await streams.create("dana", "Dana", "solo")
    await streams.set_guests(live.stream, "carol", [("bob", "Bobby"), ("eve", None)])
    flags, guests = await streams.admission_many([live.stream, alone.stream, "s-unknown"])
    assert flags == {live.stream: True, alone.stream: True, "s-unknown": False}
    assert guests == {live.stream: {"bob": "Bobby", "eve": "eve"}, alone.stream: {},
                      "s-unknown": {}}  # fmt: skip
    assert await streams.admission_many([]) == ({}, {})
