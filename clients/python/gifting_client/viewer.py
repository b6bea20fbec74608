"""A viewer in a live stream: send gifts, effects and comments; follow the room.

The client keeps **one id per message for its whole life**: the id is chosen
(or given) before the first send and kept until an answer arrives, across
every reconnect. A message whose ack was lost with a dropped connection is
sent again with the same id on the next connection, and the server answers
it with the original ack — so a retry never pays twice (docs/protocol.md).

::

    async with ViewerClient("ws://127.0.0.1:8000", stream, token) as viewer:
        ack = await viewer.send_gift("rose", count=5)
        print(ack.balance, ack.combo)
        async for event in viewer:          # the room's events, batches unpacked
            ...

Under the hood one task owns the connection: it opens it, sends a
``{"op":"ping"}`` to learn whether the server accepted it (a refused
connection gets an ``error`` and a close instead of the ``pong``), sends
every unanswered message again, then reads acks, errors and events until
the connection drops, and reconnects with capped exponential backoff and
jitter. ``unavailable`` and ``rate_limited`` answers are retried with the
same id after a backoff delay (at least the ``retry_after_ms`` the server
asked for), up to ``max_retries`` times.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final

import msgspec
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from gifting_client.backoff import Backoff
from gifting_client.errors import (
    ConnectionFailed,
    ErrorReply,
    GiftingError,
    OutcomeUnknown,
    error_from_reply,
)
from gifting_client.messages import (
    JSON,
    Ack,
    Encoding,
    RoomEvent,
    decode_frame,
    encode_frame,
    parse_event,
)
from gifting_client.transport import (
    FINAL_CLOSE_CODES,
    STREAM_ENDED,
    TokenSource,
    open_socket,
    resolve_token,
    ws_url,
)

__all__ = ["ViewerClient"]

log = logging.getLogger("gifting_client")

#: A connection that stayed up this long resets the backoff to its first step.
STABLE_AFTER_S: Final = 5.0
#: The longest ``retry_after_ms`` of a ``rate_limited`` answer the client honours.
MAX_RETRY_AFTER_MS: Final = 60_000


@dataclass(eq=False)
class _Pending:
    """A message sent (or to be sent) and not answered yet."""

    id: str
    frame: str | bytes
    future: asyncio.Future[Ack]
    #: The connection generation it was last sent on (-1: not sent on the current one).
    sent_on: int = -1
    retries: int = 0
    waiter: asyncio.Task[None] | None = field(default=None, repr=False)


class ViewerClient:
    """A viewer's connection to one stream, kept open across drops.

    ``url`` is the server's base URL (``ws://host:port`` or ``http://...``),
    ``token`` the viewer's bearer token or a function returning a fresh one
    (called on every connect). ``encoding`` is ``"json"`` or ``"msgpack"``.

    ``ack_timeout`` (seconds, ``None`` to wait as long as it takes) bounds
    each send; when it passes the send raises :class:`OutcomeUnknown` with
    the id to retry with. ``max_reconnects`` is the number of failed
    reconnect attempts in a row before giving up (``None``: never give up).
    ``max_retries`` bounds the automatic retries (same id) of a message
    answered ``unavailable`` or ``rate_limited``. ``events_buffer`` bounds the
    room events kept for :meth:`events`; past it the oldest are dropped and
    counted in :attr:`dropped_events`. ``id_prefix`` starts every id
    :meth:`new_id` makes (random by default: ids must be unique per sender).
    """

    def __init__(
        self,
        url: str,
        stream: str,
        token: TokenSource,
        *,
        encoding: Encoding = JSON,
        backoff: Backoff | None = None,
        ack_timeout: float | None = None,
        max_retries: int = 5,
        max_reconnects: int | None = None,
        open_timeout: float = 10.0,
        events_buffer: int = 10_000,
        id_prefix: str | None = None,
    ) -> None:
        self.url = ws_url(url, "/v1/ws/viewer", {"stream": stream})
        self.stream = stream
        self.encoding: Encoding = encoding
        self.backoff = backoff or Backoff()
        self.ack_timeout = ack_timeout
        self.max_retries = max_retries
        self.max_reconnects = max_reconnects
        self.open_timeout = open_timeout
        #: The balance of the latest ack that carried one.
        self.balance: int | None = None
        #: Successful reconnects since :meth:`connect`.
        self.reconnects = 0
        #: Room events dropped because nobody read them fast enough.
        self.dropped_events = 0
        self._token = token
        self._id_prefix = id_prefix or f"c{secrets.token_hex(5)}"
        self._counter = 0
        self._pending: dict[str, _Pending] = {}
        self._events: asyncio.Queue[RoomEvent | None] = asyncio.Queue(max(events_buffer, 1))
        self._socket: ClientConnection | None = None  # the open connection, ready or not
        self._ready_socket: ClientConnection | None = None  # the one messages are sent on
        self._generation = 0
        self._runner: asyncio.Task[None] | None = None
        self._closing = False
        self._final: GiftingError | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle -------------------------------------------------------------------
    async def connect(self) -> None:
        """Open the connection; raise if the server refuses it.

        Raises :class:`~gifting_client.errors.Unauthorized` (bad token),
        :class:`~gifting_client.errors.StreamNotLive`,
        :class:`~gifting_client.errors.BadRequest` (unknown stream) or
        :class:`ConnectionFailed` (network). Afterwards the client
        reconnects by itself until :meth:`close`.
        """
        if self._runner is not None:
            raise RuntimeError("already connected")
        ws = await self._open()
        self._runner = asyncio.get_running_loop().create_task(self._run(ws))

    async def close(self) -> None:
        """Close the connection; sends still waiting raise :class:`OutcomeUnknown`."""
        self._closing = True
        if self._socket is not None:
            await self._socket.close()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        for task in list(self._tasks):
            task.cancel()
        self._finish(None, "the client was closed before an answer came")

    async def __aenter__(self) -> ViewerClient:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        """Whether a connection is up and accepted right now."""
        return self._ready_socket is not None

    # -- sending ---------------------------------------------------------------------
    def new_id(self) -> str:
        """A fresh message id, unique to this client (pass it back to retry a send later)."""
        self._counter += 1
        return f"{self._id_prefix}-{self._counter}"

    async def send_gift(
        self, gift: str, count: int = 1, id: str | None = None, *, to: str | None = None
    ) -> Ack:
        """Send ``count`` of ``gift``; return the server's :class:`Ack` (``combo`` included).

        ``id`` defaults to :meth:`new_id`; sending the same id again — after an
        :class:`OutcomeUnknown`, from another process — never debits twice.
        ``to``: a current guest of the stream to receive it (``None``: the host);
        one who is not raises :class:`~gifting_client.errors.UnknownReceiver`.
        Raises the typed :class:`ErrorReply` of a refusal
        (:class:`~gifting_client.errors.InsufficientFunds`, ...).
        """
        msg_id = id or self.new_id()
        message: dict[str, Any] = {"op": "gift", "id": msg_id, "gift": gift, "count": count}
        if to is not None:
            message["to"] = to
        return await self._request(message, msg_id)

    async def send_effect(self, effect: str, id: str | None = None) -> Ack:
        """Buy a live-stream ``effect``; see :meth:`send_gift` for ids and errors."""
        msg_id = id or self.new_id()
        return await self._request({"op": "effect", "id": msg_id, "effect": effect}, msg_id)

    async def send_comment(
        self, text: str, highlight: str | None = None, id: str | None = None
    ) -> Ack:
        """Post a comment: free, or pinned on overlays when ``highlight`` names a paid tier."""
        msg_id = id or self.new_id()
        message: dict[str, Any] = {"op": "comment", "id": msg_id, "text": text}
        if highlight is not None:
            message["highlight"] = highlight
        return await self._request(message, msg_id)

    async def drop_box(
        self, coins: int, winners: int, opens_in_s: int, id: str | None = None
    ) -> Ack:
        """Drop a treasure box of ``coins`` for at most ``winners`` viewers, opening later.

        Debited like a spend (same ids, errors and budget); the ack's ``box``
        is the box id viewers claim. What nobody claims in its 30 s window
        comes back to the dropper.
        """
        msg_id = id or self.new_id()
        return await self._request(
            {"op": "box", "id": msg_id, "coins": coins, "winners": winners,
             "opens_in_s": opens_in_s},
            msg_id,
        )  # fmt: skip

    async def claim(self, box: str, id: str | None = None) -> Ack:
        """Claim a share of an open treasure ``box``: the ack's ``share`` and ``balance``.

        Raises :class:`~gifting_client.errors.BoxNotOpen`,
        :class:`~gifting_client.errors.BoxClosed`,
        :class:`~gifting_client.errors.AlreadyClaimed` or
        :class:`~gifting_client.errors.UnknownBox`; the same ``id`` again returns
        the same ack.
        """
        msg_id = id or self.new_id()
        return await self._request({"op": "claim", "id": msg_id, "box": box}, msg_id)

    async def _request(self, message: dict[str, Any], msg_id: str) -> Ack:
        if self._final is not None:
            raise self._final
        if self._runner is None or self._closing:
            raise RuntimeError("the client is not connected (use connect() or async with)")
        if msg_id in self._pending:
            raise ValueError(f"a message with id {msg_id!r} is already waiting for its answer")
        future: asyncio.Future[Ack] = asyncio.get_running_loop().create_future()
        pending = _Pending(msg_id, encode_frame(message, self.encoding), future)
        self._pending[msg_id] = pending
        try:
            await self._send(pending)
            async with asyncio.timeout(self.ack_timeout):
                return await future
        except TimeoutError:
            raise OutcomeUnknown(
                f"no answer within {self.ack_timeout} s; retry with the same id", msg_id
            ) from None
        finally:
            if self._pending.get(msg_id) is pending:
                del self._pending[msg_id]
                if pending.waiter is not None:
                    pending.waiter.cancel()

    async def _send(self, pending: _Pending) -> None:
        """Send ``pending`` on the current connection unless it already went out on it."""
        ws = self._ready_socket
        if ws is None or pending.sent_on == self._generation:
            return  # the runner sends it once a connection is ready
        pending.sent_on = self._generation
        with contextlib.suppress(ConnectionClosed):
            await ws.send(pending.frame)

    async def _send_later(self, pending: _Pending, delay: float) -> None:
        await asyncio.sleep(delay)
        if self._pending.get(pending.id) is pending:
            pending.sent_on = -1
            await self._send(pending)

    # -- receiving -------------------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[RoomEvent]:
        return self.events()

    async def events(self) -> AsyncIterator[RoomEvent]:
        """The room's events in order (``batch`` frames unpacked), until the client stops.

        The iteration ends after :meth:`close`, or after the
        :class:`~gifting_client.messages.StreamEnded` event of the stream.
        """
        while True:
            event = await self._events.get()
            if event is None:
                self._events.put_nowait(None)  # for any other reader
                return
            yield event

    def _push_event(self, event: RoomEvent | None) -> None:
        if self._events.full():
            self._events.get_nowait()
            self.dropped_events += 1
        self._events.put_nowait(event)

    def _dispatch(self, msg: dict[str, Any]) -> None:
        op = msg.get("op")
        if op == "ack":
            self._on_ack(msg)
        elif op == "error":
            self._on_error(msg)
        elif op == "batch":
            for raw in msg.get("events") or ():
                self._on_event(raw)
        elif op == "event":
            self._on_event(msg)

    def _on_ack(self, msg: dict[str, Any]) -> None:
        try:
            ack = msgspec.convert(msg, Ack)
        except msgspec.ValidationError as exc:
            log.warning("ignoring a malformed ack: %s", exc)
            return
        if ack.balance is not None:
            self.balance = ack.balance
        pending = self._pending.pop(ack.id, None)
        if pending is not None and not pending.future.done():
            pending.future.set_result(ack)

    def _on_error(self, msg: dict[str, Any]) -> None:
        msg_id = msg.get("id")
        err = error_from_reply(
            str(msg.get("code")), str(msg.get("message", "")), msg_id if msg_id else None
        )
        pending = self._pending.get(msg_id) if isinstance(msg_id, str) else None
        if pending is None:
            log.warning("server error: %r", err)
            return
        if err.retryable and pending.retries < self.max_retries:
            delay = self.backoff.delay(pending.retries)
            retry_after = msg.get("retry_after_ms")
            if isinstance(retry_after, int) and retry_after > 0:  # the server said how long
                delay = max(delay, min(retry_after, MAX_RETRY_AFTER_MS) / 1000)
            pending.retries += 1
            pending.waiter = self._spawn(self._send_later(pending, delay))
            return
        del self._pending[pending.id]
        if not pending.future.done():
            pending.future.set_exception(err)

    def _on_event(self, raw: object) -> None:
        if not isinstance(raw, dict):
            return
        try:
            self._push_event(parse_event(raw))
        except (msgspec.ValidationError, TypeError, ValueError) as exc:
            log.warning("ignoring a malformed room event: %s", exc)

    # -- the connection task ----------------------------------------------------------
    async def _open(self) -> ClientConnection:
        """Open a connection and wait for the server to accept it (our ping's pong)."""
        token = await resolve_token(self._token)
        ws = await open_socket(
            self.url,
            self.encoding,
            headers={"Authorization": f"Bearer {token}"},
            open_timeout=self.open_timeout,
        )
        self._socket = ws
        try:
            await self._handshake(ws)
        except BaseException:
            self._socket = None
            await ws.close()
            raise
        return ws

    async def _handshake(self, ws: ClientConnection) -> None:
        """Ping and wait for the pong: a refused connection gets an error and a close instead."""
        hello = f"hello-{self._generation + 1}"
        try:
            with contextlib.suppress(ConnectionClosed):  # a refusal may already be queued
                await ws.send(encode_frame({"op": "ping", "id": hello}, self.encoding))
            async with asyncio.timeout(self.open_timeout):
                while True:
                    msg = decode_frame(await ws.recv())
                    if msg.get("op") == "pong" and msg.get("id") == hello:
                        return
                    if msg.get("op") == "error" and msg.get("id") == hello:
                        # Every frame is rate limited, the opening ping too: wait, ask again.
                        retry_after = msg.get("retry_after_ms")
                        wait = retry_after if isinstance(retry_after, int) else 100
                        await asyncio.sleep(min(max(wait, 1), MAX_RETRY_AFTER_MS) / 1000)
                        await ws.send(encode_frame({"op": "ping", "id": hello}, self.encoding))
                        continue
                    if msg.get("op") == "error" and not msg.get("id"):
                        raise error_from_reply(str(msg.get("code")), str(msg.get("message", "")))
                    self._dispatch(msg)
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else None
            raise ConnectionFailed(
                f"the server closed the connection ({code})",
                code,
                retryable=code not in FINAL_CLOSE_CODES,
            ) from exc
        except TimeoutError as exc:
            raise ConnectionFailed("no answer to the opening ping", retryable=True) from exc
        except (msgspec.DecodeError, ValueError) as exc:
            raise ConnectionFailed(f"malformed frame from the server: {exc}") from exc

    async def _run(self, ws: ClientConnection) -> None:
        failures = 0
        while True:
            up_since = time.monotonic()
            await self._serve(ws)
            if self._closing:
                return
            code = ws.close_code
            if code in FINAL_CLOSE_CODES:
                reason = "the stream ended" if code == STREAM_ENDED else str(ws.close_reason)
                self._finish(ConnectionFailed(f"closed by the server: {reason}", code), reason)
                return
            if time.monotonic() - up_since > STABLE_AFTER_S:
                failures = 0
            while True:
                if self.max_reconnects is not None and failures >= self.max_reconnects:
                    self._finish(ConnectionFailed("gave up reconnecting", code), "gave up")
                    return
                await asyncio.sleep(self.backoff.delay(failures))
                failures += 1
                try:
                    ws = await self._open()
                    break
                except ErrorReply as err:
                    if not err.retryable:
                        self._finish(err, f"the server refused the connection ({err.code})")
                        return
                except ConnectionFailed as err:
                    if not err.retryable:
                        self._finish(err, str(err))
                        return
                    log.info("reconnect attempt %d failed: %s", failures, err)
            self.reconnects += 1

    async def _serve(self, ws: ClientConnection) -> None:
        """Make ``ws`` the connection messages go out on, resend what waits, read until it drops."""
        self._generation += 1
        self._ready_socket = ws
        try:
            for pending in list(self._pending.values()):
                await self._send(pending)
            async for frame in ws:
                try:
                    msg = decode_frame(frame)
                except (msgspec.DecodeError, ValueError) as exc:
                    log.warning("ignoring a malformed frame: %s", exc)
                    continue
                self._dispatch(msg)
        except ConnectionClosed:
            pass
        finally:
            self._ready_socket = None
            self._socket = None

    def _finish(self, error: GiftingError | None, why: str) -> None:
        """Stop for good: unanswered sends become :class:`OutcomeUnknown`, events end."""
        if error is not None and self._final is None:
            self._final = error
        for pending in list(self._pending.values()):
            if not pending.future.done():
                exc = OutcomeUnknown(f"{why}; retry with the same id", pending.id)
                exc.__cause__ = error
                pending.future.set_exception(exc)
        self._pending.clear()
        self._push_event(None)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
