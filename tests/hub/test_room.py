"""A room on one hub, without sockets or Redis: order, gaps, batches, the end.

The history reader is the room's port (``FetchSince``): here a list in memory.
"""

from __future__ import annotations

import asyncio
import json
from typing import cast

from gifting.core.disconnect import Disconnect
from gifting.core.protocol import JSON
from gifting.hub.room import Member, Room
from gifting.hub.send_queue import SendQueue
from gifting.store.rooms import HistoryEntry


class Frames:
    """Stands in for a send queue: records what is pushed and how it was closed."""

    def __init__(self) -> None:
        self.pushed: list[str | bytes] = []
        self.closed: Disconnect | None = None

    def push(self, frame: str | bytes, wire: bytes | None = None) -> bool:
        self.pushed.append(frame)
        return True

    def close(self, disconnect: Disconnect) -> None:
        self.closed = disconnect

    def seqs(self) -> list[int]:
        out: list[int] = []
        for frame in self.pushed:
            msg = json.loads(frame)
            out += [e["seq"] for e in msg["events"]] if msg["op"] == "batch" else [msg["seq"]]
        return out


def entry(seq: int, kind: str = "gift") -> HistoryEntry:
    body = b'{"kind":"%s","event":"e%d"}' % (kind.encode(), seq)
    return HistoryEntry(seq, f"1-{seq}_{seq}", body)


class History:
    """The room's history: what `since` returns after a cursor."""

    def __init__(self, entries: list[HistoryEntry]) -> None:
        self.entries = entries
        self.reads = 0

    async def since(self, stream: str, cursor: str, limit: int = 20_000) -> list[HistoryEntry]:
        self.reads += 1
        after = int(cursor.rsplit("_", 1)[1]) if cursor else 0
        return [e for e in self.entries if e.seq > after][:limit]


def member(room: Room, overlay: bool) -> Frames:
    frames = Frames()
    room.add(Member(cast(SendQueue, frames), JSON, is_overlay=overlay))
    return frames


async def test_overlays_get_each_event_once_in_seq_order() -> None:
    room = Room("s1", History([]).since)
    a, b = member(room, True), member(room, True)
    for seq in (1, 2, 2, 1, 3):  # duplicates from a resubscribe are dropped
        room.receive(entry(seq))
    assert a.seqs() == b.seqs() == [1, 2, 3]
    assert a.pushed[0] == b.pushed[0]  # encoded once, the same frame for all


async def test_a_gap_is_filled_from_history_before_anything_newer() -> None:
    history = History([entry(s) for s in range(1, 8)])
    room = Room("s1", history.since)
    overlay = member(room, True)
    room.receive(entry(1))
    room.receive(entry(5))  # 2..4 were lost between hubs
    room.receive(entry(6))  # arrives while the gap is being filled
    for _ in range(20):
        await asyncio.sleep(0)
    room.receive(entry(7))
    assert overlay.seqs() == [1, 2, 3, 4, 5, 6, 7]
    assert 1 <= history.reads <= 2  # a page, and the empty one that says it is the end


async def test_viewers_get_one_batch_frame_per_interval() -> None:
    room = Room("s1", History([]).since, viewer_batch_s=0.02)
    viewer = member(room, False)
    for seq in (1, 2, 3):
        room.receive(entry(seq))
    assert viewer.pushed == []  # nothing before the interval ends
    await asyncio.sleep(0.1)
    assert len(viewer.pushed) == 1
    assert json.loads(viewer.pushed[0])["op"] == "batch"
    assert viewer.seqs() == [1, 2, 3]


async def test_stream_ended_is_delivered_then_every_member_is_closed() -> None:
    room = Room("s1", History([]).since)
    overlay, viewer = member(room, True), member(room, False)
    room.receive(entry(1))
    room.receive(entry(2, "stream_ended"))
    await asyncio.sleep(0.01)
    assert overlay.seqs() == [1, 2] and viewer.seqs() == [1, 2]
    assert overlay.closed is not None and viewer.closed is not None
    assert room.ended
