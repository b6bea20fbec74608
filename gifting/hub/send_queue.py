"""One WebSocket connection's outgoing side: a bounded send queue and its writer.

(Not the ledger's outbox streams in Redis: this queue lives in memory and
holds ready frames for one socket.)

Fan-out never awaits a client (STYLE.md habit 6): :meth:`SendQueue.push` is a
plain function that appends a ready frame to the queue and wakes the writer
task. A connection whose queue passes its limit is closed with 1013 (try
again later) and the room goes on without it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from gifting.core.disconnect import SLOW, CloseCode, Disconnect
from gifting.hub import metrics

Send = Callable[[dict[str, Any]], Awaitable[None]]


class SendQueue:
    """The send queue of one connection; frames are ``str`` (text) or ``bytes`` (binary)."""

    __slots__ = ("_close_code", "_closed", "_frames", "_send", "_task", "_wake", "kind", "limit")

    def __init__(self, send: Send, kind: str, limit: int) -> None:
        self._send = send
        self._frames: deque[str | bytes | tuple[int, str]] = deque()
        self._wake = asyncio.Event()
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

    def push(self, frame: str | bytes) -> bool:
        """Queue one frame; never blocks. Returns False if the connection is or gets closed."""
        if self._closed:
            return False
        depth = len(self._frames)
        if depth >= self.limit:
            metrics.SLOW_CLOSES.inc()
            self.close(SLOW)
            return False
        self._frames.append(frame)
        if depth == 0:
            self._wake.set()
        return True

    def close(self, disconnect: Disconnect) -> None:
        """Close after the frames already queued (for 1013: at once, dropping the backlog)."""
        if self._closed:
            return
        self._closed = True
        if disconnect.code == CloseCode.TRY_AGAIN:
            self._frames.clear()
        self._frames.append((int(disconnect.code), disconnect.reason))
        self._wake.set()

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
                        await send({"type": "websocket.send", "text": frame})
                    elif isinstance(frame, bytes):
                        await send({"type": "websocket.send", "bytes": frame})
                    else:
                        code, reason = frame
                        await send({"type": "websocket.close", "code": code, "reason": reason})
                        return
        except (OSError, RuntimeError, asyncio.CancelledError):
            # The peer went away (uvicorn raises ClientDisconnected, an OSError).
            self._closed = True
        except Exception:
            self._closed = True

    async def wait_closed(self, seconds: float = 2.0) -> None:
        """Wait for the writer to finish (after :meth:`close`)."""
        if self._task is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._task), seconds)

    def cancel(self) -> None:
        """Stop the writer now (the socket is gone)."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
