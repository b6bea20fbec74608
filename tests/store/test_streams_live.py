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
