"""The close-code table: which codes are final, which refusal closes how."""

from __future__ import annotations

import pytest
from gifting_client.transport import FINAL_CLOSE_CODES

from gifting.core import disconnect
from gifting.core.disconnect import CloseCode, Disconnect, refusal
from gifting.core.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    GiftingError,
    NotFound,
    Unauthorized,
    Unavailable,
)


@pytest.mark.parametrize("code", list(CloseCode))
def test_the_server_and_the_client_library_agree_on_what_is_final(code: CloseCode) -> None:
    assert code.reconnect == (code not in FINAL_CLOSE_CODES)


def test_the_named_closes_keep_their_codes_and_reasons() -> None:
    assert Disconnect(CloseCode.NORMAL, "stream ended") == disconnect.STREAM_ENDED
    assert Disconnect(CloseCode.GOING_AWAY, "server shutting down") == disconnect.SHUTDOWN
    assert Disconnect(CloseCode.TRY_AGAIN, "too slow: reconnect") == disconnect.SLOW
    assert Disconnect(CloseCode.POLICY, "flooding") == disconnect.FLOODING
    assert Disconnect(CloseCode.UNSUPPORTED, "wrong frame type") == disconnect.WRONG_FRAME_TYPE
    assert Disconnect(CloseCode.POLICY, "bad cursor") == disconnect.BAD_CURSOR
    assert not disconnect.STREAM_ENDED.reconnect
    assert disconnect.SHUTDOWN.reconnect and disconnect.SLOW.reconnect


@pytest.mark.parametrize(
    "err",
    [
        Unauthorized("missing bearer token"),
        NotFound("no such stream"),
        Forbidden("wrong overlay key"),
        BadRequest("stream must be an id"),
        Conflict("anything else falls back to the base entry"),
    ],
)
def test_a_refused_connection_closes_1008_with_the_error_message(err: GiftingError) -> None:
    assert refusal(err) == Disconnect(CloseCode.POLICY, err.message)


def test_a_refusal_reason_fits_a_close_frame() -> None:
    assert len(refusal(NotFound("x" * 500)).reason.encode()) <= 123


def test_a_connection_refused_because_a_store_is_unreachable_is_told_to_come_back() -> None:
    """Redis down while a viewer connects is a passing fault: 1013, not a final 1008."""
    from gifting.core.disconnect import refusal

    close = refusal(Unavailable("the ledger is unavailable; retry"))
    assert close.code == 1013 and close.reconnect
