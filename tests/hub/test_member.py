"""A room member catching up: live events wait while it recovers, then merge with history."""

from __future__ import annotations

import json
from typing import cast

import pytest

from gifting.core.protocol import JSON
from gifting.hub.room import Member
from gifting.hub.send_queue import SendQueue
from gifting.store.rooms import HistoryEntry


class Frames:
    """Stands in for a send queue: records what is pushed."""

    def __init__(self) -> None:
        self.pushed: list[str | bytes] = []

    def push(self, frame: str | bytes) -> bool:
        self.pushed.append(frame)
        return True

    def seqs(self) -> list[int]:
        return [json.loads(f)["seq"] for f in self.pushed]


def entry(seq: int) -> HistoryEntry:
    return HistoryEntry(seq, f"1-{seq}_{seq}", b'{"kind":"test","event":"t%d"}' % seq)


def member(recovering: bool) -> tuple[Member, Frames]:
    frames = Frames()
    return Member(cast(SendQueue, frames), JSON, is_overlay=True, recovering=recovering), frames


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
