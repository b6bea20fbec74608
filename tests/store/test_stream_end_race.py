"""A stream's end and a spend meet in one slot: no debit lands after the end.

The hub reads a batch's live flags one round trip before spend.lua runs (the
stream lives in another slot). Ending a stream therefore also closes the
stream's gate in every wallet shard's slot, and spend.lua refuses
``stream_not_live`` once its shard's gate is closed, whatever flag it was given.
"""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from gifting.core.catalog import Catalog
from gifting.core.errors import StreamNotLive
from gifting.store.keys import SHARDS, Keys
from gifting.store.ledger import Ledger
from gifting.store.streams import Streams

from .support import FakeClock, buy, gift_order, of_type, outbox_entries


async def test_a_spend_whose_live_read_came_before_the_end_is_refused(
    ledger: Ledger, redis: Redis, keys: Keys, catalog: Catalog, clock: FakeClock
) -> None:
    streams = Streams(redis, keys, catalog)
    stream = (await streams.create("cre", "Cre", "last call")).stream
    senders = [f"fan{i}" for i in range(40)]  # senders in every wallet shard
    for s in senders:
        await buy(ledger, s)
    first = gift_order(catalog, senders[0], "before", stream=stream, creator="cre")
    await ledger.spend(first, live=True)

    live = await streams.live_many([stream])  # the hub's read, just before ...
    assert live == {stream: True}
    await streams.end(stream, "cre")  # ... the stream ends ...
    orders = [gift_order(catalog, s, "late", stream=stream, creator="cre") for s in senders]
    outcomes = await ledger.debit_many(orders, live=live, now=clock())  # ... then the scripts
    assert all(isinstance(o, StreamNotLive) for o in outcomes), outcomes
    with pytest.raises(StreamNotLive):
        await ledger.spend(orders[0], live=True)
    spends = of_type(await outbox_entries(redis, keys), "spend")
    assert [s["client_id"] for s in spends] == ["before"]
    for s in senders[1:]:
        assert (await ledger.wallet(s)).coins == 70


async def test_the_end_counts_what_each_shard_debited_and_expires_its_gates(
    ledger: Ledger, redis: Redis, keys: Keys, catalog: Catalog
) -> None:
    streams = Streams(redis, keys, catalog)
    stream = (await streams.create("cre", "Cre", "count me")).stream
    other = (await streams.create("cre", "Cre", "another")).stream
    senders = [f"v{i}" for i in range(24)]
    for s in senders:
        await buy(ledger, s)
    for i, s in enumerate(senders):
        await ledger.spend(gift_order(catalog, s, "g", stream=stream, creator="cre"), live=True)
        if i % 3 == 0:
            await ledger.spend(gift_order(catalog, s, "h", stream=other, creator="cre"), live=True)
    assert await streams.debited(stream) == len(senders)
    await streams.end(stream, "cre")
    await streams.end(stream, "cre")  # a retried end changes no count
    assert await streams.debited(stream) == len(senders)
    assert await streams.debited(other) == len(senders) // 3
    ttls = [await redis.ttl(keys.stream_gate(shard, stream)) for shard in range(SHARDS)]
    assert all(t > 0 for t in ttls), ttls  # an ended stream's gates do not stay for ever
    # A badge has no stream and passes no gate.
    assert await redis.exists(keys.stream_gate(0, "")) == 0
