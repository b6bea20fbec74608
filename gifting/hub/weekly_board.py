"""The weekly board ticker: the creator's top supporters this week, to the room's overlays.

Settled spends mark their stream; every :data:`WEEKLY_BOARD_INTERVAL_S`
the ticker reads each marked stream's creator's supporters of the current
ISO week (the sorted set credit.lua keeps, :class:`gifting.store.boards.Boards`)
and emits one ``weekly_board`` room event. A busy room thus costs one read and
one event every few seconds, however many gifts it gets; a quiet room none.
An overlay that loads reads the same board once over HTTP
(``GET /v1/creators/{creator}/leaderboard``), then follows these events.
"""

from __future__ import annotations

from gifting.clock import now_ms
from gifting.core.boards import weekly_board_event
from gifting.core.ids import new_id
from gifting.core.periods import week_of
from gifting.hub.ticker import RoomTicker
from gifting.store.boards import Boards
from gifting.store.rooms import RoomLog
from gifting.store.streams import Streams

WEEKLY_BOARD_INTERVAL_S = 5.0
#: Places in a ``weekly_board`` event (the overlay shows five).
WEEKLY_BOARD_SIZE = 5


class WeeklyBoardTicker(RoomTicker):
    """Emits the weekly board of the streams marked since the last tick."""

    what = "weekly board"

    def __init__(
        self,
        streams: Streams,
        roomlog: RoomLog,
        interval_s: float = WEEKLY_BOARD_INTERVAL_S,
        size: int = WEEKLY_BOARD_SIZE,
    ) -> None:
        super().__init__(interval_s)
        self.streams = streams
        self.roomlog = roomlog
        self.boards = Boards(streams.redis, streams.keys)
        self.size = size

    async def emit(self, stream: str) -> None:
        """Emit the stream's creator's top supporters of the current ISO week."""
        info = await self.streams.get(stream)
        now = now_ms()
        week = week_of(now).label
        entries = await self.boards.supporters(info.creator, week, self.size)
        body = weekly_board_event(stream, new_id("w", now), now, info.creator, week, entries)
        await self.roomlog.emit(stream, body, once=False)
