"""Leaderboard entries and their order. Pure.

A board ranks by coins, most first; ties go to the smaller user id, so the
same standings always read the same way; ranks are 1, 2, 3, ... in that
order (a tie does not share a rank: the overlay shows a list, not a podium).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["MAX_BOARD", "BoardEntry", "board_answer", "ranked", "weekly_board_event"]

#: A board shows at most this many entries.
MAX_BOARD: Final = 100


@dataclass(frozen=True, slots=True)
class BoardEntry:
    """One user on a board: id, display name and coins."""

    user: str
    name: str
    coins: int


def ranked(entries: Iterable[BoardEntry], limit: int) -> list[BoardEntry]:
    """The first ``limit`` of ``entries`` by coins (most first), ties by user id."""
    return sorted(entries, key=lambda e: (-e.coins, e.user))[: max(0, limit)]


def board_answer(period: str, at: str, entries: Iterable[BoardEntry]) -> dict[str, Any]:
    """The wire form: ``{"period","at","entries":[{"rank","user","name","coins"}]}``."""
    return {
        "period": period,
        "at": at,
        "entries": [
            {"rank": i, "user": e.user, "name": e.name, "coins": e.coins}
            for i, e in enumerate(entries, start=1)
        ],
    }


def weekly_board_event(
    stream: str, event: str, ts: int, creator: str, week: str, entries: Iterable[BoardEntry]
) -> dict[str, Any]:
    """The room event carrying the stream's creator's top supporters of the ISO week ``week``."""
    return {
        "kind": "weekly_board", "stream": stream, "event": event, "ts": ts,
        "creator": creator, **board_answer("week", week, entries),
    }  # fmt: skip
