"""Guest lists and a gift's receiver: validation, storage form, payee. Pure."""

from __future__ import annotations

import pytest

from gifting.core.errors import BadRequest, Forbidden
from gifting.core.guests import (
    MAX_GUESTS,
    Guest,
    check_guests,
    decode_guests,
    encode_guests,
    guests_event,
)
from gifting.core.payee import payee, receiver


def test_a_guest_list_keeps_its_order_and_names_default_to_the_id() -> None:
    guests = check_guests("carol", [("bob", None), ("dan", "Dan D.")])
    assert guests == (Guest("bob", "bob"), Guest("dan", "Dan D."))
    assert decode_guests(encode_guests(guests)) == guests
    assert decode_guests(None) == decode_guests(b"") == ()
    assert check_guests("carol", []) == ()


@pytest.mark.parametrize(
    ("guests", "reason"),
    [
        ([(f"u{i}", None) for i in range(MAX_GUESTS + 1)], "at most 8"),
        ([("bob", None), ("bob", "Bob")], "twice"),
        ([("carol", None)], "host"),
        ([("has space", None)], "guest may hold only"),
        ([("", None)], "must not be empty"),
        ([(7, None)], "must be a string"),
        ([("bob", "")], "name"),
        ([("bob", "a\nb")], "control"),
        ([("bob", "x" * 65)], "at most 64"),
    ],
)
def test_a_bad_guest_list_is_refused_with_a_reason(
    guests: list[tuple[object, object]], reason: str
) -> None:
    with pytest.raises(BadRequest, match=reason):
        check_guests("carol", guests)


def test_a_damaged_stored_list_reads_as_no_guests() -> None:
    assert decode_guests(b"{not json") == ()


def test_the_guests_event_holds_the_whole_list() -> None:
    body = guests_event("s1", "u1", 5, (Guest("bob", "Bob"),))
    assert body == {
        "kind": "guests", "stream": "s1", "event": "u1", "ts": 5,
        "guests": [{"user": "bob", "name": "Bob"}],
    }  # fmt: skip


def test_only_a_gift_names_another_receiver_and_nobody_gifts_themselves() -> None:
    assert receiver("gift", "carol", "") == "carol"
    assert receiver("gift", "carol", "bob") == "bob"
    assert receiver("effect", "carol", "bob") == "carol"
    assert payee("gift", "alice", receiver("gift", "carol", "bob")) == "bob"
    # The host may gift a guest of their own stream: the coins go to someone else.
    assert payee("gift", "carol", receiver("gift", "carol", "bob")) == "bob"
    with pytest.raises(Forbidden, match="yourself"):
        payee("gift", "bob", receiver("gift", "carol", "bob"))
    with pytest.raises(Forbidden, match="own stream"):
        payee("gift", "carol", receiver("gift", "carol", ""))
