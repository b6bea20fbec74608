"""Money math: diamonds on the running total, and the UTC periods of budgets and caps."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gifting.core.money import (
    BPS_DENOMINATOR,
    MAX_SPEND_COINS,
    day_of,
    diamonds_earned,
    diamonds_for_spend,
    month_of,
)

# No deadline: the test machine is shared, and a slow example there is load, not a
# regression.
RELAXED = settings(deadline=None)

SHARES = st.integers(1, BPS_DENOMINATOR)
SPENDS = st.lists(st.integers(1, MAX_SPEND_COINS), max_size=50)
#: Unix ms from 1970 to the last millisecond datetime can hold (9999-12-31).
INSTANTS = st.integers(0, 253_402_300_799_999)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ms(iso: str) -> int:
    """Unix ms of an ISO 8601 instant, by integer arithmetic (no float on the way)."""
    delta = datetime.fromisoformat(iso) - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000 + delta.microseconds // 1_000


# --------------------------------------------------------------------------- diamonds


@pytest.mark.parametrize(
    ("coins", "bps", "diamonds"),
    [
        (0, 5_000, 0),
        (1, 5_000, 0),
        (2, 5_000, 1),
        (3, 5_000, 1),
        (100, 5_000, 50),
        (34_999, 5_000, 17_499),
        (1, 10_000, 1),
        (9_999, 1, 0),
        (10_000, 1, 1),
        (7, 3_333, 2),
        (MAX_SPEND_COINS, 5_000, MAX_SPEND_COINS // 2),
        (2**63, 5_000, 2**62),  # integers: exact past 2^53
    ],
)
def test_diamonds_earned(coins: int, bps: int, diamonds: int) -> None:
    assert diamonds_earned(coins, bps) == diamonds
    assert type(diamonds_earned(coins, bps)) is int


def test_a_hundred_roses_make_fifty_diamonds() -> None:
    credits = [diamonds_for_spend(before, 1, 5_000) for before in range(100)]
    assert credits == [0, 1] * 50  # the half diamonds are carried, not dropped
    assert sum(credits) == 50


@RELAXED
@given(spends=SPENDS, bps=SHARES)
def test_credits_on_the_running_total_sum_to_the_floor_of_the_total(
    spends: list[int], bps: int
) -> None:
    received = 0
    credited = 0
    for coins in spends:
        credited += diamonds_for_spend(received, coins, bps)
        received += coins
    assert credited == sum(spends) * bps // BPS_DENOMINATOR


@RELAXED
@given(total=st.integers(0, 10**6), cuts=st.lists(st.integers(0, 10**6), max_size=20), bps=SHARES)
def test_any_split_of_the_same_coins_credits_the_same_diamonds(
    total: int, cuts: list[int], bps: int
) -> None:
    points = sorted({0, total, *(c % (total + 1) for c in cuts)})
    spends = [b - a for a, b in itertools.pairwise(points)]
    assert sum(spends) == total
    credited = sum(
        diamonds_for_spend(before, coins, bps)
        for before, coins in zip(itertools.accumulate([0, *spends]), spends, strict=False)
    )
    assert credited == diamonds_earned(total, bps)


@RELAXED
@given(before=st.integers(0, 10**15), coins=st.integers(0, MAX_SPEND_COINS), bps=SHARES)
def test_one_credit_is_within_a_diamond_of_its_exact_share(
    before: int, coins: int, bps: int
) -> None:
    credit = diamonds_for_spend(before, coins, bps)
    exact_floor = coins * bps // BPS_DENOMINATOR
    exact_ceil = -(-coins * bps // BPS_DENOMINATOR)
    assert exact_floor <= credit <= exact_ceil
    assert type(credit) is int


@RELAXED
@given(coins=st.integers(0, 10**15), bps=SHARES)
def test_the_creator_never_gets_more_than_the_coins(coins: int, bps: int) -> None:
    assert 0 <= diamonds_earned(coins, bps) <= coins
    assert diamonds_earned(coins, BPS_DENOMINATOR) == coins


@RELAXED
@given(a=st.integers(0, 10**15), b=st.integers(0, 10**15), bps=SHARES)
def test_diamonds_earned_never_decreases(a: int, b: int, bps: int) -> None:
    low, high = sorted((a, b))
    assert diamonds_earned(low, bps) <= diamonds_earned(high, bps)


def test_limits() -> None:
    assert BPS_DENOMINATOR == 10_000
    assert MAX_SPEND_COINS < 2**53  # Lua's doubles are exact below 2^53


# --------------------------------------------------------------------------- periods


@pytest.mark.parametrize(
    ("iso", "month", "day"),
    [
        ("1970-01-01T00:00:00+00:00", "1970-01", "1970-01-01"),
        ("2026-01-31T23:59:59.999+00:00", "2026-01", "2026-01-31"),
        ("2026-02-01T00:00:00+00:00", "2026-02", "2026-02-01"),
        ("2024-02-29T23:59:59.999+00:00", "2024-02", "2024-02-29"),  # leap day
        ("2024-03-01T00:00:00+00:00", "2024-03", "2024-03-01"),
        ("2025-12-31T23:59:59.999+00:00", "2025-12", "2025-12-31"),
        ("2026-01-01T00:00:00+00:00", "2026-01", "2026-01-01"),
        # UTC, whatever the local zone: 23:30 in New York on Jan 31 is Feb 1 in UTC
        ("2026-01-31T23:30:00-05:00", "2026-02", "2026-02-01"),
        ("9999-12-31T23:59:59.999+00:00", "9999-12", "9999-12-31"),
    ],
)
def test_month_and_day_of(iso: str, month: str, day: str) -> None:
    assert month_of(ms(iso)) == month
    assert day_of(ms(iso)) == day


@RELAXED
@given(now=INSTANTS)
def test_periods_match_integer_calendar_math(now: int) -> None:
    # month_of divides by 1000.0 on the way: no float rounding may cross a boundary.
    moment = EPOCH + timedelta(milliseconds=now)
    assert month_of(now) == f"{moment.year:04d}-{moment.month:02d}"
    assert day_of(now) == f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"


@RELAXED
@given(now=INSTANTS)
def test_the_last_millisecond_of_a_day_is_still_that_day(now: int) -> None:
    start_of_day = now - now % 86_400_000
    if start_of_day:
        assert day_of(start_of_day - 1) < day_of(start_of_day) == day_of(start_of_day + 86_399_999)
