"""The leaderboard ticker: each second, the standings of every room that had spends.

Settled spends mark their stream; once per interval the ticker emits each
marked stream's leaderboard and, if it has goals, their progress. A busy room
thus costs one leaderboard event a second, however many gifts it gets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gifting.clock import now_ms
from gifting.core.errors import GiftingError
from gifting.core.events import leaderboard_event
from gifting.core.goals import goals_event
from gifting.core.hype import hype_progress_event
from gifting.core.ids import new_id
from gifting.store.rooms import RoomLog
from gifting.store.streams import Streams

log = logging.getLogger(__name__)
LEADERBOARD_INTERVAL_S = 1.0


class LeaderboardTicker:
    """Emits the standings of the streams marked since the last tick."""

    def __init__(
        self, streams: Streams, roomlog: RoomLog, interval_s: float = LEADERBOARD_INTERVAL_S
    ) -> None:
        self.streams = streams
        self.roomlog = roomlog
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
        """Emit ``stream``'s standings at the next tick."""
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
                    log.warning("leaderboard for %s failed: %s", stream, exc)

    async def emit(self, stream: str, *, goals_changed: bool = False) -> None:
        """Emit the stream's leaderboard and, if goals are set, their progress.

        ``goals_changed``: the creator replaced the goals; the ``goal`` event
        goes out even when the list is now empty (overlays then hide them).
        """
        info = await self.streams.get(stream)
        totals = await self.streams.totals(info)
        now = now_ms()
        await self.roomlog.emit(
            stream, leaderboard_event(stream, new_id("l", now), now, totals.top), once=False
        )
        goals = await self.streams.goals.read(stream)
        if goals or goals_changed:
            body = goals_event(stream, new_id("g", now), now, goals)
            await self.roomlog.emit(stream, body, once=False)
        await self.emit_hype(stream, now)

    async def emit_hype(self, stream: str, now: int) -> None:
        """A running hype's progress (``hype_progress``), and its deadline made sure of.

        The deadline: the hub that emitted the spend which started the hype
        schedules its end here, within the second (gifting/store/hype.py).
        """
        config = self.roomlog.catalog.hype
        if config is None:
            return
        state = await self.roomlog.hype.state(stream)
        if state is None:
            return
        await self.roomlog.hype.ensure([stream])
        if state.expires > now:
            view = state.view(config)
            body = hype_progress_event(stream, new_id("p", now), now, **view)
            await self.roomlog.emit(stream, body, once=False)
