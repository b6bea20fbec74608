"""The store's clients built from settings: one configuration for the app and the persister.

The composition root (:mod:`gifting.app`) and the standalone persister
(``gifting persist``) build their Redis client, :class:`Keys`, :class:`Ledger`,
:class:`Streams` and :class:`RoomLog` here, so a setting means the same
thing in every process. ``REDIS_URL`` chooses the kind of Redis: a
``redis+cluster://`` URL gives cluster clients (:mod:`gifting.store.cluster`),
any other a single Redis.
"""

from __future__ import annotations

from typing import Any, Final

from redis.asyncio import BlockingConnectionPool, Redis

from gifting.config import Settings
from gifting.core.catalog import Catalog
from gifting.store.cluster import cluster_client, is_cluster_url
from gifting.store.deadlines import DeadlineRunner, Deadlines
from gifting.store.due_tasks import DueContext, due_batch_handlers, due_handlers
from gifting.store.keys import Keys
from gifting.store.ledger import Ledger
from gifting.store.rooms import RoomLog
from gifting.store.scripts import ReplicaWait
from gifting.store.streams import Streams

__all__ = ["build_keys", "build_ledger", "build_roomlog", "build_streams", "redis_client"]

#: Connections in a process's Redis pool; a caller waits for one rather than failing.
REDIS_MAX_CONNECTIONS: Final = 256
#: How long a caller waits for a free pooled connection before an error (503 over HTTP).
REDIS_POOL_TIMEOUT_S: Final = 5.0
#: How long a call waits for Redis's answer (or a new connection) unless told otherwise.
REDIS_TIMEOUT_S: Final = 5.0
#: Idle pooled connections are PINGed before reuse after this many seconds.
REDIS_HEALTH_CHECK_S: Final = 15


def redis_client(
    url: str,
    *,
    max_connections: int = REDIS_MAX_CONNECTIONS,
    pool_timeout_s: float = REDIS_POOL_TIMEOUT_S,
    timeout_s: float = REDIS_TIMEOUT_S,
) -> Redis:
    """A Redis client (bytes replies) over one bounded, health-checked pool that it owns.

    Every call waits at most ``timeout_s`` for its answer (and for a new
    connection): a paused Redis keeps its sockets open and answers nothing, so
    without a socket timeout a caller would wait for ever. The ledger's lean
    pipelines (:class:`~gifting.store.wire.WirePipeline`) take the same timeouts
    from this client. A blocking read (XREADGROUP ``BLOCK``) must block for
    less than ``timeout_s``.

    For a ``redis+cluster://`` URL, a cluster client (``RedisCluster``):
    ``max_connections`` then bounds each node's pool; a caller waits
    ``pool_timeout_s`` at most for a free connection there too.
    """
    if is_cluster_url(url):
        client: Any = cluster_client(
            url,
            max_connections=max_connections,
            socket_connect_timeout=timeout_s,
            socket_timeout=timeout_s,
            socket_keepalive=True,
            health_check_interval=REDIS_HEALTH_CHECK_S,
        )
        return client
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=pool_timeout_s,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        socket_keepalive=True,
        health_check_interval=REDIS_HEALTH_CHECK_S,
    )
    return Redis.from_pool(pool)


def build_keys(settings: Settings) -> Keys:
    """The deployment's key names: its prefix and its number of wallet shards."""
    return Keys(settings.key_prefix, settings.wallet_shards)


def build_ledger(settings: Settings, redis: Redis, catalog: Catalog) -> Ledger:
    """The :class:`Ledger` configured from ``settings``."""
    return Ledger(
        redis,
        build_keys(settings),
        catalog,
        idempotency_ttl_s=settings.idempotency_ttl_s,
        combo_window_ms=settings.combo_window_ms,
        recent_s=settings.idempotency_recent_s,
        replica_wait=ReplicaWait(settings.redis_wait_replicas, settings.redis_wait_ms),
    )


def build_streams(settings: Settings, redis: Redis, catalog: Catalog) -> Streams:
    """The :class:`Streams` store configured from ``settings``."""
    return Streams(redis, build_keys(settings), catalog)


def build_roomlog(settings: Settings, redis: Redis, catalog: Catalog) -> RoomLog:
    """The :class:`RoomLog` (room emission and history) configured from ``settings``."""
    return RoomLog(
        redis, build_keys(settings), catalog,
        max_events=settings.history_max_events, max_age_s=settings.history_max_age_s,
        marker_ttl_s=settings.idempotency_ttl_s,
    )  # fmt: skip


def build_deadline_runner(
    settings: Settings, redis: Redis, catalog: Catalog, roomlog: RoomLog, ledger: Ledger
) -> DeadlineRunner:
    """The :class:`DeadlineRunner` of this process, with every kind's handler."""
    keys = build_keys(settings)
    deadlines = Deadlines(redis, keys)
    ctx = DueContext(
        redis, keys, catalog, roomlog, ledger, deadlines, combo_window_ms=settings.combo_window_ms
    )
    return DeadlineRunner(
        deadlines, due_handlers(ctx), batch_handlers=due_batch_handlers(ctx),
        interval_s=settings.due_interval_ms / 1000,
    )  # fmt: skip
