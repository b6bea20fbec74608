"""The one error tree of gifting, and the protocol codes it maps to.

::

    GiftingError                    code            HTTP
    ├── BadRequest                  bad_request     400
    │   ├── PayloadTooLarge         bad_request     413
    │   └── Unprocessable           bad_request     422  (wrong facts: amount != package)
    ├── Unauthorized                unauthorized    401
    ├── Forbidden                   forbidden       403
    ├── Blocked                     blocked         403  (a moderator blocked the sender)
    ├── NotFound                    not_found       404
    ├── UnknownItem                 unknown_item    404
    ├── UnknownReceiver             unknown_receiver 404 (a gift's ``to``: not a current guest)
    ├── InsufficientFunds           insufficient_funds 402
    ├── BudgetExceeded              budget_exceeded 402
    ├── StreamNotLive               stream_not_live 409
    ├── Conflict                    conflict        409  (same id, different payload)
    ├── CursorExpired               cursor_expired  410  (overlays: a snapshot follows)
    ├── UnknownBox                  unknown_box     404  (no such treasure box in the room)
    ├── BoxNotOpen                  box_not_open    409  (a claim before the box opens)
    ├── BoxClosed                   box_closed      409  (a claim after the window or K claims)
    ├── AlreadyClaimed              already_claimed 409  (one claim per viewer and box)
    ├── RateLimited                 rate_limited    429
    │   └── TooManyConnections      rate_limited    429  (a connection cap: close 1013)
    └── Unavailable                 unavailable     503

Every layer raises these; the edges turn them into ``{"code", "message"}`` in
one place each: the HTTP status is the error's ``status``
(:func:`gifting.api.http.error_response`), a WebSocket's reply or close comes
from :mod:`gifting.core.session` and :mod:`gifting.core.disconnect`.

The money scripts (``gifting/store/lua/*.lua``) answer with a status string;
:data:`SCRIPT_REFUSALS` is the one table from a script's refusal status to the
error the client sees, and :func:`refusal` builds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Final


class GiftingError(Exception):
    """Base of every error a client can be told about."""

    code: ClassVar[str] = "unavailable"
    status: ClassVar[int] = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, str]:
        """Return the wire form ``{"code": ..., "message": ...}``."""
        return {"code": self.code, "message": self.message}


class BadRequest(GiftingError):
    """The request is malformed: wrong type, missing field, out of range."""

    code = "bad_request"
    status = 400


class PayloadTooLarge(BadRequest):
    """The body or frame is over its size limit."""

    status = 413


class Unprocessable(BadRequest):
    """Well-formed, but the facts do not match (amount is not the package's)."""

    status = 422


class Unauthorized(GiftingError):
    """No valid credential: missing, forged or expired token or signature."""

    code = "unauthorized"
    status = 401


class Forbidden(GiftingError):
    """A valid credential that may not do this (not the stream's creator)."""

    code = "forbidden"
    status = 403


class Blocked(GiftingError):
    """The stream's creator or a moderator blocked this user in this stream (or all of theirs)."""

    code = "blocked"
    status = 403


class NotFound(GiftingError):
    """The addressed resource (stream, cash-out, purchase) does not exist."""

    code = "not_found"
    status = 404


class UnknownItem(GiftingError):
    """A gift, effect, highlight, badge or package id not in the catalog."""

    code = "unknown_item"
    status = 404


class UnknownReceiver(GiftingError):
    """A gift's ``to`` is not a current guest of the stream (nor its host)."""

    code = "unknown_receiver"
    status = 404


class InsufficientFunds(GiftingError):
    """The balance cannot pay for this spend (or is negative after a refund)."""

    code = "insufficient_funds"
    status = 402


class BudgetExceeded(GiftingError):
    """The spend would take the sender past their monthly budget."""

    code = "budget_exceeded"
    status = 402


class StreamNotLive(GiftingError):
    """The stream has ended or never started."""

    code = "stream_not_live"
    status = 409


class Conflict(GiftingError):
    """The idempotency id was already used with another payload."""

    code = "conflict"
    status = 409


class CursorExpired(GiftingError):
    """An overlay's cursor is older than the room's history: the client gets a snapshot."""

    code = "cursor_expired"
    status = 410


class UnknownBox(GiftingError):
    """A claim names a treasure box this room does not have."""

    code = "unknown_box"
    status = 404


class BoxNotOpen(GiftingError):
    """A claim came before the box opened (``opens_at`` in its ``box_dropped`` event)."""

    code = "box_not_open"
    status = 409


class BoxClosed(GiftingError):
    """A claim came after the box's 30 s window, or after its K claims."""

    code = "box_closed"
    status = 409


class AlreadyClaimed(GiftingError):
    """This viewer already claimed this box (with another message id)."""

    code = "already_claimed"
    status = 409


class RateLimited(GiftingError):
    """Too many requests from this sender; slow down.

    ``retry_after_ms``, when known, is how long to wait before sending again.
    """

    code = "rate_limited"
    status = 429

    def __init__(self, message: str, retry_after_ms: int | None = None) -> None:
        super().__init__(message)
        self.retry_after_ms = retry_after_ms


class TooManyConnections(RateLimited):
    """A holder (user, overlay key, address) already has its cap of open connections.

    ``scope`` names which cap (``"user"``, ``"overlay"``, ``"address"``).
    """

    def __init__(self, message: str, scope: str, retry_after_ms: int | None = None) -> None:
        super().__init__(message, retry_after_ms)
        self.scope = scope


class Unavailable(GiftingError):
    """A dependency (Redis, PostgreSQL) cannot be reached; safe to retry."""

    code = "unavailable"
    status = 503


_BY_CODE: dict[str, type[GiftingError]] = {
    cls.code: cls
    for cls in (
        BadRequest,
        Unauthorized,
        Forbidden,
        Blocked,
        NotFound,
        UnknownItem,
        UnknownReceiver,
        InsufficientFunds,
        BudgetExceeded,
        StreamNotLive,
        Conflict,
        CursorExpired,
        RateLimited,
        Unavailable,
        UnknownBox,
        BoxNotOpen,
        BoxClosed,
        AlreadyClaimed,
    )
}


def error_from_code(code: str, message: str) -> GiftingError:
    """Rebuild an error from its wire code (used for results stored by the Lua scripts)."""
    return _BY_CODE.get(code, Unavailable)(message)


#: Script -> refusal status -> (error code, message). A message may name the
#: details the caller passes to :func:`refusal`: ``{minimum}`` and ``{cap}``
#: (diamonds), ``{final}`` (a cash-out's settled status).
SCRIPT_REFUSALS: Final[Mapping[str, Mapping[str, tuple[str, str]]]] = {
    "spend": {
        "conflict": ("conflict", "this message id was already used with another payload"),
        "insufficient_funds": ("insufficient_funds", "not enough coins for this spend"),
        "budget_exceeded": ("budget_exceeded", "this spend would exceed your monthly budget"),
        "stream_not_live": ("stream_not_live", "the stream is not live"),
        "blocked": ("blocked", "you are blocked in this stream"),
        "unknown_receiver": ("unknown_receiver", "the receiver is not a guest of this stream"),
    },
    "purchase": {
        "conflict": ("conflict", "this purchase id was already used with another payload"),
    },
    "refund": {
        "not_found": ("not_found", "no such purchase"),
    },
    "cashout_hold": {
        "conflict": ("conflict", "this cash-out id was already used with another amount"),
        "below_minimum": ("bad_request", "the minimum cash-out is {minimum} diamonds"),
        "insufficient_funds": ("insufficient_funds", "not enough diamonds"),
        "daily_cap": ("budget_exceeded", "cash-outs are capped at {cap} diamonds a day"),
    },
    "cashout_settle": {
        "not_found": ("not_found", "no such cash-out"),
        # "processing" after a settlement: the report came too late to mean anything.
        "conflict": ("conflict", "this cash-out was already settled as {final}"),
    },
    "box_claim": {
        "unknown_box": ("unknown_box", "no such treasure box in this stream"),
        "box_not_open": ("box_not_open", "this treasure box is not open yet"),
        "box_closed": ("box_closed", "this treasure box is closed"),
        "already_claimed": ("already_claimed", "you already claimed this treasure box"),
    },
    "cashout_cancel": {
        "not_found": ("not_found", "no such cash-out"),
        # Another user's cash-out is not found, as on GET /v1/cashouts/{id}: ids do not leak.
        "forbidden": ("not_found", "no such cash-out"),
        "conflict": ("conflict", "this cash-out was already settled as {final}"),
        "processing": (
            "conflict",
            "this cash-out is being paid out and can no longer be cancelled",
        ),
    },
}


def refusal(script: str, status: str, **details: object) -> GiftingError:
    """The typed error of money script ``script`` refusing with ``status``.

    ``details`` fill the message (see :data:`SCRIPT_REFUSALS`). A status the
    table does not know is a bug between Python and Lua: ``Unavailable``,
    naming it, rather than a guess.
    """
    known = SCRIPT_REFUSALS.get(script, {}).get(status)
    if known is None:
        return Unavailable(f"{script}.lua answered an unknown status {status[:40]!r}")
    code, message = known
    return error_from_code(code, message.format(**details))
