"""A room on one hub: the local connections of a stream and its fan-out.

Events arrive from the broker in seq order. Each is encoded once per
encoding in use and the same frame is pushed to every overlay; viewers get
the events of each ``GIFTING_VIEWER_BATCH_MS`` (25 ms by default; 0: one
loop tick) joined into a single ``batch`` frame (the lever of
docs/contract.md §8). A gap in seq (a pub/sub message lost on a reconnect) is
filled from the room's history before anything newer is delivered; if the
history cannot be read, every overlay catches up from its own cursor instead
(and gets ``cursor_expired`` and a snapshot if what it missed is gone).

An overlay whose queue has no room for the next event is not dropped: it
catches up from the history at the pace its queue drains (:class:`Member`),
and is closed with 1013 only when the queue does not drain at all. A viewer
whose queue overflows is closed with 1013 (its events are for display).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final

from gifting.core.disconnect import INTERNAL_ERROR, SLOW, STREAM_ENDED, CloseCode, Disconnect
from gifting.core.protocol import JSON, Encoding, decode_json, encode
from gifting.hub import metrics
from gifting.hub.direct_write import ws_frame
from gifting.hub.send_queue import Outgoing
from gifting.store.rooms import HistoryEntry

log = logging.getLogger(__name__)

FetchSince = Callable[[str, str, int], Awaitable[list[HistoryEntry]]]
"""``(stream, cursor, limit)``: up to ``limit`` events after ``cursor`` (RoomLog.since)."""
ReadPage = Callable[[str, int], Awaitable[list[HistoryEntry]]]
"""``(cursor, limit)``: one stream's :data:`FetchSince`."""

#: Events read from the history per round trip when catching up or filling a gap.
CATCH_UP_PAGE: Final = 256
#: Live events held for a member catching up; past it they are dropped and re-read.
MAX_HELD: Final = 4096
#: The cursor before a room's first event.
START_OF_ROOM: Final = "0-0_0"
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
    """A connection in a room: its send queue, encoding and the last event it was given.

    An overlay is **live** (the room pushes each event's shared frame onto its
    queue) or **catching up** (:attr:`recovering`): the room then holds the
    live events for it, and :meth:`catch_up` hands it the room's history after
    its cursor, then what was held, a little at a time — only as fast as its
    queue drains — before it goes live again. An overlay catches up when it
    joins with ``since=`` (or after its snapshot), when its queue has no room
    for the next event (a lag: its connection's ``on_lag`` starts the catch-up),
    and when the room could not read a pub/sub gap for it. The held list is
    this class's alone and bounded: past :data:`MAX_HELD` events it is dropped
    and the history is read again, since it holds every one of them.
    """

    __slots__ = (
        "_dropped",
        "_held",
        "_pending_close",
        "encoding",
        "is_overlay",
        "last_cursor",
        "last_seq",
        "on_lag",
        "queue",
    )

    def __init__(
        self, queue: Outgoing, encoding: Encoding, is_overlay: bool, recovering: bool = False
    ) -> None:
        self.queue = queue
        self.encoding: Encoding = encoding
        self.is_overlay = is_overlay
        self.last_seq = 0
        self.last_cursor = ""
        # Called when a live overlay's queue has no room for the next event: the
        # connection answers by running catch_up() from last_cursor (None: close 1011).
        self.on_lag: Callable[[], None] | None = None
        self._held: list[HistoryEntry] | None = [] if recovering else None
        self._dropped = False
        self._pending_close: Disconnect | None = None

    @property
    def recovering(self) -> bool:
        """Whether live events are held back while the member catches up."""
        return self._held is not None

    @property
    def held(self) -> int:
        """How many live events are held for it."""
        return len(self._held or ())

    def hold(self, entry: HistoryEntry) -> None:
        """Keep a live event until the catch-up hands it over (only while recovering)."""
        if self._held is None:
            raise RuntimeError("hold() on a member that is not recovering")
        if self.queue.closed:
            self._held.clear()  # closing (a bad cursor, 1008): it will never go live
            return
        if len(self._held) >= MAX_HELD:
            self._held.clear()
            self._dropped = True  # all of them are in the history: read it again
        self._held.append(entry)

    def deliver(self, entry: HistoryEntry, frame: str | bytes, wire: bytes | None = None) -> None:
        """A live event's frame (and its WebSocket bytes), shared with the room's other
        members of this encoding."""
        if entry.seq <= self.last_seq:
            return
        q = self.queue
        if self.on_lag is not None and q.queued_bytes and q.queued_bytes + len(frame) > q.limit:
            self.lag(entry)
            return
        self.last_seq = entry.seq
        self.last_cursor = entry.cursor
        q.push(frame, wire)

    def lag(self, entry: HistoryEntry | None = None) -> None:
        """Stop pushing live events: hold them, and have the connection catch up from its cursor.

        ``entry`` is the event that did not fit (None: the room lost some it could not read).
        """
        if self.queue.closed:
            return
        if self._held is not None:  # already catching up: what it holds may have a hole
            if entry is not None:
                self.hold(entry)
            self._dropped = True
            return
        if self.on_lag is None:
            self.queue.close(INTERNAL_ERROR)  # reconnect with its cursor
            return
        self._held = [] if entry is None else [entry]
        self._dropped = False
        metrics.CATCH_UPS.labels("lag" if entry is not None else "gap").inc()
        self.on_lag()

    def give(self, entry: HistoryEntry) -> None:
        """Push one event to an overlay unless it already had it."""
        if entry.seq <= self.last_seq:
            return
        self.last_seq = entry.seq
        self.last_cursor = entry.cursor
        self.queue.push(overlay_frame(entry, self.encoding))

    def give_snapshot(self, frame: str | bytes, seq: int, cursor: str) -> None:
        """Push the room's snapshot: the events it covers (up to ``seq``) are not sent again."""
        self.queue.push(frame)
        self.last_seq = max(self.last_seq, seq)
        self.last_cursor = cursor or self.last_cursor

    def go_live(self, missed: Iterable[HistoryEntry] = ()) -> None:
        """End recovery at once: deliver ``missed`` and the held events, merged by seq, each once.

        Unpaced: :meth:`catch_up` is the paced way; this is for what is known to fit.
        """
        held, self._held = self._held or [], None
        for entry in sorted([*missed, *held], key=lambda e: e.seq):
            self.give(entry)
        self._apply_pending_close()

    def close(self, disconnect: Disconnect) -> None:
        """Close; a member still catching up first gets the rest of the room (stream ended)."""
        if self._held is not None and disconnect.code == CloseCode.NORMAL:
            self._pending_close = disconnect
            return
        self.queue.close(disconnect)

    async def catch_up(self, read_page: ReadPage, drain_s: float, cursor: str | None) -> bool:
        """Hand a recovering member the history after ``cursor`` (None: none), then what the
        room held meanwhile, and go live; paced by the queue. False if the connection is
        closed meanwhile (a queue that did not drain within ``drain_s`` s is closed 1013).

        Raises what ``read_page`` raises (``CursorExpired``: the caller sends a snapshot).
        """
        while True:
            if cursor is None and self._dropped:
                cursor = self.last_cursor or START_OF_ROOM
            if cursor is not None:
                self._dropped = False
                page = await read_page(cursor, CATCH_UP_PAGE)
                if not await self._give_paced(page, drain_s):
                    return False
                cursor = page[-1].cursor if page else cursor
                if len(page) == CATCH_UP_PAGE or self._dropped:
                    continue
            # The history is read to its end: what came since is held. Hand it over.
            while not self._dropped:
                held = self._held or []
                if not held:
                    self._held = None
                    self._apply_pending_close()
                    return not self.queue.closed
                self._held = []
                if not await self._give_paced(sorted(held, key=lambda e: e.seq), drain_s):
                    return False
            cursor = self.last_cursor or START_OF_ROOM

    async def _give_paced(self, entries: Iterable[HistoryEntry], drain_s: float) -> bool:
        q = self.queue
        for entry in entries:
            if entry.seq <= self.last_seq:
                continue
            if q.queued_bytes >= q.high_water and not await q.drained(drain_s):
                if not q.closed:
                    metrics.SLOW_CLOSES.inc()
                    q.close(SLOW)
                return False
            if q.closed:
                return False
            self.give(entry)
        return not q.closed

    def _apply_pending_close(self) -> None:
        if self._pending_close is not None:
            self.queue.close(self._pending_close)
            self._pending_close = None


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
        self._fill_task: asyncio.Task[None] | None = None
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
            # Referenced until done: the loop keeps only a weak reference to its tasks.
            self._fill_task = asyncio.get_running_loop().create_task(self._fill_gap())
            return
        self._deliver(entry)

    async def _fill_gap(self) -> None:
        # History holds every event up to the read, so reading it to its end closes
        # the gap; what arrived meanwhile waits in _filling and follows in seq order.
        try:
            cursor = self.last_cursor
            while True:
                page = await self._fetch_since(self.stream, cursor, CATCH_UP_PAGE)
                for entry in page:
                    if entry.seq > self.last_seq:
                        self._deliver(entry)
                if len(page) < CATCH_UP_PAGE:
                    break
                cursor = page[-1].cursor
        except Exception as exc:
            # Never a silent hole: each overlay catches up from its own cursor, and gets
            # cursor_expired and a snapshot if the history no longer has what it missed.
            log.warning("room %s: could not fill a gap from history: %r", self.stream, exc)
            for member in self.overlays:
                member.lag()
        finally:
            waiting = self._filling or []
            self._filling = None
            self._fill_task = None
            for entry in sorted(waiting, key=lambda e: e.seq):
                if entry.seq > self.last_seq:
                    self._deliver(entry)

    def _deliver(self, entry: HistoryEntry) -> None:
        self.last_seq = entry.seq
        self.last_cursor = entry.cursor
        # Each encoding's frame, and its WebSocket bytes, built once for every member.
        frames: dict[Encoding, tuple[str | bytes, bytes]] = {}
        for member in self.overlays:
            if member.recovering:
                member.hold(entry)
                continue
            if entry.seq <= member.last_seq:
                continue
            built = frames.get(member.encoding)
            if built is None:
                frame = overlay_frame(entry, member.encoding)
                built = frames[member.encoding] = (frame, ws_frame(frame))
            member.deliver(entry, *built)
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
        frames: dict[Encoding, tuple[str | bytes, bytes]] = {}
        for member in self.viewers:
            built = frames.get(member.encoding)
            if built is None:
                frame = self._batch_frame(batch, member.encoding)
                built = frames[member.encoding] = (frame, ws_frame(frame))
            member.queue.push(*built)
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
            member.close(disconnect)
