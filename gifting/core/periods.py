"""Leaderboard periods: ISO weeks (``2026-W49``) and calendar months (``2026-12``), UTC.

Pure. A period's label is computed from a spend's own timestamp (never the
clock at credit time), so the hub's credit and the persister's repair of the
same spend count it in the same period. :func:`parse_label` validates what a
caller asks for (``?period=&at=``) and raises ``BadRequest`` otherwise.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Final, Literal, get_args

from gifting.core.errors import BadRequest

__all__ = [
    "PERIOD_KINDS",
    "Period",
    "PeriodKind",
    "current_period",
    "month_of",
    "parse_period",
    "period_of",
    "week_of",
]

PeriodKind = Literal["week", "month"]
PERIOD_KINDS: Final[tuple[str, ...]] = get_args(PeriodKind)
_WEEK: Final = re.compile(r"([0-9]{4})-W([0-9]{2})")
_MONTH: Final = re.compile(r"([0-9]{4})-([0-9]{2})")
#: Labels before this year or after the last are refused (``datetime`` has no year 0 or 10000).
_MIN_YEAR: Final = 2000
_MAX_YEAR: Final = 9998


@dataclass(frozen=True, slots=True)
class Period:
    """One leaderboard period: its kind, label and bounds (unix ms, ``start <= ts < end``)."""

    kind: PeriodKind
    label: str
    start_ms: int
    end_ms: int


def _ms(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()) * 1000


def _day(ts_ms: int) -> date:
    return datetime.fromtimestamp(ts_ms // 1000, tz=UTC).date()


_DAY_MS: Final = 86_400_000


def week_of(ts_ms: int) -> Period:
    """The ISO week (Monday 00:00 UTC to the next Monday) holding ``ts_ms``."""
    return _week_of_day(ts_ms // _DAY_MS)


def month_of(ts_ms: int) -> Period:
    """The calendar month (UTC) holding ``ts_ms``."""
    return _month_of_day(ts_ms // _DAY_MS)


# Every credit asks (the gift path): a day's periods are worked out once.
@functools.lru_cache(maxsize=64)
def _week_of_day(days: int) -> Period:
    day = _day(days * _DAY_MS)
    year, week, weekday = day.isocalendar()
    monday = day - timedelta(days=weekday - 1)
    return Period("week", f"{year:04d}-W{week:02d}", _ms(monday), _ms(monday + timedelta(days=7)))


@functools.lru_cache(maxsize=64)
def _month_of_day(days: int) -> Period:
    day = _day(days * _DAY_MS)
    first = day.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return Period("month", f"{day.year:04d}-{day.month:02d}", _ms(first), _ms(following))


def period_of(kind: PeriodKind, ts_ms: int) -> Period:
    """The period of ``kind`` holding ``ts_ms``."""
    return week_of(ts_ms) if kind == "week" else month_of(ts_ms)


def current_period(kind: PeriodKind, now_ms: int) -> Period:
    """The period of ``kind`` in progress at ``now_ms``."""
    return period_of(kind, now_ms)


def parse_period(kind: str | None, at: str | None, *, now_ms: int) -> Period:
    """The period a caller named (``period`` defaults to ``week``, ``at`` to the current one).

    Raises ``BadRequest`` for an unknown kind, an ``at`` of the wrong shape for
    the kind (``2026-W49`` for a week, ``2026-12`` for a month), a week the
    ISO year does not have (``2025-W53``) or a month outside 01..12.
    """
    kind = kind or "week"
    if kind not in PERIOD_KINDS:
        raise BadRequest('period must be "week" or "month"')
    if at is None:
        return current_period("week" if kind == "week" else "month", now_ms)
    if kind == "week":
        m = _WEEK.fullmatch(at)
        if m is None:
            raise BadRequest("at must be an ISO week like 2026-W49 for period=week")
        year, week = int(m[1]), int(m[2])
        if not _MIN_YEAR <= year <= _MAX_YEAR:
            raise BadRequest(f"at's year must be {_MIN_YEAR}..{_MAX_YEAR}")
        try:
            monday = date.fromisocalendar(year, week, 1)
        except ValueError:
            raise BadRequest(f"{year} has no ISO week {week}") from None
        return week_of(_ms(monday))
    m = _MONTH.fullmatch(at)
    if m is None:
        raise BadRequest("at must be a month like 2026-12 for period=month")
    year, month = int(m[1]), int(m[2])
    if not _MIN_YEAR <= year <= _MAX_YEAR:
        raise BadRequest(f"at's year must be {_MIN_YEAR}..{_MAX_YEAR}")
    if not 1 <= month <= 12:
        raise BadRequest("at's month must be 01..12")
    return month_of(_ms(date(year, month, 1)))
