"""A room's hype in Redis: its state, the deadline that ends it, and that deadline's handler.

emit.lua (its "Hype" section) keeps the state in the room's slot, on each
spend's first emission: the hash ``Keys.stream_hype`` (the running hype's
``id``, ``level``, ``progress``, ``expires`` in unix ms of Redis's clock, and
the window's aggregates ``total``, ``senders``, ``s:<sender>``) and the window
``Keys.stream_hype_window``. It starts, levels up and extends a hype and
announces each level (gifting/core/hype.py).

**The end is a deadline, never a hub's timer.** ``hype|<stream>`` sits in the
global deadline set (gifting/store/deadlines.py) and whichever process's
runner takes it calls :meth:`HypeEnds.end`: before the expiry it answers
:class:`NotYet` with the expiry (the runner moves the deadline there: an
extended hype is simply checked again later); past it, it appends
``hype_ended`` through emit.lua, which does so only if that same hype still
runs and has run out (Redis's clock), and clears it in the same script. So
``hype_ended`` is emitted once, whoever runs the deadline and however often.
A spend that comes after the expiry but before the deadline ends the hype
itself, in its own emission (the deadline then finds it gone).

**Who schedules, and the crash between the emission and the schedule.** The
emission is in the room's slot and the deadline set in its own, so they
cannot be one script. Instead :meth:`HypeDeadlines.ensure` schedules the
deadline of any running hype that has none, and it runs after every
emission that can start one: the hub's LeaderboardTicker ensures the rooms
that had spends within the second, and the persister ensures every room of
every outbox batch right after its repair emissions (``RoomLog.emit_spends``),
when each spend of the batch has been emitted by someone. A hub that dies
right after the emission that started a hype leaves its spend in the outbox,
and the persister's pass over that entry schedules the end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from redis.asyncio import Redis

from gifting.clock import now_ms
from gifting.core.catalog_model import Hype
from gifting.core.hype import hype_ended_event
from gifting.store.deadlines import Deadlines, NotYet
from gifting.store.keys import Keys

if TYPE_CHECKING:
    from gifting.store.rooms import RoomLog

#: How long a ``hype_ended`` marker outlives it (a deadline is retried within seconds).
HYPE_END_MARKER_TTL_S: Final = 3600


def hype_task(stream: str) -> str:
    """The deadline member that ends ``stream``'s hype."""
    return f"hype|{stream}"


@dataclass(frozen=True, slots=True)
class HypeState:
    """A running hype (as stored): its instance id, level, progress and expiry (unix ms)."""

    id: str
    level: int
    progress: int
    expires: int

    def view(self, hype: Hype) -> dict[str, int]:
        """The hype on the wire (snapshots, ``hype_progress``): level, progress, target, expiry."""
        return {
            "level": self.level,
            "progress": self.progress,
            "target": hype.levels[min(self.level, len(hype.levels)) - 1],
            "expires_at": self.expires,
        }


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def hype_from_fields(values: list[bytes | str | None]) -> HypeState | None:
    """A running hype from the hash's ``id, level, progress, expires`` (None: none runs)."""
    hid, level, progress, expires = (_text(v) for v in values)
    if not hid or level is None or progress is None or expires is None:
        return None
    return HypeState(hid, int(level), int(progress), int(expires))


class HypeDeadlines:
    """Read a room's hype and make sure a running one has its deadline."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self.deadlines = Deadlines(redis, keys)

    async def state(self, stream: str) -> HypeState | None:
        """The room's running hype (possibly past its expiry, not ended yet), or None."""
        values = await self.redis.hmget(
            self.keys.stream_hype(stream), ["id", "level", "progress", "expires"]
        )
        return hype_from_fields(values)

    async def ensure(self, streams: Iterable[str]) -> None:
        """Schedule the end of each of ``streams``' running hypes that has no deadline."""
        await asyncio.gather(*(self._ensure(s) for s in streams))

    async def _ensure(self, stream: str) -> None:
        state = await self.state(stream)
        if state is None:
            return
        task = hype_task(stream)
        if await self.redis.zscore(self.keys.due(), task) is None:
            await self.deadlines.schedule(task, state.expires)


class HypeEnds:
    """The ``hype`` deadline's handler: ends a room's hype once it has run out."""

    def __init__(self, roomlog: RoomLog, clock: Callable[[], int] = now_ms) -> None:
        self.roomlog = roomlog
        self.clock = clock

    async def end(self, stream: str) -> None:
        """Handle ``hype|<stream>``: nothing if no hype runs, :class:`NotYet` before its
        expiry, else its ``hype_ended`` (once: emit.lua checks the instance and the expiry)."""
        state = await self.roomlog.hype.state(stream)
        if state is None:
            return
        if state.expires > self.clock():
            raise NotYet(state.expires)
        body = hype_ended_event(stream, state.id, self.clock(), state.level)
        keys, args = self.roomlog.emit_args(
            stream, body, marker_ttl_s=HYPE_END_MARKER_TTL_S, hype_end=state.id
        )
        status, expires, _ = await self.roomlog.scripts.run("emit", keys, args)
        if status == "early":  # this process's clock runs ahead of Redis's
            raise NotYet(int(expires))
