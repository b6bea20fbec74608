"""A creator buying an effect or a highlight in their own stream, on real servers.

It shows in the room, the coins go to ``platform:revenue`` (never back to the
creator: no credit, no diamonds, not in the stream's coins received), and the
audit passes once the persister caught up. A gift to oneself is ``forbidden``
and moves nothing.
"""

from __future__ import annotations

import asyncpg

from gifting.core.accounts import PLATFORM_REVENUE
from gifting.persister.audit import run_audit
from gifting.persister.progress import wait_caught_up
from tests.hub.conftest import HubServer, recv, serve
from tests.hub.test_badges_on_events import request, room_events


async def _money(hub: HubServer, user: str, stream: str) -> tuple[object, ...]:
    w = await hub.state.ledger.wallet(user)
    totals = await hub.state.redis.hgetall(hub.state.keys.stream_totals(stream))
    top = await hub.state.redis.zrange(hub.state.keys.stream_top(stream), 0, -1)
    return w.coins, w.diamonds, w.received, w.earned, totals, top


async def test_a_creators_own_effect_and_highlight_show_and_the_platform_keeps_the_coins(
    redis_url: str, db_url: str, key_prefix: str
) -> None:
    async with serve(
        redis_url, db_url, key_prefix, with_persister=True, GIFTING_PERSISTER_IN_PROCESS=True,
        GIFTING_PERSISTER_CLAIM_IDLE_MS=300,
    ) as hub:  # fmt: skip
        catalog = hub.state.catalog
        stream, key = await hub.stream("cora")
        await hub.fund("cora")
        await hub.fund("vic")
        async with hub.overlay(stream, key) as ov, hub.viewer(stream, "cora") as cora:
            assert (await recv(ov))["op"] == "snapshot"
            before = await _money(hub, "cora", stream)
            # A gift to oneself: forbidden, nothing moved, nothing shown.
            refused = await request(cora, {"op": "gift", "id": "g1", "gift": "rose", "count": 1})
            assert refused["op"] == "error" and refused["code"] == "forbidden", refused
            assert "own stream" in refused["message"]
            assert await _money(hub, "cora", stream) == before
            effect = await request(cora, {"op": "effect", "id": "e1", "effect": "confetti"})
            pin = await request(
                cora, {"op": "comment", "id": "h1", "text": "welcome!", "highlight": "tier2"}
            )
            assert effect["op"] == pin["op"] == "ack", (effect, pin)
            # Retries are replays: nothing more debited.
            again = await request(cora, {"op": "effect", "id": "e1", "effect": "confetti"})
            assert again["event"] == effect["event"]
            shown = await room_events(ov, {"effect", "highlight"}, 2)
            # Someone else's effect in the same stream is credited as always.
            async with hub.viewer(stream, "vic") as vic:
                theirs = await request(vic, {"op": "effect", "id": "e1", "effect": "confetti"})
            assert theirs["op"] == "ack"
        assert [e["event"] for e in shown] == [effect["event"], pin["event"]]
        assert shown[1]["text"] == "welcome!" and shown[1]["sender"]["id"] == "cora"
        kept = catalog.effects["confetti"].coins + catalog.highlights["tier2"].coins
        paid = catalog.effects["confetti"].coins
        assert await wait_caught_up(hub.state.redis, hub.state.keys, 20)  # settled too
        cora_wallet = await hub.state.ledger.wallet("cora")
        assert cora_wallet.coins == before[0] - kept  # type: ignore[operator]
        # Credited only for vic's effect: never for her own spends.
        assert (cora_wallet.received, cora_wallet.diamonds) == (paid, paid // 2)
        totals = await hub.state.redis.hgetall(hub.state.keys.stream_totals(stream))
        assert int(totals[b"coins"]) == paid
        top = await hub.state.redis.zrange(hub.state.keys.stream_top(stream), 0, -1)
        assert top == [b"vic"]
        pool = await asyncpg.create_pool(db_url, min_size=1, max_size=2)
        assert pool is not None
        try:
            rows = await pool.fetch(
                "SELECT p.account, p.amount FROM postings p JOIN ledger_events e USING (event_id) "
                "WHERE e.type = 'spend' AND e.user_id = 'cora' AND p.amount > 0 ORDER BY 2"
            )
            assert sorted((r["account"], r["amount"]) for r in rows) == sorted(
                [
                    (PLATFORM_REVENUE, catalog.effects["confetti"].coins),
                    (PLATFORM_REVENUE, catalog.highlights["tier2"].coins),
                ]
            )
            credits = await pool.fetchval(
                "SELECT count(*) FROM ledger_events WHERE type = 'credit'"
            )
            assert credits == 1  # vic's effect only
            stream_coins = await pool.fetchval(
                "SELECT coins FROM stream_totals WHERE stream_id = $1", stream
            )
            assert stream_coins == paid
            report = await run_audit(pool, hub.state.redis, hub.state.keys, catalog)
            assert report.ok, report.render()
        finally:
            await pool.close()
