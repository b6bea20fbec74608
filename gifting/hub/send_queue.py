"""One WebSocket connection's outgoing side: a bounded send queue and its writer.

(Not the ledger's outbox streams in Redis: this queue lives in memory and
holds ready frames for one socket.)

Fan-out never awaits a client (STYLE.md habit 6): :meth:`SendQueue.push` is a
plain function that appends a ready frame to the queue and wakes the writer
task. The queue is bounded in bytes (``GIFTING_SEND_QUEUE_BYTES``), not in
frames, so a few large frames and many small ones cost the same: a connection
whose queue passes its limit is closed with 1013 (try again later) and the
room goes on without it. A frame larger than the whole limit is still taken
when the queue is empty, so every frame can be sent.

Whoever has more to send than the queue should hold (an overlay catching up
from the room's history) fills it up to :attr:`SendQueue.high_water` and
awaits :meth:`SendQueue.drained` before the next step: the queue then never
overflows for a connection that does read.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from gifting.core.disconnect import SLOW, CloseCode, Disconnect
from gifting.hub import metrics

Send = Callable[[dict[str, Any]], Awaitable[None]]


class Outgoing(Protocol):
    """What a room member writes to: :class:`SendQueue`, or the hub's direct writer
    (:class:`gifting.hub.direct_write.DirectWriter`) on our own uvicorn protocol."""

    kind: str
    limit: int

    @property
    def closed(self) -> bool:
        """Whether the connection is closing (no more frames accepted)."""

    @property
    def queued_bytes(self) -> int:
        """The bytes written but not yet sent."""

    @property
    def high_water(self) -> int:
        """Fill up to here, then await :meth:`drained`."""

    @property
    def low_water(self) -> int:
        """:meth:`drained` returns once the queue is down to this."""

    def push(self, frame: str | bytes, wire: bytes | None = None) -> bool:
        """Queue one frame (``wire``: its WebSocket frame bytes, if the caller has them)."""

    def close(self, disconnect: Disconnect) -> None:
        """Close after the frames already queued."""

    async def drained(self, within_s: float) -> bool:
        """Wait until the queue is down to :attr:`low_water`; False if closed or timed out."""

    async def wait_closed(self, seconds: float = 2.0) -> None:
        """Wait until the close is written (after :meth:`close`)."""

    def cancel(self) -> None:
        """The socket is gone: stop."""


def frame_size(frame: str | bytes) -> int:
    """What a frame counts against the queue's limit: its length (characters for text).

    A text frame's UTF-8 size is at most four times this; the room's frames are
    almost all ASCII JSON, and ``len`` costs nothing.
    """
    return len(frame)


class SendQueue:
    """The send queue of one connection; frames are ``str`` (text) or ``bytes`` (binary)."""

    __slots__ = (
        "_bytes",
        "_close_code",
        "_closed",
        "_drained",
        "_frames",
        "_send",
        "_task",
        "_wake",
        "kind",
        "limit",
    )

    def __init__(self, send: Send, kind: str, limit: int) -> None:
        self._send = send
        self._frames: deque[str | bytes | tuple[int, str]] = deque()
        self._bytes = 0
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._closed = False
        self._close_code: int | None = None
        self.kind = kind
        self.limit = limit
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the writer task."""
        self._task = asyncio.get_running_loop().create_task(self._write_loop())

    @property
    def closed(self) -> bool:
        """Whether the connection is closing (no more frames accepted)."""
        return self._closed

    @property
    def queued_bytes(self) -> int:
        """The size of the frames waiting to be written (see :func:`frame_size`)."""
        return self._bytes

    @property
    def high_water(self) -> int:
        """Fill the queue up to here, then await :meth:`drained`: half the limit."""
        return self.limit // 2

    @property
    def low_water(self) -> int:
        """:meth:`drained` returns once the queue is down to this: a quarter of the limit."""
        return self.limit // 4

    def push(self, frame: str | bytes, wire: bytes | None = None) -> bool:
        """Queue one frame; never blocks. Returns False if the connection is or gets closed.

        ``wire`` (the frame's WebSocket bytes) is for the direct writer; ignored here.
        """
        if self._closed:
            return False
        size = frame_size(frame)
        if self._bytes and self._bytes + size > self.limit:
            metrics.SLOW_CLOSES.inc()
            self.close(SLOW)
            return False
        empty = not self._frames
        self._frames.append(frame)
        self._bytes += size
        if self._bytes > self.low_water:
            self._drained.clear()
        if empty:
            self._wake.set()
        return True

    def close(self, disconnect: Disconnect) -> None:
        """Close after the frames already queued (for 1013: at once, dropping the backlog)."""
        if self._closed:
            return
        self._closed = True
        metrics.CLOSES.labels(str(int(disconnect.code))).inc()
        if disconnect.code == CloseCode.TRY_AGAIN:
            self._frames.clear()
            self._bytes = 0
        self._frames.append((int(disconnect.code), disconnect.reason))
        self._drained.set()
        self._wake.set()

    async def drained(self, within_s: float) -> bool:
        """Wait until the queue is down to :attr:`low_water`; False if it is closed or
        ``within_s`` seconds pass first (the caller then closes the connection: 1013)."""
        try:
            async with asyncio.timeout(within_s):
                await self._drained.wait()
        except TimeoutError:
            return False
        return not self._closed

    async def _write_loop(self) -> None:
        send = self._send
        frames = self._frames
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                metrics.QUEUE_DEPTH.observe(len(frames))
                while frames:
                    frame = frames.popleft()
                    if isinstance(frame, str):
                        self._sent(len(frame))
                        await send({"type": "websocket.send", "text": frame})
                    elif isinstance(frame, bytes):
                        self._sent(len(frame))
                        await send({"type": "websocket.send", "bytes": frame})
                    else:
                        code, reason = frame
                        await send({"type": "websocket.close", "code": code, "reason": reason})
                        return
        except (OSError, RuntimeError, asyncio.CancelledError):
            # The peer went away (uvicorn raises ClientDisconnected, an OSError).
            self._gone()
        except Exception:
            self._gone()

    def _sent(self, size: int) -> None:
        self._bytes -= size
        if self._bytes <= self.low_water:
            self._drained.set()

    def _gone(self) -> None:
        self._closed = True
        self._drained.set()

    async def wait_closed(self, seconds: float = 2.0) -> None:
        """Wait for the writer to finish (after :meth:`close`)."""
        if self._task is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._task), seconds)

    def cancel(self) -> None:
        """Stop the writer now (the socket is gone)."""
        self._gone()
        if self._task is not None:
            self._task.cancel()
