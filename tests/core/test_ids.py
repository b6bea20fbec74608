"""Ids: validation of outside ids, and the ids we mint never colliding."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gifting.core.errors import BadRequest
from gifting.core.ids import (
    MAX_ID_LENGTH,
    check_id,
    comment_event_id,
    credit_event_id,
    fingerprint,
    new_event_id,
    new_id,
)

# No deadline: the test machine is shared, and a slow example there is load, not a
# regression.
RELAXED = settings(deadline=None)

ALLOWED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~@+-/=!#$%&*^|"
GOOD_IDS = st.text(alphabet=ALLOWED, min_size=1, max_size=MAX_ID_LENGTH)
#: Unix ms from 1970 to the year 2500: 11 hex digits hold them all.
INSTANTS = st.integers(min_value=0, max_value=16_725_225_600_000)

# --------------------------------------------------------------------------- check_id


@pytest.mark.parametrize(
    "value", ["alice", "c-17", "a", "x" * MAX_ID_LENGTH, ALLOWED[:64], "user@example.com", "a/b=c"]
)
def test_good_ids_pass_unchanged(value: str) -> None:
    assert check_id(value, "user") is value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "user must be a string"),
        (17, "user must be a string"),
        (b"alice", "user must be a string"),
        (["alice"], "user must be a string"),
        ("", "user must not be empty"),
        ("x" * (MAX_ID_LENGTH + 1), f"user is longer than {MAX_ID_LENGTH} characters"),
    ],
)
def test_ids_of_the_wrong_type_or_length(value: Any, message: str) -> None:
    with pytest.raises(BadRequest) as info:
        check_id(value, "user")
    assert info.value.message == message


@pytest.mark.parametrize(
    "value",
    [
        "a b",  # space
        "a\n",  # a trailing newline: fullmatch, not match-then-$
        "\na",
        "a\x00",
        "a:b",  # the Redis key separator
        "{a}",  # a hash tag
        "a}",
        'a"b',
        "a'b",
        "a`b",
        "a\\b",
        "a,b",
        "a;b",
        "a<b",
        "a?b",
        "rosé",
        "a\u200bb",  # zero-width space
        "🌹",
    ],
)
def test_ids_outside_the_alphabet_are_refused(value: str) -> None:
    with pytest.raises(BadRequest, match=r"^id may hold only"):
        check_id(value, "id")


@RELAXED
@given(value=st.text(max_size=70))
def test_check_id_accepts_exactly_the_alphabet(value: str) -> None:
    good = 0 < len(value) <= MAX_ID_LENGTH and all(c in ALLOWED for c in value)
    if good:
        assert check_id(value, "id") == value
    else:
        with pytest.raises(BadRequest):
            check_id(value, "id")


def test_the_error_names_the_field() -> None:
    with pytest.raises(BadRequest, match=r"^purchase_id must be a string$"):
        check_id(5, "purchase_id")


# --------------------------------------------------------------------------- minted ids


EVENT_ID = re.compile(r"e[0-9a-f]{11}[0-9a-f]{12}[0-9a-f]{6}")


def test_event_id_shape() -> None:
    event = new_event_id(1_764_000_000_123)
    assert EVENT_ID.fullmatch(event)
    assert event[1:12] == f"{1_764_000_000_123:011x}"
    assert check_id(event, "event") == event  # it fits every place an outside id fits


@RELAXED
@given(instants=st.lists(INSTANTS, min_size=1, max_size=200))
def test_event_ids_never_collide(instants: list[int]) -> None:
    ids = [new_event_id(now) for now in instants]
    assert len(set(ids)) == len(ids)


@RELAXED
@given(earlier=INSTANTS, later=INSTANTS)
def test_event_ids_sort_by_time(earlier: int, later: int) -> None:
    if earlier < later:
        assert new_event_id(earlier) < new_event_id(later)


def test_event_ids_of_one_millisecond_sort_in_minting_order() -> None:
    ids = [new_event_id(1_764_000_000_000) for _ in range(1_000)]
    # The 24-bit counter may wrap once in a run; away from a wrap, minting order holds.
    wraps = sum(1 for a, b in itertools.pairwise(ids) if a > b)
    assert wraps <= 1
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("prefix", ["s", "k", "l", "g", "r", "dev", ""])
def test_new_id_shape(prefix: str) -> None:
    minted = new_id(prefix, 1_764_000_000_123)
    assert re.fullmatch(re.escape(prefix) + r"[0-9a-f]{11}[0-9a-f]{10}", minted)
    assert minted.startswith(prefix + f"{1_764_000_000_123:011x}")
    assert check_id(minted, "id") == minted


def test_new_ids_of_one_instant_do_not_collide() -> None:
    ids = {new_id("s", 1_764_000_000_000) for _ in range(5_000)}
    assert len(ids) == 5_000


@RELAXED
@given(earlier=INSTANTS, later=INSTANTS)
def test_new_ids_sort_by_time(earlier: int, later: int) -> None:
    if earlier < later:
        assert new_id("s", earlier) < new_id("s", later)


def test_credit_event_id_derives_from_the_spend() -> None:
    assert credit_event_id("e0123456789abcdef") == "c0123456789abcdef"


@RELAXED
@given(spends=st.lists(INSTANTS, min_size=1, max_size=50))
def test_credit_ids_never_collide_with_each_other_or_with_events(spends: list[int]) -> None:
    events = [new_event_id(now) for now in spends]
    credits = [credit_event_id(e) for e in events]
    assert len(set(credits)) == len(credits)
    assert not set(credits) & set(events)
    assert all(c.startswith("c") and c[1:] == e[1:] for c, e in zip(credits, events, strict=True))
    assert credits == [credit_event_id(e) for e in events]  # deterministic: a repair agrees


# --------------------------------------------------------------------------- fingerprints


def test_fingerprint_is_stable_and_short() -> None:
    fp = fingerprint("gift", "rose", 3, "s1", None)
    assert re.fullmatch(r"[0-9a-f]{24}", fp)
    assert fp == fingerprint("gift", "rose", 3, "s1", None)
    # Pinned: a fingerprint stored by an older build must still match after an upgrade.
    assert fingerprint("alice", "coins_70", 99, "USD") == "ae838ff9fc565221c3eea4a4"


# The shapes the ledger fingerprints: (kind, item, count, stream, text) of a spend,
# (user, package, amount, currency) of a purchase.
SPENDS = st.tuples(
    st.sampled_from(["gift", "effect", "highlight", "badge"]),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=32),
    st.integers(1, 10_000),
    GOOD_IDS,
    st.none() | st.text(max_size=500),
)
PURCHASES = st.tuples(GOOD_IDS, GOOD_IDS, st.integers(1, 10**7), st.sampled_from(["USD", "EUR"]))


@RELAXED
@given(a=SPENDS, b=SPENDS)
def test_distinct_spends_have_distinct_fingerprints(
    a: tuple[object, ...], b: tuple[object, ...]
) -> None:
    if a != b and not _none_versus_text_none(a, b):
        assert fingerprint(*a) != fingerprint(*b)


@RELAXED
@given(a=PURCHASES, b=PURCHASES)
def test_distinct_purchases_have_distinct_fingerprints(
    a: tuple[object, ...], b: tuple[object, ...]
) -> None:
    if a != b:
        assert fingerprint(*a) != fingerprint(*b)


def _none_versus_text_none(a: tuple[object, ...], b: tuple[object, ...]) -> bool:
    """``text=None`` and ``text="None"`` fingerprint alike (``str()`` of each part)."""
    return a[:4] == b[:4] and {a[4], b[4]} == {None, "None"}


def test_parts_are_joined_by_a_separator_the_ids_cannot_hold() -> None:
    # Why only the last part may be free text: the join is "\x1f", which check_id
    # refuses, so no id can move a boundary between parts.
    assert fingerprint("ab", "c") != fingerprint("a", "bc")
    with pytest.raises(BadRequest):
        check_id("a\x1fb", "id")


def test_comment_event_ids_tell_every_sender_and_id_apart() -> None:
    pairs = [("b", "c1.a"), ("a.b", "c1"), ("u" * 64, "x" * 64), ("u" * 63 + "v", "x" * 64)]
    ids = [comment_event_id(user, client_id) for user, client_id in pairs]
    assert len(set(ids)) == len(pairs)
    assert ids[0] == comment_event_id("b", "c1.a")  # the same comment on any hub
    assert all(i.startswith("m") and len(i) <= 64 and check_id(i, "event") for i in ids)


@RELAXED
@given(st.tuples(GOOD_IDS, GOOD_IDS), st.tuples(GOOD_IDS, GOOD_IDS))
def test_comment_event_ids_differ_whenever_the_pairs_do(
    one: tuple[str, str], other: tuple[str, str]
) -> None:
    assert (comment_event_id(*one) == comment_event_id(*other)) == (one == other)
