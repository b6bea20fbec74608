"""Wallets: a user's balances and monthly budget, read from the wallet hash.

The money fields of the hash (coins, diamonds, held, paid, earned, received)
move only inside the money scripts; this module reads them, and sets or
clears the user's monthly coin budget (checked by spend.lua).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis

from gifting.clock import now_ms
from gifting.core.errors import BadRequest
from gifting.core.ids import check_id
from gifting.core.money import month_of
from gifting.store.keys import Keys

# Budgets and cash-outs above this are typos, not intentions; far below 2**53.
MAX_BUDGET = 10**12


@dataclass(frozen=True, slots=True)
class Budget:
    """The monthly budget (``None``: none set) and what was spent in ``period``."""

    monthly: int | None
    spent: int
    period: str


@dataclass(frozen=True, slots=True)
class Wallet:
    """A user's balances as Redis holds them now."""

    user: str
    coins: int
    diamonds: int
    held: int
    paid: int
    earned: int
    received: int
    budget: Budget


def _int(raw: bytes | str | None) -> int:
    if raw is None:
        return 0
    return int(raw)


class Wallets:
    """Read wallets; set or clear monthly budgets."""

    def __init__(self, redis: Redis, keys: Keys, *, clock: Callable[[], int] = now_ms) -> None:
        self._redis = redis
        self._keys = keys
        self._clock = clock

    async def wallet(self, user: str) -> Wallet:
        """Read a user's balances and budget (one HMGET)."""
        check_id(user, "user")
        raw = await self._redis.hmget(
            self._keys.wallet(user),
            ["coins", "diamonds", "held", "paid", "earned", "received", "budget", "month", "spent"],
        )
        coins, diamonds, held, paid, earned, received, budget, month, spent = raw
        period = month_of(self._clock())
        spent_now = _int(spent) if month is not None and month.decode() == period else 0
        return Wallet(
            user,
            _int(coins),
            _int(diamonds),
            _int(held),
            _int(paid),
            _int(earned),
            _int(received),
            Budget(None if budget is None else int(budget), spent_now, period),
        )

    async def set_budget(self, user: str, monthly: object) -> Budget:
        """Set (an integer >= 0) or clear (``None``) the user's monthly coin budget."""
        check_id(user, "user")
        key = self._keys.wallet(user)
        if monthly is None:
            await self._redis.hdel(key, "budget")
        else:
            if isinstance(monthly, bool) or not isinstance(monthly, int):
                raise BadRequest("monthly must be an integer or null")
            if not 0 <= monthly <= MAX_BUDGET:
                raise BadRequest(f"monthly must be between 0 and {MAX_BUDGET}")
            await self._redis.hset(key, "budget", str(monthly))
        return (await self.wallet(user)).budget
