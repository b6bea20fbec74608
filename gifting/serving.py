"""How ``gifting serve`` runs under uvicorn: a deadline on every request's headers.

uvicorn (httptools) never times out a request whose headers are still
arriving: a client that sends its WebSocket upgrade a byte a second (or
nothing at all) holds a connection and its file descriptor for as long as it
likes (slowloris), and enough of them exhaust the process. It blocks nobody
else (the loop reads whatever arrives), but it is cheap for an attacker.
:class:`HeaderDeadlineProtocol` is uvicorn's own protocol with one addition:
a request whose headers are not complete ``GIFTING_HANDSHAKE_TIMEOUT_S``
after its connection opened (or after its first byte, on a kept-alive
connection) is answered 408 and closed. A reverse proxy in front
(``client_header_timeout`` in nginx) does the same job.
"""

from __future__ import annotations

import asyncio
import functools
from typing import ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gifting.config import load_settings

__all__ = ["HeaderDeadlineProtocol"]

_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


@functools.cache
def _configured_deadline_s() -> float:
    """``GIFTING_HANDSHAKE_TIMEOUT_S`` of this process (each uvicorn worker reads it once)."""
    return load_settings().handshake_timeout_s


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol; a request's headers must arrive within the deadline."""

    #: Seconds; None: ``GIFTING_HANDSHAKE_TIMEOUT_S`` (tests set it on a subclass).
    header_deadline_s: ClassVar[float | None] = None
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """A new connection: its first request's headers are due within the deadline."""
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        """The first byte of a request (a kept-alive connection's next one too)."""
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        """The headers are in: no deadline for the body or a WebSocket's life."""
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        """The connection is gone."""
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        deadline = self.header_deadline_s
        if deadline is None:
            deadline = _configured_deadline_s()
        self._header_timer = self.loop.call_later(deadline, self._too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.write(_TIMEOUT)
            self.transport.close()
