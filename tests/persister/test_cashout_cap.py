"""A failed payout gives back the diamonds AND the day's cash-out cap it used.

The cap counts diamonds sent out in one UTC day; a payout the provider
refused sent nothing out, so a creator who hit the cap with it may cash out
again the same day. Conservation still holds end to end (the audit).
"""

from __future__ import annotations

import asyncpg
import pytest
from redis.asyncio import Redis

from gifting.core.catalog import Catalog
from gifting.core.errors import BudgetExceeded
from gifting.core.pricing import price_gift
from gifting.persister.audit import run_audit
from gifting.store.keys import Keys
from gifting.store.ledger import Ledger, SpendOrder
from gifting.store.streams import Streams

from .conftest import ConsumerFactory
from .support import caught_up


async def _earn(ledger: Ledger, streams: Streams, catalog: Catalog, diamonds: int) -> None:
    """Real gifts (so the audit sees every credit's spend) until "cre" earned ``diamonds``."""
    stream = (await streams.create("cre", "Cre", "payday")).stream
    universe = catalog.gifts["universe"].coins
    gifts = -(-2 * diamonds // universe)
    for i in range(-(-gifts * universe // 17_500)):
        await ledger.purchase(f"pay-{i}", "fan", "coins_17500", 24999, "USD")
    for i in range(gifts):
        order = SpendOrder("fan", "Fan", f"u{i}", price_gift(catalog, "universe"), stream, "cre")
        result = await ledger.spend(order, live=True)
        await ledger.credit_creator(
            spend_event=result.event, creator="cre", coins=universe, stream=stream, sender="fan"
        )


async def test_failed_payout_releases_the_days_cap(
    redis: Redis,
    pool: asyncpg.Pool,
    keys: Keys,
    ledger: Ledger,
    streams: Streams,
    catalog: Catalog,
    make_consumer: ConsumerFactory,
) -> None:
    cap = catalog.cashout_daily_cap_diamonds
    minimum = catalog.cashout_min_diamonds
    await _earn(ledger, streams, catalog, cap + 2 * minimum)
    consumer = make_consumer()
    consumer.start()

    held = await ledger.request_cashout("cre", cap, "at-cap")
    with pytest.raises(BudgetExceeded):  # the cap is reached
        await ledger.request_cashout("cre", minimum, "over-cap")
    failed = await ledger.settle_cashout(held.cashout, "failed")
    assert failed.status == "failed"
    # The failed payout sent nothing out: the same day, the creator may cash out again.
    again = await ledger.request_cashout("cre", minimum, "after-failure")
    assert again.status == "held"
    # ... up to the cap, not beyond it.
    with pytest.raises(BudgetExceeded):
        await ledger.request_cashout("cre", cap - minimum + 2, "past-cap")
    await ledger.request_cashout("cre", cap - minimum, "to-cap")
    # A replayed failure gives nothing back twice.
    assert await ledger.settle_cashout(held.cashout, "failed") == failed
    with pytest.raises(BudgetExceeded):
        await ledger.request_cashout("cre", minimum, "still-capped")

    await caught_up(redis, keys)
    report = await run_audit(pool, redis, keys, catalog)
    assert report.ok, report.render()
    statuses = dict(await pool.fetch("SELECT cashout_id, status FROM cashouts"))
    assert statuses[held.cashout] == "failed"
    assert statuses[again.cashout] == "held"
