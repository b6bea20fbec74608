"""Leaderboard periods (ISO weeks, months, UTC) and the board order. Pure."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gifting.core.boards import BoardEntry, board_answer, ranked
from gifting.core.errors import BadRequest
from gifting.core.periods import month_of, parse_period, week_of


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("at", "week", "month"),
    [
        ("2026-11-29T23:59:59.999", "2026-W48", "2026-11"),  # Sunday night
        ("2026-11-30T00:00:00.000", "2026-W49", "2026-11"),  # Monday 00:00 UTC
        ("2026-11-30T23:59:59.999", "2026-W49", "2026-11"),
        ("2026-12-01T00:00:00.000", "2026-W49", "2026-12"),  # month start, same week
        ("2026-12-31T12:00:00.000", "2026-W53", "2026-12"),  # 2026 has 53 ISO weeks
        ("2027-01-03T23:59:59.999", "2026-W53", "2027-01"),  # ISO year 2026, month 2027
        ("2027-01-04T00:00:00.000", "2027-W01", "2027-01"),
        ("2025-12-29T00:00:00.000", "2026-W01", "2025-12"),  # ISO year 2026 starts in 2025
    ],
)
def test_a_spend_counts_in_the_iso_week_and_month_of_its_time(
    at: str, week: str, month: str
) -> None:
    assert week_of(ms(at)).label == week
    assert month_of(ms(at)).label == month


def test_period_bounds_hold_exactly_their_instants() -> None:
    w = week_of(ms("2026-12-02T10:00:00"))
    assert (w.start_ms, w.end_ms) == (ms("2026-11-30T00:00:00"), ms("2026-12-07T00:00:00"))
    m = month_of(ms("2026-12-31T23:59:59.999"))
    assert (m.start_ms, m.end_ms) == (ms("2026-12-01T00:00:00"), ms("2027-01-01T00:00:00"))
    assert week_of(w.end_ms - 1).label == w.label != week_of(w.end_ms).label


def test_parse_period_defaults_to_the_current_week() -> None:
    now = ms("2026-12-02T10:00:00")
    assert parse_period(None, None, now_ms=now).label == "2026-W49"
    assert parse_period("month", None, now_ms=now).label == "2026-12"
    assert parse_period("week", "2026-W53", now_ms=now).start_ms == ms("2026-12-28T00:00:00")
    assert parse_period("month", "2026-02", now_ms=now).end_ms == ms("2026-03-01T00:00:00")


@pytest.mark.parametrize(
    ("period", "at"),
    [
        ("day", None),
        ("WEEK", None),
        ("week", "2026-12"),  # a month for a week
        ("month", "2026-W49"),
        ("week", "2025-W53"),  # 2025 has 52 ISO weeks
        ("week", "2026-W00"),
        ("week", "2026-W54"),
        ("month", "2026-13"),
        ("month", "2026-00"),
        ("month", "0000-01"),
        ("week", "9999-W52"),
        ("week", "2026-w49"),
        ("week", " 2026-W49"),
        ("week", "２０２６-W49"),  # non-ASCII digits
        ("month", ""),
    ],
)
def test_a_bad_period_is_a_bad_request(period: str, at: str | None) -> None:
    with pytest.raises(BadRequest):
        parse_period(period, at, now_ms=ms("2026-12-02T10:00:00"))


def test_ranked_orders_by_coins_then_user_id_and_cuts_at_the_limit() -> None:
    entries = [BoardEntry("b", "B", 5), BoardEntry("a", "A", 5), BoardEntry("c", "C", 9)]
    assert [e.user for e in ranked(entries, 10)] == ["c", "a", "b"]
    assert [e.user for e in ranked(entries, 2)] == ["c", "a"]
    answer = board_answer("week", "2026-W49", ranked(entries, 2))
    assert answer["entries"] == [
        {"rank": 1, "user": "c", "name": "C", "coins": 9},
        {"rank": 2, "user": "a", "name": "A", "coins": 5},
    ]
