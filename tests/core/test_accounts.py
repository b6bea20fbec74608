"""The chart of accounts: one account per user and purpose, never shared. Pure."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gifting.core.accounts import (
    DIAMOND_ISSUANCE,
    EXTERNAL_PAYMENTS,
    PLATFORM_REVENUE,
    creator_received,
    user_coins,
    user_diamonds,
    user_held,
    user_paid,
)

# User ids never contain ":" (gifting.core.ids.check_id).
ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=64)
KINDS = (user_coins, user_diamonds, user_held, user_paid, creator_received)


@given(a=ids, b=ids)
def test_accounts_of_different_users_or_kinds_never_collide(a: str, b: str) -> None:
    names = {(k.__name__, u): k(u) for k in KINDS for u in (a, b)}
    assert len(set(names.values())) == len(names)
    assert not set(names.values()) & {EXTERNAL_PAYMENTS, PLATFORM_REVENUE, DIAMOND_ISSUANCE}


def test_the_platform_accounts_are_distinct() -> None:
    assert len({EXTERNAL_PAYMENTS, PLATFORM_REVENUE, DIAMOND_ISSUANCE}) == 3
