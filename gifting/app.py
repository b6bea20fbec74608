"""The composition root: settings in, a wired Starlette app out.

:func:`create_app` only builds the app; nothing connects until the lifespan
runs (uvicorn's startup, or ``async with app.router.lifespan_context(app)`` in
tests). The lifespan then, in order:

1. loads the catalog (a bad file stops the server before anything starts);
2. starts a private Redis and/or PostgreSQL under ``GIFTING_DATA_DIR`` for
   whichever of ``REDIS_URL`` / ``DATABASE_URL`` is unset;
3. builds the Redis client (one bounded connection pool), the
   :class:`~gifting.store.ledger.Ledger` and :class:`~gifting.store.streams.Streams`;
4. stores an :class:`AppState` on ``app.state.gifting``;
5. enters each :class:`Extension`'s lifespan in order (the hub, the persister);

and undoes all of it in reverse order on shutdown.

Hook points for the layers built elsewhere:

* :func:`default_extensions` returns the :class:`Extension` list every served
  app gets. An extension brings ``routes`` (WebSocket endpoints, ``/metrics``,
  overlay and demo pages: appended after the HTTP API, so a catch-all mount
  goes last) and a ``lifespan(state)`` context in which it may set
  :attr:`AppState.pg_pool`, :attr:`AppState.room_events`, add
  :attr:`AppState.readiness` checks and keep what it owns in
  :attr:`AppState.extra`, and start background tasks it stops on exit.
* ``create_app(settings, extensions=[...])`` replaces that list (tests pass
  ``[]`` for the bare HTTP API).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol

from redis.asyncio import BlockingConnectionPool, Redis
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from gifting.api import catalog as catalog_api
from gifting.api import dev as dev_api
from gifting.api import health as health_api
from gifting.api import streams as streams_api
from gifting.api import wallet as wallet_api
from gifting.api import webhooks as webhooks_api
from gifting.api.http import exception_handlers
from gifting.config import Settings, check_secrets, load_settings
from gifting.core.catalog import Catalog, load_catalog
from gifting.embedded.record import remove_record, write_record
from gifting.store.keys import Keys
from gifting.store.ledger import Ledger
from gifting.store.streams import Stream, Streams

if TYPE_CHECKING:
    import asyncpg

    from gifting.embedded import EmbeddedPostgres, EmbeddedRedis, EmbeddedServers

__all__ = [
    "AppState",
    "Extension",
    "ReadinessCheck",
    "RoomEvents",
    "api_routes",
    "create_app",
    "default_extensions",
    "redis_client",
]

log = logging.getLogger("gifting.app")

#: Connections in the shared Redis pool; a request waits for one rather than failing.
REDIS_MAX_CONNECTIONS: Final = 256
#: How long a request waits for a free pooled connection before 503.
REDIS_POOL_TIMEOUT_S: Final = 5.0
REDIS_CONNECT_TIMEOUT_S: Final = 5.0
#: Idle pooled connections are PINGed before reuse after this many seconds.
REDIS_HEALTH_CHECK_S: Final = 15

ReadinessCheck = Callable[[], Awaitable[object]]


class RoomEvents(Protocol):
    """What the hub does when HTTP changes a stream: emit room events to its overlays.

    Both calls must be idempotent (a client may retry an ``end``), and may
    raise ``GiftingError`` / Redis errors like any store call.
    """

    async def stream_ended(self, stream: Stream) -> None:
        """Emit ``stream_ended`` to the room (once per stream) and close viewers' spends."""

    async def goal_changed(self, stream: Stream) -> None:
        """Emit a ``goal`` event with the stream's new goal and progress."""


@dataclass
class AppState:
    """Everything the lifespan built, shared by routes, the hub and the persister."""

    settings: Settings
    catalog: Catalog
    keys: Keys
    redis: Redis
    ledger: Ledger
    streams: Streams
    #: The Redis / PostgreSQL URLs in use (the embedded servers' when started here).
    redis_url: str
    database_url: str | None
    #: The private servers this process started, or ``None`` when both URLs were given.
    embedded: EmbeddedServers | EmbeddedRedis | EmbeddedPostgres | None = None
    #: Set by the persister extension.
    pg_pool: asyncpg.Pool[asyncpg.Record] | None = None
    #: Set by the hub extension; ``None`` means no hub in this app (HTTP only).
    room_events: RoomEvents | None = None
    #: ``/readyz`` runs each of these (name → async check that raises when unhealthy).
    readiness: dict[str, ReadinessCheck] = field(default_factory=dict)
    #: Anything an extension owns (its hub, consumer task, metrics registry...).
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Extension:
    """A layer wired into the app: its routes and what it starts and stops with it."""

    name: str
    routes: Sequence[BaseRoute] = ()
    lifespan: Callable[[AppState], AbstractAsyncContextManager[None]] | None = None


def default_extensions(settings: Settings) -> list[Extension]:
    """The extensions every served app gets, beyond the HTTP API.

    The hub (WebSocket endpoints, ``/metrics``, overlay and demo pages) and the
    persister (PostgreSQL pool, migrations, in-process outbox consumer) each
    add one here, imported inside this function so that importing
    :mod:`gifting.app` stays cheap, e.g.::

        from gifting.hub.extension import hub_extension
        from gifting.persister.extension import persister_extension
        return [persister_extension(settings), hub_extension(settings)]
    """
    from gifting.api import history as history_api
    from gifting.hub.extension import hub_extension
    from gifting.persister.service import persister_lifespan
    from gifting.web import web_extension

    persister = Extension("persister", routes=history_api.routes, lifespan=persister_lifespan)
    # The pages last: their /static mount and / route catch what nothing else matched.
    return [persister, hub_extension(settings), web_extension(settings)]


def api_routes(settings: Settings) -> list[BaseRoute]:
    """The HTTP API: health, catalog, webhooks, wallet, streams (and dev helpers in dev mode)."""
    modules = [health_api, catalog_api, webhooks_api, wallet_api, streams_api]
    if settings.dev:
        modules.append(dev_api)
    return [route for module in modules for route in module.routes]


def redis_client(url: str) -> Redis:
    """A Redis client over one bounded, health-checked connection pool (it owns the pool)."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=REDIS_MAX_CONNECTIONS,
        timeout=REDIS_POOL_TIMEOUT_S,
        socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
        socket_keepalive=True,
        health_check_interval=REDIS_HEALTH_CHECK_S,
    )
    return Redis.from_pool(pool)


async def _start_embedded(
    settings: Settings, stack: AsyncExitStack
) -> tuple[EmbeddedServers | EmbeddedRedis | EmbeddedPostgres | None, str, str | None]:
    """Start private servers for whichever URL is unset; return them and both URLs."""
    redis_url, database_url = settings.redis_url, settings.database_url
    if redis_url and database_url:
        return None, redis_url, database_url
    from gifting.embedded import EmbeddedPostgres, EmbeddedRedis, EmbeddedServers

    server: EmbeddedServers | EmbeddedRedis | EmbeddedPostgres
    if not redis_url and not database_url:
        server = EmbeddedServers(settings.data_dir, appendfsync=settings.appendfsync)
    elif not redis_url:
        server = EmbeddedRedis(settings.data_dir, appendfsync=settings.appendfsync)
    else:
        server = EmbeddedPostgres(settings.data_dir)
    log.info("starting embedded servers under %s", settings.data_dir)
    await asyncio.to_thread(server.start)
    stack.push_async_callback(asyncio.to_thread, server.stop)
    if isinstance(server, EmbeddedServers):
        redis_url, database_url = server.redis_url, server.database_url
    elif isinstance(server, EmbeddedRedis):
        redis_url = server.url
    else:
        database_url = server.url
    assert redis_url is not None
    log.info("embedded redis at %s, postgresql at %s", redis_url, database_url)
    write_record(
        settings.data_dir,
        None if settings.redis_url else redis_url,
        None if settings.database_url else database_url,
    )
    stack.callback(remove_record, settings.data_dir)
    return server, redis_url, database_url


@asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    extensions: tuple[Extension, ...] = app.state.extensions
    catalog = load_catalog(settings.catalog_path)
    async with AsyncExitStack() as stack:
        embedded, redis_url, database_url = await _start_embedded(settings, stack)
        redis = redis_client(redis_url)
        stack.push_async_callback(redis.aclose)
        await redis.ping()  # a wrong REDIS_URL stops the start here, with the reason
        keys = Keys(settings.key_prefix)
        state = AppState(
            settings=settings,
            catalog=catalog,
            keys=keys,
            redis=redis,
            ledger=Ledger(
                redis,
                keys,
                catalog,
                idempotency_ttl_s=settings.idempotency_ttl_s,
                combo_window_ms=settings.combo_window_ms,
            ),
            streams=Streams(redis, keys, catalog),
            redis_url=redis_url,
            database_url=database_url,
            embedded=embedded,
        )
        state.readiness["redis"] = redis.ping
        app.state.gifting = state
        stack.callback(setattr, app.state, "gifting", None)
        for extension in extensions:
            if extension.lifespan is not None:
                log.debug("starting extension %s", extension.name)
                await stack.enter_async_context(extension.lifespan(state))
        yield


def create_app(
    settings: Settings | None = None, *, extensions: Sequence[Extension] | None = None
) -> Starlette:
    """Build the app (nothing connects until its lifespan runs).

    ``settings`` defaults to the environment (:func:`~gifting.config.load_settings`:
    a bad setting, or a weak secret outside dev mode, raises
    :class:`~gifting.config.SettingsError`);
    ``extensions`` defaults to :func:`default_extensions`.
    Also usable as ``uvicorn --factory gifting.app:create_app``.
    """
    settings = settings if settings is not None else load_settings()
    check_secrets(settings)
    chosen = tuple(default_extensions(settings) if extensions is None else extensions)
    routes = api_routes(settings)
    for extension in chosen:
        routes.extend(extension.routes)
    app = Starlette(routes=routes, exception_handlers=exception_handlers(), lifespan=_lifespan)
    app.state.settings = settings
    app.state.extensions = chosen
    return app
