"""Every refusal a money script can answer has its typed error in core/errors.py's table."""

from __future__ import annotations

import re

import pytest

from gifting.core.errors import (
    SCRIPT_REFUSALS,
    BadRequest,
    BudgetExceeded,
    Conflict,
    InsufficientFunds,
    NotFound,
    StreamNotLive,
    Unavailable,
    refusal,
)
from gifting.store.retire import LateSettle, settle_failure
from gifting.store.scripts import SCRIPT_NAMES, script_source

SUCCESS = {"ok", "replay"}
#: Answers no client sees: a settle step past its deadline (store/retire.py's LateSettle).
INTERNAL = {"stale"}
#: ... and a treasure box's close steps (store/boxes.py: BoxMissing, NotYet, no-ops).
INTERNAL_OF = {"box_seal": {"missing", "early"}, "box_settle": {"missing", "open"}}


def _statuses(script: str) -> set[str]:
    """The refusals a script can return: its ``return {'...'`` and ``status = '...'`` literals."""
    src = script_source(script)
    found = set(re.findall(r"return \{'([a-z_]+)'", src))
    found |= set(re.findall(r"status = '([a-z_]+)'", src))
    return found - SUCCESS - INTERNAL - INTERNAL_OF.get(script, set())


@pytest.mark.parametrize("script", [s for s in SCRIPT_NAMES if s not in ("emit", "retire")])
def test_every_refusal_of_every_money_script_is_in_the_table(script: str) -> None:
    assert _statuses(script) == set(SCRIPT_REFUSALS.get(script, {}))


def test_a_settle_step_past_its_deadline_is_a_late_settle_not_a_client_error() -> None:
    assert isinstance(settle_failure(["stale", ""]), LateSettle)
    assert settle_failure(["replay", "3"]) is None and settle_failure(["ok", "3"]) is None


@pytest.mark.parametrize(
    ("script", "status", "details", "kind", "message"),
    [
        ("spend", "insufficient_funds", {}, InsufficientFunds, "not enough coins for this spend"),
        ("spend", "budget_exceeded", {}, BudgetExceeded,
         "this spend would exceed your monthly budget"),
        ("spend", "stream_not_live", {}, StreamNotLive, "the stream is not live"),
        ("spend", "conflict", {}, Conflict,
         "this message id was already used with another payload"),
        ("refund", "not_found", {}, NotFound, "no such purchase"),
        ("cashout_hold", "below_minimum", {"minimum": 2000, "cap": 1}, BadRequest,
         "the minimum cash-out is 2000 diamonds"),
        ("cashout_hold", "daily_cap", {"minimum": 1, "cap": 90000}, BudgetExceeded,
         "cash-outs are capped at 90000 diamonds a day"),
        ("cashout_settle", "conflict", {"final": "paid"}, Conflict,
         "this cash-out was already settled as paid"),
    ],
)  # fmt: skip
def test_a_refusal_is_its_typed_error_with_its_message(
    script: str, status: str, details: dict[str, object], kind: type, message: str
) -> None:
    err = refusal(script, status, **details)
    assert type(err) is kind
    assert err.message == message


def test_an_unknown_status_is_unavailable_and_named() -> None:
    err = refusal("spend", "teleported")
    assert type(err) is Unavailable
    assert "teleported" in err.message
