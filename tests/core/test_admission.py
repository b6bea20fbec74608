"""Connection caps without a socket: admit, refuse past the cap, give slots back."""

from __future__ import annotations

import pytest

from gifting.core.admission import ConnectionCaps
from gifting.core.disconnect import CloseCode, refusal
from gifting.core.errors import RateLimited, TooManyConnections


def caps() -> ConnectionCaps:
    return ConnectionCaps({"address": 3, "user": 2, "overlay": 1})


def test_a_holder_past_its_cap_is_refused_with_rate_limited_and_1013() -> None:
    c = caps()
    first, second, third = c.ticket(), c.ticket(), c.ticket()
    for t in (first, second):
        t.admit("address", "10.0.0.1")
        t.admit("user", "ann")
    third.admit("address", "10.0.0.1")
    with pytest.raises(TooManyConnections) as refused:
        third.admit("user", "ann")
    err = refused.value
    assert isinstance(err, RateLimited) and err.code == "rate_limited" and err.scope == "user"
    assert err.retry_after_ms and "at most 2" in err.message
    assert refusal(err).code is CloseCode.TRY_AGAIN
    other = c.ticket()
    other.admit("user", "bob")  # another holder is not affected
    with pytest.raises(TooManyConnections):
        other.admit("address", "10.0.0.1")  # the address has 3 already


def test_release_gives_back_every_slot_once_and_forgets_empty_holders() -> None:
    c = caps()
    t = c.ticket()
    t.admit("address", "10.0.0.1")
    t.admit("overlay", "s1")
    assert c.count("overlay", "s1") == 1
    t.release()
    t.release()  # idempotent
    assert c.count("overlay", "s1") == c.count("address", "10.0.0.1") == 0
    assert c._counts == {"address": {}, "user": {}, "overlay": {}}
    again = c.ticket()
    again.admit("overlay", "s1")


def test_a_refused_admission_holds_nothing() -> None:
    c = caps()
    c.ticket().admit("overlay", "s1")
    t = c.ticket()
    t.admit("address", "a")
    with pytest.raises(TooManyConnections):
        t.admit("overlay", "s1")
    t.release()
    assert c.count("overlay", "s1") == 1 and c.count("address", "a") == 0
