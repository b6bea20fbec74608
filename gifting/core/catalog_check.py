"""Validation of a decoded catalog document into the :mod:`~gifting.core.catalog_model`.

:func:`parse_catalog` is strict — real integers only (no booleans, floats or
numeric strings), every price > 0 and bounded so that ``count × price`` stays
far below 2^53, ids ``[a-z0-9_]{1,32}`` unique per section, unknown keys
rejected so a typo cannot silently fall back to a default — and raises
:class:`CatalogError` naming the file, the entry (with its id) and the field,
and quoting the offending value in its JSON kind. Pure: the document comes in
already decoded (see :mod:`gifting.core.catalog_load`).

Why not msgspec (which validates straight into typed structs): its messages
carry neither the offending value nor the entry's id, and name Python types
(``bool``) where an operator editing JSON expects JSON kinds (``boolean
true``); the names, the cash-out unit and the one-currency rule would stay
hand-written anyway.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final, NoReturn, TypeVar

from gifting.core.catalog_model import (
    Badge,
    Catalog,
    DiamondValue,
    Effect,
    Gift,
    Highlight,
    Hype,
    Level,
    Package,
    Price,
)
from gifting.core.describe import described, short

__all__ = [
    "MAX_CASHOUT_DIAMONDS",
    "MAX_CENTS",
    "MAX_COINS",
    "MAX_COMMENT_LENGTH",
    "MAX_COUNT",
    "MAX_DIAMOND_UNIT",
    "MAX_DURATION_MS",
    "MAX_ENTRIES",
    "MAX_NAME_LENGTH",
    "CatalogError",
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

_ID_RE: Final = re.compile(r"[a-z0-9_]{1,32}")
_CURRENCY_RE: Final = re.compile(r"[A-Z]{3}")


class CatalogError(ValueError):
    """The catalog file is unreadable or invalid; the message names file, entry and field."""


# Constrained, so each section keeps the exact entry type its parser builds.
_E = TypeVar("_E", Package, Gift, Effect, Highlight, Badge)


class _Reader:
    """Validation helpers that know the source, so every error names the file."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, message: str) -> NoReturn:
        raise CatalogError(f"{self.source}: {where}: {message}")

    def fields(
        self,
        value: object,
        where: str,
        keys: tuple[str, ...],
        optional: frozenset[str] = frozenset(),
    ) -> dict[str, object]:
        if not isinstance(value, dict):
            self.fail(where, f"must be an object, got {described(value)}")
        unknown = [k for k in value if k not in keys]
        if unknown:
            names = ", ".join(short(k) for k in unknown)
            allowed = ", ".join(repr(k) for k in keys)
            self.fail(where, f"unknown key {names} (allowed: {allowed})")
        missing = [k for k in keys if k not in value and k not in optional]
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


def _levels(r: _Reader, raw: object) -> tuple[Level, ...]:
    """The gifter levels: integers, levels and thresholds both strictly increasing."""
    if not isinstance(raw, list):
        r.fail("levels", f"must be an array, got {described(raw)}")
    if len(raw) > MAX_LEVELS:
        r.fail("levels", f"has {len(raw)} entries, more than {MAX_LEVELS}")
    out: list[Level] = []
    for i, item in enumerate(raw):
        where = f"levels[{i}]"
        obj = r.fields(item, where, ("level", "coins"))
        level = Level(
            level=r.integer(obj, "level", where, 1, MAX_LEVELS),
            coins=r.integer(obj, "coins", where, 1, MAX_LEVEL_COINS),
        )
        if out and level.level <= out[-1].level:
            r.fail(where, f"field 'level' ({level.level}) must be greater than the "
                   f"previous level's ({out[-1].level})")  # fmt: skip
        if out and level.coins <= out[-1].coins:
            r.fail(where, f"field 'coins' ({level.coins}) must be greater than the "
                   f"previous level's ({out[-1].coins})")  # fmt: skip
        out.append(level)
    return tuple(out)


def _section(
    r: _Reader,
    top: dict[str, object],
    key: str,
    parse_entry: Callable[[_Reader, object, str], _E],
    *,
    non_empty: bool,
) -> dict[str, _E]:
    items = top[key]
    if not isinstance(items, list):
        r.fail(key, f"must be an array, got {described(items)}")
    if non_empty and not items:
        r.fail(key, "must not be empty")
    if len(items) > MAX_ENTRIES:
        r.fail(key, f"has {len(items)} entries, more than {MAX_ENTRIES}")
    out: dict[str, _E] = {}
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
    "levels",
    "hype",
)
#: Keys a catalog may leave out (an older catalog file has no gifter levels, no hype).
_OPTIONAL_KEYS: Final = frozenset({"levels", "hype"})
#: Most gifter levels in a catalog.
MAX_LEVELS: Final = 100
#: Largest lifetime threshold of a level (coins).
MAX_LEVEL_COINS: Final = 10**15


def parse_catalog(data: object, source: str) -> Catalog:
    """Validate a decoded catalog document and build a :class:`Catalog`.

    ``source`` names the document in error messages (usually the file path).
    Raises :class:`CatalogError` on the first problem found, naming the entry
    and the field.
    """
    r = _Reader(source)
    top = r.fields(data, "catalog", _TOP_KEYS, optional=_OPTIONAL_KEYS)
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
        levels=_levels(r, top.get("levels", [])),
        hype=_hype(r, top.get("hype")),
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


#: Bounds of the catalog's ``hype``.
MAX_HYPE_GIFTERS: Final = 1000
MIN_HYPE_WINDOW_S: Final = 1
MAX_HYPE_WINDOW_S: Final = 3600
MAX_HYPE_LEVELS: Final = 20
MAX_HYPE_COINS: Final = 10**12


def _hype(r: _Reader, raw: object) -> Hype | None:
    """The room hype: ``null`` or absent (none), else its thresholds and level targets."""
    if raw is None:
        return None
    obj = r.fields(raw, "hype", ("gifters", "coins", "window_s", "levels"))
    levels = obj["levels"]
    if not isinstance(levels, list) or not levels:
        r.fail("hype", f"field 'levels' must be a non-empty array, got {described(levels)}")
    if len(levels) > MAX_HYPE_LEVELS:
        r.fail("hype", f"field 'levels' has {len(levels)} entries, more than {MAX_HYPE_LEVELS}")
    targets: list[int] = []
    for i, target in enumerate(levels):
        where = f"hype.levels[{i}]"
        if isinstance(target, bool) or not isinstance(target, int):
            r.fail(where, f"must be an integer, got {described(target)}")
        if not 1 <= target <= MAX_HYPE_COINS:
            r.fail(where, f"must be between 1 and {MAX_HYPE_COINS}, got {target}")
        if targets and target <= targets[-1]:
            r.fail(where, f"({target}) must be greater than the previous level's ({targets[-1]})")
        targets.append(target)
    return Hype(
        gifters=r.integer(obj, "gifters", "hype", 1, MAX_HYPE_GIFTERS),
        coins=r.integer(obj, "coins", "hype", 1, MAX_HYPE_COINS),
        window_s=r.integer(obj, "window_s", "hype", MIN_HYPE_WINDOW_S, MAX_HYPE_WINDOW_S),
        levels=tuple(targets),
    )
