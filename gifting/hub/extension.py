"""Wires the hub into the app: WebSocket routes, ``/metrics``, and its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gifting.config import Settings
from gifting.hub.endpoints import routes as ws_routes
from gifting.hub.hub import Hub
from gifting.store.rooms import RoomLog
from gifting.store.streams import Stream

if TYPE_CHECKING:
    from gifting.app import AppState, Extension


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
    """The hub extension: WebSocket endpoints and ``/metrics``, and the hub's lifespan."""
    from gifting.app import Extension

    @asynccontextmanager
    async def lifespan(state: AppState) -> AsyncIterator[None]:
        s = state.settings
        roomlog = RoomLog(
            state.redis, state.keys, state.catalog,
            max_events=s.history_max_events, max_age_s=s.history_max_age_s,
            marker_ttl_s=s.idempotency_ttl_s,
        )  # fmt: skip
        hub = Hub(s, state.redis, state.keys, state.catalog, state.ledger, state.streams, roomlog)
        await hub.start()
        state.extra["hub"] = hub
        state.extra["roomlog"] = roomlog
        state.room_events = HubRoomEvents(hub)
        try:
            yield
        finally:
            state.room_events = None
            await hub.stop()

    return Extension(
        name="hub",
        routes=[*ws_routes, Route("/metrics", metrics_endpoint)],
        lifespan=lifespan,
    )
