"""Ends gift streaks from Redis: the ``streak`` deadline's handler.

spend.lua schedules each streak's end one combo window after its last gift
(gifting/core/streaks.py). When it comes due, whichever process takes it
emits ``streak_end`` with an id derived from the last gift's, behind the
room's once-marker: a streak continued on another hub, or through a hub's
restart, ends once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Final

from gifting.clock import now_ms
from gifting.core.errors import BadRequest
from gifting.core.streaks import Streak, parse_streak, streak_end_body, streak_of_hash
from gifting.store.deadlines import NotYet
from gifting.store.rooms import RoomLog
from gifting.store.scripts import ScriptCall

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
        """Handle one ``streak|...`` deadline (see :meth:`end_many`)."""
        (outcome,) = await self.end_many([rest])
        if isinstance(outcome, Exception):
            raise outcome
        if outcome is not None:
            raise NotYet(outcome)

    async def end_many(self, rests: Sequence[str]) -> list[int | Exception | None]:
        """Handle due ``streak|...`` deadlines: emit each one's ``streak_end`` once.

        Each rest is a combo hash's key (the streak it holds) or a streak's
        state as JSON (one a new streak replaced in the hash before its end).
        One round trip reads the hashes, one emits every end that is due (in
        the given order); answers per deadline: ``None`` done, a due time
        (the streak went on: run it again then), or what failed it.
        """
        out: list[int | Exception | None] = [None] * len(rests)
        streaks = await self._read(rests, out)
        calls: list[tuple[int, ScriptCall]] = []
        now = self.clock()
        for i, streak in enumerate(streaks):
            if streak is None:
                continue  # nothing left to end (the hash expired, or predates its fields)
            due = streak.last_ms + self.window_ms + STREAK_END_GRACE_MS
            if now < due:
                out[i] = due
                continue
            body = streak_end_body(self.roomlog.catalog, streak, self.window_ms)
            args = self.roomlog.emit_args(streak.stream, body, marker_ttl_s=STREAK_END_MARKER_TTL_S)
            calls.append((i, ScriptCall("emit", *args)))
        replies = await self.roomlog.scripts.run_many([c for _, c in calls], lane="due")
        for (i, _), reply in zip(calls, replies, strict=True):
            if isinstance(reply, Exception):
                out[i] = reply
        return out

    async def _read(
        self, rests: Sequence[str], out: list[int | Exception | None]
    ) -> list[Streak | None]:
        """Each rest's streak: its combo hash read (one pipeline for all) or its JSON;
        a malformed one's error goes to ``out``."""
        streaks: list[Streak | None] = [None] * len(rests)
        hashes = [i for i, rest in enumerate(rests) if not rest.startswith("{")]
        if hashes:
            pipe = self.roomlog.redis.pipeline(transaction=False)
            for i in hashes:
                pipe.hgetall(rests[i])
            for i, raw in zip(hashes, await pipe.execute(), strict=True):
                owner = _COMBO.search(rests[i])
                if owner is None:
                    out[i] = BadRequest(f"not a combo key: {rests[i]!r}")
                    continue
                fields = {k.decode(): v.decode() for k, v in raw.items()}
                streaks[i] = streak_of_hash(owner[1], owner[2], fields)
        for i, rest in enumerate(rests):
            if rest.startswith("{"):
                try:
                    streaks[i] = parse_streak(rest)
                except BadRequest as exc:
                    out[i] = exc
        return streaks
