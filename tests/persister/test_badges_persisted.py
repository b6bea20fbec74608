"""Badges owned are durable: one ``badges_owned`` row per badge spend, checked by the audit.

Bought through ``POST /v1/badges`` on a running server with its persister.
"""

from __future__ import annotations

import asyncpg
from redis.asyncio import Redis

from gifting.core.catalog import Catalog
from gifting.core.pricing import price_badge
from gifting.persister.audit import run_audit
from gifting.persister.progress import wait_caught_up
from gifting.store.keys import Keys
from gifting.store.ledger import Ledger, SpendOrder
from tests.hub.conftest import serve
from tests.hub.test_badges_on_events import buy_badge

from .conftest import ConsumerFactory


async def test_badges_are_persisted_once_each_and_the_audit_counts_them(
    redis_url: str, db_url: str, key_prefix: str
) -> None:
    async with serve(
        redis_url, db_url, key_prefix, with_persister=True, GIFTING_PERSISTER_IN_PROCESS=True,
        GIFTING_PERSISTER_CLAIM_IDLE_MS=300,
    ) as hub:  # fmt: skip
        state = hub.state
        await hub.fund("ada", "coins_3500")
        first = await buy_badge(hub, "ada", "b-1", "vip")
        for _ in range(3):  # retries: the same purchase, nothing more debited or owned
            assert await buy_badge(hub, "ada", "b-1", "vip") == first
        await buy_badge(hub, "ada", "b-2", "supporter")
        assert await wait_caught_up(state.redis, state.keys, 20)
        # ... and a retry once the persister holds it (answered from PostgreSQL or Redis)
        assert await buy_badge(hub, "ada", "b-1", "vip") == first
        assert await wait_caught_up(state.redis, state.keys, 20)
        assert (await state.ledger.wallet("ada")).coins == 3500 - 2000 - 100

        pool = await asyncpg.create_pool(db_url, min_size=1, max_size=2)
        assert pool is not None
        try:
            rows = await pool.fetch(
                "SELECT user_id, badge, event_id FROM badges_owned ORDER BY ts, badge"
            )
            assert [(r["user_id"], r["badge"]) for r in rows] == [
                ("ada", "vip"),
                ("ada", "supporter"),
            ]
            assert rows[0]["event_id"] == first["event"]
            report = await run_audit(pool, state.redis, state.keys, state.catalog)
            assert report.ok, report.render()
            assert report.totals["badges owned"] == 2

            # The check can fail: a lost row is named by its event.
            await pool.execute("DELETE FROM badges_owned WHERE event_id = $1", first["event"])
            broken = await run_audit(pool, state.redis, state.keys, state.catalog)
            assert not broken.ok
            check = broken.check("badges owned = badge spends (one row each)")
            assert {m.account for m in check.mismatches} == {
                "badges_owned (rows)",
                f"badges_owned:{first['event']}",
            }
        finally:
            await pool.close()
        # The wallet shows the dearest and every badge owned.
        wallet = await state.ledger.badges_owned("ada")
        assert wallet == {"vip", "supporter"}


async def test_a_badge_debited_but_never_granted_is_granted_by_the_persister(
    redis: Redis, keys: Keys, ledger: Ledger, catalog: Catalog, make_consumer: ConsumerFactory
) -> None:
    """The process that debited a badge died before badge.lua ran: paid for, so shown."""
    await ledger.purchase("p-badge-crash", "bea", "coins_3500", 4999, "USD")
    order = SpendOrder("bea", "Bea", "b-crash", price_badge(catalog, "vip"))
    await ledger.spend(order, live=True)  # ... and nothing more: the grant never ran
    assert await ledger.badge_of("bea") is None
    make_consumer().start()
    assert await wait_caught_up(redis, keys, 20)
    assert await ledger.badge_of("bea") == "vip"
    assert await ledger.badges_owned("bea") == {"vip"}
