"""``gifting audit`` while traffic flows: consistent at each wallet's outbox position.

The audit reads every wallet with the outbox id of the last event that changed
it (``pos``), waits for the persister to pass those ids, and compares each
wallet with the ledger up to its own ``pos``. These tests run it in the middle
of a storm of purchases, spends (half credited by the "hub", half left to the
persister's repair), refunds and badges, with two persisters: it must pass
every time, find a wallet corrupted mid-storm, find events the ledger holds
that Redis never applied, and say when the persister is too far behind.
"""

from __future__ import annotations

import asyncio

import asyncpg
from redis.asyncio import Redis

from gifting.core.catalog import Catalog
from gifting.core.pricing import price_gift
from gifting.persister.audit import run_audit
from gifting.persister.progress import last_ids
from gifting.store.keys import Keys
from gifting.store.ledger import Ledger, SpendOrder

from .conftest import ConsumerFactory
from .support import audits_under_traffic, caught_up, storm_until

WALLETS_CHECK = "Redis wallets = the ledger at each wallet's outbox position"
REACHED_CHECK = "the persister reached every wallet's outbox position"


async def test_the_audit_passes_while_a_storm_goes_on(
    redis: Redis,
    pool: asyncpg.Pool,
    keys: Keys,
    ledger: Ledger,
    catalog: Catalog,
    make_consumer: ConsumerFactory,
) -> None:
    for c in [make_consumer(batch_size=50) for _ in range(2)]:
        c.start()
    reports = await audits_under_traffic(ledger, pool, redis, keys, catalog, overlapped=3)
    for report, _ in reports:
        assert report.ok, report.render()
    # The pairs of a spend and its credit were caught half-persisted at least once.
    assert any("persisted after the snapshot" in n for r, _ in reports for n in r.notes)
    await caught_up(redis, keys)
    final = await run_audit(pool, redis, keys, catalog)
    assert final.ok, final.render()
    assert final.totals["coins spent"] > 0


async def test_a_wallet_corrupted_mid_storm_is_found_while_the_storm_goes_on(
    redis: Redis,
    pool: asyncpg.Pool,
    keys: Keys,
    ledger: Ledger,
    catalog: Catalog,
    make_consumer: ConsumerFactory,
) -> None:
    make_consumer(batch_size=50).start()
    stop = asyncio.Event()
    traffic = asyncio.create_task(storm_until(stop, ledger, catalog, redis, keys, seed=12))
    for _ in range(500):  # the storm's purchases come first
        if await redis.exists(keys.wallet("v3")):
            break
        await asyncio.sleep(0.01)
    await redis.hincrby(keys.wallet("v3"), "coins", 5)  # coins no event explains
    before = await last_ids(redis, keys.outboxes())
    report = await run_audit(pool, redis, keys, catalog, catch_up_s=20)
    moving = await last_ids(redis, keys.outboxes()) != before and not traffic.done()
    stop.set()
    await traffic
    assert moving, "no traffic during the audit"
    assert not report.ok
    found = report.check(WALLETS_CHECK).mismatches
    assert [(m.account, m.found - m.expected) for m in found] == [("user:v3:coins", 5)]
    assert [c.name for c in report.checks if not c.ok] == [WALLETS_CHECK]


async def test_events_the_ledger_holds_and_redis_never_applied_are_found(
    redis: Redis,
    pool: asyncpg.Pool,
    keys: Keys,
    ledger: Ledger,
    catalog: Catalog,
    make_consumer: ConsumerFactory,
) -> None:
    make_consumer().start()
    await ledger.purchase("p-lost-1", "lena", "coins_7000", 9999, "USD")
    await caught_up(redis, keys)
    before = await redis.hgetall(keys.wallet("lena"))
    order = SpendOrder("lena", "Lena", "m-lost", price_gift(catalog, "rose", 3), "s-x", "cx")
    await ledger.spend(order, live=True)
    await caught_up(redis, keys)
    # A failover that lost the spend after the persister wrote it: Redis is back at
    # its state before the spend, wallet position included.
    await redis.hset(keys.wallet("lena"), mapping=before)
    report = await run_audit(pool, redis, keys, catalog)
    assert not report.ok
    found = report.check(WALLETS_CHECK).mismatches
    assert [(m.account, m.found - m.expected) for m in found] == [("user:lena:coins", 3)]
    assert "never applied" in found[0].note

    # A wallet gone entirely is found too, field by field.
    await redis.delete(keys.wallet("lena"))
    report = await run_audit(pool, redis, keys, catalog)
    found = report.check(WALLETS_CHECK).mismatches
    assert [(m.account, m.expected) for m in found if m.expected] == [("user:lena:coins", 6997)]
    assert all(m.note == "no Redis wallet" for m in found)


async def test_a_persister_too_far_behind_is_reported_not_taken_for_drift(
    redis: Redis,
    pool: asyncpg.Pool,
    keys: Keys,
    ledger: Ledger,
    catalog: Catalog,
) -> None:
    await ledger.purchase("p-behind-1", "omar", "coins_7000", 9999, "USD")  # no persister runs
    report = await run_audit(pool, redis, keys, catalog, catch_up_s=0.3)
    assert not report.ok
    assert [c.name for c in report.checks if not c.ok] == [REACHED_CHECK]
    assert "not compared" in report.check(REACHED_CHECK).mismatches[0].note
