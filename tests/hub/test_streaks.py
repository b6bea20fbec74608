"""Streak timers: ``streak_end`` after the combo window, and nothing left running after stop()."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from gifting.core.catalog import load_catalog
from gifting.core.pricing import price_gift
from gifting.hub.spends import Settled
from gifting.hub.streaks import StreakTimers
from gifting.store.ledger import SpendOrder, SpendResult
from gifting.store.rooms import RoomLog


class StuckRoomLog:
    """A room log whose emits never finish on their own (Redis hangs)."""

    catalog = load_catalog()  # the streak's end shows the sender's level

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = 0

    async def emit(self, stream: str, body: dict[str, Any], **kw: Any) -> None:
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise


def settled(sender: str = "ann") -> Settled:
    priced = price_gift(load_catalog(), "rose", 1)
    order = SpendOrder(sender, sender.title(), "g1", priced, "s1", "carol")
    return Settled(order, SpendResult("e1", 10, 1, False), 0)


async def test_stop_leaves_no_streak_end_running() -> None:
    log = StuckRoomLog()
    timers = StreakTimers(cast(RoomLog, log), window_ms=10)
    timers.on_settled(settled("ann"))  # fires after 10 ms: its emit gets stuck
    timers.on_settled(settled("bob"))
    await asyncio.wait_for(log.started.wait(), 5)
    timers.on_settled(settled("cyd"))  # still waiting for its window
    await asyncio.wait_for(timers.stop(grace_s=0.1), 10)
    assert log.cancelled == 2  # the stuck emits were cancelled and awaited, not left behind
    await asyncio.sleep(0.05)
    assert log.cancelled == 2  # and the pending timer never fired
