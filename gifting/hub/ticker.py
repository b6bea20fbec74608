"""A room ticker: once per interval, one event for each room marked since the last tick.

Settled spends mark their stream; the ticker's :meth:`RoomTicker.emit` runs
once per marked stream per interval, so a busy room costs one emission per
interval however many gifts it gets, and a quiet room none. The standings
(:mod:`gifting.hub.leaderboard`) and the weekly board
(:mod:`gifting.hub.weekly_board`) are the two kinds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gifting.core.errors import GiftingError

log = logging.getLogger(__name__)


class RoomTicker:
    """Calls :meth:`emit` for the streams marked since the last tick, every ``interval_s``."""

    #: What the ticker emits, for its log lines.
    what = "room event"

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
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
        """Emit for ``stream`` at the next tick."""
        self._dirty.add(stream)

    async def emit(self, stream: str) -> None:
        """Emit this ticker's event for ``stream`` (each kind of ticker says what)."""
        raise NotImplementedError

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            dirty, self._dirty = self._dirty, set()
            for stream in dirty:
                try:
                    await self.emit(stream)
                except GiftingError:
                    pass  # the stream is gone or ended: nothing to show
                except Exception as exc:
                    log.warning("%s for %s failed: %s", self.what, stream, exc)
