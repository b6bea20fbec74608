"""Persisters sharing the outbox shards by leases: on a single Redis and on a cluster.

Two processes' worth of :class:`ShardedPersister` split the shards, take a dead one's
shards after its lease, claim what it left pending, and write every event exactly once.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from redis.asyncio import Redis

from gifting.core.catalog import Catalog
from gifting.core.entries import SpendEntry
from gifting.persister.consumer import OnSpends, OutboxConsumer
from gifting.persister.shards import ShardedPersister, fair_share
from gifting.store.cluster import connect
from gifting.store.keys import Keys
from gifting.store.ledger import Ledger

from .conftest import FAST
from .support import assert_exactly_once, audits_under_traffic, caught_up, storm

pytestmark = pytest.mark.cluster

LEASE_MS = 1200
PersisterFactory = Callable[..., ShardedPersister]


def test_the_fair_share_leaves_no_shard_over() -> None:
    assert [fair_share(16, n) for n in (1, 2, 3, 5, 16, 40)] == [16, 8, 6, 4, 1, 1]
    assert fair_share(1, 0) == 1


@pytest_asyncio.fixture(loop_scope="session")
async def make_persister(
    redis_url: str, pool: asyncpg.Pool, keys: Keys, catalog: Catalog
) -> AsyncIterator[PersisterFactory]:
    """Persisters with a client of their own (as their processes would have)."""
    made: list[ShardedPersister] = []
    redis = connect(redis_url, max_connections=200)
    await redis.initialize()
    ledger = Ledger(redis, keys, catalog)

    def factory(hook: OnSpends | None = None, **kw: Any) -> ShardedPersister:
        def one_shard(stream: str, name: str) -> OutboxConsumer:
            return OutboxConsumer(redis, pool, keys, ledger, consumer=name, streams=[stream],
                                  batch_size=100, on_spends=hook, **FAST)  # fmt: skip

        p = ShardedPersister(
            redis, keys, one_shard, consumer=f"p-{secrets.token_hex(3)}", lease_ms=LEASE_MS, **kw
        )
        made.append(p)
        return p

    try:
        yield factory
    finally:
        for p in made:
            await p.stop()
        await ledger.aclose()
        await redis.aclose()


async def _until(check: Callable[[], bool], timeout: float = 15.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("not reached in time")


class Hang:
    """A hook that, once ``die()`` was called, holds every batch forever: a dead process
    with entries read and never acknowledged (cancelling a task inside redis-py's
    blocking read can be swallowed, so a real death is played this way)."""

    def __init__(self) -> None:
        self.dead = False
        self.gone = asyncio.Event()

    async def __call__(self, spends: list[SpendEntry], not_after: int) -> None:
        if self.dead:
            await self.gone.wait()

    def die(self, p: ShardedPersister) -> None:
        self.dead = True
        p._stopping.set()  # its lease loop ends without releasing or leaving: no renewals


async def test_two_persisters_split_the_shards_and_persist_everything_once(
    redis: Redis, pool: asyncpg.Pool, keys: Keys, ledger: Ledger, catalog: Catalog,
    make_persister: PersisterFactory,
) -> None:  # fmt: skip
    first, second = make_persister(), make_persister()
    first.start()
    await _until(lambda: len(first.owned) == keys.shards)
    second.start()  # a new process joins: the first gives up the half it no longer needs
    await _until(lambda: len(first.owned) == len(second.owned) == keys.shards // 2)
    assert set(first.owned).isdisjoint(second.owned)
    traffic = await storm(ledger, catalog, redis, keys, spends=1200)
    await caught_up(redis, keys)
    await assert_exactly_once(pool, redis, keys, catalog, traffic.expected())
    holders = {await redis.get(keys.persister_lease(s)) for s in range(keys.shards)}
    assert holders == {first.consumer.encode(), second.consumer.encode()}


async def test_a_dead_persisters_shards_and_pending_entries_are_taken_over(
    redis: Redis, pool: asyncpg.Pool, keys: Keys, ledger: Ledger, catalog: Catalog,
    make_persister: PersisterFactory,
) -> None:  # fmt: skip
    hang = Hang()
    survivor, victim = make_persister(), make_persister(hook=hang)
    survivor.start()
    victim.start()
    await _until(lambda: len(survivor.owned) == len(victim.owned) == keys.shards // 2)
    storming = asyncio.ensure_future(storm(ledger, catalog, redis, keys, spends=1200))
    await asyncio.sleep(0.3)
    hang.die(victim)  # mid-storm: its batches in flight stay read and unacknowledged
    traffic = await storming
    await _until(lambda: len(survivor.owned) == keys.shards, timeout=LEASE_MS / 1000 * 6)
    await caught_up(redis, keys)
    await assert_exactly_once(pool, redis, keys, catalog, traffic.expected())
    hang.gone.set()


async def test_a_pinned_persister_keeps_its_shards_and_the_others_share_the_rest(
    keys: Keys, make_persister: PersisterFactory
) -> None:
    pinned = make_persister(shards=[0, 1])
    shared = make_persister()
    pinned.start()
    await _until(lambda: pinned.owned == [0, 1])
    shared.start()
    await _until(lambda: len(shared.owned) == keys.shards - 2)
    assert set(shared.owned) == set(range(2, keys.shards))
    await pinned.stop()  # released at once: the other takes them at its next round
    await _until(lambda: len(shared.owned) == keys.shards, timeout=LEASE_MS / 1000 * 3)


async def test_the_audit_passes_mid_storm_with_two_sharded_persisters(
    redis: Redis, pool: asyncpg.Pool, keys: Keys, ledger: Ledger, catalog: Catalog,
    make_persister: PersisterFactory,
) -> None:  # fmt: skip
    """On a cluster too: the wallets, outboxes and leases live on three masters."""
    first, second = make_persister(), make_persister()
    first.start()
    second.start()
    reports = await audits_under_traffic(ledger, pool, redis, keys, catalog, overlapped=1)
    assert sum(moved for _, moved in reports) >= 1, "no audit overlapped the storm"
    for report, _ in reports:
        assert report.ok, report.render()
