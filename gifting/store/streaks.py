"""Ends gift streaks from Redis: the ``streak`` deadline's handler.

spend.lua schedules each streak's end one combo window after its last gift
(gifting/core/streaks.py). When it comes due, whichever process takes it
emits ``streak_end`` with an id derived from the last gift's, behind the
room's once-marker: a streak continued on another hub, or through a hub's
restart, ends once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from gifting.clock import now_ms
from gifting.core.errors import BadRequest
from gifting.core.streaks import Streak, parse_streak, streak_end_body, streak_of_hash
from gifting.store.deadlines import NotYet
from gifting.store.rooms import RoomLog

#: The owner of a combo hash key (Keys.combo): ``...:combo:<user>:<stream>`` (ids hold no colon).
_COMBO = re.compile(r":combo:([^:]+):([^:]+)$")
#: How long the end's marker outlives it (a deadline is retried within seconds).
STREAK_END_MARKER_TTL_S: Final = 3600
#: Extra wait past the window, for hubs' clocks that run a little apart (spend.lua
#: schedules the end this much after the window too, so ends stay in due order).
STREAK_END_GRACE_MS: Final = 100


class StreakEnds:
    """Emits the ``streak_end`` of a streak whose window has passed."""

    def __init__(self, roomlog: RoomLog, window_ms: int, clock: Callable[[], int] = now_ms) -> None:
        self.roomlog = roomlog
        self.window_ms = window_ms
        self.clock = clock

    async def end(self, rest: str) -> None:
        """Handle a ``streak|...`` deadline: emit its ``streak_end`` once.

        ``rest`` is a combo hash's key (the streak it holds) or a streak's
        state as JSON (one a new streak replaced in the hash before its end).
        """
        if rest.startswith("{"):
            streak: Streak | None = parse_streak(rest)
        else:
            owner = _COMBO.search(rest)
            if owner is None:
                raise BadRequest(f"not a combo key: {rest!r}")
            raw = await self.roomlog.redis.hgetall(rest)
            fields = {k.decode(): v.decode() for k, v in raw.items()}
            streak = streak_of_hash(owner[1], owner[2], fields)
        if streak is None:
            return  # nothing left to end (the hash expired, or predates its fields)
        due = streak.last_ms + self.window_ms + STREAK_END_GRACE_MS
        if self.clock() < due:
            raise NotYet(due)
        body = streak_end_body(self.roomlog.catalog, streak, self.window_ms)
        await self.roomlog.emit(streak.stream, body, marker_ttl_s=STREAK_END_MARKER_TTL_S)
