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

import asyncio
import contextlib
import logging

from gifting.clock import now_ms
from gifting.core.boards import weekly_board_event
from gifting.core.errors import GiftingError
from gifting.core.ids import new_id
from gifting.core.periods import week_of
from gifting.store.boards import Boards
from gifting.store.rooms import RoomLog
from gifting.store.streams import Streams

log = logging.getLogger(__name__)
WEEKLY_BOARD_INTERVAL_S = 5.0
#: Places in a ``weekly_board`` event (the overlay shows five).
WEEKLY_BOARD_SIZE = 5


class WeeklyBoardTicker:
    """Emits the weekly board of the streams marked since the last tick."""

    def __init__(
        self,
        streams: Streams,
        roomlog: RoomLog,
        interval_s: float = WEEKLY_BOARD_INTERVAL_S,
        size: int = WEEKLY_BOARD_SIZE,
    ) -> None:
        self.streams = streams
        self.roomlog = roomlog
        self.boards = Boards(streams.redis, streams.keys)
        self.interval_s = interval_s
        self.size = size
        self._dirty: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start ticking."""
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Stop ticking (marked streams not yet emitted are dropped)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def mark(self, stream: str) -> None:
        """Emit ``stream``'s weekly board at the next tick."""
        self._dirty.add(stream)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            dirty, self._dirty = self._dirty, set()
            for stream in dirty:
                try:
                    await self.emit(stream)
                except GiftingError:
                    pass
                except Exception as exc:
                    log.warning("weekly board for %s failed: %s", stream, exc)

    async def emit(self, stream: str) -> None:
        """Emit the stream's creator's top supporters of the current ISO week."""
        info = await self.streams.get(stream)
        now = now_ms()
        week = week_of(now).label
        entries = await self.boards.supporters(info.creator, week, self.size)
        body = weekly_board_event(stream, new_id("w", now), now, info.creator, week, entries)
        await self.roomlog.emit(stream, body, once=False)
