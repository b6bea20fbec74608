"""A master of the cluster dies, its replica takes over: what acked money is lost, and the audit.

Redis replicates asynchronously: a master acknowledges a script before its
replica has it. The test makes the window visible the way a slow replica or
a congested link does — the replica is paused (SIGSTOP) for a second while
spends keep being acknowledged by the master, whose backlog for the replica
overflows (its output buffer limit is set low) and drops the link — then
SIGKILLs the master and lets the replica (resumed) be promoted. It counts the
acknowledged spends the new master does not know (their spend-result hash
is gone) and of those, the ones the persister had already written to
PostgreSQL: the audit must find each of them (the Redis wallet holds coins
the ledger says were spent). With ``GIFTING_REDIS_WAIT_REPLICAS=1`` (WAIT
after every batch, and before the persister writes a batch) nothing
acknowledged may be lost, nor anything persisted that Redis forgot. The
killed node then comes back as the new master's replica (WAIT 1 stalls a
shard whose master has no replica left).

Behind the ``soak`` marker (a private 6-node cluster each, ~30 s in all):
``make soak`` or ``pytest -m soak tests/persister/test_failover.py -s``
(the figures are printed).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gifting.core.catalog import Catalog, load_catalog
from gifting.core.pricing import price_gift
from gifting.embedded.redis_cluster import EmbeddedRedisCluster
from gifting.persister.audit import run_audit
from gifting.persister.consumer import OutboxConsumer
from gifting.persister.progress import wait_caught_up
from gifting.persister.shards import ShardedPersister
from gifting.store.cluster import connect
from gifting.store.keys import Keys
from gifting.store.ledger import Ledger, SpendOrder, SpendResult
from gifting.store.scripts import ReplicaWait

from .conftest import FAST

pytestmark = pytest.mark.soak

#: How long the replica is frozen: longer than the kernel's socket buffers take to fill.
PAUSE_S = 4.0


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[EmbeddedRedisCluster]:
    c = EmbeddedRedisCluster(tmp_path, masters=3, replicas=1, appendfsync="everysec")
    c.start()
    try:
        yield c
    finally:
        c.stop()


@dataclass
class Acked:
    spends: list[tuple[SpendOrder, SpendResult]] = field(default_factory=list)
    refused: int = 0


async def _spend_until(
    ledger: Ledger, catalog: Catalog, users: list[str], stop: asyncio.Event, acked: Acked
) -> None:
    rng = random.Random(1)
    priced = price_gift(catalog, "rose", 1)
    n = 0
    while not stop.is_set():
        orders = []
        for _ in range(64):
            n += 1
            orders.append(SpendOrder(rng.choice(users), "Fan", f"m{n}", priced, "s1", "star"))
        try:
            results = await ledger.debit_many(
                orders, live={"s1": True}, now=int(time.time() * 1000)
            )
        except Exception:
            acked.refused += len(orders)
            await asyncio.sleep(0.02)
            continue
        for order, result in zip(orders, results, strict=True):
            if isinstance(result, SpendResult):
                acked.spends.append((order, result))
            else:
                acked.refused += 1
        if all(not isinstance(r, SpendResult) for r in results):
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("wait_replicas", [0, 1], ids=["no-wait", "wait-1"])
async def test_a_master_killed_after_its_replica_fell_behind(
    cluster: EmbeddedRedisCluster, db_url: str, wait_replicas: int
) -> None:
    catalog = load_catalog()
    keys = Keys("fo")
    redis: Any = connect(cluster.url, max_connections=200)
    await redis.initialize()
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=8)
    assert pool is not None
    ledger = Ledger(redis, keys, catalog, replica_wait=ReplicaWait(wait_replicas, 200))
    users = [f"u{i}" for i in range(300)]
    package = catalog.packages["coins_7000"]
    for user in users:
        await ledger.purchase(f"p-{user}", user, package.id, package.price.amount, "USD")

    def one_shard(stream: str, name: str) -> OutboxConsumer:
        return OutboxConsumer(redis, pool, keys, ledger, consumer=name, streams=[stream],
                              batch_size=200, **FAST)  # fmt: skip

    persister = ShardedPersister(redis, keys, one_shard, consumer="fo-1", lease_ms=2000)
    persister.start()
    victim = cluster.master_of(keys.outbox(0))
    replica = cluster.replica_of(victim)
    stop, acked = asyncio.Event(), Acked()
    spending = asyncio.ensure_future(_spend_until(ledger, catalog, users, stop, acked))
    try:
        await asyncio.sleep(1.0)
        assert replica.pid is not None
        master = victim.client()
        # Small, so that half a second of backlog breaks the link (the default, 256 MB,
        # takes longer to fill; a slow network does the same in production).
        master.config_set("client-output-buffer-limit", "replica 256kb 128kb 1")
        master.close()
        os.kill(replica.pid, signal.SIGSTOP)  # the replica falls behind...
        await asyncio.sleep(PAUSE_S)  # ...while the master acknowledges
        victim.kill()  # SIGKILL: its replication buffer dies with it
        os.kill(replica.pid, signal.SIGCONT)
        started = time.monotonic()
        await asyncio.to_thread(cluster.wait_promoted, keys.outbox(0), 30.0)
        failover_s = time.monotonic() - started
        await asyncio.sleep(1.0)
        # Back as the new master's replica (WAIT 1 needs one to make progress again).
        await asyncio.to_thread(victim.restart)
        await asyncio.to_thread(cluster.wait_ok, 30.0)
    finally:
        stop.set()
        await spending
    assert await wait_caught_up(redis, keys, 60.0), "the persister did not catch up"
    await persister.stop()

    forgotten = []
    for order, result in acked.spends:
        if not await redis.exists(keys.spend_result(order.sender, order.client_id)):
            forgotten.append(result.event)
    in_ledger = {
        r["event_id"]
        for r in await pool.fetch(
            "SELECT event_id FROM ledger_events WHERE event_id = ANY($1::text[])", forgotten
        )
    }
    report = await run_audit(pool, redis, keys, catalog)
    print(
        f"\nWAIT {wait_replicas}: {len(acked.spends)} spends acked, {acked.refused} refused or"
        f" unavailable; failover {failover_s:.1f}s; acked but lost by Redis: {len(forgotten)}"
        f" ({len(in_ledger)} already in PostgreSQL); audit "
        f"{'OK' if report.ok else f'FAILED ({len(report.mismatches)} mismatches)'}"
    )
    print("\n".join(m.render() for m in report.mismatches[:3]))
    if wait_replicas:
        assert forgotten == []
        assert report.ok, report.render()  # nor was anything persisted that Redis forgot
    if in_ledger:
        # Redis gave the coins back (the debit is gone), the ledger says they were spent.
        assert not report.ok
        mismatched = {m.account for m in report.mismatches}
        senders = {o.sender for o, r in acked.spends if r.event in in_ledger}
        assert {f"user:{s}:coins" for s in senders} <= mismatched
    await ledger.aclose()
    await pool.close()
    await redis.aclose()
