"""Money math: integers only. Pure functions shared by the ledger, the audit and tests."""

from __future__ import annotations

import functools
from datetime import UTC, datetime

BPS_DENOMINATOR = 10_000
# Largest count * price accepted for one spend, far below 2**53 where Lua's
# doubles stop being exact integers.
MAX_SPEND_COINS = 10**12


def is_whole(value: object, limit: int) -> bool:
    """Whether ``value`` is a real integer (not a bool) in 1..``limit``."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= limit


def diamonds_earned(coins_received: int, share_bps: int) -> int:
    """Diamonds a creator holds for ``coins_received`` in all: floor(C x bps / 10,000)."""
    return coins_received * share_bps // BPS_DENOMINATOR


def diamonds_for_spend(received_before: int, coins: int, share_bps: int) -> int:
    """Diamonds credited for a spend of ``coins`` on a running total (docs/contract.md §2)."""
    return diamonds_earned(received_before + coins, share_bps) - diamonds_earned(
        received_before, share_bps
    )


def month_of(now_ms: int) -> str:
    """The calendar month ``YYYY-MM`` (UTC) of a unix-ms instant: the budget period."""
    return _month_of_day(now_ms // 86_400_000)


@functools.lru_cache(maxsize=64)
def _month_of_day(days: int) -> str:
    # Every spend asks (the gift path): a day's month is worked out once.
    return datetime.fromtimestamp(days * 86_400, tz=UTC).strftime("%Y-%m")


def day_of(now_ms: int) -> str:
    """The day ``YYYY-MM-DD`` (UTC) of a unix-ms instant: the cash-out cap period."""
    return datetime.fromtimestamp(now_ms / 1000, tz=UTC).strftime("%Y-%m-%d")
