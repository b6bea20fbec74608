"""Discovery, pure: presence reports, the ranking of live streams and the listing cursor.

Presence: each hub reports, per stream, how many viewer connections it
holds as one hash field (``hub id → "<count>:<expires ms>"``). A report is
fresh until its expiry; a hub that dies stops refreshing its fields, so its
viewers stop counting once they expire (:func:`fresh_viewers`).

Ranking: the most-watched live streams first, ties by the newer stream,
then by id (:func:`rank`). A listing's first page ranks every live stream
once and keeps that order under a snapshot id; the cursor is
``<snapshot>.<offset>`` into it, so paging never repeats or skips a stream
while viewer counts move (:func:`format_cursor`, :func:`parse_cursor`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gifting.core.errors import BadRequest

__all__ = [
    "Ranked",
    "format_cursor",
    "fresh_viewers",
    "parse_cursor",
    "presence_value",
    "rank",
]

_CURSOR = re.compile(r"([A-Za-z0-9_-]{8,32})\.(0|[1-9][0-9]{0,8})")


def presence_value(count: int, expires_ms: int) -> str:
    """The hash value of one hub's report: ``"<count>:<expires ms>"``."""
    return f"{count}:{expires_ms}"


def fresh_viewers(fields: Mapping[bytes, bytes], now_ms: int) -> tuple[int, list[bytes]]:
    """The viewers of the fresh reports in ``fields``, and the fields that expired.

    A field that does not parse counts as expired (it is removed, never counted).
    """
    total = 0
    stale: list[bytes] = []
    for hub, raw in fields.items():
        count, _, expires = raw.partition(b":")
        try:
            n, until = int(count), int(expires)
        except ValueError:
            stale.append(hub)
            continue
        if until > now_ms and n > 0:
            total += n
        else:
            stale.append(hub)
    return total, stale


@dataclass(frozen=True, slots=True)
class Ranked:
    """A live stream as ranked: its id, start time and viewers at ranking time."""

    stream: str
    created: int
    viewers: int


def rank(streams: Iterable[Ranked]) -> list[str]:
    """Stream ids, most viewers first; ties: the newer stream first, then by id."""
    ordered = sorted(streams, key=lambda r: (-r.viewers, -r.created, r.stream))
    return [r.stream for r in ordered]


def format_cursor(snapshot: str, offset: int) -> str:
    """The cursor of the page starting at ``offset`` of ranking ``snapshot``."""
    return f"{snapshot}.{offset}"


def parse_cursor(cursor: str) -> tuple[str, int]:
    """``(snapshot, offset)`` of a cursor :func:`format_cursor` made, or raise ``BadRequest``."""
    m = _CURSOR.fullmatch(cursor)
    if m is None:
        raise BadRequest("cursor is not one this listing gave (pass the previous page's `next`)")
    return m.group(1), int(m.group(2))
