"""Room events between hub processes: Redis pub/sub, one subscription per hub.

Pub/sub is at-most-once: a message published while this hub's subscription
is reconnecting is lost. Each room notices the gap in ``seq`` and reads the
missed events from the room's history stream (see room.py), so delivery to a
connected overlay is whole and in order all the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from gifting.store.rooms import HistoryEntry, parse_envelope

log = logging.getLogger(__name__)


class Broker(Protocol):
    """Room events from Redis to this hub: at most once, in order per room.

    :class:`RoomBroker` on a single Redis (``SUBSCRIBE``),
    :class:`~gifting.hub.sharded_broker.ShardedRoomBroker` on a cluster (``SSUBSCRIBE``).
    """

    async def start(self) -> None:
        """Get ready to subscribe."""

    async def stop(self) -> None:
        """Stop delivering and close the subscriptions."""

    async def subscribe(self, channel: str, handler: Callable[[HistoryEntry], None]) -> None:
        """Deliver the events of ``channel`` to ``handler`` from now on."""

    async def unsubscribe(self, channel: str) -> None:
        """Stop delivering ``channel``."""


class RoomBroker:
    """Subscribes to room channels and hands each event to ``on_event(channel, entry)``."""

    def __init__(self, redis: Redis, control_channel: str) -> None:
        self.redis = redis
        self._pubsub = redis.pubsub(ignore_subscribe_messages=True)
        self._control = control_channel
        self._handlers: dict[bytes, Callable[[HistoryEntry], None]] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Open the subscription (a control channel keeps it alive) and start reading."""
        await self._pubsub.subscribe(self._control)
        self._task = asyncio.get_running_loop().create_task(self._read_loop())

    async def stop(self) -> None:
        """Stop reading and close the subscription."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()

    async def subscribe(self, channel: str, handler: Callable[[HistoryEntry], None]) -> None:
        """Deliver the events of ``channel`` to ``handler`` from now on."""
        self._handlers[channel.encode()] = handler
        await self._pubsub.subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        """Stop delivering ``channel``."""
        self._handlers.pop(channel.encode(), None)
        with contextlib.suppress(Exception):
            await self._pubsub.unsubscribe(channel)

    async def _read_loop(self) -> None:
        backoff = 0.05
        while True:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
                backoff = 0.05
            except (RedisConnectionError, OSError):
                log.warning("room broker: Redis connection lost; resubscribing")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            if message is None or message.get("type") != "message":
                continue
            handler = self._handlers.get(message["channel"])
            if handler is None:
                continue
            try:
                handler(parse_envelope(message["data"]))
            except Exception:
                log.exception("room broker: bad message on %r", message["channel"])
