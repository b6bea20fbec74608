"""What the app's lifespan builds, typed, in a leaf module everyone may import.

:class:`AppState` is stored on ``app.state.gifting`` by the composition root
(:mod:`gifting.app`) and read by the HTTP routes, the WebSocket endpoints and
the extensions through :func:`app_state`. :class:`Extension` is how a layer
(the hub, the persister, the pages) plugs its routes and lifespan in. This
module imports the layers only for type checking, so nothing here creates an
import cycle: the composition root imports the layers, never the reverse.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from starlette.requests import HTTPConnection
from starlette.routing import BaseRoute

from gifting.config import Settings
from gifting.core.errors import Unavailable

if TYPE_CHECKING:
    import asyncpg
    from redis.asyncio import Redis

    from gifting.core.catalog import Catalog
    from gifting.embedded.launch import Attached
    from gifting.hub.hub import Hub
    from gifting.persister.consumer import OutboxConsumer
    from gifting.persister.shards import ShardedPersister
    from gifting.store.keys import Keys
    from gifting.store.ledger import Ledger
    from gifting.store.rooms import RoomLog
    from gifting.store.streams import Stream, Streams

__all__ = ["AppState", "Extension", "ReadinessCheck", "RoomEvents", "app_state"]

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
    #: The Redis / PostgreSQL URLs in use (the embedded servers' when on the default).
    redis_url: str
    database_url: str | None
    #: The embedded servers attached to (started here, or found running), else ``None``.
    embedded: Attached | None = None
    #: Set by the persister extension.
    pg_pool: asyncpg.Pool[asyncpg.Record] | None = None
    #: The in-process outbox consumer, when this app runs one.
    persister: OutboxConsumer | ShardedPersister | None = None
    #: Set by the hub extension; ``None`` means no hub in this app (HTTP only).
    hub: Hub | None = None
    roomlog: RoomLog | None = None
    room_events: RoomEvents | None = None
    #: ``/readyz`` runs each of these (name → async check that raises when unhealthy).
    readiness: dict[str, ReadinessCheck] = field(default_factory=dict)


@dataclass(frozen=True)
class Extension:
    """A layer wired into the app: its routes and what it starts and stops with it."""

    name: str
    routes: Sequence[BaseRoute] = ()
    lifespan: Callable[[AppState], AbstractAsyncContextManager[None]] | None = None


def app_state(conn: HTTPConnection) -> AppState:
    """The :class:`AppState` of a request or WebSocket; ``Unavailable`` while (re)starting."""
    state = getattr(conn.app.state, "gifting", None)
    if state is None:
        raise Unavailable("the server is starting or stopping")
    assert isinstance(state, AppState)
    return state
