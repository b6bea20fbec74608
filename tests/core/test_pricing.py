"""Pricing of spends against the catalog: the happy paths, every refusal, integer totals."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gifting.core.catalog import Gift, load_catalog
from gifting.core.errors import BadRequest, UnknownItem
from gifting.core.money import MAX_SPEND_COINS
from gifting.core.pricing import (
    MAX_COMMENT_LENGTH,
    Priced,
    check_comment,
    check_count,
    price_badge,
    price_effect,
    price_gift,
    price_highlight,
)

# No deadline: the test machine is shared, and a slow example there is load, not a
# regression.
RELAXED = settings(deadline=None)

CATALOG = load_catalog()


# --------------------------------------------------------------------------- gifts


def test_price_one_rose() -> None:
    assert price_gift(CATALOG, "rose") == Priced(
        kind="gift",
        item="rose",
        name="Rose",
        unit_coins=1,
        count=1,
        coins=1,
        streakable=True,
        tier=1,
    )


def test_price_many_of_a_gift() -> None:
    lion = CATALOG.gift_by_id("lion")
    priced = price_gift(CATALOG, "lion", CATALOG.max_count)
    assert priced.coins == lion.coins * CATALOG.max_count
    assert (priced.unit_coins, priced.count) == (lion.coins, CATALOG.max_count)
    assert (priced.streakable, priced.tier) == (lion.streakable, lion.tier)
    assert type(priced.coins) is int


@RELAXED
@given(gift=st.sampled_from(list(CATALOG.gifts)), count=st.integers(1, CATALOG.max_count))
def test_gift_total_is_unit_times_count(gift: str, count: int) -> None:
    priced = price_gift(CATALOG, gift, count)
    assert priced.coins == CATALOG.gifts[gift].coins * count
    assert 0 < priced.coins <= MAX_SPEND_COINS


@pytest.mark.parametrize(
    ("gift_id", "error", "message"),
    [
        ("nope", UnknownItem, "unknown gift 'nope'"),
        ("confetti_rain", UnknownItem, "unknown gift"),
        ("Rose", UnknownItem, "unknown gift 'Rose'"),  # ids are case-sensitive
        ("", UnknownItem, "unknown gift ''"),
        (5, BadRequest, "gift must be a string"),
        (None, BadRequest, "gift must be a string"),
        (["rose"], BadRequest, "gift must be a string"),
    ],
)
def test_price_gift_refuses_unknown_gifts(
    gift_id: Any, error: type[BadRequest | UnknownItem], message: str
) -> None:
    with pytest.raises(error) as info:
        price_gift(CATALOG, gift_id)
    assert info.value.message.startswith(message)


def test_unknown_gift_message_is_cut() -> None:
    with pytest.raises(UnknownItem) as info:
        price_gift(CATALOG, "x" * 10_000)
    assert info.value.message == f"unknown gift {'x' * 64!r}"


def test_an_unknown_gift_is_reported_before_a_bad_count() -> None:
    with pytest.raises(UnknownItem):
        price_gift(CATALOG, "nope", 0)


# --------------------------------------------------------------------------- counts


@pytest.mark.parametrize(
    ("count", "message"),
    [
        (0, "count must be at least 1"),
        (-1, "count must be at least 1"),
        (-(2**63), "count must be at least 1"),
        (CATALOG.max_count + 1, f"count must be at most {CATALOG.max_count}"),
        (2**53, f"count must be at most {CATALOG.max_count}"),
        (2**63, f"count must be at most {CATALOG.max_count}"),
        (True, "count must be an integer"),
        (False, "count must be an integer"),
        (1.0, "count must be an integer"),
        (1.5, "count must be an integer"),
        ("1", "count must be an integer"),
        (None, "count must be an integer"),
    ],
)
def test_bad_counts_are_refused(count: Any, message: str) -> None:
    with pytest.raises(BadRequest) as info:
        price_gift(CATALOG, "rose", count)
    assert info.value.message == message
    assert info.value.code == "bad_request"


@RELAXED
@given(value=st.integers(), max_count=st.integers(1, 10_000))
def test_check_count_accepts_exactly_1_to_max(value: int, max_count: int) -> None:
    if 1 <= value <= max_count:
        assert check_count(value, max_count) == value
    else:
        with pytest.raises(BadRequest):
            check_count(value, max_count)


def test_a_total_over_the_spend_limit_is_refused() -> None:
    # The catalog's own limits keep totals far below MAX_SPEND_COINS; a catalog
    # built past them must still not produce a total the Lua doubles would round.
    huge = Gift(id="moon", name="Moon", coins=10**9, tier=4, streakable=False)
    catalog = dataclasses.replace(CATALOG, gifts={"moon": huge}, max_count=10_000)
    assert price_gift(catalog, "moon", 1_000).coins == MAX_SPEND_COINS
    with pytest.raises(BadRequest, match="too large"):
        price_gift(catalog, "moon", 1_001)


# --------------------------------------------------------------------------- effects, badges


def test_price_every_effect() -> None:
    for effect in CATALOG.effects.values():
        assert price_effect(CATALOG, effect.id) == Priced(
            "effect", effect.id, effect.name, effect.coins, 1, effect.coins
        )


def test_price_every_badge() -> None:
    for badge in CATALOG.badges.values():
        assert price_badge(CATALOG, badge.id) == Priced(
            "badge", badge.id, badge.name, badge.coins, 1, badge.coins
        )


@pytest.mark.parametrize(
    ("price", "kind"), [(price_effect, "effect"), (price_badge, "badge")], ids=["effect", "badge"]
)
def test_unknown_or_untyped_items_are_refused(price: Any, kind: str) -> None:
    with pytest.raises(UnknownItem, match=f"^unknown {kind} 'rose'$"):
        price(CATALOG, "rose")  # a gift id is not an effect or badge id
    with pytest.raises(BadRequest, match=f"^{kind} must be a string$"):
        price(CATALOG, 7)
    with pytest.raises(UnknownItem) as info:
        price(CATALOG, "y" * 1_000)
    assert len(info.value.message) < 100


# --------------------------------------------------------------------------- comments


@pytest.mark.parametrize(
    "text", ["hi", "x", "two\nlines", "tab\there", "🌹" * MAX_COMMENT_LENGTH, " padded "]
)
def test_good_comments_pass_unchanged(text: str) -> None:
    assert check_comment(text) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "text must not be empty"),
        ("   ", "text must not be empty"),
        ("\n\t", "text must not be empty"),
        ("x" * (MAX_COMMENT_LENGTH + 1), f"text is longer than {MAX_COMMENT_LENGTH} characters"),
        ("bell\a", "text must not contain control characters"),
        ("nul\x00", "text must not contain control characters"),
        ("esc\x1b[31m", "text must not contain control characters"),
        ("cr\r", "text must not contain control characters"),
        (5, "text must be a string"),
        (None, "text must be a string"),
        (b"hi", "text must be a string"),
    ],
)
def test_bad_comments_are_refused(text: Any, message: str) -> None:
    with pytest.raises(BadRequest) as info:
        check_comment(text)
    assert info.value.message == message


def test_price_every_highlight_tier() -> None:
    for tier in CATALOG.highlights.values():
        text = "x" * tier.max_length
        assert price_highlight(CATALOG, tier.id, text) == Priced(
            "highlight", tier.id, tier.id, tier.coins, 1, tier.coins
        )


def test_a_highlight_holds_at_most_its_tier_length() -> None:
    tier = CATALOG.highlight_by_id("tier1")
    with pytest.raises(BadRequest) as info:
        price_highlight(CATALOG, "tier1", "x" * (tier.max_length + 1))
    assert info.value.message == f"a tier1 highlight holds at most {tier.max_length} characters"


def test_highlight_refusals() -> None:
    with pytest.raises(UnknownItem, match=r"^unknown highlight tier 'tier9'$"):
        price_highlight(CATALOG, "tier9", "hi")
    with pytest.raises(BadRequest, match=r"^highlight must be a string$"):
        price_highlight(CATALOG, 2, "hi")
    with pytest.raises(BadRequest, match=r"^text must not be empty$"):
        price_highlight(CATALOG, "tier1", " ")
    with pytest.raises(UnknownItem):  # the tier is checked before the text
        price_highlight(CATALOG, "tier9", 5)


def test_pricing_never_touches_the_catalog() -> None:
    before = CATALOG.to_public()
    price_gift(CATALOG, "rose", 3)
    price_effect(CATALOG, next(iter(CATALOG.effects)))
    price_highlight(CATALOG, "tier2", "hi")
    price_badge(CATALOG, next(iter(CATALOG.badges)))
    assert CATALOG.to_public() == before
