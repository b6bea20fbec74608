"""Why the server closes a WebSocket: the close codes, and the one table that picks them.

Codes (RFC 6455) fall in two groups, as in docs/protocol.md and the client
library's ``FINAL_CLOSE_CODES``:

* **final** — reconnecting would not help: 1000 the stream ended,
  1002/1003/1007/1009 a client bug (1007, a text frame that is not UTF-8, and
  1009 are uvicorn's), 1008 bad credentials, unknown stream, wrong overlay key
  or flooding;
* **reconnect** — 1001 the server is going away, 1011 an internal error or a
  keepalive timeout, 1013 the connection fell behind its room or was over a
  connection cap: the client comes back with backoff (an overlay with its
  last cursor).

Every close the hub makes is one of the :class:`Disconnect` values below, or
:func:`refusal` of the error that refused a connection. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from gifting.core.errors import (
    BadRequest,
    Forbidden,
    GiftingError,
    NotFound,
    TooManyConnections,
    Unauthorized,
    Unavailable,
)


class CloseCode(IntEnum):
    """WebSocket close codes the hub uses."""

    NORMAL = 1000  # the stream ended: do not reconnect to this stream
    GOING_AWAY = 1001  # server shutting down: reconnect (overlays with their cursor)
    PROTOCOL_ERROR = 1002
    UNSUPPORTED = 1003  # a text frame on msgpack or the reverse
    POLICY = 1008  # bad credentials, unknown stream, wrong overlay key, flood
    TOO_BIG = 1009  # frame over GIFTING_MAX_FRAME_BYTES (the session, and uvicorn's ws_max_size)
    INTERNAL = 1011  # an internal error, or a keepalive timeout (uvicorn)
    TRY_AGAIN = 1013  # slow consumer, or a connection cap: reconnect later (overlays: cursor)

    @property
    def reconnect(self) -> bool:
        """Whether a client should reconnect after this code (else it is final)."""
        return self in _RECONNECT


_RECONNECT: Final = frozenset({CloseCode.GOING_AWAY, CloseCode.INTERNAL, CloseCode.TRY_AGAIN})


@dataclass(frozen=True, slots=True)
class Disconnect:
    """A close the server makes: its code and a short reason (at most 123 bytes on the wire)."""

    code: CloseCode
    reason: str

    @property
    def reconnect(self) -> bool:
        """Whether the client should reconnect (see :attr:`CloseCode.reconnect`)."""
        return self.code.reconnect


STREAM_ENDED: Final = Disconnect(CloseCode.NORMAL, "stream ended")
SHUTDOWN: Final = Disconnect(CloseCode.GOING_AWAY, "server shutting down")
SLOW: Final = Disconnect(CloseCode.TRY_AGAIN, "too slow: reconnect")
FLOODING: Final = Disconnect(CloseCode.POLICY, "flooding")
WRONG_FRAME_TYPE: Final = Disconnect(CloseCode.UNSUPPORTED, "wrong frame type")
FRAME_TOO_BIG: Final = Disconnect(CloseCode.TOO_BIG, "frame too big")
BAD_CURSOR: Final = Disconnect(CloseCode.POLICY, "bad cursor")
INTERNAL_ERROR: Final = Disconnect(CloseCode.INTERNAL, "internal error")

# The error that refused a connection -> its close code, looked up along the
# error's MRO. Any other GiftingError falls back to the base entry: 1008, as
# the endpoints have always closed.
_REFUSALS: Final[dict[type[GiftingError], CloseCode]] = {
    Unauthorized: CloseCode.POLICY,  # missing, forged or expired token
    NotFound: CloseCode.POLICY,  # no such stream
    Forbidden: CloseCode.POLICY,  # wrong overlay key
    BadRequest: CloseCode.POLICY,  # a malformed stream id
    TooManyConnections: CloseCode.TRY_AGAIN,  # a connection cap: come back later
    # Redis or PostgreSQL unreachable while the connection was checked: a passing
    # fault, so the client comes back with backoff (1008 would make it give up).
    Unavailable: CloseCode.TRY_AGAIN,
    GiftingError: CloseCode.POLICY,
}
MAX_REASON = 120


def refusal(err: GiftingError) -> Disconnect:
    """The close for a connection refused with ``err`` (its message is the reason)."""
    code = next(
        _REFUSALS[cls]
        for cls in type(err).__mro__
        if issubclass(cls, GiftingError) and cls in _REFUSALS
    )
    return Disconnect(code, err.message[:MAX_REASON])
