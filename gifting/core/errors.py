"""The one error tree of gifting, and the protocol codes it maps to.

::

    GiftingError                    code            HTTP
    ├── BadRequest                  bad_request     400
    │   ├── PayloadTooLarge         bad_request     413
    │   └── Unprocessable           bad_request     422  (wrong facts: amount != package)
    ├── Unauthorized                unauthorized    401
    ├── Forbidden                   forbidden       403
    ├── NotFound                    not_found       404
    ├── UnknownItem                 unknown_item    404
    ├── InsufficientFunds           insufficient_funds 402
    ├── BudgetExceeded              budget_exceeded 402
    ├── StreamNotLive               stream_not_live 409
    ├── Conflict                    conflict        409  (same id, different payload)
    ├── CursorExpired               cursor_expired  410  (overlays: a snapshot follows)
    ├── RateLimited                 rate_limited    429
    └── Unavailable                 unavailable     503

Every layer raises these; the edges (HTTP handlers, WebSocket endpoint) turn
them into ``{"code", "message"}`` with :func:`http_status` in one place.
"""

from __future__ import annotations

from typing import ClassVar


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


class NotFound(GiftingError):
    """The addressed resource (stream, cash-out, purchase) does not exist."""

    code = "not_found"
    status = 404


class UnknownItem(GiftingError):
    """A gift, effect, highlight, badge or package id not in the catalog."""

    code = "unknown_item"
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


class RateLimited(GiftingError):
    """Too many requests from this sender; slow down."""

    code = "rate_limited"
    status = 429


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
        NotFound,
        UnknownItem,
        InsufficientFunds,
        BudgetExceeded,
        StreamNotLive,
        Conflict,
        CursorExpired,
        RateLimited,
        Unavailable,
    )
}


def error_from_code(code: str, message: str) -> GiftingError:
    """Rebuild an error from its wire code (used for results stored by the Lua scripts)."""
    return _BY_CODE.get(code, Unavailable)(message)
