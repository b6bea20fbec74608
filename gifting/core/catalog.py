"""The catalog: what can be bought and sold, and at what price.

Coin packages (real money → coins), gifts, live-stream effects, highlighted
comments and profile badges (coins → items), the creator share (coins →
diamonds, in basis points), the cash-out value of diamonds and the cash-out
limits all come from one JSON file. The default ships in the package
(``gifting/catalog.json``, public TikTok figures as reported in 2025 guides);
a deployment overrides it with ``GIFTING_CATALOG=/path/to/catalog.json``.

Everything is an integer: coins, diamonds, cents, basis points, milliseconds.
:func:`parse_catalog` validates a decoded document strictly — real integers
only (no booleans, floats or numeric strings), every price > 0 and bounded so
that ``count × price`` stays far below 2^53, ids ``[a-z0-9_]{1,32}`` unique per
section, unknown keys rejected so a typo cannot silently fall back to a
default — and raises :class:`CatalogError` naming the file, the entry and the
field. This module does no I/O except reading the file in :func:`load_catalog`.

Real money cannot express half a cent, so the diamond value is stated per
``diamonds`` diamonds: the default ``{"amount": 500, "currency": "USD",
"diamonds": 1000}`` means 1,000 diamonds are worth $5.00 ($0.005 each).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from math import gcd
from pathlib import Path
from typing import Final, NoReturn, Protocol, TypeVar

from gifting.core.describe import described, short
from gifting.core.errors import UnknownItem
from gifting.core.money import diamonds_earned

__all__ = [
    "DEFAULT_CATALOG_SOURCE",
    "MAX_CASHOUT_DIAMONDS",
    "MAX_CENTS",
    "MAX_COINS",
    "MAX_COUNT",
    "Badge",
    "Catalog",
    "CatalogError",
    "DiamondValue",
    "Effect",
    "Gift",
    "Highlight",
    "Package",
    "Price",
    "load_catalog",
    "parse_catalog",
]

#: Largest coin price of any item or package. With ``MAX_COUNT`` this keeps
#: ``count × price`` ≤ 10^11, far inside 2^53 (Lua numbers, JSON clients).
MAX_COINS: Final = 10_000_000
#: Largest allowed ``max_count`` (gifts in one message).
MAX_COUNT: Final = 10_000
#: Largest real-money amount (minor units) of a package or of the diamond value.
MAX_CENTS: Final = 10_000_000
#: Largest ``diamonds`` unit of the diamond value.
MAX_DIAMOND_UNIT: Final = 1_000_000_000
#: Largest cash-out minimum / daily cap, in diamonds.
MAX_CASHOUT_DIAMONDS: Final = 1_000_000_000_000
#: Largest effect duration or highlight pin time (one hour).
MAX_DURATION_MS: Final = 3_600_000
#: Largest highlighted-comment length, in characters.
MAX_COMMENT_LENGTH: Final = 2_000
#: Largest display name, in characters.
MAX_NAME_LENGTH: Final = 64
#: Largest number of entries in one section.
MAX_ENTRIES: Final = 1_000

#: How errors name the packaged default file.
DEFAULT_CATALOG_SOURCE: Final = "gifting/catalog.json"

_ID_RE: Final = re.compile(r"[a-z0-9_]{1,32}")
_CURRENCY_RE: Final = re.compile(r"[A-Z]{3}")


class CatalogError(ValueError):
    """The catalog file is unreadable or invalid; the message names file, entry and field."""


# --------------------------------------------------------------------------- values


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


# --------------------------------------------------------------------------- parsing


class _Reader:
    """Validation helpers that know the source, so every error names the file."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, message: str) -> NoReturn:
        raise CatalogError(f"{self.source}: {where}: {message}")

    def fields(self, value: object, where: str, keys: tuple[str, ...]) -> dict[str, object]:
        if not isinstance(value, dict):
            self.fail(where, f"must be an object, got {described(value)}")
        unknown = [k for k in value if k not in keys]
        if unknown:
            names = ", ".join(short(k) for k in unknown)
            allowed = ", ".join(repr(k) for k in keys)
            self.fail(where, f"unknown key {names} (allowed: {allowed})")
        missing = [k for k in keys if k not in value]
        if missing:
            self.fail(where, f"missing required key {', '.join(repr(k) for k in missing)}")
        return {str(k): v for k, v in value.items()}

    def integer(self, obj: dict[str, object], key: str, where: str, lo: int, hi: int) -> int:
        value = obj[key]
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(where, f"field {key!r} must be an integer, got {described(value)}")
        if not lo <= value <= hi:
            self.fail(where, f"field {key!r} must be between {lo} and {hi}, got {value}")
        return value

    def coins(self, obj: dict[str, object], where: str) -> int:
        return self.integer(obj, "coins", where, 1, MAX_COINS)

    def boolean(self, obj: dict[str, object], key: str, where: str) -> bool:
        value = obj[key]
        if not isinstance(value, bool):
            self.fail(where, f"field {key!r} must be true or false, got {described(value)}")
        return value

    def ident(self, obj: dict[str, object], where: str) -> str:
        value = obj["id"]
        if not isinstance(value, str) or not _ID_RE.fullmatch(value):
            self.fail(where, f"field 'id' must match [a-z0-9_]{{1,32}}, got {short(value)}")
        return value

    def name(self, obj: dict[str, object], where: str) -> str:
        value = obj["name"]
        if not (
            isinstance(value, str)
            and 0 < len(value) <= MAX_NAME_LENGTH
            and value.strip() == value
            and value.isprintable()
        ):
            self.fail(
                where,
                f"field 'name' must be a non-empty printable string of at most "
                f"{MAX_NAME_LENGTH} characters without surrounding spaces, got {short(value)}",
            )
        return value

    def currency(self, obj: dict[str, object], where: str) -> str:
        value = obj["currency"]
        if not isinstance(value, str) or not _CURRENCY_RE.fullmatch(value):
            self.fail(
                where,
                f"field 'currency' must be 3 upper-case letters (ISO 4217), got {short(value)}",
            )
        return value


def _package(r: _Reader, raw: object, where: str) -> Package:
    obj = r.fields(raw, where, ("id", "coins", "price"))
    where = f"{where} ({r.ident(obj, where)})"
    price_where = f"{where}.price"
    price = r.fields(obj["price"], price_where, ("amount", "currency"))
    return Package(
        id=r.ident(obj, where),
        coins=r.coins(obj, where),
        price=Price(
            amount=r.integer(price, "amount", price_where, 1, MAX_CENTS),
            currency=r.currency(price, price_where),
        ),
    )


def _gift(r: _Reader, raw: object, where: str) -> Gift:
    obj = r.fields(raw, where, ("id", "name", "coins", "tier", "streakable"))
    where = f"{where} ({r.ident(obj, where)})"
    return Gift(
        id=r.ident(obj, where),
        name=r.name(obj, where),
        coins=r.coins(obj, where),
        tier=r.integer(obj, "tier", where, 1, 4),
        streakable=r.boolean(obj, "streakable", where),
    )


def _effect(r: _Reader, raw: object, where: str) -> Effect:
    obj = r.fields(raw, where, ("id", "name", "coins", "duration_ms"))
    where = f"{where} ({r.ident(obj, where)})"
    return Effect(
        id=r.ident(obj, where),
        name=r.name(obj, where),
        coins=r.coins(obj, where),
        duration_ms=r.integer(obj, "duration_ms", where, 1, MAX_DURATION_MS),
    )


def _highlight(r: _Reader, raw: object, where: str) -> Highlight:
    obj = r.fields(raw, where, ("id", "coins", "pin_ms", "max_length"))
    where = f"{where} ({r.ident(obj, where)})"
    return Highlight(
        id=r.ident(obj, where),
        coins=r.coins(obj, where),
        pin_ms=r.integer(obj, "pin_ms", where, 1, MAX_DURATION_MS),
        max_length=r.integer(obj, "max_length", where, 1, MAX_COMMENT_LENGTH),
    )


def _badge(r: _Reader, raw: object, where: str) -> Badge:
    obj = r.fields(raw, where, ("id", "name", "coins"))
    where = f"{where} ({r.ident(obj, where)})"
    return Badge(id=r.ident(obj, where), name=r.name(obj, where), coins=r.coins(obj, where))


def _section(
    r: _Reader,
    top: dict[str, object],
    key: str,
    parse_entry: Callable[[_Reader, object, str], _T],
    *,
    non_empty: bool,
) -> dict[str, _T]:
    items = top[key]
    if not isinstance(items, list):
        r.fail(key, f"must be an array, got {described(items)}")
    if non_empty and not items:
        r.fail(key, "must not be empty")
    if len(items) > MAX_ENTRIES:
        r.fail(key, f"has {len(items)} entries, more than {MAX_ENTRIES}")
    out: dict[str, _T] = {}
    first: dict[str, int] = {}
    for i, raw in enumerate(items):
        entry = parse_entry(r, raw, f"{key}[{i}]")
        if entry.id in out:
            r.fail(
                f"{key}[{i}]",
                f"duplicate id {entry.id!r} (already used by {key}[{first[entry.id]}])",
            )
        out[entry.id] = entry
        first[entry.id] = i
    return out


_TOP_KEYS: Final = (
    "packages",
    "gifts",
    "effects",
    "highlights",
    "badges",
    "creator_share_bps",
    "diamond_value",
    "cashout_min_diamonds",
    "cashout_daily_cap_diamonds",
    "limits",
)


def parse_catalog(data: object, source: str) -> Catalog:
    """Validate a decoded catalog document and build a :class:`Catalog`.

    ``source`` names the document in error messages (usually the file path).
    Raises :class:`CatalogError` on the first problem found, naming the entry
    and the field.
    """
    r = _Reader(source)
    top = r.fields(data, "catalog", _TOP_KEYS)
    dv_raw = r.fields(top["diamond_value"], "diamond_value", ("amount", "currency", "diamonds"))
    diamond_value = DiamondValue(
        amount=r.integer(dv_raw, "amount", "diamond_value", 1, MAX_CENTS),
        currency=r.currency(dv_raw, "diamond_value"),
        diamonds=r.integer(dv_raw, "diamonds", "diamond_value", 1, MAX_DIAMOND_UNIT),
    )
    limits = r.fields(top["limits"], "limits", ("max_count",))
    catalog = Catalog(
        packages=_section(r, top, "packages", _package, non_empty=True),
        gifts=_section(r, top, "gifts", _gift, non_empty=True),
        effects=_section(r, top, "effects", _effect, non_empty=False),
        highlights=_section(r, top, "highlights", _highlight, non_empty=False),
        badges=_section(r, top, "badges", _badge, non_empty=False),
        creator_share_bps=r.integer(top, "creator_share_bps", "catalog", 1, 10_000),
        diamond_value=diamond_value,
        cashout_min_diamonds=r.integer(
            top, "cashout_min_diamonds", "catalog", 1, MAX_CASHOUT_DIAMONDS
        ),
        cashout_daily_cap_diamonds=r.integer(
            top, "cashout_daily_cap_diamonds", "catalog", 1, MAX_CASHOUT_DIAMONDS
        ),
        max_count=r.integer(limits, "max_count", "limits", 1, MAX_COUNT),
    )
    _check_consistency(r, catalog)
    return catalog


def _check_consistency(r: _Reader, catalog: Catalog) -> None:
    currency = catalog.diamond_value.currency
    for i, package in enumerate(catalog.packages.values()):
        if package.price.currency != currency:
            r.fail(
                f"packages[{i}] ({package.id}).price",
                f"field 'currency' is {package.price.currency!r}, but every package must be "
                f"priced in the diamond_value currency {currency!r}",
            )
    unit = catalog.cashout_unit()
    for key, value in (
        ("cashout_min_diamonds", catalog.cashout_min_diamonds),
        ("cashout_daily_cap_diamonds", catalog.cashout_daily_cap_diamonds),
    ):
        if value % unit:
            r.fail(
                "catalog",
                f"field {key!r} ({value}) must be a multiple of the cash-out unit {unit} "
                f"(the fewest diamonds worth a whole minor unit)",
            )
    if catalog.cashout_min_diamonds > catalog.cashout_daily_cap_diamonds:
        r.fail(
            "catalog",
            f"field 'cashout_min_diamonds' ({catalog.cashout_min_diamonds}) must not exceed "
            f"'cashout_daily_cap_diamonds' ({catalog.cashout_daily_cap_diamonds})",
        )


# --------------------------------------------------------------------------- loading


def _decode(text: str, source: str) -> object:
    def unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
        obj: dict[str, object] = {}
        for key, value in pairs:
            if key in obj:
                raise CatalogError(f"{source}: duplicate key {key!r} in a JSON object")
            obj[key] = value
        return obj

    def no_constants(name: str) -> object:
        raise CatalogError(f"{source}: {name} is not allowed in a catalog (integers only)")

    try:
        return json.loads(text, object_pairs_hook=unique_keys, parse_constant=no_constants)
    except json.JSONDecodeError as exc:
        raise CatalogError(f"{source}: not valid JSON: {exc}") from exc


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Read and validate a catalog file; ``None`` loads the packaged default.

    The server passes ``Settings.catalog_path`` (``GIFTING_CATALOG``). Raises
    :class:`CatalogError` if the file cannot be read, is not JSON, or is invalid.
    """
    if path is None:
        source = DEFAULT_CATALOG_SOURCE
        resource = resources.files("gifting").joinpath("catalog.json")
        try:
            text = resource.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CatalogError(f"{source}: cannot read the packaged catalog: {exc}") from exc
    else:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CatalogError(f"{source}: cannot read the catalog file: {exc}") from exc
    return parse_catalog(_decode(text, source), source)
