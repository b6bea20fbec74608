"""Where the persister group stands on each outbox stream: lag, trim point, caught up.

Read-only inspection of the outbox streams (XINFO GROUPS, XPENDING, XRANGE),
shared by the consumer's maintenance (metrics, trimming), the audit command
and tests (:func:`wait_caught_up`).

The trim point of a stream is the smallest id some consumer group still
needs: for each group, its oldest pending entry, or else the entry right after
its last-delivered id; ``XTRIM MINID`` up to the smallest of these removes
only entries every group has acknowledged.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from gifting.store.keys import Keys

__all__ = [
    "GROUP",
    "StreamProgress",
    "id_ms",
    "last_ids",
    "next_id",
    "outbox_progress",
    "parse_id",
    "persisted_through",
    "wait_caught_up",
    "wait_persisted_through",
]

#: The consumer group of the persister on every outbox stream.
GROUP = "persister"


def _s(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def parse_id(entry_id: str) -> tuple[int, int]:
    """A stream entry id ``"<ms>-<seq>"`` as a pair that orders like Redis orders ids."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


_parse_id = parse_id


def id_ms(entry_id: str) -> int:
    """The milliseconds part of a stream entry id."""
    return _parse_id(entry_id)[0]


def next_id(entry_id: str) -> str:
    """The smallest stream id greater than ``entry_id``."""
    ms, seq = _parse_id(entry_id)
    return f"{ms}-{seq + 1}"


def _min_id(ids: list[str]) -> str | None:
    return min(ids, key=_parse_id) if ids else None


@dataclass(frozen=True, slots=True)
class StreamProgress:
    """The persister group's position on one outbox stream.

    ``grouped`` is False when the stream has no persister group yet;
    ``undelivered`` is the number of entries never delivered to the group
    (Redis' ``lag``; the stream length when Redis cannot tell).
    """

    stream: str
    length: int
    grouped: bool
    last_delivered: str | None
    pending: int
    oldest_pending: str | None
    oldest_undelivered: str | None
    undelivered: int
    trim_floor: str | None

    @property
    def caught_up(self) -> bool:
        """Nothing pending and nothing left to deliver."""
        if not self.grouped:
            return self.length == 0
        return self.pending == 0 and self.oldest_undelivered is None

    def persisted_through(self, position: str) -> bool:
        """Whether the group acknowledged every entry up to ``position`` (inclusive).

        An entry is acknowledged only after the transaction that wrote it to
        PostgreSQL committed, so this means: every event at or before
        ``position`` on this stream is in the ledger.
        """
        if not self.grouped:
            return self.length == 0
        oldest = self.oldest_unacked
        return oldest is None or parse_id(oldest) > parse_id(position)

    @property
    def oldest_unacked(self) -> str | None:
        """The oldest entry id the persister has not acknowledged yet."""
        if not self.grouped:
            return None
        return _min_id([i for i in (self.oldest_pending, self.oldest_undelivered) if i])


async def outbox_progress(
    redis: Redis, keys: Keys, group: str = GROUP, *, streams: Sequence[str] | None = None
) -> list[StreamProgress]:
    """Inspect every outbox stream, or only ``streams`` (two pipelined round trips).

    On a cluster the pipelines go to every master at once (redis-py groups
    them by node): each command names one stream.
    """
    streams = list(streams) if streams is not None else keys.outboxes()
    lengths, infos = await _groups(redis, streams)
    oldest_pending, oldest_new = await _oldest(redis, streams, infos, group)
    out: list[StreamProgress] = []
    for i, s in enumerate(streams):
        floors: list[str] = []
        mine: dict[str, Any] | None = None
        for g in infos[i]:
            name = _s(g["name"])
            if name == group:
                mine = g
            held = oldest_pending.get((i, name))
            floors.append(held if held else next_id(_s(g["last-delivered-id"])))
        if mine is None:
            out.append(
                StreamProgress(
                    s, lengths[i], False, None, 0, None, None, lengths[i], _min_id(floors)
                )
            )
            continue
        lag = mine.get("lag")
        undelivered = 0
        if i in oldest_new:
            undelivered = int(lag) if lag is not None else lengths[i]
        out.append(
            StreamProgress(
                s,
                lengths[i],
                True,
                _s(mine["last-delivered-id"]),
                int(mine["pending"]),
                oldest_pending.get((i, group)),
                oldest_new.get(i),
                undelivered,
                _min_id(floors),
            )
        )
    return out


async def _groups(redis: Redis, streams: list[str]) -> tuple[list[int], list[list[dict[str, Any]]]]:
    """Length and XINFO GROUPS of each stream (a missing stream: 0 and no groups)."""
    pipe = redis.pipeline(transaction=False)
    for s in streams:
        pipe.xlen(s)
        pipe.xinfo_groups(s)
    replies = await pipe.execute(raise_on_error=False)
    lengths = [r if isinstance(r, int) else 0 for r in replies[0::2]]
    infos = [r if isinstance(r, list) else [] for r in replies[1::2]]
    return lengths, infos


async def _oldest(
    redis: Redis, streams: list[str], infos: list[list[dict[str, Any]]], group: str
) -> tuple[dict[tuple[int, str], str], dict[int, str]]:
    """The oldest pending id per (stream, group) and the oldest undelivered id per stream."""
    pipe = redis.pipeline(transaction=False)
    asks: list[tuple[int, str, bool]] = []
    for i, s in enumerate(streams):
        for g in infos[i]:
            name = _s(g["name"])
            if int(g["pending"]) > 0:
                pipe.xpending(s, name)
                asks.append((i, name, True))
            if name == group:
                pipe.xrange(s, "(" + _s(g["last-delivered-id"]), "+", count=1)
                asks.append((i, name, False))
    replies = await pipe.execute() if asks else []
    oldest_pending: dict[tuple[int, str], str] = {}
    oldest_new: dict[int, str] = {}
    for (i, name, pending), reply in zip(asks, replies, strict=True):
        if pending and reply and reply.get("min") is not None:
            oldest_pending[(i, name)] = _s(reply["min"])
        elif not pending and reply:
            oldest_new[i] = _s(reply[0][0])
    return oldest_pending, oldest_new


async def wait_caught_up(
    redis: Redis,
    keys: Keys,
    timeout: float,  # noqa: ASYNC109 - returning False at the deadline is the point
    group: str = GROUP,
    poll_s: float = 0.05,
) -> bool:
    """Wait until the group has nothing pending and nothing undelivered on every outbox.

    Returns True once caught up, False if ``timeout`` seconds passed first.
    """
    deadline = time.monotonic() + timeout
    while True:
        progress = await outbox_progress(redis, keys, group)
        if all(p.caught_up for p in progress):
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(poll_s)


async def last_ids(redis: Redis, streams: Sequence[str]) -> dict[str, str]:
    """The last id each stream ever generated (``XINFO STREAM``); a missing stream is left out.

    Trimming does not lower it: every entry a stream held is at or before it.
    """
    pipe = redis.pipeline(transaction=False)
    for s in streams:
        pipe.xinfo_stream(s)
    replies = await pipe.execute(raise_on_error=False)
    out: dict[str, str] = {}
    for s, reply in zip(streams, replies, strict=True):
        if isinstance(reply, dict):
            out[s] = _s(reply["last-generated-id"])
    return out


def persisted_through(progress: Sequence[StreamProgress], positions: dict[str, str]) -> bool:
    """Whether every stream of ``positions`` is acknowledged up to its position."""
    by_stream = {p.stream: p for p in progress}
    return all(by_stream[s].persisted_through(pos) for s, pos in positions.items())


async def wait_persisted_through(
    redis: Redis,
    keys: Keys,
    positions: dict[str, str],
    timeout: float,  # noqa: ASYNC109 - returning False at the deadline is the point
    group: str = GROUP,
    poll_s: float = 0.05,
) -> bool:
    """Wait until the group acknowledged every entry up to each stream's position.

    Unlike :func:`wait_caught_up` this needs no quiet: traffic may go on
    adding entries past the positions. True once reached, False at ``timeout``.
    """
    if not positions:
        return True
    streams = sorted(positions)
    deadline = time.monotonic() + timeout
    while True:
        progress = await outbox_progress(redis, keys, group, streams=streams)
        if persisted_through(progress, positions):
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(poll_s)
