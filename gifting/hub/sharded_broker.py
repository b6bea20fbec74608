"""Room events between hubs on a Redis Cluster: sharded pub/sub, one feed per master.

On a cluster, emit.lua ``SPUBLISH``es each room event on the room's channel
(``<prefix>:{r:<stream>}:room``: it hashes to the room's slot), so the event
reaches only the master serving that slot (and its replicas), not every node
as a plain ``PUBLISH`` would. A hub ``SSUBSCRIBE``s each room's channel on
that master: :class:`ShardedRoomBroker` keeps one pub/sub connection per
master that serves a subscribed room (a *feed*, with its own reading task).

The delivery guarantee is :class:`~gifting.hub.broker.RoomBroker`'s: at most
once, in order per room; a room fills a gap in ``seq`` from its history.
What a cluster adds is moving slots. When a feed's connection is lost (its
master died: a replica is promoted) or Redis unsubscribes a channel itself
(its slot moved to another master: ``sunsubscribe`` without asking), the
broker reads the slot map again and subscribes the channel where its slot is
now, retrying with backoff until it can; the events published in between are
what a gap fill recovers at the room's next event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from redis.asyncio import ConnectionPool, Redis
from redis.exceptions import RedisError

from gifting.store.rooms import HistoryEntry, parse_envelope

__all__ = ["ShardedRoomBroker"]

log = logging.getLogger(__name__)

_READ_TIMEOUT_S = 1.0
_BACKOFF_MAX_S = 2.0


class _Feed:
    """The sharded subscriptions held on one master, and the task reading them."""

    def __init__(self, name: str, node: Any) -> None:
        self.name = name
        pool = ConnectionPool(connection_class=node.connection_class, **node.connection_kwargs)
        self.client = Redis(connection_pool=pool)
        self.pubsub = self.client.pubsub()
        self.task: asyncio.Task[None] | None = None

    async def close(self) -> None:
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        with contextlib.suppress(Exception):
            await self.pubsub.aclose()
        with contextlib.suppress(Exception):
            await self.client.aclose()


class ShardedRoomBroker:
    """Subscribes to room channels with SSUBSCRIBE on each room's master (a Redis Cluster).

    Same interface as :class:`~gifting.hub.broker.RoomBroker`: hands each
    event to the handler of its channel.
    """

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster
        self._handlers: dict[bytes, Callable[[HistoryEntry], None]] = {}
        self._home: dict[bytes, str] = {}
        self._feeds: dict[str, _Feed] = {}
        self._homeless: set[bytes] = set()
        self._rehoming: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._stopped = False

    async def start(self) -> None:
        """Learn the slot map (the feeds open with the first subscription on each master)."""
        self._stopped = False
        with contextlib.suppress(RedisError, OSError):
            await self.cluster.initialize()

    async def stop(self) -> None:
        """Stop reading and close every feed."""
        self._stopped = True
        if self._rehoming is not None:
            self._rehoming.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._rehoming
        feeds, self._feeds = list(self._feeds.values()), {}
        for feed in feeds:
            await feed.close()

    async def subscribe(self, channel: str, handler: Callable[[HistoryEntry], None]) -> None:
        """Deliver the events of ``channel`` to ``handler`` from now on.

        Raises a Redis error if the channel's master cannot be reached (the
        caller's join fails, as with a single Redis).
        """
        key = channel.encode()
        self._handlers[key] = handler
        async with self._lock:
            await self._place(key)

    async def unsubscribe(self, channel: str) -> None:
        """Stop delivering ``channel``."""
        key = channel.encode()
        self._handlers.pop(key, None)
        self._homeless.discard(key)
        async with self._lock:
            feed = self._feeds.get(self._home.pop(key, ""))
            if feed is not None:
                with contextlib.suppress(RedisError, OSError):
                    await feed.pubsub.sunsubscribe(key)

    @property
    def homes(self) -> dict[str, str]:
        """Each subscribed channel and the master (``host:port``) it is subscribed on."""
        return {k.decode(): v for k, v in self._home.items()}

    # -- placing subscriptions ---------------------------------------------------
    async def _place(self, key: bytes) -> None:
        """SSUBSCRIBE ``key`` on the master of its slot (moving it there if it was elsewhere)."""
        node = self.cluster.get_node_from_key(key)
        old = self._home.get(key)
        if old is not None and old != node.name and old in self._feeds:
            with contextlib.suppress(RedisError, OSError):
                await self._feeds[old].pubsub.sunsubscribe(key)
        feed = self._feeds.get(node.name)
        if feed is None:
            feed = self._feeds[node.name] = _Feed(node.name, node)
        try:
            await feed.pubsub.ssubscribe(key)
        except (RedisError, OSError):
            self._home.pop(key, None)
            await self._drop(feed)
            raise
        self._home[key] = node.name
        if feed.task is None:
            feed.task = asyncio.get_running_loop().create_task(self._read(feed))

    async def _drop(self, feed: _Feed) -> None:
        if self._feeds.get(feed.name) is feed:
            del self._feeds[feed.name]
        await feed.close()

    def _rehome(self, keys: set[bytes]) -> None:
        """Subscribe ``keys`` again where their slots are now (in the background, until done)."""
        self._homeless |= {k for k in keys if k in self._handlers}
        if self._stopped or (self._rehoming is not None and not self._rehoming.done()):
            return
        self._rehoming = asyncio.get_running_loop().create_task(self._rehome_loop())

    async def _rehome_loop(self) -> None:
        backoff = 0.05
        while self._homeless and not self._stopped:
            try:
                await self.cluster.nodes_manager.initialize()
                async with self._lock:
                    for key in list(self._homeless):
                        if key in self._handlers:
                            await self._place(key)
                        self._homeless.discard(key)
                log.info("room broker: room channels subscribed on their current masters")
                return
            except (RedisError, OSError) as exc:
                log.warning("room broker: cannot resubscribe yet (%s); retry", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX_S)

    # -- reading ---------------------------------------------------------------------
    async def _read(self, feed: _Feed) -> None:
        while True:
            try:
                message = await feed.pubsub.get_message(timeout=_READ_TIMEOUT_S)
            except (RedisError, OSError) as exc:
                log.warning("room broker: lost the feed of %s (%s); resubscribing", feed.name, exc)
                lost = {k for k, home in self._home.items() if home == feed.name}
                for k in lost:
                    self._home.pop(k, None)
                await self._drop(feed)
                self._rehome(lost)
                return
            if message is not None:
                self._dispatch(feed, message)

    def _dispatch(self, feed: _Feed, message: dict[str, Any]) -> None:
        kind = message.get("type")
        kind = kind.decode() if isinstance(kind, bytes) else kind
        channel = message.get("channel")
        if not isinstance(channel, bytes):
            return
        if kind == "smessage":
            handler = self._handlers.get(channel)
            if handler is None:
                return
            try:
                handler(parse_envelope(message["data"]))
            except Exception:
                log.exception("room broker: bad message on %r", channel)
        elif kind == "sunsubscribe" and self._home.get(channel) == feed.name:
            # Not asked for (unsubscribe() forgets the home first): the slot moved.
            self._home.pop(channel, None)
            self._rehome({channel})
