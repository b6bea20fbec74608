"""The one error tree: codes, HTTP statuses, the scripts' refusal table. Pure."""

from __future__ import annotations

import inspect

import pytest

from gifting.core import errors
from gifting.core.errors import (
    SCRIPT_REFUSALS,
    BadRequest,
    GiftingError,
    Unavailable,
    error_from_code,
    refusal,
)

ALL = [
    c for _, c in inspect.getmembers(errors, inspect.isclass)
    if issubclass(c, GiftingError) and c is not GiftingError
]  # fmt: skip
# The wire codes of the contract (docs/protocol.md) that this tree speaks.
CONTRACT_CODES = {
    "bad_request", "unauthorized", "forbidden", "not_found", "unknown_item",
    "insufficient_funds", "budget_exceeded", "stream_not_live", "rate_limited", "conflict",
    "unavailable", "cursor_expired", "blocked", "unknown_receiver",
}  # fmt: skip
CONTRACT_CODES |= {"box_closed", "already_claimed", "unknown_box", "box_not_open"}  # boxes


def test_every_error_speaks_a_contract_code_with_a_client_error_or_503() -> None:
    for cls in ALL:
        assert cls.code in CONTRACT_CODES, cls
        assert 400 <= cls.status < 500 or cls.status == 503, cls
    assert {cls.code for cls in ALL} == CONTRACT_CODES


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_an_error_goes_to_the_wire_and_back(cls: type[GiftingError]) -> None:
    args = ("what happened", "user") if cls.__name__ == "TooManyConnections" else ("what happened",)
    err = cls(*args)
    assert err.to_dict() == {"code": cls.code, "message": "what happened"}
    back = error_from_code(cls.code, "what happened")
    assert back.code == cls.code and back.message == "what happened"


def test_an_unknown_code_is_unavailable_never_success() -> None:
    assert isinstance(error_from_code("nonsense", "x"), Unavailable)


def test_every_refusal_of_every_script_maps_to_a_contract_error() -> None:
    for script, statuses in SCRIPT_REFUSALS.items():
        for status, (code, _) in statuses.items():
            err = refusal(script, status, minimum=1, cap=2, final="paid")
            assert err.code == code in CONTRACT_CODES, (script, status)
            assert "{" not in err.message  # every placeholder was filled


def test_a_refusal_message_names_its_details() -> None:
    err = refusal("cashout_hold", "below_minimum", minimum=2000)
    assert isinstance(err, BadRequest) and "2000" in err.message
    unknown = refusal("spend", "on_fire")
    assert isinstance(unknown, Unavailable) and "on_fire" in unknown.message
