"""Every exception the client raises, and the protocol codes they come from.

::

    GiftingError                   base of everything this library raises
    ├── ErrorReply                 the server answered {"op":"error"}: .code, .message, .id
    │   ├── BadRequest             bad_request       fix the message
    │   ├── Unauthorized           unauthorized      get a new token
    │   ├── Forbidden              forbidden         wrong overlay key, not the creator
    │   ├── NotFound               not_found         unknown stream
    │   ├── UnknownItem            unknown_item      gift/effect/highlight not in the catalog
    │   ├── InsufficientFunds      insufficient_funds   new id, after a top-up
    │   ├── BudgetExceeded         budget_exceeded   new id, next month or a higher budget
    │   ├── StreamNotLive          stream_not_live   the stream ended or never started
    │   ├── RateLimited            rate_limited      retried for you (same id), then raised
    │   ├── Conflict               conflict          the id was used with another payload
    │   ├── Unavailable            unavailable       retried for you (same id), then raised
    │   ├── CursorExpired          cursor_expired    (overlays) handled: a snapshot follows
    │   ├── Blocked                blocked           a moderator blocked the sender
    │   ├── UnknownReceiver        unknown_receiver  the gift's "to" is not a current guest
    │   ├── BoxClosed              box_closed        the treasure box is not open
    │   ├── AlreadyClaimed         already_claimed   this box was already claimed by the user
    │   ├── BoxNotOpen             box_not_open      the treasure box opens later (opens_at)
    │   └── UnknownBox             unknown_box       no such treasure box in the stream
    ├── OutcomeUnknown             no answer came (timeout, client closed, stream ended):
    │                              the spend may or may not have happened; retry with .id
    ├── ConnectionFailed           could not (re)connect, or the server closed for good
    ├── UnexpectedResponse         (HTTP) the answer is not what the API document says
    └── InvalidSignature           (webhook receivers) a delivery's signature does not hold

:func:`error_from_reply` maps a code to its class in one table; an unknown
code becomes a plain :class:`ErrorReply`, so a newer server never breaks an
older client. The HTTP client (:mod:`gifting_client.api`) raises the same
classes from ``{"code", "message"}`` bodies, with ``status`` set to the HTTP
status (``None`` on the WebSocket).
"""

from __future__ import annotations

from typing import ClassVar, Final

__all__ = [
    "AlreadyClaimed",
    "BadRequest",
    "Blocked",
    "BoxClosed",
    "BoxNotOpen",
    "BudgetExceeded",
    "Conflict",
    "ConnectionFailed",
    "CursorExpired",
    "ErrorReply",
    "Forbidden",
    "GiftingError",
    "InsufficientFunds",
    "InvalidSignature",
    "NotFound",
    "OutcomeUnknown",
    "RateLimited",
    "StreamNotLive",
    "Unauthorized",
    "Unavailable",
    "UnexpectedResponse",
    "UnknownBox",
    "UnknownItem",
    "UnknownReceiver",
    "error_from_reply",
]


class GiftingError(Exception):
    """Base of every exception raised by :mod:`gifting_client`."""


class ErrorReply(GiftingError):
    """The server refused a message or a connection with ``{"op":"error"}``.

    ``id`` is the client message id the error answers (``None`` for a refused
    connection). ``retryable`` says whether sending the same id again may
    succeed; the client already does so for :class:`Unavailable` and
    :class:`RateLimited` before raising them.
    """

    #: The protocol code (the class's own, or the unknown code a newer server sent).
    code: str = "error"
    retryable: ClassVar[bool] = False
    #: The HTTP status of the answer (``None`` for a WebSocket reply).
    status: int | None = None

    def __init__(self, message: str, id: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.id = id
        if code is not None:
            self.code = code

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, id={self.id!r}, {self.message!r})"


class BadRequest(ErrorReply):
    """The message was malformed or out of range (or a self-gift): fix it, do not retry."""

    code = "bad_request"


class Unauthorized(ErrorReply):
    """The token is missing, forged or expired: get a new one."""

    code = "unauthorized"


class Forbidden(ErrorReply):
    """The credential may not do this (a wrong overlay key, not the stream's creator)."""

    code = "forbidden"


class NotFound(ErrorReply):
    """The stream (or another addressed resource) does not exist."""

    code = "not_found"


class UnknownItem(ErrorReply):
    """The gift, effect or highlight tier is not in the catalog."""

    code = "unknown_item"


class InsufficientFunds(ErrorReply):
    """Not enough coins. The id stays failed: top up, then send with a new id."""

    code = "insufficient_funds"


class BudgetExceeded(ErrorReply):
    """The spend would pass the monthly budget. The id stays failed."""

    code = "budget_exceeded"


class StreamNotLive(ErrorReply):
    """The stream ended or never started."""

    code = "stream_not_live"


class RateLimited(ErrorReply):
    """Too many messages from this sender: slow down and retry with the same id."""

    code = "rate_limited"
    retryable = True


class Conflict(ErrorReply):
    """The id was already used with another payload: use a new id."""

    code = "conflict"


class Unavailable(ErrorReply):
    """The server could not decide (Redis unreachable): retrying with the same id is safe."""

    code = "unavailable"
    retryable = True


class CursorExpired(ErrorReply):
    """(Overlays) ``since=`` is older than the room's history; a snapshot follows."""

    code = "cursor_expired"


class Blocked(ErrorReply):
    """The sender is blocked in this stream (or in every stream of its creator)."""

    code = "blocked"


class UnknownReceiver(ErrorReply):
    """The gift's receiver is not a current guest of the stream."""

    code = "unknown_receiver"


class BoxClosed(ErrorReply):
    """The treasure box is not open for claims (not yet, or no longer)."""

    code = "box_closed"


class AlreadyClaimed(ErrorReply):
    """The user already claimed a share of this treasure box."""

    code = "already_claimed"


class BoxNotOpen(ErrorReply):
    """The treasure box opens later (its ``box_dropped`` event says when): claim then."""

    code = "box_not_open"


class UnknownBox(ErrorReply):
    """No such treasure box in the stream."""

    code = "unknown_box"


class OutcomeUnknown(GiftingError):
    """No answer came for message ``id``: it may or may not have been debited.

    Raised when an ack timeout passes, when the client is closed, or when the
    stream ends with the message in flight; over HTTP, when a sent call got
    no answer (``id`` is its idempotency id, empty for a call that has none).
    Sending again with the same ``id`` is always safe: the server returns the
    original result and debits nothing.
    """

    def __init__(self, message: str, id: str) -> None:
        super().__init__(message)
        self.id = id


class UnexpectedResponse(GiftingError):
    """(HTTP) The server's answer does not decode as the API says: ``status`` and ``body``.

    Raised for a body that is not the documented JSON (a proxy's HTML error
    page, a field of the wrong type); ``body`` holds its first bytes.
    """

    def __init__(self, message: str, status: int, body: bytes = b"") -> None:
        super().__init__(message)
        self.status = status
        self.body = body[:512]


class InvalidSignature(GiftingError):
    """A webhook delivery's ``X-Gifting-Signature`` is missing, malformed, stale or wrong."""


class ConnectionFailed(GiftingError):
    """The client could not connect, or the server closed the connection for good.

    ``close_code`` is the WebSocket close code when the server closed it;
    ``retryable`` says whether connecting again later may work.
    """

    def __init__(
        self, message: str, close_code: int | None = None, *, retryable: bool = False
    ) -> None:
        super().__init__(message)
        self.close_code = close_code
        self.retryable = retryable


_BY_CODE: Final[dict[str, type[ErrorReply]]] = {
    cls.code: cls
    for cls in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        UnknownItem,
        InsufficientFunds,
        BudgetExceeded,
        StreamNotLive,
        RateLimited,
        Conflict,
        Unavailable,
        CursorExpired,
        Blocked,
        UnknownReceiver,
        BoxClosed,
        AlreadyClaimed,
        BoxNotOpen,
        UnknownBox,
    )
}


def error_from_reply(
    code: str, message: str, id: str | None = None, *, status: int | None = None
) -> ErrorReply:
    """The typed exception of an ``{"op":"error"}`` reply (``ErrorReply`` for unknown codes).

    ``status``: the HTTP status, when the error came in an HTTP answer.
    """
    cls = _BY_CODE.get(code)
    error = ErrorReply(message, id, code) if cls is None else cls(message, id)
    error.status = status
    return error
