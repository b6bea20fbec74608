"""Glue between the persister and its hosts: the CLI commands and the app's lifespan.

* :func:`run_persister` — ``gifting persist``: a standalone consumer until
  SIGTERM / SIGINT (ordered shutdown), surviving outages of both stores.
  On a Redis Cluster (or with ``--shards``) it is a
  :class:`~gifting.persister.shards.ShardedPersister`: one consumer per
  outbox shard it leases, shared with every other ``gifting persist``.
* :func:`run_migrate` — ``gifting migrate``: apply the SQL migrations.
* :func:`run_audit_cli` — ``gifting audit``: print the report, exit status 0/1.
* :func:`persister_lifespan` — the app's extension lifespan: the PostgreSQL
  pool on ``state.pg_pool`` (for the history routes), migrations, and an
  in-process consumer when ``GIFTING_PERSISTER_IN_PROCESS`` says so (by
  default: when the database is the embedded one, so one command runs
  everything).

Each CLI function builds its own Redis and asyncpg clients from
:class:`~gifting.config.Settings` and closes them on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from gifting.config import Settings
from gifting.core.catalog import load_catalog
from gifting.persister.audit import run_audit
from gifting.persister.consumer import OnSpends, OutboxConsumer
from gifting.persister.schema import apply_migrations
from gifting.persister.shards import ShardedPersister
from gifting.state import AppState
from gifting.store.cluster import is_cluster
from gifting.store.ledger import Ledger
from gifting.store.wiring import (
    build_deadline_runner,
    build_keys,
    build_ledger,
    build_roomlog,
    redis_client,
)

__all__ = [
    "ConfigurationError",
    "blocking_read_ms",
    "connect_pool",
    "make_consumer",
    "make_persister",
    "persister_lifespan",
    "run_audit_cli",
    "run_migrate",
    "run_persister",
]

log = logging.getLogger("gifting.persister")

#: How long ``gifting audit`` waits for the persister to catch up before auditing.
AUDIT_CATCH_UP_S: Final = 30.0
_RETRY_MAX_S: Final = 5.0


class ConfigurationError(RuntimeError):
    """A URL the command needs is not set."""


def _require(value: str | None, name: str, settings: Settings) -> str:
    if not value:
        raise ConfigurationError(
            f"{name} is not set, and no `gifting serve` is running on the embedded servers "
            f"under {settings.data_dir.resolve()} (GIFTING_DATA_DIR): start one there "
            f"(`make run`), or set {name} to the server to use"
        )
    return value


async def connect_pool(url: str, *, min_size: int = 0, max_size: int = 4) -> asyncpg.Pool:
    """An asyncpg pool; with ``min_size=0`` it opens no connection until first used."""
    pool = await asyncpg.create_pool(
        url, min_size=min_size, max_size=max_size, command_timeout=60.0
    )
    assert pool is not None
    return pool


def blocking_read_ms(redis_timeout_s: float) -> int:
    """How long the consumer's XREADGROUP may block: 1 s, or half the Redis timeout if shorter.

    A blocked read is a call that answers late on purpose; past the client's
    socket timeout it would fail as if Redis were gone.
    """
    return max(1, min(1000, int(redis_timeout_s * 500)))


def make_consumer(
    settings: Settings,
    redis: Redis,
    pool: asyncpg.Pool,
    ledger: Ledger,
    *,
    on_spends: OnSpends | None = None,
    consumer: str | None = None,
    streams: list[str] | None = None,
) -> OutboxConsumer:
    """An :class:`OutboxConsumer` configured from ``settings`` (of every outbox, or ``streams``).

    Unless ``on_spends`` replaces it, the consumer repairs room emissions
    itself with its own :class:`RoomLog` (idempotent by event id): a spend
    debited by a hub that died before emitting still reaches the room, whether
    the persister runs in the app or as its own process (``gifting persist``).
    """
    if on_spends is None:
        on_spends = build_roomlog(settings, redis, ledger.catalog).emit_spends
    return OutboxConsumer(
        redis,
        pool,
        build_keys(settings),
        ledger,
        on_spends=on_spends,
        consumer=consumer,
        streams=streams,
        batch_size=settings.persister_batch,
        claim_idle_ms=settings.persister_claim_idle_ms,
        block_ms=blocking_read_ms(settings.redis_timeout_s),
    )


Persister = OutboxConsumer | ShardedPersister


def make_persister(
    settings: Settings,
    redis: Redis,
    pool: asyncpg.Pool,
    ledger: Ledger,
    *,
    on_spends: OnSpends | None = None,
    consumer: str | None = None,
    shards: list[int] | None = None,
) -> Persister:
    """The persister of this process: one consumer of every outbox on a single Redis;
    a :class:`ShardedPersister` on a cluster, or when pinned to ``shards``."""
    if shards is None and not is_cluster(redis):
        return make_consumer(settings, redis, pool, ledger, on_spends=on_spends, consumer=consumer)
    if on_spends is None:
        on_spends = build_roomlog(settings, redis, ledger.catalog).emit_spends
    hook = on_spends

    def one_shard(stream: str, name: str) -> OutboxConsumer:
        return make_consumer(
            settings, redis, pool, ledger, on_spends=hook, consumer=name, streams=[stream]
        )

    return ShardedPersister(
        redis,
        build_keys(settings),
        one_shard,
        consumer=consumer,
        shards=shards,
        lease_ms=settings.persister_lease_ms,
    )


async def _migrate_with_retry(pool: asyncpg.Pool, stop: asyncio.Event) -> bool:
    """Apply migrations, retrying while PostgreSQL is unreachable; False if stopped first."""
    delay = 0.1
    while not stop.is_set():
        try:
            await apply_migrations(pool)
            return True
        except (
            OSError,
            asyncpg.PostgresConnectionError,
            asyncpg.InterfaceError,
            asyncpg.CannotConnectNowError,
        ) as exc:
            log.warning("persister: PostgreSQL not reachable (%s); retry in %.1fs", exc, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, _RETRY_MAX_S)
    return False


async def run_persister(
    settings: Settings,
    *,
    on_spends: OnSpends | None = None,
    consumer: str | None = None,
    shards: list[int] | None = None,
) -> None:
    """Run the standalone persister until SIGTERM or SIGINT, then shut down in order.

    ``shards`` pins it to those outbox shards (``gifting persist --shards``).
    """
    redis_url = _require(settings.redis_url, "REDIS_URL", settings)
    database_url = _require(settings.database_url, "DATABASE_URL", settings)
    catalog = load_catalog(settings.catalog_path)
    # A sharded persister's consumers each hold a connection in a blocking read.
    connections = max(64, 2 * settings.wallet_shards + 16)
    redis = redis_client(
        redis_url, max_connections=connections, pool_timeout_s=10.0,
        timeout_s=settings.redis_timeout_s,
    )  # fmt: skip
    pool = await connect_pool(database_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ledger = build_ledger(settings, redis, catalog)
    roomlog = build_roomlog(settings, redis, catalog)
    try:
        if not await _migrate_with_retry(pool, stop):
            return
        if is_cluster(redis):
            # redis-py's cluster client: learn the slot map before concurrent first use.
            with contextlib.suppress(RedisError, OSError):
                await redis.initialize()
        worker = make_persister(
            settings,
            redis,
            pool,
            ledger,
            on_spends=on_spends or roomlog.emit_spends,
            consumer=consumer,
            shards=shards,
        )
        task = worker.start()
        # Deadlines (streak ends, boxes, hype) run here too: with every hub down,
        # the persister still ends what is due.
        runner = build_deadline_runner(settings, redis, catalog, roomlog, ledger)
        runner.start()
        log.info(
            "persister %s running (%s, batch %d, claim after %d ms)",
            worker.consumer,
            "shards by lease" if isinstance(worker, ShardedPersister) else "every outbox",
            settings.persister_batch,
            settings.persister_claim_idle_ms,
        )
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        await runner.stop()
        await worker.stop()
        if task.done() and not task.cancelled():
            failure = task.exception()
            if failure is not None:
                raise failure
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await roomlog.aclose()
        await ledger.aclose()
        await pool.close()
        await redis.aclose()


async def run_migrate(settings: Settings) -> list[int]:
    """Apply pending migrations to ``DATABASE_URL``; return the versions applied now."""
    conn = await asyncpg.connect(_require(settings.database_url, "DATABASE_URL", settings))
    try:
        applied = await apply_migrations(conn)
    finally:
        await conn.close()
    log.info("migrations applied: %s", applied or "none (up to date)")
    return applied


async def run_audit_cli(settings: Settings) -> int:
    """Audit the deployment, print the report; 0 if every check passed, else 1."""
    catalog = load_catalog(settings.catalog_path)
    redis = redis_client(
        _require(settings.redis_url, "REDIS_URL", settings),
        max_connections=4,
        timeout_s=settings.redis_timeout_s,
    )
    database_url = _require(settings.database_url, "DATABASE_URL", settings)
    pool = await connect_pool(database_url, max_size=1)
    try:
        keys = build_keys(settings)
        report = await run_audit(pool, redis, keys, catalog, catch_up_s=AUDIT_CATCH_UP_S)
        sys.stdout.write(report.render() + "\n")
        return 0 if report.ok else 1
    finally:
        await pool.close()
        await redis.aclose()


# --------------------------------------------------------------------------- app


@asynccontextmanager
async def persister_lifespan(
    state: AppState, *, on_spends: OnSpends | None = None
) -> AsyncIterator[None]:
    """Open the PostgreSQL pool, migrate, and run the in-process consumer if configured.

    Sets ``state.pg_pool`` and the ``postgres`` readiness check; the consumer
    (when running) is ``state.persister``.
    """
    settings = state.settings
    if state.database_url is None:
        log.warning("no PostgreSQL: the ledger history is unavailable and nothing is persisted")
        yield
        return
    pool = await connect_pool(state.database_url, min_size=1, max_size=10)
    try:
        await apply_migrations(pool)
        state.pg_pool = pool
        state.readiness["postgres"] = lambda: pool.fetchval("SELECT 1")
        in_process = settings.persister_in_process
        if in_process is None:
            in_process = settings.database_url is None  # the embedded database
        worker: Persister | None = None
        roomlog = build_roomlog(settings, state.redis, state.catalog)
        if in_process:
            worker = make_persister(
                settings, state.redis, pool, state.ledger,
                on_spends=on_spends or roomlog.emit_spends,
            )  # fmt: skip
            state.persister = worker
            worker.start()
        try:
            yield
        finally:
            if worker is not None:
                await worker.stop()
            await roomlog.aclose()
            state.pg_pool = None
            state.readiness.pop("postgres", None)
    finally:
        await pool.close()
