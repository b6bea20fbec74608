"""Wires the hub into the app: WebSocket routes, ``/metrics``, and its lifespan."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gifting.config import Settings
from gifting.hub.endpoints import routes as ws_routes
from gifting.hub.hub import Hub
from gifting.hub.spends import KeptLookup
from gifting.hub.sse import routes as sse_routes
from gifting.records import kept_spends
from gifting.state import AppState, Extension
from gifting.store.streams import Stream
from gifting.store.wiring import build_roomlog

log = logging.getLogger(__name__)


class HubRoomEvents:
    """What HTTP changes to a stream mean for its room (``AppState.room_events``)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def stream_ended(self, stream: Stream) -> None:
        """Emit ``stream_ended`` once; every hub then closes the room's connections."""
        await self.hub.end_stream(stream.stream)

    async def goal_changed(self, stream: Stream) -> None:
        """Emit the new goal (and the leaderboard) to the room."""
        await self.hub.emit_standings(stream.stream)


async def metrics_endpoint(request: Request) -> Response:
    """``/metrics`` in the Prometheus text format."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def hub_extension(settings: Settings) -> Extension:
    """The hub extension: WebSocket endpoints, server-sent events, ``/metrics``; its lifespan."""

    @asynccontextmanager
    async def lifespan(state: AppState) -> AsyncIterator[None]:
        s = state.settings
        roomlog = build_roomlog(s, state.redis, state.catalog)
        pool = state.pg_pool  # set by the persister extension, which starts first
        kept: KeptLookup | None = None
        if pool is not None:
            kept = functools.partial(kept_spends, pool)
        else:
            log.warning(
                "no PostgreSQL pool: spend ids are kept in Redis only, and a retry after "
                "the persister retired its record would debit again"
            )
        hub = Hub(
            s, state.redis, state.keys, state.catalog, state.ledger, state.streams, roomlog,
            kept=kept,
        )  # fmt: skip
        await hub.start()
        state.hub = hub
        state.roomlog = roomlog
        state.room_events = HubRoomEvents(hub)
        try:
            yield
        finally:
            state.room_events = None
            state.hub = state.roomlog = None
            await hub.stop()
            await roomlog.aclose()

    return Extension(
        name="hub",
        routes=[*ws_routes, *sse_routes, Route("/metrics", metrics_endpoint)],
        lifespan=lifespan,
    )
