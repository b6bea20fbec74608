"""The handlers of every kind of deadline, in one place (gifting/store/deadlines.py).

Both the hub and ``gifting persist`` build their :class:`DeadlineRunner` from
:func:`due_handlers`, so whichever process is alive runs every deadline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from redis.asyncio import Redis

from gifting.clock import now_ms
from gifting.core.catalog import Catalog
from gifting.store.boxes import Boxes
from gifting.store.deadlines import BatchHandler, Deadlines, Handler
from gifting.store.hype import HypeEnds
from gifting.store.keys import Keys
from gifting.store.ledger import Ledger
from gifting.store.rooms import RoomLog
from gifting.store.streaks import StreakEnds


@dataclass(frozen=True, slots=True)
class DueContext:
    """What the handlers need: the process's clients and settings."""

    redis: Redis
    keys: Keys
    catalog: Catalog
    roomlog: RoomLog
    ledger: Ledger
    deadlines: Deadlines
    combo_window_ms: int
    clock: Callable[[], int] = field(default=now_ms)


def due_handlers(ctx: DueContext) -> dict[str, Handler]:
    """The handler of each deadline kind (the member's text before its first ``|``)."""
    handlers: dict[str, Handler] = {}
    handlers["streak"] = StreakEnds(ctx.roomlog, ctx.combo_window_ms, ctx.clock).end
    # Treasure boxes: "box_open" and "box_close" (gifting/store/boxes.py).
    handlers.update(Boxes(ctx.redis, ctx.keys, ctx.roomlog, clock=ctx.clock).handlers())
    # Hype: "hype|<stream>" ends the room's hype once it ran out (gifting/store/hype.py).
    handlers["hype"] = HypeEnds(ctx.roomlog, ctx.clock).end
    return handlers


def due_batch_handlers(ctx: DueContext) -> dict[str, BatchHandler]:
    """The kinds run a take at a time: streak ends (many at once in a gift storm)."""
    return {"streak": StreakEnds(ctx.roomlog, ctx.combo_window_ms, ctx.clock).end_many}
