"""Fixtures of the persister tests: a fresh migrated database per test, a Ledger, consumers.

Every test gets its own PostgreSQL database (``CREATE DATABASE`` on the
session's server, migrated, dropped afterwards) and its own Redis key prefix,
so tests never see each other's events.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio
from redis.asyncio import Redis

from gifting.core.catalog import Catalog, load_catalog
from gifting.persister.consumer import OutboxConsumer
from gifting.store.keys import Keys
from gifting.store.ledger import Ledger
from gifting.store.streams import Streams


def with_database(url: str, database: str) -> str:
    """``url`` pointing at another database on the same server."""
    return urlunsplit(urlsplit(url)._replace(path="/" + database))


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    """The packaged default catalog (5,000 bps creator share)."""
    return load_catalog()


@pytest.fixture
def keys(key_prefix: str) -> Keys:
    """The test's own Redis key names."""
    return Keys(key_prefix)


@pytest.fixture
def ledger(redis: Redis, keys: Keys, catalog: Catalog) -> Ledger:
    """A Ledger on the session Redis and the test's keys."""
    return Ledger(redis, keys, catalog)


@pytest.fixture
def streams(redis: Redis, keys: Keys, catalog: Catalog) -> Streams:
    """Streams (rooms) on the session Redis and the test's keys."""
    return Streams(redis, keys, catalog)


@pytest_asyncio.fixture(loop_scope="session")
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    """An asyncpg pool on the test's database."""
    p = await asyncpg.create_pool(db_url, min_size=1, max_size=4)
    assert p is not None
    try:
        yield p
    finally:
        await p.close()


FAST: dict[str, Any] = {
    "block_ms": 50,
    "claim_idle_ms": 300,
    "maintenance_interval_s": 0.1,
    "backoff_initial_s": 0.02,
    "backoff_max_s": 0.3,
    "shutdown_timeout_s": 5.0,
}

ConsumerFactory = Callable[..., OutboxConsumer]


@pytest_asyncio.fixture(loop_scope="session")
async def make_consumer(
    redis: Redis, pool: asyncpg.Pool, keys: Keys, ledger: Ledger
) -> AsyncIterator[ConsumerFactory]:
    """Build consumers with fast timings (stopped at the end of the test)."""
    made: list[OutboxConsumer] = []

    def factory(**overrides: Any) -> OutboxConsumer:
        kw: dict[str, Any] = {"consumer": f"test-{secrets.token_hex(3)}", **FAST}
        kw.update(overrides)
        c = OutboxConsumer(
            kw.pop("redis", redis), kw.pop("pool", pool), keys, kw.pop("ledger", ledger), **kw
        )
        made.append(c)
        return c

    try:
        yield factory
    finally:
        for c in made:
            await c.stop()
