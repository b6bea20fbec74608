"""A spend's id outlives its Redis record: PostgreSQL answers a late retry.

The persister writes every debited spend's id to ``spend_ids`` and then
shortens its Redis records to a recent window. A retry after that window
(simulated here by deleting the records, as their expiry would) must replay
the original result from PostgreSQL and debit nothing; the same id with
another payload is a conflict. Contract §3.1, whatever the age of the retry.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from gifting.persister.audit import run_audit
from gifting.persister.progress import wait_caught_up
from tests.hub.conftest import HubServer, encode, recv_until, serve


def _answer(client_id: str) -> Any:
    return lambda m: m["op"] in ("ack", "error") and m.get("id") == client_id


async def _forget_in_redis(hub: HubServer, user: str, client_id: str, event: str) -> None:
    """Delete what the recent window would have expired: the result and both markers."""
    k = hub.state.keys
    for _ in range(100):  # the persister retires right after its XACK
        if await hub.state.redis.ttl(k.spend_result(user, client_id)) > 0:
            break
        await asyncio.sleep(0.05)
    stream = (await hub.state.redis.keys(f"{k.prefix}:{{r:*}}:emitted:{event}"))[0].decode()
    deleted = await hub.state.redis.delete(
        k.spend_result(user, client_id), k.credit_done("cleo", event), stream
    )
    assert deleted == 3


async def test_a_retry_after_the_redis_record_is_gone_replays_from_postgresql(
    redis_url: str, db_url: str, key_prefix: str
) -> None:
    async with serve(
        redis_url, db_url, key_prefix, with_persister=True, GIFTING_PERSISTER_IN_PROCESS=True,
        GIFTING_PERSISTER_CLAIM_IDLE_MS=300, GIFTING_IDEMPOTENCY_RECENT_S=60,
    ) as hub:  # fmt: skip
        stream, _ = await hub.stream("cleo")
        await hub.fund("rita")
        gift = {"op": "gift", "id": "late-1", "gift": "doughnut", "count": 2}
        async with hub.viewer(stream, "rita") as ws:
            await ws.send(encode(gift))
            first = await recv_until(ws, _answer("late-1"))
            assert first["op"] == "ack"
            assert await wait_caught_up(hub.state.redis, hub.state.keys, 20)
            await _forget_in_redis(hub, "rita", "late-1", first["event"])
            before = await hub.state.ledger.wallet("rita")

            for _ in range(2):  # the retry, long after: the original result, nothing debited
                await ws.send(encode(gift))
                again = await recv_until(ws, _answer("late-1"))
                assert again == first
            await ws.send(encode({**gift, "gift": "rose"}))  # the id reused for another gift
            conflict = await recv_until(ws, _answer("late-1"))
            assert conflict["op"] == "error" and conflict["code"] == "conflict"
            await ws.send(encode({**gift, "count": 3}))
            conflict = await recv_until(ws, _answer("late-1"))
            assert conflict["op"] == "error" and conflict["code"] == "conflict"

        assert await hub.state.ledger.wallet("rita") == before
        assert await wait_caught_up(hub.state.redis, hub.state.keys, 20)
        pool = await asyncpg.create_pool(db_url, min_size=1, max_size=2)
        assert pool is not None
        try:
            spends = await pool.fetchval(
                "SELECT count(*) FROM ledger_events WHERE type = 'spend' "
                "AND payload->>'client_id' = 'late-1'"
            )
            assert spends == 1
            report = await run_audit(pool, hub.state.redis, hub.state.keys, hub.state.catalog)
            assert report.ok, report.render()
        finally:
            await pool.close()
        # Shown once in the room, credited once.
        history = await hub.state.redis.xrange(hub.state.keys.room_history(stream))
        assert sum(first["event"].encode() in f[b"d"] for _, f in history) == 1
        price = hub.state.catalog.gifts["doughnut"].coins * 2
        assert (await hub.state.ledger.wallet("cleo")).received == price
