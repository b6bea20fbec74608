"""A hub that died after the debit: the persister credits the creator and emits the event."""

from __future__ import annotations

import asyncio

from gifting.core.pricing import price_gift
from gifting.store.ledger import SpendOrder
from tests.hub.conftest import decode, recv, serve


async def test_persister_repairs_credit_and_room_event_of_an_unsettled_spend(
    redis_url: str, database_url: str, key_prefix: str
) -> None:
    async with serve(
        redis_url, database_url, key_prefix, with_persister=True,
        GIFTING_PERSISTER_IN_PROCESS=True, GIFTING_PERSISTER_CLAIM_IDLE_MS=200,
    ) as h:  # fmt: skip
        stream, key = await h.stream("rita")
        await h.fund("sam")
        async with h.overlay(stream, key) as ov:
            assert (await recv(ov))["op"] == "snapshot"
            # The debit happened (as in a hub that then crashed before its settle step).
            priced = price_gift(h.state.catalog, "doughnut", 2)
            order = SpendOrder("sam", "Sam", "lost-1", priced, stream, "rita")
            result = await h.state.ledger.spend(order, live=True)
            async with asyncio.timeout(10):
                while True:
                    msg = decode(await ov.recv())
                    if msg.get("kind") == "gift":
                        break
            assert msg["event"] == result.event
            assert msg["sender"]["id"] == "sam"
            assert msg["count"] == 2
        # The creator was credited once, and the ledger in PostgreSQL has both events.
        rita = await h.state.ledger.wallet("rita")
        assert rita.received == priced.coins
        assert rita.diamonds == priced.coins // 2
        pool = h.state.pg_pool
        assert pool is not None
        async with asyncio.timeout(10):
            while True:
                n = await pool.fetchval(
                    "SELECT count(*) FROM ledger_events WHERE event_id = ANY($1::text[])",
                    [result.event, "c" + result.event[1:]],
                )
                if n == 2:
                    break
                await asyncio.sleep(0.1)
