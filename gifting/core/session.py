"""The life of one WebSocket connection, without the socket (sans-I/O).

A :class:`Session` is told what happened — the connection was authenticated
or refused, it joined its room, a frame arrived, a spend settled, a read the
shell made for it failed — and answers with the :data:`Action` list the shell
must perform, in order: frames to send, a close, a spend to submit, a comment
to post, history or a snapshot to read, a metric to count. It never awaits
and holds no socket, so every rule of a connection is tested in microseconds
(tests/core/test_session.py); gifting/hub/endpoints.py is the asyncio shell
that feeds it and performs what it asks.

States::

    ACCEPTED ──refuse(err)─────────────────────────────────────────► CLOSING
       │ authenticated()
       ▼
    AUTHENTICATED ──joined(): viewer, stream live ────────────────► LIVE
       │            viewer, stream not live ──────────────────────► CLOSING
       │ joined(): overlay ─► Recover(cursor) | SendSnapshot
       ▼
    RECOVERING ──recovered()──► LIVE (or CLOSING if the stream is not live)
       │ failed(Recover, cursor_expired) ─► SendSnapshot, still RECOVERING
       │ failed(Recover, bad cursor) / failed(other) ─────────────► CLOSING
       │ slow(): the queue closed it (1013) ──────────────────────► CLOSING
    LIVE ──receive_frame(): replies, SubmitSpend, PostComment
       │ wrong frame type, a frame too big, flooding ─────────────► CLOSING
       │ lagged(cursor): an overlay fell behind ─► Recover(cursor) ► RECOVERING
    any ──closed()──► CLOSED

An overlay reads frames (pings) while it recovers, too.

In CLOSING and CLOSED frames are ignored and late replies are not sent
(settling spends are still counted).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Final, Literal

from gifting.core.boxes import box_id_of, price_box
from gifting.core.catalog import Catalog
from gifting.core.disconnect import (
    BAD_CURSOR,
    FLOODING,
    FRAME_TOO_BIG,
    INTERNAL_ERROR,
    STREAM_ENDED,
    WRONG_FRAME_TYPE,
    Disconnect,
    refusal,
)
from gifting.core.errors import BadRequest, GiftingError, RateLimited, StreamNotLive, Unavailable
from gifting.core.pricing import Priced, price_effect, price_gift, price_highlight
from gifting.core.protocol import (
    JSON,
    Box,
    Claim,
    ClientMessage,
    Effect,
    Encoding,
    Gift,
    InvalidMessage,
    Ping,
    decode_message,
    error_message,
)
from gifting.core.ratelimit import SenderLimits, TokenBucket

Role = Literal["viewer", "overlay"]

# A connection that sends this many frames within FLOOD_WINDOW_MS while it was told
# to wait (a rate_limited answer's retry_after_ms) is flooding: close it (1008).
# Strikes decay: the bound is a window, not a lifetime, and a client that waits
# as told earns none.
FLOOD_STRIKES: Final = 50
FLOOD_WINDOW_MS: Final = 10_000
# Spends one connection may have waiting for their ack; past it, ``rate_limited``.
MAX_IN_FLIGHT: Final = 256
# What to tell a client past MAX_IN_FLIGHT: acks come back within a ledger round trip.
IN_FLIGHT_RETRY_MS: Final = 100
RETRY_SAME_ID: Final = "internal error; retry with the same id"
CURSOR_EXPIRED: Final = "cursor_expired"  # the room log's error code (gifting/store/rooms.py)


class State(Enum):
    """Where a connection is in its life."""

    ACCEPTED = "accepted"
    AUTHENTICATED = "authenticated"
    RECOVERING = "recovering"
    LIVE = "live"
    CLOSING = "closing"
    CLOSED = "closed"


class InvalidState(RuntimeError):
    """The shell reported an event the session cannot be in (a bug in the shell)."""


# -- actions: what the shell performs --------------------------------------------
@dataclass(frozen=True, slots=True)
class Send:
    """Queue this server message (encoded by the shell for the connection's encoding)."""

    message: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection after the frames already queued."""

    disconnect: Disconnect


@dataclass(frozen=True, slots=True)
class CountSpend:
    """Count one spend outcome (``gifting_spends_total{kind,result}``)."""

    kind: str
    result: str


@dataclass(frozen=True, slots=True)
class SubmitSpend:
    """Queue this priced spend for the ledger; report back with ``spend_acked``/``spend_failed``."""

    client_id: str
    priced: Priced
    text: str
    #: A gift's receiver (``to``): a guest of the stream; "" for its host.
    to: str = ""


@dataclass(frozen=True, slots=True)
class PostComment:
    """Post a free comment to the room; report back with ``comment_posted`` or ``failed``."""

    client_id: str
    text: str


@dataclass(frozen=True, slots=True)
class ClaimBox:
    """Claim a share of treasure box ``box`` in the room; report back with ``box_claimed``."""

    client_id: str
    box: str


@dataclass(frozen=True, slots=True)
class Recover:
    """Deliver the room's history after ``cursor``, merged with the held live events.

    Report back with ``recovered`` or ``failed``.
    """

    cursor: str


@dataclass(frozen=True, slots=True)
class SendSnapshot:
    """Send the stream's snapshot and go live from the room's current seq.

    Report back with ``recovered`` or ``failed``.
    """


Request = SubmitSpend | PostComment | Recover | SendSnapshot | ClaimBox
"""Actions whose outcome the shell reports back (they may fail)."""
Action = Send | Close | CountSpend | Request


def _too_big(raw: str | bytes | None, limit: int) -> bool:
    """Whether a frame is over ``limit`` bytes (a text frame's size is its UTF-8 length)."""
    if raw is None:
        return False
    size = len(raw)
    if isinstance(raw, str) and size <= limit < size * 4:  # maybe: count the bytes
        size = len(raw.encode())
    return size > limit


def _reply_of(err: GiftingError, client_id: str | None = None) -> dict[str, Any]:
    """The ``error`` reply of ``err`` (``retry_after_ms`` too, when it is a rate limit)."""
    reply = error_message(err.code, err.message, client_id)
    if isinstance(err, RateLimited) and err.retry_after_ms is not None:
        reply["retry_after_ms"] = err.retry_after_ms
    return reply


class Session:
    """One viewer or overlay connection: its state, limits and what to do next."""

    def __init__(
        self,
        encoding: Encoding,
        role: Role,
        catalog: Catalog,
        limits: SenderLimits,
        max_frame_bytes: int | None = None,
    ) -> None:
        self.encoding: Encoding = encoding
        # Frames over it close the connection (1009) whatever server runs the app:
        # a plain uvicorn takes frames up to 16 MiB unless told otherwise.
        self.max_frame_bytes = max_frame_bytes
        self.role: Role = role
        self.catalog = catalog
        self.limits = limits
        self.state = State.ACCEPTED
        self.user = ""
        self.name = ""
        self.live = False
        self.strikes = 0
        self.in_flight = 0
        # A viewer's frames are charged to its sender's bucket (shared by the
        # sender's connections), an overlay's to a bucket of its own.
        self._own = limits.bucket() if role == "overlay" else None
        self._strikes = TokenBucket(
            FLOOD_STRIKES * 1000 / FLOOD_WINDOW_MS, FLOOD_STRIKES, limits.clock
        )
        self._wait_until = 0  # ms (limits.clock): what the last rate_limited answer said

    # -- the connection's life --------------------------------------------------------
    def refuse(self, err: GiftingError) -> list[Action]:
        """Who is connecting could not be established: tell them why and close."""
        self._expect(State.ACCEPTED)
        self.state = State.CLOSING
        return [Send(_reply_of(err)), Close(refusal(err))]

    def authenticated(self, live: bool, user: str = "", name: str = "") -> None:
        """The credentials (token or overlay key) and the stream checked out."""
        self._expect(State.ACCEPTED)
        self.state = State.AUTHENTICATED
        self.live, self.user, self.name = live, user, name

    def joined(self, since: str | None = None) -> list[Action]:
        """The connection is in its room: a viewer goes live, an overlay recovers first."""
        self._expect(State.AUTHENTICATED)
        if self.role == "overlay":
            self.state = State.RECOVERING
            return [Recover(since) if since else SendSnapshot()]
        if not self.live:
            self.state = State.CLOSING
            err = StreamNotLive("the stream is not live")
            return [Send(error_message(err.code, err.message)), Close(STREAM_ENDED)]
        self.state = State.LIVE
        return []

    def recovered(self) -> list[Action]:
        """The overlay has its history (or snapshot): it is live, unless the stream ended."""
        if self.closing:  # closed while it caught up (a flood, a 1013): nothing to do
            return []
        self._expect(State.RECOVERING)
        if not self.live:
            return self._close(STREAM_ENDED)
        self.state = State.LIVE
        return []

    def lagged(self, cursor: str) -> list[Action]:
        """A live overlay fell behind its room: catch up from ``cursor`` (its last event's)."""
        if self.role != "overlay" or self.state is not State.LIVE:
            return []
        self.state = State.RECOVERING
        return [Recover(cursor)]

    def slow(self) -> None:
        """The send queue closed the connection while it caught up (1013): nothing more to do."""
        if not self.closing:
            self.state = State.CLOSING

    def closed(self) -> None:
        """The socket is gone."""
        self.state = State.CLOSED

    @property
    def closing(self) -> bool:
        """Whether the session has asked for a close (or the socket is gone)."""
        return self.state in (State.CLOSING, State.CLOSED)

    # -- frames ---------------------------------------------------------------------
    def receive_frame(self, raw: str | bytes | None) -> list[Action]:
        """One frame from the client (``None``: a frame with no data of either type)."""
        if self.closing:
            return []
        if not (self.state is State.RECOVERING and self.role == "overlay"):
            self._expect(State.LIVE)
        if self.max_frame_bytes is not None and _too_big(raw, self.max_frame_bytes):
            return self._close(FRAME_TOO_BIG)
        if not isinstance(raw, str if self.encoding == JSON else bytes):
            wrong = f"this connection speaks {self.encoding}: wrong frame type"
            return [Send(error_message("bad_request", wrong)), *self._close(WRONG_FRAME_TYPE)]
        try:
            message: ClientMessage | InvalidMessage = decode_message(raw, self.encoding)
        except InvalidMessage as exc:
            message = exc
        client_id = message.client_id if isinstance(message, InvalidMessage) else message.id
        refused = self._charge(client_id)
        if refused is not None:
            return refused
        if isinstance(message, InvalidMessage):
            return self._error_reply(message, None)
        try:
            return self._on_message(message)
        except Exception as exc:
            return self._error_reply(exc, message.id)

    def _charge(self, client_id: str | None) -> list[Action] | None:
        """Charge one frame, whatever it holds: None, or the refusal (or the flood close)."""
        now = self.limits.clock()
        try:
            if self._own is not None:
                self._own.charge()
            else:
                self.limits.allow(self.user)
        except RateLimited as err:
            if now < self._wait_until:  # it was told to wait, and did not
                self.strikes += 1
                if not self._strikes.take():
                    return [CountSpend("any", err.code), *self._close(FLOODING)]
            self._wait_until = now + (err.retry_after_ms or 0)
            return self._error_reply(err, client_id)
        return None

    def _on_message(self, message: ClientMessage) -> list[Action]:
        if isinstance(message, Ping):
            return [Send({"op": "pong", "id": message.id} if message.id else {"op": "pong"})]
        if self.role == "overlay":
            raise BadRequest("overlays only listen (and ping)")
        text, to = "", ""
        if isinstance(message, Claim):
            return [ClaimBox(message.id, message.box)]
        if isinstance(message, Box):
            priced = price_box(message.coins, message.winners, message.opens_in_s)
        elif isinstance(message, Gift):
            priced = price_gift(self.catalog, message.gift, message.count)
            to = message.to or ""
        elif isinstance(message, Effect):
            priced = price_effect(self.catalog, message.effect)
        elif message.highlight is not None:
            priced = price_highlight(self.catalog, message.highlight, message.text)
            text = message.text
        else:
            return [PostComment(message.id, message.text)]
        if self.in_flight >= MAX_IN_FLIGHT:
            raise RateLimited(
                f"at most {MAX_IN_FLIGHT} spends may wait for their ack", IN_FLIGHT_RETRY_MS
            )
        self.in_flight += 1
        return [SubmitSpend(message.id, priced, text, to)]

    # -- outcomes the shell reports -----------------------------------------------------
    def spend_acked(
        self, client_id: str, kind: str, event: str, balance: int, combo: int
    ) -> list[Action]:
        """A submitted spend was debited: ack it (gifts carry their combo)."""
        self.in_flight -= 1
        reply: dict[str, Any] = {"op": "ack", "id": client_id, "event": event, "balance": balance}
        if kind == "gift":
            reply["combo"] = combo
        elif kind == "box":
            reply["box"] = box_id_of(event)
        return [CountSpend(kind, "ok"), *self._send(reply)]

    def box_claimed(
        self, client_id: str, box: str, event: str, share: int, balance: int
    ) -> list[Action]:
        """A claim was accepted (or is a replay of one): the share and the balance after it.

        ``event``: the claim's ledger event (also its ``box_claimed`` room event).
        """
        reply = {
            "op": "ack", "id": client_id, "event": event, "box": box, "share": share,
            "balance": balance,
        }  # fmt: skip
        return [CountSpend("claim", "ok"), *self._send(reply)]

    def spend_failed(self, client_id: str, kind: str, exc: BaseException) -> list[Action]:
        """A submitted spend was refused by the ledger, or its outcome is unknown."""
        self.in_flight -= 1
        err = exc if isinstance(exc, GiftingError) else Unavailable(RETRY_SAME_ID)
        return [
            CountSpend(kind, err.code),
            *self._send(error_message(err.code, err.message, client_id)),
        ]

    def comment_posted(self, client_id: str, event: str) -> list[Action]:
        """A free comment reached the room."""
        return self._send({"op": "ack", "id": client_id, "event": event})

    def failed(self, request: Request, exc: Exception) -> list[Action]:
        """A request the shell performed raised ``exc``: what to tell the client, and do."""
        if isinstance(request, SubmitSpend):
            self.in_flight -= 1
            return self._error_reply(exc, request.client_id)
        if isinstance(request, PostComment | ClaimBox):
            return self._error_reply(exc, request.client_id)
        if self.closing:
            return []
        self._expect(State.RECOVERING)
        if isinstance(request, Recover) and isinstance(exc, GiftingError):
            if exc.code == CURSOR_EXPIRED:
                return [Send(error_message(exc.code, exc.message)), SendSnapshot()]
            if isinstance(exc, BadRequest):
                return [Send(error_message(exc.code, exc.message)), *self._close(BAD_CURSOR)]
        return self._close(INTERNAL_ERROR)

    # -- helpers -----------------------------------------------------------------------
    def _error_reply(self, exc: Exception, client_id: str | None) -> list[Action]:
        """The one error ladder: a bad frame, a typed error, or anything else."""
        if isinstance(exc, InvalidMessage):
            return self._send(error_message(exc.code, exc.message, exc.client_id))
        if isinstance(exc, GiftingError):
            counted: list[Action] = [CountSpend("any", exc.code)]
            return counted + self._send(_reply_of(exc, client_id))
        return self._send(error_message(Unavailable.code, RETRY_SAME_ID, client_id))

    def _send(self, message: dict[str, Any]) -> list[Action]:
        return [] if self.closing else [Send(message)]

    def _close(self, disconnect: Disconnect) -> list[Action]:
        self.state = State.CLOSING
        return [Close(disconnect)]

    def _expect(self, state: State) -> None:
        if self.state is not state:
            raise InvalidState(f"{self.role} session is {self.state.value}, not {state.value}")
