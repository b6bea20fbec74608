"""A cancelled cash-out is persisted as balanced postings (held -> diamonds) and audits clean."""

from __future__ import annotations

import asyncpg
import pytest
from redis.asyncio import Redis

from gifting.core.catalog import Catalog
from gifting.core.errors import Conflict
from gifting.persister.audit import run_audit
from gifting.store.keys import Keys
from gifting.store.ledger import Ledger
from gifting.store.streams import Streams

from .conftest import ConsumerFactory
from .support import caught_up
from .test_cashout_cap import _earn


async def test_cancels_persist_balanced_and_the_audit_passes(
    redis: Redis,
    pool: asyncpg.Pool,
    keys: Keys,
    ledger: Ledger,
    streams: Streams,
    catalog: Catalog,
    make_consumer: ConsumerFactory,
) -> None:
    minimum = catalog.cashout_min_diamonds
    await _earn(ledger, streams, catalog, 4 * minimum)
    consumer = make_consumer()
    consumer.start()
    cancelled = await ledger.request_cashout("cre", minimum, "c-1")
    paid = await ledger.request_cashout("cre", minimum, "c-2")
    failed = await ledger.request_cashout("cre", minimum, "c-3")
    held = await ledger.request_cashout("cre", minimum, "c-4")
    first, done = await ledger.cancel_cashout("cre", cancelled.cashout)
    assert done and first.status == "cancelled"
    assert await ledger.cancel_cashout("cre", cancelled.cashout) == (first, False)
    await ledger.settle_cashout(paid.cashout, "paid")
    await ledger.settle_cashout(failed.cashout, "failed")
    with pytest.raises(Conflict):
        await ledger.cancel_cashout("cre", paid.cashout)
    with pytest.raises(Conflict):
        await ledger.settle_cashout(cancelled.cashout, "paid")  # too late: it was cancelled

    await caught_up(redis, keys)
    report = await run_audit(pool, redis, keys, catalog)
    assert report.ok, report.render()
    statuses = dict(await pool.fetch("SELECT cashout_id, status FROM cashouts"))
    assert statuses == {
        cancelled.cashout: "cancelled", paid.cashout: "paid", failed.cashout: "failed",
        held.cashout: "held",
    }  # fmt: skip
    rows = await pool.fetch(
        """SELECT p.account, p.currency, p.amount FROM postings p
           JOIN ledger_events e USING (event_id)
           WHERE e.type = 'cashout_cancelled' ORDER BY p.amount""",
    )
    assert [tuple(r) for r in rows] == [
        ("user:cre:held", "diamonds", -minimum), ("user:cre:diamonds", "diamonds", minimum),
    ]  # fmt: skip
