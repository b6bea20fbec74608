"""An emit.lua history stream read back: cursors and the events after one.

A room's (``{r:<stream>}``) and a video's (``{v:<video>}``) histories are
both capped streams of ``s`` (seq) and ``d`` (JSON body) entries; an entry's
cursor is ``<stream entry id>_<seq>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from redis.asyncio import Redis

from gifting.core.errors import BadRequest, CursorExpired

__all__ = ["HistoryEntry", "history_since", "parse_cursor"]


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One past room event: its seq, cursor and JSON body (without seq/cursor)."""

    seq: int
    cursor: str
    body: bytes


_CURSOR = re.compile(r"([0-9]{1,19})-([0-9]{1,19})_([0-9]{1,19})")
_INT64_MAX = 2**63 - 1


def parse_cursor(cursor: str) -> tuple[str, int]:
    """Split a cursor ``<ms>-<n>_<seq>`` into (history stream id, seq); raise BadRequest.

    ASCII digits only (``str.isdigit`` takes "²", which ``int`` refuses, and
    "٣", which Redis refuses) and each part an int64, so whatever an overlay
    sends as ``since=`` is either a cursor Redis can range from or a bad request.
    """
    match = _CURSOR.fullmatch(cursor)
    if match is None or max(int(part) for part in match.groups()) > _INT64_MAX:
        raise BadRequest("malformed cursor")
    return f"{match[1]}-{match[2]}", int(match[3])


async def history_since(
    redis: Redis, history: str, seq_key: str, cursor: str, limit: int
) -> list[HistoryEntry]:
    """The events of an emit.lua ``history`` stream after ``cursor``, oldest first.

    Raises CursorExpired if some were trimmed (``seq_key``: its seq counter).
    """
    sid, seq = parse_cursor(cursor)
    first = await redis.xrange(history, "-", "+", count=1)
    if first:
        first_seq = int(first[0][1][b"s"])
        if first_seq > seq + 1:
            raise CursorExpired("the cursor is older than the room's history")
    elif seq < int(await redis.get(seq_key) or 0):
        raise CursorExpired("the cursor is older than the room's history")
    rows = await redis.xrange(history, f"({sid}", "+", count=limit)
    return [HistoryEntry(int(f[b"s"]), f"{i.decode()}_{int(f[b's'])}", f[b"d"]) for i, f in rows]
