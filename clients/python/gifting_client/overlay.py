"""A broadcaster overlay's view of a room: every event once, in order, across drops.

::

    async with OverlayClient("ws://127.0.0.1:8000", stream, key) as overlay:
        async for item in overlay:
            if isinstance(item, Snapshot):
                ...                 # the room's state: totals, top gifters, goal
            elif isinstance(item, GiftEvent):
                ...

The iteration connects, yields the room's :class:`Snapshot` (or, when
resuming, the events missed since the last cursor), then each event as it
happens. When the connection drops it reconnects with capped exponential
backoff and jitter and ``since=<last cursor>``, so nothing is missed; every
event is yielded once — events at or below the last ``seq`` and ids already
seen are skipped. If the cursor is older than the room's history the server
answers ``cursor_expired`` and a fresh snapshot, yielded with
``expired=True``. The iteration ends when the stream ends (after the
:class:`StreamEnded` event) or after :meth:`close`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Final

import msgspec
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from gifting_client.backoff import Backoff
from gifting_client.errors import (
    BadRequest,
    ConnectionFailed,
    CursorExpired,
    ErrorReply,
    error_from_reply,
)
from gifting_client.messages import (
    JSON,
    Encoding,
    RoomEvent,
    Snapshot,
    decode_frame,
    parse_event,
    parse_snapshot,
)
from gifting_client.transport import FINAL_CLOSE_CODES, STREAM_ENDED, open_socket, ws_url

__all__ = ["START_OF_ROOM", "OverlayClient"]

log = logging.getLogger("gifting_client")

#: The cursor before a room's first event: resuming from it replays the whole history.
START_OF_ROOM: Final = "0-0_0"
#: A connection that stayed up this long resets the backoff to its first step.
STABLE_AFTER_S: Final = 5.0


class OverlayClient:
    """Follows one stream's room with its overlay key; async-iterate it for events.

    ``since`` resumes after a cursor kept from an earlier run (see
    :attr:`cursor`). ``remember`` bounds the event ids kept for
    de-duplication. ``max_reconnects`` is the number of failed reconnect
    attempts in a row before the iteration raises :class:`ConnectionFailed`
    (``None``: never give up).
    """

    def __init__(
        self,
        url: str,
        stream: str,
        key: str,
        *,
        since: str | None = None,
        encoding: Encoding = JSON,
        backoff: Backoff | None = None,
        max_reconnects: int | None = None,
        open_timeout: float = 10.0,
        remember: int = 10_000,
    ) -> None:
        self.base_url = url
        self.stream = stream
        self.encoding: Encoding = encoding
        self.backoff = backoff or Backoff()
        self.max_reconnects = max_reconnects
        self.open_timeout = open_timeout
        #: The cursor of the last event (or snapshot) yielded: reconnects resume after it.
        self.cursor: str | None = since
        #: The seq of the last event yielded.
        self.last_seq = 0
        #: The latest snapshot received.
        self.snapshot: Snapshot | None = None
        #: Successful reconnects, and how many of them found the cursor expired.
        self.reconnects = 0
        self.expired = 0
        self._key = key
        self._seen: set[str] = set()
        self._order: deque[str] = deque()
        self._remember = max(remember, 1)
        self._socket: ClientConnection | None = None
        self._closing = False

    def url(self) -> str:
        """The URL of the next connection (with ``since=`` once there is a cursor)."""
        params = {"stream": self.stream, "key": self._key}
        if self.cursor:
            params["since"] = self.cursor
        return ws_url(self.base_url, "/v1/ws/overlay", params)

    async def close(self) -> None:
        """Stop: the iteration ends after the current connection closes."""
        self._closing = True
        if self._socket is not None:
            await self._socket.close()

    async def __aenter__(self) -> OverlayClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __aiter__(self) -> AsyncIterator[RoomEvent | Snapshot]:
        return self._iterate()

    # -- the iteration ---------------------------------------------------------------
    async def _iterate(self) -> AsyncIterator[RoomEvent | Snapshot]:
        failures = 0
        first = True
        while not self._closing:
            if not first:
                if self.max_reconnects is not None and failures >= self.max_reconnects:
                    raise ConnectionFailed("gave up reconnecting", retryable=True)
                await asyncio.sleep(self.backoff.delay(failures))
                failures += 1
            try:
                ws = await open_socket(self.url(), self.encoding, open_timeout=self.open_timeout)
            except ConnectionFailed as err:
                if not err.retryable:
                    raise
                first = False
                log.info("overlay connect failed: %s", err)
                continue
            if not first:
                self.reconnects += 1
            first = False
            self._socket = ws
            up_since = time.monotonic()
            outcome = _Outcome()
            try:
                async for item in self._read(ws, outcome):
                    yield item
            finally:
                self._socket = None
                await ws.close()
            if time.monotonic() - up_since > STABLE_AFTER_S:
                failures = 0
            code = ws.close_code
            if self._closing or code == STREAM_ENDED:
                return
            if outcome.refusal is not None and not outcome.retry:
                raise outcome.refusal
            if code in FINAL_CLOSE_CODES and not outcome.retry:
                raise ConnectionFailed(f"closed by the server: {ws.close_reason}", code)

    async def _read(
        self, ws: ClientConnection, outcome: _Outcome
    ) -> AsyncIterator[RoomEvent | Snapshot]:
        """Yield what one connection brings, until it closes."""
        expired = False
        try:
            async for frame in ws:
                try:
                    msg = decode_frame(frame)
                    op = msg.get("op")
                    if op == "event":
                        event = parse_event(msg)
                        if self._fresh(event):
                            self._advance(event)
                            yield event
                    elif op == "snapshot":
                        snapshot = parse_snapshot(msg, expired=expired)
                        expired = False
                        self._adopt(snapshot)
                        yield snapshot
                    elif op == "error":
                        expired = self._on_error(msg, outcome) or expired
                except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
                    log.warning("ignoring a malformed frame: %s", exc)
        except ConnectionClosed:
            pass

    def _on_error(self, msg: dict[str, object], outcome: _Outcome) -> bool:
        """Handle an error frame; return whether it announced an expired cursor."""
        err = error_from_reply(str(msg.get("code")), str(msg.get("message", "")))
        if isinstance(err, CursorExpired):
            self.expired += 1
            return True
        if isinstance(err, BadRequest) and self.cursor:
            # A cursor the server cannot read: start over from a snapshot.
            log.warning("the server rejected cursor %r: %s", self.cursor, err.message)
            self.cursor = None
            outcome.retry = True
            return False
        outcome.refusal = err
        outcome.retry = err.retryable
        return False

    # -- de-duplication ---------------------------------------------------------------
    def _fresh(self, event: RoomEvent) -> bool:
        return event.seq > self.last_seq and event.event not in self._seen

    def _advance(self, event: RoomEvent) -> None:
        self.last_seq = event.seq
        self.cursor = event.cursor
        self._seen.add(event.event)
        self._order.append(event.event)
        if len(self._order) > self._remember:
            self._seen.discard(self._order.popleft())

    def _adopt(self, snapshot: Snapshot) -> None:
        """A snapshot is the room's position now: events after it follow."""
        self.snapshot = snapshot
        self.last_seq = snapshot.seq
        # An empty room has no cursor yet; the start of the room resumes from its first event.
        self.cursor = snapshot.cursor or (START_OF_ROOM if snapshot.seq == 0 else None)


class _Outcome:
    """How one connection ended, as far as its frames told."""

    __slots__ = ("refusal", "retry")

    def __init__(self) -> None:
        self.refusal: ErrorReply | None = None
        self.retry = False
