"""A hub that stops (a deploy, a scale-in) drains its gift path first.

Spends already received are debited, acked and settled — credited to the
creator and shown in the room — before the loops stop; only new ones are
refused, with ``unavailable`` (the client retries elsewhere with its id).
"""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from gifting.core.catalog import load_catalog
from gifting.core.errors import Unavailable
from gifting.core.pricing import price_gift
from gifting.hub.spends import SpendPipeline
from gifting.store.keys import Keys
from gifting.store.ledger import Ledger, SpendOrder
from gifting.store.rooms import RoomLog
from gifting.store.streams import Streams


async def test_stop_settles_every_spend_already_received(redis: Redis, key_prefix: str) -> None:
    catalog = load_catalog()
    keys = Keys(key_prefix)
    ledger = Ledger(redis, keys, catalog)
    streams = Streams(redis, keys, catalog)
    rooms = RoomLog(redis, keys, catalog)
    stream = (await streams.create("cleo", "Cleo", "drain")).stream
    await ledger.purchase("drain-p", "dan", "coins_700", 999, "USD")
    pipeline = SpendPipeline(ledger, streams, rooms)
    pipeline.start()
    priced = price_gift(catalog, "rose", 1)
    futures = [
        pipeline.submit(SpendOrder("dan", "Dan", f"d-{i}", priced, stream, "cleo"))
        for i in range(200)
    ]
    await asyncio.sleep(0)  # the first batch is on its way
    await pipeline.stop()
    late = pipeline.submit(SpendOrder("dan", "Dan", "d-late", priced, stream, "cleo"))
    results = [f.result() for f in futures]  # every spend received was acked, none refused
    assert isinstance(late.exception(), Unavailable)
    events = [r.event for r in results]
    assert len(set(events)) == 200
    pipe = redis.pipeline(transaction=False)
    for e in events:
        pipe.exists(keys.credit_done("cleo", e))
        pipe.exists(keys.room_emitted(stream, e))
    assert all(await pipe.execute())  # credited and shown by the hub: nothing left to repair
    assert (await ledger.wallet("cleo")).received == 200
    await ledger.aclose()
    await rooms.aclose()
