"""The catalog model: packages, gifts, effects, highlights, badges and the money figures.

Frozen dataclasses built only by :func:`gifting.core.catalog_check.parse_catalog`,
so every value here has passed validation. :class:`Catalog` answers the
questions the server asks of it: look an item up by id (or raise
:class:`~gifting.core.errors.UnknownItem`), the public ``GET /v1/catalog``
body, the diamonds earned for coins received and the cash-out value of
diamonds. Everything is an integer; nothing here does I/O.

Real money cannot express half a cent, so the diamond value is stated per
``diamonds`` diamonds: the default ``{"amount": 500, "currency": "USD",
"diamonds": 1000}`` means 1,000 diamonds are worth $5.00 ($0.005 each).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import gcd
from typing import Protocol, TypeVar

from gifting.core.describe import short
from gifting.core.errors import UnknownItem
from gifting.core.money import diamonds_earned

__all__ = [
    "Badge",
    "Catalog",
    "DiamondValue",
    "Effect",
    "Gift",
    "Highlight",
    "Hype",
    "Package",
    "Price",
]


@dataclass(frozen=True, slots=True)
class Price:
    """A real-money amount: integer minor units (cents) and an ISO 4217 code."""

    amount: int
    currency: str

    def to_public(self) -> dict[str, object]:
        """Return the wire form ``{"amount", "currency"}``."""
        return {"amount": self.amount, "currency": self.currency}


@dataclass(frozen=True, slots=True)
class Package:
    """A coin package a viewer buys with real money through the payment provider."""

    id: str
    coins: int
    price: Price

    def to_public(self) -> dict[str, object]:
        """Return the wire form ``{"id", "coins", "price": {"amount", "currency"}}``."""
        return {"id": self.id, "coins": self.coins, "price": self.price.to_public()}


@dataclass(frozen=True, slots=True)
class Gift:
    """A gift sent to a creator in a live stream.

    ``tier`` is the animation tier (1 small side alert … 3 and 4 full-screen);
    ``streakable`` gifts build combos when sent in a row.
    """

    id: str
    name: str
    coins: int
    tier: int
    streakable: bool

    def to_public(self) -> dict[str, object]:
        """Return the wire form ``{"id", "name", "coins", "tier", "streakable"}``."""
        return {
            "id": self.id,
            "name": self.name,
            "coins": self.coins,
            "tier": self.tier,
            "streakable": self.streakable,
        }


@dataclass(frozen=True, slots=True)
class Effect:
    """A paid live-stream effect shown on the overlay for ``duration_ms``."""

    id: str
    name: str
    coins: int
    duration_ms: int

    def to_public(self) -> dict[str, object]:
        """Return the wire form ``{"id", "name", "coins", "duration_ms"}``."""
        return {
            "id": self.id,
            "name": self.name,
            "coins": self.coins,
            "duration_ms": self.duration_ms,
        }


@dataclass(frozen=True, slots=True)
class Highlight:
    """A highlighted-comment tier: pinned for ``pin_ms``, text up to ``max_length`` chars."""

    id: str
    coins: int
    pin_ms: int
    max_length: int

    def to_public(self) -> dict[str, object]:
        """Return the wire form ``{"id", "coins", "pin_ms", "max_length"}``."""
        return {
            "id": self.id,
            "coins": self.coins,
            "pin_ms": self.pin_ms,
            "max_length": self.max_length,
        }


@dataclass(frozen=True, slots=True)
class Badge:
    """A profile badge bought with coins; its coins are kept by the platform."""

    id: str
    name: str
    coins: int

    def to_public(self) -> dict[str, object]:
        """Return the wire form ``{"id", "name", "coins"}``."""
        return {"id": self.id, "name": self.name, "coins": self.coins}


@dataclass(frozen=True, slots=True)
class Level:
    """A gifter level: reached once the user's lifetime coins spent are at least ``coins``."""

    level: int
    coins: int

    def to_public(self) -> dict[str, object]:
        """Return the wire form ``{"level", "coins"}``."""
        return {"level": self.level, "coins": self.coins}


@dataclass(frozen=True, slots=True)
class Hype:
    """Room momentum (a hype): it starts when, within ``window_s``, at least ``gifters``
    distinct senders spent at least ``coins`` in the room; level ``n`` then needs
    ``levels[n - 1]`` more coins to reach level ``n + 1`` (gifting/core/hype.py)."""

    gifters: int
    coins: int
    window_s: int
    levels: tuple[int, ...]

    def to_public(self) -> dict[str, object]:
        """Return the wire form ``{"gifters", "coins", "window_s", "levels"}``."""
        return {
            "gifters": self.gifters,
            "coins": self.coins,
            "window_s": self.window_s,
            "levels": list(self.levels),
        }


@dataclass(frozen=True, slots=True)
class DiamondValue:
    """Cash-out value: ``diamonds`` diamonds are worth ``amount`` minor units of ``currency``."""

    amount: int
    currency: str
    diamonds: int

    def to_public(self) -> dict[str, object]:
        """Return the wire form ``{"amount", "currency", "diamonds"}``."""
        return {"amount": self.amount, "currency": self.currency, "diamonds": self.diamonds}


@dataclass(frozen=True, slots=True)
class Catalog:
    """The whole validated catalog. Sections are dicts by id, in file order."""

    packages: dict[str, Package]
    gifts: dict[str, Gift]
    effects: dict[str, Effect]
    highlights: dict[str, Highlight]
    badges: dict[str, Badge]
    creator_share_bps: int
    diamond_value: DiamondValue
    cashout_min_diamonds: int
    cashout_daily_cap_diamonds: int
    max_count: int
    #: The gifter levels, thresholds strictly increasing (empty: everyone is level 0).
    levels: tuple[Level, ...] = ()
    #: Room hype (None: no hype in this catalog).
    hype: Hype | None = None
    #: Derived once, read per event: each level's threshold, in order.
    level_thresholds: tuple[int, ...] = field(init=False, repr=False, compare=False)
    #: Derived once, read per event: a badge's tier, its rank among the badge prices (1 = cheapest).
    badge_tiers: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        prices = sorted({b.coins for b in self.badges.values()})
        object.__setattr__(self, "level_thresholds", tuple(lv.coins for lv in self.levels))
        object.__setattr__(
            self, "badge_tiers", {b.id: prices.index(b.coins) + 1 for b in self.badges.values()}
        )

    def to_public(self) -> dict[str, object]:
        """Return the ``GET /v1/catalog`` body (docs/contract.md §4), lists in file order.

        Beyond the minimum of the design: ``diamond_value.diamonds`` (the unit the
        amount is stated for), ``cashout_daily_cap_diamonds``, ``max_count``, effect
        ``duration_ms`` and highlight ``pin_ms`` / ``max_length``.
        """
        return {
            "gifts": [g.to_public() for g in self.gifts.values()],
            "packages": [p.to_public() for p in self.packages.values()],
            "effects": [e.to_public() for e in self.effects.values()],
            "highlights": [h.to_public() for h in self.highlights.values()],
            "badges": [b.to_public() for b in self.badges.values()],
            "creator_share_bps": self.creator_share_bps,
            "diamond_value": self.diamond_value.to_public(),
            "cashout_min_diamonds": self.cashout_min_diamonds,
            "cashout_daily_cap_diamonds": self.cashout_daily_cap_diamonds,
            "max_count": self.max_count,
            "levels": [lv.to_public() for lv in self.levels],
            "hype": None if self.hype is None else self.hype.to_public(),
        }

    @property
    def currency(self) -> str:
        """The one real-money currency of the catalog (packages and cash-outs)."""
        return self.diamond_value.currency

    def package_by_id(self, package_id: str) -> Package:
        """Return the package ``package_id`` or raise :class:`UnknownItem`."""
        return _lookup(self.packages, "package", package_id)

    def gift_by_id(self, gift_id: str) -> Gift:
        """Return the gift ``gift_id`` or raise :class:`UnknownItem`."""
        return _lookup(self.gifts, "gift", gift_id)

    def effect_by_id(self, effect_id: str) -> Effect:
        """Return the effect ``effect_id`` or raise :class:`UnknownItem`."""
        return _lookup(self.effects, "effect", effect_id)

    def highlight_by_id(self, highlight_id: str) -> Highlight:
        """Return the highlight tier ``highlight_id`` or raise :class:`UnknownItem`."""
        return _lookup(self.highlights, "highlight", highlight_id)

    def badge_by_id(self, badge_id: str) -> Badge:
        """Return the badge ``badge_id`` or raise :class:`UnknownItem`."""
        return _lookup(self.badges, "badge", badge_id)

    def cashout_unit(self) -> int:
        """Smallest diamond count worth a whole number of minor units (2 by default).

        ``diamonds // gcd(diamonds, amount)`` of the diamond value: 1,000 diamonds
        for 500 cents → 2 diamonds per cent.
        """
        dv = self.diamond_value
        return dv.diamonds // gcd(dv.diamonds, dv.amount)

    def cashout_amount(self, diamonds: int) -> Price:
        """Real money paid for ``diamonds`` diamonds, rounded down to whole minor units.

        ``diamonds × amount // unit diamonds``: 2,000 diamonds → 1,000 cents by
        default. Exact when ``diamonds`` is a multiple of :meth:`cashout_unit`.
        Raises ``ValueError`` for a negative or non-integer count.
        """
        if isinstance(diamonds, bool) or not isinstance(diamonds, int) or diamonds < 0:
            raise ValueError(f"diamonds must be a non-negative integer, got {diamonds!r}")
        dv = self.diamond_value
        return Price(amount=diamonds * dv.amount // dv.diamonds, currency=dv.currency)

    def diamonds_earned(self, coins_received: int) -> int:
        """Diamonds earned in all for ``coins_received`` coins in all (docs/contract.md §2).

        ``floor(coins_received × creator_share_bps / 10,000)``; the credit of one
        gift is ``diamonds_earned(C + N) - diamonds_earned(C)`` on the running total.
        """
        return diamonds_earned(coins_received, self.creator_share_bps)


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


_T = TypeVar("_T", bound=_HasId)


def _lookup(section: dict[str, _T], kind: str, item_id: str) -> _T:
    item = section.get(item_id) if isinstance(item_id, str) else None
    if item is None:
        raise UnknownItem(f"unknown {kind} {short(item_id)}")
    return item
