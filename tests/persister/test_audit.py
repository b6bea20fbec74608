"""The audit after a storm of concurrent money operations, and after deliberate corruption."""

from __future__ import annotations

import asyncpg
from redis.asyncio import Redis

from gifting.core.catalog import Catalog
from gifting.persister.audit import run_audit
from gifting.store.keys import Keys
from gifting.store.ledger import Ledger

from .conftest import ConsumerFactory
from .support import assert_exactly_once, cash_out_all, caught_up, outbox_events, storm


async def test_storm_then_audit_passes_and_catches_a_corrupted_balance(
    redis: Redis,
    pool: asyncpg.Pool,
    keys: Keys,
    ledger: Ledger,
    catalog: Catalog,
    make_consumer: ConsumerFactory,
) -> None:
    consumers = [make_consumer(batch_size=100) for _ in range(2)]
    for c in consumers:
        c.start()  # two persisters share the group, as two processes would
    traffic = await storm(ledger, catalog, redis, keys)
    assert len(traffic.events) > 2000  # thousands, whatever share was refused for funds
    await caught_up(redis, keys)
    creators = [f"cr{i}" for i in range(4)]
    assert await cash_out_all(ledger, catalog, creators, traffic, redis, keys) >= 4
    traffic.events |= set(await outbox_events(redis, keys))
    await caught_up(redis, keys)
    report = await assert_exactly_once(pool, redis, keys, catalog, traffic.expected())
    assert report.totals["coins refunded"] > 0
    assert report.totals["coins spent on badges"] > 0
    assert report.totals["diamonds paid out"] > 0
    assert "gifting audit: OK" in report.render()

    await redis.hincrby(keys.wallet("v7"), "coins", 1)
    report = await run_audit(pool, redis, keys, catalog)
    assert not report.ok
    assert [m.account for m in report.mismatches] == ["user:v7:coins"]
    assert report.mismatches[0].found == report.mismatches[0].expected + 1
    text = report.render()
    assert "FAILED" in text and "user:v7:coins" in text
    await redis.hincrby(keys.wallet("v7"), "coins", -1)

    # Drift inside PostgreSQL is found too: one posting edited out of balance.
    posting = await pool.fetchrow(
        "SELECT posting_id, event_id FROM postings WHERE account = 'user:v3:coins' LIMIT 1"
    )
    assert posting is not None
    await pool.execute(
        "UPDATE postings SET amount = amount + 5 WHERE posting_id = $1", posting["posting_id"]
    )
    report = await run_audit(pool, redis, keys, catalog)
    failed = {c.name for c in report.checks if not c.ok}
    assert "every event's postings sum to zero per currency" in failed
    assert any(posting["event_id"] in m.account for m in report.mismatches)
    assert "user:v3:coins" in {m.account for m in report.mismatches}
