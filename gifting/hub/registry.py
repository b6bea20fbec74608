"""The rooms of this process: one :class:`Room` per stream with a local connection.

The first member in subscribes the hub to the room's channel; the last one
out unsubscribes it. A lock per stream keeps a join and a leave of the same
room from interleaving across those awaits.
"""

from __future__ import annotations

import asyncio

from gifting.core.disconnect import Disconnect
from gifting.hub.broker import Broker
from gifting.hub.room import Member, Room
from gifting.store.keys import Keys
from gifting.store.rooms import RoomLog


class RoomRegistry:
    """The local rooms by stream, subscribed to the broker while they have members."""

    def __init__(self, broker: Broker, keys: Keys, roomlog: RoomLog, viewer_batch_s: float) -> None:
        self.broker = broker
        self.keys = keys
        self.roomlog = roomlog
        self.viewer_batch_s = viewer_batch_s
        self._rooms: dict[str, Room] = {}
        self._joining: dict[str, asyncio.Lock] = {}

    def get(self, stream: str) -> Room | None:
        """The room of ``stream`` on this hub, if it has a member."""
        return self._rooms.get(stream)

    def viewer_counts(self) -> dict[str, int]:
        """Viewer connections (overlays aside) per stream on this hub."""
        return {stream: len(room.viewers) for stream, room in self._rooms.items()}

    async def join(self, stream: str, member: Member) -> Room:
        """Add ``member`` to the room of ``stream``, subscribing this hub if it is the first."""
        lock = self._joining.setdefault(stream, asyncio.Lock())
        async with lock:
            room = self._rooms.get(stream)
            if room is None:
                room = Room(stream, self.roomlog.since, self.viewer_batch_s)
                last = await self.roomlog.last_cursor(stream)
                if last is not None:
                    room.last_cursor = last
                    room.last_seq = int(last.rsplit("_", 1)[1])
                self._rooms[stream] = room
                await self.broker.subscribe(self.keys.room_channel(stream), room.receive)
            room.add(member)
            return room

    async def leave(self, room: Room, member: Member) -> None:
        """Remove ``member``; the last one out unsubscribes the hub from the room."""
        room.remove(member)
        lock = self._joining.setdefault(room.stream, asyncio.Lock())
        async with lock:
            if room.empty and self._rooms.get(room.stream) is room:
                del self._rooms[room.stream]
                await self.broker.unsubscribe(self.keys.room_channel(room.stream))
                self._joining.pop(room.stream, None)

    def close_all(self, disconnect: Disconnect) -> None:
        """Close every connection of every room (after the frames already queued)."""
        for room in list(self._rooms.values()):
            room.close_all(disconnect)
