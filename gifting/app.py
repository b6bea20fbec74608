"""The composition root: settings in, a wired Starlette app out.

:func:`create_app` only builds the app; nothing connects until the lifespan
runs (uvicorn's startup, or ``async with app.router.lifespan_context(app)`` in
tests). The lifespan then, in order:

1. loads the catalog (a bad file stops the server before anything starts);
2. attaches to the embedded servers for whichever of ``REDIS_URL`` /
   ``DATABASE_URL`` is unset: those a running ``gifting serve`` recorded
   under ``GIFTING_DATA_DIR``, else private ones it starts
   (:mod:`gifting.embedded.launch`);
3. builds the Redis client (one bounded connection pool), the
   :class:`~gifting.store.ledger.Ledger` and :class:`~gifting.store.streams.Streams`
   (:mod:`gifting.store.wiring`);
4. stores an :class:`~gifting.state.AppState` on ``app.state.gifting``;
5. enters each :class:`Extension`'s lifespan in order (the hub, the persister);

and undoes all of it in reverse order on shutdown.

Hook points for the layers built elsewhere:

* :func:`default_extensions` returns the :class:`Extension` list every served
  app gets. An extension brings ``routes`` (WebSocket endpoints, ``/metrics``,
  overlay and demo pages: appended after the HTTP API, so a catch-all mount
  goes last) and a ``lifespan(state)`` context in which it sets its typed
  fields of the :class:`~gifting.state.AppState` (``pg_pool``, ``persister``,
  ``hub``, ``roomlog``, ``room_events``), adds ``readiness`` checks, and
  starts background tasks it stops on exit.
* ``create_app(settings, extensions=[...])`` replaces that list (tests pass
  ``[]`` for the bare HTTP API).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager
from functools import partial

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from gifting.api import cashout_cancel as cashout_cancel_api
from gifting.api import catalog as catalog_api
from gifting.api import dev as dev_api
from gifting.api import discovery as discovery_api
from gifting.api import health as health_api
from gifting.api import leaderboards as leaderboards_api
from gifting.api import moderation as moderation_api
from gifting.api import openapi as openapi_api
from gifting.api import streams as streams_api
from gifting.api import subscriptions as subscriptions_api
from gifting.api import videos as videos_api
from gifting.api import wallet as wallet_api
from gifting.api import webhooks as webhooks_api
from gifting.api.http import exception_handlers
from gifting.config import Settings, check_secrets, load_settings
from gifting.core.catalog import load_catalog
from gifting.embedded.launch import attach_or_start
from gifting.logs import RequestIds, install_redaction
from gifting.state import AppState, Extension
from gifting.store.cluster import ping_every_node
from gifting.store.wiring import build_keys, build_ledger, build_streams, redis_client

__all__ = ["api_routes", "create_app", "default_extensions"]

log = logging.getLogger("gifting.app")


def default_extensions(settings: Settings) -> list[Extension]:
    """The extensions every served app gets, beyond the HTTP API.

    In order: the persister (PostgreSQL pool, migrations, the in-process
    outbox consumer; the history routes), the hub (WebSocket endpoints,
    ``/metrics``) and the pages (overlay, demo). Imported inside this
    function so that importing :mod:`gifting.app` stays cheap.
    """
    from gifting.api import history as history_api
    from gifting.feed.extension import feed_extension
    from gifting.hub.extension import hub_extension
    from gifting.persister.service import persister_lifespan
    from gifting.web import web_extension

    persister = Extension("persister", routes=history_api.routes, lifespan=persister_lifespan)
    # The pages last: their /static mount and / route catch what nothing else matched.
    return [persister, hub_extension(settings), feed_extension(), web_extension(settings)]


def api_routes(settings: Settings) -> list[BaseRoute]:
    """The HTTP API: health, ``/openapi.json``, catalog, webhooks, wallet, streams, moderation,
    cash-out cancel, webhook subscriptions (and dev helpers in dev mode)."""
    modules = [
        health_api,
        openapi_api,
        catalog_api,
        webhooks_api,
        wallet_api,
        streams_api,
        discovery_api,
        moderation_api,
        cashout_cancel_api,
        subscriptions_api,
        videos_api,
        leaderboards_api,
    ]
    if settings.dev:
        modules.append(dev_api)
    return [route for module in modules for route in module.routes]


@asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    extensions: tuple[Extension, ...] = app.state.extensions
    catalog = load_catalog(settings.catalog_path)
    async with AsyncExitStack() as stack:
        servers = ExitStack()  # stops the embedded servers started here, if any (blocking)
        stack.push_async_callback(asyncio.to_thread, servers.close)
        attached = await asyncio.to_thread(attach_or_start, settings, servers)
        redis_url, database_url = attached.settings.redis_url, attached.settings.database_url
        assert redis_url is not None
        redis = redis_client(redis_url, timeout_s=settings.redis_timeout_s)
        stack.push_async_callback(redis.aclose)
        await redis.ping()  # a wrong REDIS_URL stops the start here, with the reason
        keys = build_keys(settings)
        state = AppState(
            settings=settings,
            catalog=catalog,
            keys=keys,
            redis=redis,
            ledger=build_ledger(settings, redis, catalog),
            streams=build_streams(settings, redis, catalog),
            redis_url=redis_url,
            database_url=database_url,
            embedded=None if attached.settings is settings else attached,
        )
        stack.push_async_callback(state.ledger.aclose)  # its pipeline connections
        state.readiness["redis"] = partial(ping_every_node, redis)
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
    install_redaction()
    chosen = tuple(default_extensions(settings) if extensions is None else extensions)
    routes = api_routes(settings)
    for extension in chosen:
        routes.extend(extension.routes)
    app = Starlette(
        routes=routes,
        exception_handlers=exception_handlers(),
        lifespan=_lifespan,
        middleware=[Middleware(RequestIds)],
    )
    app.state.settings = settings
    app.state.extensions = chosen
    return app
