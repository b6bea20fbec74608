"""A room member catching up: live events wait while it recovers, then merge with history."""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

import pytest

from gifting.core.disconnect import BAD_CURSOR, STREAM_ENDED
from gifting.core.protocol import JSON
from gifting.hub.room import CATCH_UP_PAGE, MAX_HELD, Member
from gifting.hub.send_queue import SendQueue
from gifting.store.rooms import HistoryEntry


class Frames:
    """Stands in for a send queue that never fills: records what is pushed."""

    limit = 1 << 30
    high_water = 1 << 29
    queued_bytes = 0

    def __init__(self) -> None:
        self.pushed: list[str | bytes] = []
        self.closed_with: Any = None

    @property
    def closed(self) -> bool:
        return self.closed_with is not None

    def push(self, frame: str | bytes, wire: bytes | None = None) -> bool:
        self.pushed.append(frame)
        return True

    def close(self, disconnect: Any) -> None:
        self.closed_with = self.closed_with or disconnect

    async def drained(self, within_s: float) -> bool:
        return not self.closed

    def seqs(self) -> list[int]:
        return [json.loads(f)["seq"] for f in self.pushed]


def entry(seq: int) -> HistoryEntry:
    return HistoryEntry(seq, f"1-{seq}_{seq}", b'{"kind":"test","event":"t%d"}' % seq)


def member(recovering: bool) -> tuple[Member, Frames]:
    frames = Frames()
    return Member(cast(SendQueue, frames), JSON, is_overlay=True, recovering=recovering), frames


class History:
    """The room's history as ``read_page`` serves it, counting reads."""

    def __init__(self, last: int) -> None:
        self.last = last
        self.reads: list[str] = []

    async def __call__(self, cursor: str, limit: int) -> list[HistoryEntry]:
        self.reads.append(cursor)
        after = int(cursor.rsplit("_", 1)[1])
        return [entry(s) for s in range(after + 1, min(self.last, after + limit) + 1)]


def test_a_recovering_member_holds_live_events_until_it_goes_live() -> None:
    m, frames = member(recovering=True)
    assert m.recovering
    m.hold(entry(5))
    m.hold(entry(6))
    assert frames.pushed == []
    m.go_live([entry(3), entry(4), entry(5)])  # history read overlaps what was held
    assert frames.seqs() == [3, 4, 5, 6]
    assert not m.recovering and m.last_seq == 6


def test_going_live_after_a_snapshot_skips_what_the_snapshot_covers() -> None:
    m, frames = member(recovering=True)
    m.hold(entry(7))
    m.hold(entry(8))
    m.last_seq = 7  # the snapshot's seq
    m.go_live()
    assert frames.seqs() == [8]


def test_a_live_member_cannot_hold() -> None:
    m, _ = member(recovering=False)
    assert not m.recovering
    with pytest.raises(RuntimeError):
        m.hold(entry(1))


def test_give_sends_each_event_once_in_order() -> None:
    m, frames = member(recovering=False)
    for seq in (1, 2, 2, 1, 3):
        m.give(entry(seq))
    assert frames.seqs() == [1, 2, 3]


async def test_catch_up_reads_the_history_in_pages_then_hands_over_what_was_held() -> None:
    m, frames = member(recovering=True)
    history = History(last=CATCH_UP_PAGE * 2 + 10)
    for seq in range(CATCH_UP_PAGE * 2, CATCH_UP_PAGE * 2 + 15):  # held while it reads
        m.hold(entry(seq))
    assert await m.catch_up(history, drain_s=1, cursor="1-3_3")
    assert frames.seqs() == list(range(4, CATCH_UP_PAGE * 2 + 15))
    assert len(history.reads) == 3  # two full pages, then the short last one
    assert not m.recovering and m.last_cursor.endswith(f"_{CATCH_UP_PAGE * 2 + 14}")


async def test_held_events_past_the_bound_are_dropped_and_read_again() -> None:
    m, frames = member(recovering=True)
    history = History(last=MAX_HELD + 100)
    for seq in range(1, MAX_HELD + 101):  # more than it may hold: the oldest are dropped
        m.hold(entry(seq))
    assert await m.catch_up(history, drain_s=1, cursor=None)
    assert frames.seqs() == list(range(1, MAX_HELD + 101))
    assert history.reads  # what was dropped came from the history


async def test_a_stream_end_waits_for_the_catch_up_to_finish() -> None:
    m, frames = member(recovering=True)
    m.hold(entry(3))
    m.close(STREAM_ENDED)
    assert frames.closed_with is None  # not yet: it has events to get first
    assert await m.catch_up(History(last=2), drain_s=1, cursor="1-0_0") is False
    assert frames.seqs() == [1, 2, 3]
    assert frames.closed_with == STREAM_ENDED


async def test_catch_up_waits_for_the_queue_and_closes_1013_when_it_never_drains() -> None:
    sent: list[dict[str, Any]] = []
    stall = asyncio.get_running_loop().create_future()

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        await stall  # the peer stopped reading

    queue = SendQueue(send, "overlay", limit=4096)
    queue.start()
    m = Member(queue, JSON, is_overlay=True, recovering=True)
    assert not await m.catch_up(History(last=1000), drain_s=0.2, cursor="1-0_0")
    assert queue.closed and m.last_seq < 100  # it stopped at what the queue could hold
    stall.set_result(None)
    await queue.wait_closed(1.0)
    assert sent[-1] == {"type": "websocket.close", "code": 1013, "reason": "too slow: reconnect"}


def test_a_live_member_without_room_for_an_event_lags() -> None:
    m, frames = member(recovering=False)
    lagged: list[bool] = []
    m.on_lag = lambda: lagged.append(True)
    frames.queued_bytes = frames.limit  # full
    frame = '{"seq":1}'
    m.deliver(entry(1), frame)
    assert lagged == [True] and m.recovering and frames.pushed == []
    m.lag()  # a second lag while it catches up: what it holds may have a hole
    assert lagged == [True]


def test_an_overlay_closed_while_it_recovers_holds_nothing() -> None:
    # A bad cursor closes the overlay (1008) before it ever goes live; until its
    # socket is gone (a peer may sit on the close handshake) the room still has it.
    m, frames = member(recovering=True)
    m.hold(entry(1))
    frames.close(BAD_CURSOR)
    for seq in range(2, 1000):
        m.hold(entry(seq))
    assert m.held == 0
