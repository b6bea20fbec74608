"""Writing a connection's frames straight to its transport: no ASGI ``send``, no task.

On the hub's own uvicorn protocol (gifting/hub/uvicorn_ws.py) the ASGI scope
carries, under :data:`DIRECT_WRITE`, an object that opens a
:class:`DirectWriter` for the connection once it is accepted. Server frames
here are unmasked and uncompressed (per-message deflate is off), so a room
event's WebSocket frame is the same bytes for every connection of one
encoding: the room builds them once per event (:func:`ws_frame`) and a
push hands those bytes to the connection, as ``websockets.broadcast`` does.

Writes are coalesced per loop tick: a push appends the frame's bytes to the
connection's pending list, and the first push of a tick (on any connection)
schedules one ``call_soon`` that flushes every connection with pending frames
— one ``transport.write`` (one ``send`` syscall) of its frames joined. A
burst of room events from the broker (read in one tick) thus costs each
connection one syscall, not one per event. Each frame stays a whole
WebSocket frame: the bytes on the wire are exactly what one write per frame
would give.

The queue is the transport's write buffer: the same guarantees as
:class:`~gifting.hub.send_queue.SendQueue`, kept this way:

* order — every frame of the connection (events, acks, errors, the close)
  goes through :meth:`DirectWriter.push` / :meth:`DirectWriter.close`, each a
  whole frame appended to the one pending list, and the close flushes that
  list before its own frame, so the wire has them in push order (uvicorn's
  pings and pongs, written at once, fall between whole frames);
* bounded in bytes — a push that would take the pending frames plus the
  transport's buffer past ``limit`` closes the connection 1013 (never blocks
  the room). The close frame is written
  behind what the buffer already holds (it cannot drop bytes already written,
  unlike SendQueue); a peer that reads none of it is cut when the close
  timeout passes (the protocol aborts the transport);
* pacing — :meth:`DirectWriter.drained` flushes the pending frames, then waits for the transport's
  ``resume_writing`` (its low-water mark is set to :attr:`low_water`, its
  high-water mark just under :attr:`high_water`);
* close codes and reasons — :meth:`DirectWriter.close` writes the close frame
  through the protocol's own websockets state machine, as uvicorn does for an
  ASGI ``websocket.close``.

Any other server (a plain uvicorn: tests/hub/test_plain_uvicorn.py) has no
:data:`DIRECT_WRITE` in its scope, and the endpoints use SendQueue.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import Any, Final, Protocol

from gifting.core.disconnect import SLOW, Disconnect
from gifting.hub import metrics

log = logging.getLogger(__name__)

#: The ASGI scope extension under which the hub's uvicorn protocol offers direct writes.
DIRECT_WRITE: Final = "gifting.direct_write"

#: Per loop, the writers with pending frames while their flush is scheduled.
_DIRTY: dict[asyncio.AbstractEventLoop, list[DirectWriter]] = {}

_SHORT: Final = struct.Struct("!BBH")
_LONG: Final = struct.Struct("!BBQ")


def ws_frame(frame: str | bytes) -> bytes:
    """One unmasked, uncompressed, final WebSocket frame: text for ``str``, binary for bytes."""
    if isinstance(frame, str):
        payload, head = frame.encode(), 0x81
    else:
        payload, head = frame, 0x82
    n = len(payload)
    if n < 126:
        return bytes((head, n)) + payload
    if n < 65536:
        return _SHORT.pack(head, 126, n) + payload
    return _LONG.pack(head, 127, n) + payload


class Wire(Protocol):
    """What the writer needs of the connection's protocol (HubWebSocketProtocol)."""

    transport: asyncio.Transport
    close_sent: bool

    def close_now(self, code: int, reason: str) -> None:
        """Write the close frame (after what is buffered) and start the closing handshake."""


class DirectWriter:
    """One WebSocket connection's outgoing side, written to its transport directly.

    Same interface as :class:`~gifting.hub.send_queue.SendQueue` (the
    :class:`~gifting.hub.send_queue.Outgoing` protocol); no task, no deque:
    pushes gather in a pending list written at the end of the loop tick
    (:meth:`flush`), and the transport's buffer is the queue.
    """

    __slots__ = (
        "_closed",
        "_drained",
        "_loop",
        "_pending",
        "_pending_bytes",
        "_transport",
        "_wire",
        "kind",
        "limit",
    )

    def __init__(self, wire: Wire, kind: str, limit: int) -> None:
        self._wire = wire
        self._transport = wire.transport
        self._loop = asyncio.get_running_loop()
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._closed = False
        self._drained: asyncio.Event | None = None
        self.kind = kind
        self.limit = limit
        # pause_writing above high_water - 1, resume_writing at low_water: drained() waits
        # for the latter whenever the buffer holds high_water or more.
        low = self.low_water
        self._transport.set_write_buffer_limits(high=max(self.high_water - 1, low), low=low)

    @property
    def closed(self) -> bool:
        """Whether the connection is closing (no more frames accepted)."""
        return self._closed

    @property
    def queued_bytes(self) -> int:
        """The bytes pushed and not yet taken by the kernel (pending, then the transport's)."""
        return self._transport.get_write_buffer_size() + self._pending_bytes

    @property
    def high_water(self) -> int:
        """Fill the buffer up to here, then await :meth:`drained`: half the limit."""
        return self.limit // 2

    @property
    def low_water(self) -> int:
        """:meth:`drained` returns once the buffer is down to this: a quarter of the limit."""
        return self.limit // 4

    def start(self) -> None:
        """Nothing to start (SendQueue's interface)."""

    def push(self, frame: str | bytes, wire: bytes | None = None) -> bool:
        """Queue one frame (``wire``: its :func:`ws_frame` bytes, built once by the caller)
        for this tick's write; never blocks. Returns False if the connection is or gets
        closed (1013 past ``limit``)."""
        if self._closed:
            return False
        t = self._transport
        if t.is_closing() or self._wire.close_sent:
            self.gone()
            return False
        queued = t.get_write_buffer_size() + self._pending_bytes
        if queued and queued + len(frame) > self.limit:
            metrics.SLOW_CLOSES.inc()
            self.close(SLOW)
            return False
        data = ws_frame(frame) if wire is None else wire
        pending = self._pending
        if not pending:
            loop = self._loop
            dirty = _DIRTY.get(loop)
            if dirty is None:
                dirty = _DIRTY[loop] = []
                loop.call_soon(_flush_dirty, loop)
            dirty.append(self)
        pending.append(data)
        self._pending_bytes += len(data)
        return True

    def flush(self) -> None:
        """Write the pending frames now, joined: one ``transport.write``. Dropped if the
        connection is gone or already closed from the peer's side."""
        pending = self._pending
        if not pending:
            return
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        self._pending_bytes = 0
        t = self._transport
        if t.is_closing() or self._wire.close_sent:
            return
        t.write(data)

    def close(self, disconnect: Disconnect) -> None:
        """Write the pending frames, then the close frame."""
        if self._closed:
            return
        self.flush()
        self._closed = True
        metrics.CLOSES.labels(str(int(disconnect.code))).inc()
        self._wire.close_now(int(disconnect.code), disconnect.reason)
        self._wake()

    async def drained(self, within_s: float) -> bool:
        """Wait until the buffer is down to :attr:`low_water`; False if the connection is
        closed or ``within_s`` seconds pass first (the caller then closes it: 1013)."""
        if self._closed:
            return False
        self.flush()
        if self._transport.get_write_buffer_size() <= self.low_water:
            return True
        event = self._drained
        if event is None:
            event = self._drained = asyncio.Event()
        event.clear()
        try:
            async with asyncio.timeout(within_s):
                await event.wait()
        except TimeoutError:
            return False
        return not self._closed

    async def wait_closed(self, seconds: float = 2.0) -> None:
        """Nothing to wait for: the close frame is written by :meth:`close` itself."""

    def cancel(self) -> None:
        """The socket is gone: accept no more frames."""
        self.gone()

    # -- called by the protocol ------------------------------------------------
    def resumed(self) -> None:
        """The transport's buffer is down to its low-water mark (``resume_writing``)."""
        self._wake()

    def gone(self) -> None:
        """The connection is lost (or closing from the other side): accept no more."""
        self._closed = True
        self._pending.clear()
        self._pending_bytes = 0
        self._wake()

    def _wake(self) -> None:
        if self._drained is not None:
            self._drained.set()


def _flush_dirty(loop: asyncio.AbstractEventLoop) -> None:
    # The tick's one scheduled flush: every writer that got frames since the last one.
    writers = _DIRTY.pop(loop, None)
    for writer in writers or ():
        try:
            writer.flush()
        except Exception:  # one broken transport must not hold up the others
            log.exception("direct write: flush failed; dropping the connection's frames")
            writer.gone()


def open_writer(scope: Any, kind: str, limit: int) -> DirectWriter | None:
    """The connection's direct writer if its server offers one (after the accept), else None."""
    extensions = scope.get("extensions") or {}
    opener = extensions.get(DIRECT_WRITE)
    if opener is None:
        return None
    writer: DirectWriter | None = opener(kind, limit)
    return writer
