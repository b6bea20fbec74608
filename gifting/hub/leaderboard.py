"""The leaderboard ticker: each second, the standings of every room that had spends.

Settled spends mark their stream; once per interval the ticker emits each
marked stream's leaderboard and, if it has goals, their progress. A busy room
thus costs one leaderboard event a second, however many gifts it gets.
"""

from __future__ import annotations

from gifting.clock import now_ms
from gifting.core.events import leaderboard_event
from gifting.core.goals import goals_event
from gifting.core.hype import hype_progress_event
from gifting.core.ids import new_id
from gifting.hub.ticker import RoomTicker
from gifting.store.rooms import RoomLog
from gifting.store.streams import Streams

LEADERBOARD_INTERVAL_S = 1.0


class LeaderboardTicker(RoomTicker):
    """Emits the standings of the streams marked since the last tick."""

    what = "leaderboard"

    def __init__(
        self, streams: Streams, roomlog: RoomLog, interval_s: float = LEADERBOARD_INTERVAL_S
    ) -> None:
        super().__init__(interval_s)
        self.streams = streams
        self.roomlog = roomlog

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
