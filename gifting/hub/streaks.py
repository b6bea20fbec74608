"""Gift streaks: ``streak_end`` once a sender stops repeating a gift for the combo window.

A hub-local timer per (sender, stream, gift): each settled streakable gift
restarts it, and when it fires the hub that acked the last gift of the
streak emits ``streak_end`` with the final combo (spend.lua counts the
combo; this only says when it is over).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from gifting.clock import now_ms
from gifting.core.events import sender_of, streak_end_event
from gifting.core.ids import new_id
from gifting.core.levels import level_for
from gifting.hub.spends import Settled
from gifting.store.rooms import RoomLog

log = logging.getLogger(__name__)

#: How long stop() lets a streak_end emit in flight finish before cancelling it.
STOP_GRACE_S = 1.0

StreakKey = tuple[str, str, str]
"""(sender, stream, gift)"""


class StreakTimers:
    """The running streaks of this hub and the timers that end them."""

    def __init__(self, roomlog: RoomLog, window_ms: int) -> None:
        self.roomlog = roomlog
        self.window_s = window_ms / 1000
        self._timers: dict[StreakKey, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def on_settled(self, s: Settled) -> None:
        """Restart the streak timer of a settled streakable gift."""
        o, p = s.order, s.order.priced
        if p.kind != "gift" or not p.streakable:
            return
        key = (o.sender, o.stream, p.item)
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()
        self._timers[key] = asyncio.get_running_loop().call_later(
            self.window_s,
            self._end,
            key,
            o.sender_name,
            s.result.combo,
            level_for(self.roomlog.catalog, s.result.lifetime),
        )

    async def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Cancel every timer, give the ``streak_end`` emits in flight ``grace_s`` to land,
        then cancel and await the rest: nothing of this hub's runs after it."""
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        tasks = list(self._tasks)
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=grace_s)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)

    def _end(self, key: StreakKey, name: str, combo: int, level: int) -> None:
        self._timers.pop(key, None)
        sender, stream, gift = key
        now = now_ms()
        body = streak_end_event(
            stream, new_id("k", now), now, sender_of(sender, name, level=level), gift, combo
        )
        self._spawn(self.roomlog.emit(stream, body, once=False))

    def _spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        async def run() -> None:
            try:
                await coro
            except Exception as exc:
                log.warning("room event failed: %s", exc)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
