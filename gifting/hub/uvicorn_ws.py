"""The WebSocket protocol uvicorn serves the hub with: its sans-I/O one, answering every handshake.

uvicorn's ``websockets-sansio`` protocol (0.54) feeds the upgrade request to
websockets' ``ServerProtocol`` and acts only on the events it yields. A
handshake websockets refuses before it is a request — a request line or a
header over 8 KiB, more than 128 headers: a huge ``token`` or ``key`` in the
URL, an oversized cookie — yields no event: websockets queues its 414 or 431
answer (or an end of stream), uvicorn never writes it, and the connection
hangs open until the client gives up. :class:`HubWebSocketProtocol` writes
that answer and closes the connection (tests/hub/test_hostile_credentials.py).
"""

from __future__ import annotations

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

__all__ = ["HubWebSocketProtocol"]


class HubWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol, answering a handshake websockets refused."""

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
