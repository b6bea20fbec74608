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
"""

from __future__ import annotations

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.http11 import Request

from gifting.hub.direct_write import DIRECT_WRITE, DirectWriter

__all__ = ["HubWebSocketProtocol"]


class HubWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol, answering a handshake websockets refused,
    and offering the app direct writes to its transport."""

    writer: DirectWriter | None = None

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
