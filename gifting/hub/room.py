"""A room on one hub: the local connections of a stream and its fan-out.

Events arrive from the broker in seq order. Each is encoded once per
encoding in use and the same frame is pushed to every overlay; viewers get
the events of each ``GIFTING_VIEWER_BATCH_MS`` (25 ms by default; 0: one
loop tick) joined into a single ``batch`` frame (the lever of
docs/contract.md §8). A gap in seq (a pub/sub message lost on a reconnect) is
filled from the room's history before anything newer is delivered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from gifting.core.disconnect import STREAM_ENDED, Disconnect
from gifting.core.protocol import JSON, Encoding, decode_json, encode
from gifting.hub import metrics
from gifting.hub.send_queue import SendQueue
from gifting.store.rooms import HistoryEntry

log = logging.getLogger(__name__)

FetchSince = Callable[[str, str], Awaitable[list[HistoryEntry]]]
_ENDED = b'"kind":"stream_ended"'


def event_json(entry: HistoryEntry, op: bool) -> bytes:
    """The JSON of a room event with its seq and cursor (and ``"op":"event"`` if ``op``)."""
    head = b'{"op":"event","seq":%d,"cursor":"%s",' if op else b'{"seq":%d,"cursor":"%s",'
    return head % (entry.seq, entry.cursor.encode()) + entry.body[1:]


def event_dict(entry: HistoryEntry, op: bool) -> dict[str, Any]:
    """A room event as a dict (for msgpack)."""
    body: dict[str, Any] = decode_json(entry.body)
    out: dict[str, Any] = {"op": "event"} if op else {}
    out["seq"] = entry.seq
    out["cursor"] = entry.cursor
    out.update(body)
    return out


def overlay_frame(entry: HistoryEntry, encoding: Encoding) -> str | bytes:
    """The frame of one event for an overlay."""
    if encoding == JSON:
        return event_json(entry, True).decode()
    return encode(event_dict(entry, True), encoding)


class Member:
    """A connection in a room: its send queue, encoding and the last seq it was given.

    An overlay that joins to recover (``recovering=True``) holds the room's
    live events until :meth:`go_live`, which merges them with the history it
    read; the held list is this class's alone.
    """

    __slots__ = ("_held", "encoding", "is_overlay", "last_seq", "queue")

    def __init__(
        self, queue: SendQueue, encoding: Encoding, is_overlay: bool, recovering: bool = False
    ) -> None:
        self.queue = queue
        self.encoding: Encoding = encoding
        self.is_overlay = is_overlay
        self.last_seq = 0
        self._held: list[HistoryEntry] | None = [] if recovering else None

    @property
    def recovering(self) -> bool:
        """Whether live events are held back while the member catches up."""
        return self._held is not None

    def hold(self, entry: HistoryEntry) -> None:
        """Keep a live event until :meth:`go_live` (only while recovering)."""
        if self._held is None:
            raise RuntimeError("hold() on a member that is not recovering")
        self._held.append(entry)

    def go_live(self, missed: Iterable[HistoryEntry] = ()) -> None:
        """End recovery: deliver ``missed`` and the held events, merged by seq, each once."""
        held, self._held = self._held or [], None
        for entry in sorted([*missed, *held], key=lambda e: e.seq):
            self.give(entry)

    def give(self, entry: HistoryEntry) -> None:
        """Push one event to an overlay unless it already had it."""
        if entry.seq <= self.last_seq:
            return
        self.last_seq = entry.seq
        self.queue.push(overlay_frame(entry, self.encoding))


class Room:
    """The members of one stream on this hub, fed by the broker."""

    def __init__(self, stream: str, fetch_since: FetchSince, viewer_batch_s: float = 0.0) -> None:
        self.stream = stream
        # Viewers' events are joined into one frame per this interval (0: per loop tick).
        self.viewer_batch_s = viewer_batch_s
        self.overlays: list[Member] = []
        self.viewers: list[Member] = []
        self.last_seq = 0
        self.last_cursor = ""
        self._fetch_since = fetch_since
        self._viewer_batch: list[HistoryEntry] = []
        self._flush_scheduled = False
        self._filling: list[HistoryEntry] | None = None
        self.ended = False

    @property
    def empty(self) -> bool:
        """Whether no connection of this hub is in the room."""
        return not self.overlays and not self.viewers

    def add(self, member: Member) -> None:
        """Add a member (an overlay may be recovering: see :class:`Member`)."""
        (self.overlays if member.is_overlay else self.viewers).append(member)
        metrics.CONNECTIONS.labels("overlay" if member.is_overlay else "viewer").inc()

    def remove(self, member: Member) -> None:
        """Remove a member (its connection is gone)."""
        group = self.overlays if member.is_overlay else self.viewers
        if member in group:
            group.remove(member)
            metrics.CONNECTIONS.labels("overlay" if member.is_overlay else "viewer").dec()

    # -- arrival -----------------------------------------------------------------
    def receive(self, entry: HistoryEntry) -> None:
        """An event from the broker; fills a gap from history first if one shows."""
        metrics.ROOM_EVENTS.inc()
        if self._filling is not None:
            self._filling.append(entry)
            return
        if entry.seq <= self.last_seq:
            return
        if self.last_seq and entry.seq > self.last_seq + 1:
            self._filling = [entry]
            asyncio.get_running_loop().create_task(self._fill_gap())
            return
        self._deliver(entry)

    async def _fill_gap(self) -> None:
        # History holds every event up to the read, so one read closes the gap;
        # what arrived meanwhile waits in _filling and follows in seq order.
        try:
            missed = await self._fetch_since(self.stream, self.last_cursor)
        except Exception:
            log.warning("room %s: could not fill a gap from history", self.stream)
            missed = []
        waiting = self._filling or []
        self._filling = None
        for entry in sorted([*missed, *waiting], key=lambda e: e.seq):
            if entry.seq > self.last_seq:
                self._deliver(entry)

    def _deliver(self, entry: HistoryEntry) -> None:
        self.last_seq = entry.seq
        self.last_cursor = entry.cursor
        frames: dict[Encoding, str | bytes] = {}
        for member in self.overlays:
            if member.recovering:
                member.hold(entry)
                continue
            if entry.seq <= member.last_seq:
                continue
            member.last_seq = entry.seq
            frame = frames.get(member.encoding)
            if frame is None:
                frame = frames[member.encoding] = overlay_frame(entry, member.encoding)
            member.queue.push(frame)
        metrics.DELIVERIES.labels("overlay").inc(len(self.overlays))
        if self.viewers:
            self._viewer_batch.append(entry)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                loop = asyncio.get_running_loop()
                if self.viewer_batch_s > 0:
                    loop.call_later(self.viewer_batch_s, self.flush_viewers)
                else:
                    loop.call_soon(self.flush_viewers)
        if _ENDED in entry.body:
            self.ended = True
            asyncio.get_running_loop().call_soon(self.close_all, STREAM_ENDED)

    def flush_viewers(self) -> None:
        """Send the events of this batch interval to every viewer as one ``batch`` frame."""
        self._flush_scheduled = False
        batch, self._viewer_batch = self._viewer_batch, []
        if not batch or not self.viewers:
            return
        frames: dict[Encoding, str | bytes] = {}
        for member in self.viewers:
            frame = frames.get(member.encoding)
            if frame is None:
                frame = frames[member.encoding] = self._batch_frame(batch, member.encoding)
            member.queue.push(frame)
        metrics.DELIVERIES.labels("viewer").inc(len(self.viewers) * len(batch))

    @staticmethod
    def _batch_frame(batch: list[HistoryEntry], encoding: Encoding) -> str | bytes:
        if encoding == JSON:
            inner = b",".join(event_json(e, False) for e in batch)
            return (b'{"op":"batch","events":[' + inner + b"]}").decode()
        return encode({"op": "batch", "events": [event_dict(e, False) for e in batch]}, encoding)

    def close_all(self, disconnect: Disconnect) -> None:
        """Close every member (after the frames already queued)."""
        self.flush_viewers()
        for member in [*self.overlays, *self.viewers]:
            member.queue.close(disconnect)
