"""Shared fixtures: real servers once per session, a unique key prefix per test.

With ``REDIS_URL`` / ``DATABASE_URL`` set, tests use those servers; otherwise a
private Redis and PostgreSQL (:mod:`gifting.embedded`) start under a temporary
folder, each only when a test first needs it. Tests never pollute a shared
server: every test's Redis keys start with its own ``key_prefix`` (deleted
afterwards) and the session works in a fresh ``gifting_test_<hex>`` database
(dropped afterwards).

Crash tests get servers of their own (``private_redis``, ``private_postgres``)
that they may ``kill()`` and ``restart()``.

Tests marked ``cluster`` run twice: on the single Redis and on a Redis Cluster
(``redis_url`` is parametrized by ``redis_backend``): ``REDIS_CLUSTER_URL``, or
a private cluster of three masters started for the session on first use
(:class:`~gifting.embedded.redis_cluster.EmbeddedRedisCluster`).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio
from redis.asyncio import Redis

from gifting.embedded import EmbeddedPostgres, EmbeddedRedis
from gifting.embedded.redis_cluster import EmbeddedRedisCluster
from gifting.persister.schema import apply_migrations
from gifting.store.cluster import connect

BACKENDS = ("single", "cluster")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked ``cluster`` that use Redis run on each backend."""
    if (
        metafunc.definition.get_closest_marker("cluster") is not None
        and "redis_url" in metafunc.fixturenames
    ):
        metafunc.parametrize("redis_backend", BACKENDS, indirect=True, scope="session")


@dataclass(frozen=True)
class Servers:
    """The servers of this test session (external or embedded)."""

    redis_url: str
    database_url: str  # the server's own database; tests use the `database_url` fixture


@pytest.fixture(scope="session")
def _servers_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("servers")


@pytest.fixture(scope="session")
def _server_redis_url(_servers_dir: Path) -> Iterator[str]:
    """REDIS_URL, or the URL of a private redis-server started for the session."""
    if url := os.environ.get("REDIS_URL"):
        yield url
        return
    server = EmbeddedRedis(_servers_dir)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def _server_database_url(_servers_dir: Path) -> Iterator[str]:
    """DATABASE_URL, or the URL of a private PostgreSQL started for the session."""
    if url := os.environ.get("DATABASE_URL"):
        yield url
        return
    server = EmbeddedPostgres(_servers_dir)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def servers(_server_redis_url: str, _server_database_url: str) -> Servers:
    """Both servers of the session (starts both if embedded)."""
    return Servers(redis_url=_server_redis_url, database_url=_server_database_url)


@pytest.fixture(scope="session")
def _cluster_redis_url(_servers_dir: Path) -> Iterator[str]:
    """REDIS_CLUSTER_URL, or the URL of a private 3-master cluster started for the session."""
    if url := os.environ.get("REDIS_CLUSTER_URL"):
        yield url
        return
    cluster = EmbeddedRedisCluster(_servers_dir, masters=3)
    cluster.start()
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def redis_backend(request: pytest.FixtureRequest) -> str:
    """``single`` (the default) or ``cluster`` for tests marked ``cluster``."""
    return str(getattr(request, "param", "single"))


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest, redis_backend: str) -> str:
    """The Redis URL shared by the session; isolate keys with `key_prefix`."""
    if redis_backend == "cluster":
        return str(request.getfixturevalue("_cluster_redis_url"))
    return str(request.getfixturevalue("_server_redis_url"))


def _with_database(url: str, database: str) -> str:
    """``url`` pointing at another database on the same server."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def database_url(_server_database_url: str) -> AsyncIterator[str]:
    """A fresh ``gifting_test_<hex>`` database for the session, dropped at the end."""
    name = f"gifting_test_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(_server_database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield _with_database(_server_database_url, name)
    finally:
        admin = await asyncpg.connect(_server_database_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
def key_prefix() -> str:
    """A unique Redis key prefix for this test, like ``t1a2b3c4d``."""
    return f"t{secrets.token_hex(4)}"


@pytest_asyncio.fixture(loop_scope="session")
async def redis(redis_url: str, key_prefix: str) -> AsyncIterator[Redis]:
    """A ``redis.asyncio.Redis`` (bytes replies; a ``RedisCluster`` on a cluster); the
    test's keys are deleted afterwards."""
    client = connect(redis_url, decode_responses=False)
    await client.initialize()  # redis-py's cluster client: before any concurrent first use
    try:
        yield client
    finally:
        try:
            for pattern in (f"{key_prefix}:*", f"{{{key_prefix}*"):
                batch: list[bytes] = []
                async for key in client.scan_iter(match=pattern, count=1000):
                    batch.append(key)
                    if len(batch) >= 500:
                        await client.unlink(*batch)
                        batch.clear()
                if batch:
                    await client.unlink(*batch)
        finally:
            await client.aclose()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A started redis-server of the test's own (always embedded: crash tests kill it)."""
    server = EmbeddedRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def private_postgres(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    """A started PostgreSQL of the test's own (always embedded; ~0.4 s incl. initdb)."""
    server = EmbeddedPostgres(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def create_database(server_url: str) -> str:
    """Create a fresh, migrated database on the server of ``server_url``; return its URL."""
    name = f"persister_{secrets.token_hex(5)}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = _with_database(server_url, name)
    conn = await asyncpg.connect(url)
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()
    return url


async def drop_database(url: str) -> None:
    """Drop the database of ``url`` (connected through the server's ``postgres`` db)."""
    name = urlsplit(url).path.lstrip("/")
    admin = await asyncpg.connect(_with_database(url, "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest_asyncio.fixture(loop_scope="session")
async def db_url(database_url: str) -> AsyncIterator[str]:
    """A fresh migrated database of this test on the session's PostgreSQL."""
    url = await create_database(database_url)
    try:
        yield url
    finally:
        await drop_database(url)
