"""The WebSocket protocol uvicorn serves the hub with: its sans-I/O one, answering every handshake.

uvicorn's ``websockets-sansio`` protocol (0.54) feeds the upgrade request to
websockets' ``ServerProtocol`` and acts only on the events it yields. A
handshake websockets refuses before it is a request — a request line or a
header over 8 KiB, more than 128 headers: a huge ``token`` or ``key`` in the
URL, an oversized cookie — yields no event: websockets queues its 414 or 431
answer (or an end of stream), uvicorn never writes it, and the connection
hangs open until the client gives up. :class:`HubWebSocketProtocol` writes
that answer and closes the connection (tests/hub/test_hostile_credentials.py).

It also offers the app direct writes (gifting/hub/direct_write.py): the
scope's ``extensions`` carry :data:`~gifting.hub.direct_write.DIRECT_WRITE`,
a callable that opens a :class:`~gifting.hub.direct_write.DirectWriter` on
this connection's transport once the handshake is accepted; the protocol
tells the writer when the transport's buffer drains (``resume_writing``) and
when the connection is lost, and writes its close frame (:meth:`close_now`).

Lighter per connection than uvicorn's own (an idle connection is mostly
bookkeeping): its receive queue and its ``writable`` flag are small slotted
objects instead of an ``asyncio.Queue`` and an ``asyncio.Event`` (three
deques and an Event of their own), and the handshake's request and response
(their headers) are let go once the app has accepted.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.http11 import Request

from gifting.hub.direct_write import DIRECT_WRITE, DirectWriter

__all__ = ["HubWebSocketProtocol"]


class _Inbox:
    """What uvicorn's protocol needs of its receive queue (``put_nowait``, ``get``,
    ``empty``), without an ``asyncio.Queue``'s three deques and Event. Unbounded, as
    uvicorn's is; it holds a message or two (uvicorn pauses reading meanwhile)."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        """Add a message; wake the reader."""
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Any:
        """The next message, waiting for one."""
        while not self._items:
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                await asyncio.shield(waiter)  # a second reader: share the wait
                continue
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        return self._items.pop(0)

    def empty(self) -> bool:
        """Whether no message waits."""
        return not self._items

    def qsize(self) -> int:
        """How many messages wait."""
        return len(self._items)


class _Flag:
    """What uvicorn's protocol needs of its ``writable`` event (``set``, ``clear``,
    ``is_set``, ``wait``), without an ``asyncio.Event``'s deque."""

    __slots__ = ("_value", "_waiter")

    def __init__(self) -> None:
        self._value = True
        self._waiter: asyncio.Future[None] | None = None

    def is_set(self) -> bool:
        """Whether the flag is set."""
        return self._value

    def set(self) -> None:
        """Set the flag; wake every waiter."""
        self._value = True
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def clear(self) -> None:
        """Clear the flag."""
        self._value = False

    async def wait(self) -> bool:
        """Return once the flag is set."""
        while not self._value:
            waiter = self._waiter
            if waiter is None or waiter.done():
                waiter = self._waiter = asyncio.get_running_loop().create_future()
            await asyncio.shield(waiter)  # shared by every waiter: one cancelled leaves it
        return True


class HubWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol, answering a handshake websockets refused,
    and offering the app direct writes to its transport."""

    writer: DirectWriter | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """uvicorn's protocol, with the lighter receive queue and ``writable`` flag."""
        super().__init__(*args, **kwargs)
        self.queue = _Inbox()  # type: ignore[assignment]
        self.writable = _Flag()  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        """Feed the parser; if it refused the handshake, send its answer and close."""
        super().data_received(data)
        if (
            not self.handshake_initiated
            and self.conn.handshake_exc is not None
            and not self.transport.is_closing()
        ):
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.transport.close()

    def handle_connect(self, event: Request) -> None:
        """Build the scope as uvicorn does, with the direct-write opener in its extensions."""
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][DIRECT_WRITE] = self.open_writer

    def open_writer(self, kind: str, limit: int) -> DirectWriter | None:
        """A direct writer on this connection once accepted; None if it cannot have one
        (not accepted, closing, or an extension such as deflate changes the frames)."""
        if self.handshake_complete:
            # Accepted: the handshake's request and response (and their headers) are
            # no longer read (the scope keeps the request's headers for the app;
            # websockets' parser keeps the request itself: empty its headers).
            if self.request is not None:
                self.request.headers.clear()
            self.request = self.response = None  # type: ignore[assignment]
        if (
            not self.handshake_complete
            or self.close_sent
            or self.transport.is_closing()
            or self.conn.extensions
            or self.writer is not None
        ):
            return None
        self.writer = DirectWriter(self, kind, limit)
        return self.writer

    def close_now(self, code: int, reason: str) -> None:
        """Write a close frame behind what is buffered: what uvicorn does for an ASGI
        ``websocket.close``, but a peer that never reads it is cut at the close timeout."""
        if self.close_sent or self.transport.is_closing():
            return
        try:
            self.conn.send_close(code, reason)
        except InvalidState:
            return
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        self.close_timer = self.loop.call_later(self.close_timeout, self._close_timed_out)

    def _close_timed_out(self) -> None:
        # No close reply in time: hang up; with bytes still buffered (a peer that stopped
        # reading) transport.close() would wait for them forever, so abort.
        self.close_timer = None
        if self.transport.get_write_buffer_size():
            self.transport.abort()
        else:
            self.transport.close()

    def resume_writing(self) -> None:
        """The transport's buffer drained to its low-water mark: tell the writer too."""
        super().resume_writing()
        if self.writer is not None:
            self.writer.resumed()

    def connection_lost(self, exc: Exception | None) -> None:
        """The connection is gone: the writer accepts no more frames."""
        if self.writer is not None:
            self.writer.gone()
        super().connection_lost(exc)
