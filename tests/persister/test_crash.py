"""Crashes: the persister killed mid-batch, PostgreSQL down, Redis restarted from its AOF.

Each test ends with the same proof: every acknowledged event is in
PostgreSQL, and the audit passes (Redis balances equal the ledger's, every
aggregate equals the postings), so nothing was lost and nothing doubled.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from redis.exceptions import RedisError

from gifting.core.catalog import Catalog
from gifting.embedded import EmbeddedPostgres, EmbeddedRedis
from gifting.persister.progress import GROUP, outbox_progress
from gifting.store.keys import Keys
from gifting.store.ledger import Ledger
from gifting.store.streams import Streams
from tests.conftest import create_database, drop_database

from .conftest import ConsumerFactory
from .support import Traffic, assert_exactly_once, caught_up, outbox_events, spend_gift

SCRIPT = Path(__file__).with_name("slow_persister.py")
ROOT = Path(__file__).resolve().parents[2]


async def _fund(ledger: Ledger, users: list[str], package: str = "coins_17500") -> None:
    await asyncio.gather(*(ledger.purchase(f"p-{u}", u, package, 24999, "USD") for u in users))


async def _gifts(
    ledger: Ledger,
    catalog: Catalog,
    traffic: Traffic,
    senders: list[str],
    rooms: dict[str, str],
    n: int,
    *,
    tasks: int = 16,
    hub_credit_every: int = 0,
    tolerate_outage: bool = False,
) -> int:
    """``n`` gifts from concurrent tasks; returns how many had an unknown outcome."""
    unknown = 0
    todo = list(range(n))

    async def worker() -> None:
        nonlocal unknown
        while todo:
            i = todo.pop()
            creator = list(rooms)[i % len(rooms)]
            try:
                await spend_gift(
                    ledger,
                    catalog,
                    traffic,
                    senders[i % len(senders)],
                    creator,
                    rooms[creator],
                    "rosa",
                    1 + i % 3,
                    hub_credit=bool(hub_credit_every) and i % hub_credit_every == 0,
                )
            except (RedisError, OSError):
                if not tolerate_outage:
                    raise
                unknown += 1
                await asyncio.sleep(0.02)

    await asyncio.gather(*(worker() for _ in range(tasks)))
    return unknown


async def _unacked(redis: Redis, keys: Keys) -> int:
    return sum(p.pending + p.undelivered for p in await outbox_progress(redis, keys))


async def _count(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT COUNT(*) FROM ledger_events"))


async def test_persister_killed_mid_batch_loses_and_doubles_nothing(
    redis_url: str,
    redis: Redis,
    db_url: str,
    pool: asyncpg.Pool,
    keys: Keys,
    ledger: Ledger,
    streams: Streams,
    catalog: Catalog,
) -> None:
    senders = [f"v{i}" for i in range(12)]
    await _fund(ledger, senders)
    rooms = {c: (await streams.create(c, c.title(), "live")).stream for c in ("ann", "ben")}
    traffic = Traffic()
    await _gifts(ledger, catalog, traffic, senders, rooms, 900)
    traffic.events |= set(await outbox_events(redis, keys))
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "DATABASE_URL": db_url,
        "GIFTING_KEY_PREFIX": keys.prefix,
        "GIFTING_PERSISTER_BATCH": "20",
        "GIFTING_PERSISTER_CLAIM_IDLE_MS": "300",
        "SLOW_HOOK_S": "0.001",
        "SLOW_ACK_S": "0.03",
    }
    rng = random.Random(3)
    interrupted = 0

    def spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, str(SCRIPT)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    for _ in range(4):
        before = await _count(pool)
        proc = spawn()
        try:
            for _ in range(400):  # until it is visibly writing
                if await _count(pool) > before:
                    break
                await asyncio.sleep(0.025)
            await asyncio.sleep(rng.uniform(0.02, 0.25))
        finally:
            proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(proc.wait)
        summary = [await redis.xpending(s, GROUP) for s in keys.outboxes()]
        interrupted += sum(int(s["pending"]) > 0 for s in summary)
    assert interrupted > 0, "no kill landed while a batch was in flight"

    proc = spawn()
    try:
        await caught_up(redis, keys, timeout=40)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 20)
        assert proc.stderr is not None
        errors = proc.stderr.read().decode()
    assert code == 0, errors
    await assert_exactly_once(pool, redis, keys, catalog, traffic.expected())


async def test_postgres_down_for_seconds_then_caught_up(
    private_postgres: EmbeddedPostgres,
    redis: Redis,
    keys: Keys,
    ledger: Ledger,
    streams: Streams,
    catalog: Catalog,
    make_consumer: ConsumerFactory,
) -> None:
    url = await create_database(private_postgres.admin_url())
    own_pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    assert own_pool is not None
    try:
        senders = [f"v{i}" for i in range(6)]
        await _fund(ledger, senders)
        rooms = {"cat": (await streams.create("cat", "Cat", "live")).stream}
        traffic = Traffic()
        consumer = make_consumer(pool=own_pool)
        consumer.start()
        await _gifts(ledger, catalog, traffic, senders, rooms, 100, hub_credit_every=2)
        await caught_up(redis, keys)

        await asyncio.to_thread(private_postgres.kill)
        retries = (
            REGISTRY.get_sample_value("gifting_persister_retries_total", {"reason": "postgres"})
            or 0.0
        )
        await _gifts(ledger, catalog, traffic, senders, rooms, 300, hub_credit_every=2)
        await asyncio.sleep(3.0)
        assert await _unacked(redis, keys) > 0  # nothing acknowledged while it is down
        # Maintenance keeps running during the outage: the lag is visible.
        assert (REGISTRY.get_sample_value("gifting_persister_lag_entries") or 0) > 0
        assert (REGISTRY.get_sample_value("gifting_persister_lag_seconds") or 0) > 1.0
        assert (
            REGISTRY.get_sample_value("gifting_persister_retries_total", {"reason": "postgres"})
            or 0.0
        ) > retries
        await asyncio.to_thread(private_postgres.restart)

        await caught_up(redis, keys, timeout=30)
        await consumer.maintain()
        assert REGISTRY.get_sample_value("gifting_persister_lag_entries") == 0
        assert REGISTRY.get_sample_value("gifting_persister_lag_seconds") == 0
        traffic.events |= set(await outbox_events(redis, keys))
        await assert_exactly_once(own_pool, redis, keys, catalog, traffic.expected())
        await consumer.stop()
    finally:
        await own_pool.close()
        await drop_database(url)


async def test_redis_restarted_from_its_aof_keeps_every_acked_spend(
    private_redis: EmbeddedRedis,
    pool: asyncpg.Pool,
    key_prefix: str,
    catalog: Catalog,
    make_consumer: ConsumerFactory,
) -> None:
    assert private_redis.appendfsync == "always"
    client = Redis.from_url(private_redis.url)
    keys = Keys(key_prefix)
    ledger = Ledger(client, keys, catalog)
    streams = Streams(client, keys, catalog)
    try:
        senders = [f"v{i}" for i in range(8)]
        await _fund(ledger, senders)
        rooms = {"dan": (await streams.create("dan", "Dan", "live")).stream}
        traffic = Traffic()
        consumer = make_consumer(redis=client, ledger=ledger)
        consumer.start()

        async def crash_midway() -> None:
            await asyncio.sleep(0.3)
            await asyncio.to_thread(private_redis.kill)
            await asyncio.sleep(0.5)
            await asyncio.to_thread(private_redis.restart)

        results = await asyncio.gather(
            _gifts(
                ledger,
                catalog,
                traffic,
                senders,
                rooms,
                1500,
                hub_credit_every=3,
                tolerate_outage=True,
            ),
            crash_midway(),
        )
        assert results[0] > 0, "the crash did not land during the traffic"
        await caught_up(client, keys, timeout=30)
        acked_spends = traffic.spends_to_creators
        # Every spend the ledger acknowledged before the kill is still in Redis...
        pipe = client.pipeline(transaction=False)
        for e in acked_spends:
            pipe.exists(keys.credit_done("dan", e))
        assert all(await pipe.execute())
        # ...and in PostgreSQL exactly once, with Redis and the ledger agreeing.
        await assert_exactly_once(pool, client, keys, catalog, traffic.expected())
        await consumer.stop()
    finally:
        await client.aclose()
