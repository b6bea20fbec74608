"""Tests of the catalog: the shipped defaults, strict validation, loading and cash-out math."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from gifting.core.catalog import (
    MAX_COINS,
    MAX_COUNT,
    Catalog,
    CatalogError,
    DiamondValue,
    Gift,
    Price,
    load_catalog,
    parse_catalog,
)
from gifting.core.errors import UnknownItem

SOURCE = "test-catalog.json"


def raw_default() -> dict[str, Any]:
    """A fresh, mutable copy of the packaged catalog document."""
    text = resources.files("gifting").joinpath("catalog.json").read_text(encoding="utf-8")
    data = json.loads(text)
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


# --------------------------------------------------------------------------- defaults


def test_default_loads(catalog: Catalog) -> None:
    assert isinstance(catalog, Catalog)
    assert len(catalog.gifts) >= 16
    assert catalog.effects
    assert catalog.highlights
    assert catalog.badges


def test_default_packages_match_design(catalog: Catalog) -> None:
    table = [
        (70, 99),
        (350, 499),
        (700, 999),
        (1_400, 1_999),
        (3_500, 4_999),
        (7_000, 9_999),
        (17_500, 24_999),
    ]
    got = [(p.coins, p.price.amount) for p in catalog.packages.values()]
    assert got == table
    assert {p.price.currency for p in catalog.packages.values()} == {"USD"}
    assert catalog.package_by_id("coins_70") == dataclasses.replace(
        catalog.packages["coins_70"], price=Price(99, "USD")
    )
    assert list(catalog.packages) == [f"coins_{coins}" for coins, _ in table]


def test_default_gifts(catalog: Catalog) -> None:
    rose = catalog.gift_by_id("rose")
    assert rose == Gift(id="rose", name="Rose", coins=1, tier=1, streakable=True)
    assert catalog.gift_by_id("universe").coins == 34_999
    assert max(g.coins for g in catalog.gifts.values()) >= 10_000
    expected = {
        "rose": 1,
        "tiktok": 1,
        "finger_heart": 5,
        "rosa": 10,
        "perfume": 20,
        "doughnut": 30,
        "hand_hearts": 100,
        "confetti": 100,
        "corgi": 299,
        "money_gun": 500,
        "swan": 699,
        "train": 899,
        "galaxy": 1_000,
        "whale_diving": 2_150,
        "lion": 29_999,
        "universe": 34_999,
    }
    for gift_id, coins in expected.items():
        assert catalog.gifts[gift_id].coins == coins, gift_id


def test_default_streaks_and_tiers_follow_price(catalog: Catalog) -> None:
    for gift in catalog.gifts.values():
        assert gift.streakable == (gift.coins < 100), gift.id
    by_price = sorted(catalog.gifts.values(), key=lambda g: g.coins)
    tiers = [g.tier for g in by_price]
    assert tiers == sorted(tiers)
    assert tiers[0] == 1
    assert tiers[-1] == 4


def test_default_money_figures(catalog: Catalog) -> None:
    assert catalog.creator_share_bps == 5_000
    assert catalog.diamond_value == DiamondValue(amount=500, currency="USD", diamonds=1_000)
    assert catalog.currency == "USD"
    assert catalog.cashout_min_diamonds == 2_000
    assert catalog.cashout_amount(catalog.cashout_min_diamonds) == Price(1_000, "USD")  # $10
    assert catalog.cashout_daily_cap_diamonds == 200_000
    assert catalog.cashout_amount(catalog.cashout_daily_cap_diamonds) == Price(100_000, "USD")
    assert 1 <= catalog.max_count <= MAX_COUNT


def test_default_has_design_example_ids(catalog: Catalog) -> None:
    # The ids used by the wire examples of docs/contract.md §4.
    assert catalog.gift_by_id("rose").coins == 1
    assert catalog.effect_by_id("confetti").duration_ms > 0
    assert catalog.highlight_by_id("tier2").max_length >= 100
    assert catalog.highlights["tier1"].coins < catalog.highlights["tier3"].coins


def test_default_highlights(catalog: Catalog) -> None:
    got = [(h.id, h.coins, h.pin_ms, h.max_length) for h in catalog.highlights.values()]
    assert got == [
        ("tier1", 10, 30_000, 80),
        ("tier2", 50, 60_000, 150),
        ("tier3", 200, 300_000, 300),
    ]


def test_limits_keep_totals_exact_in_doubles() -> None:
    assert MAX_COINS * MAX_COUNT < 2**53


# --------------------------------------------------------------------------- public shape


def test_to_public_shape(catalog: Catalog) -> None:
    pub = catalog.to_public()
    assert set(pub) == {
        "gifts",
        "packages",
        "effects",
        "highlights",
        "badges",
        "creator_share_bps",
        "diamond_value",
        "cashout_min_diamonds",
        "cashout_daily_cap_diamonds",
        "max_count",
        "levels",
        "hype",
    }
    assert pub["gifts"][0] == {  # type: ignore[index]
        "id": "rose",
        "name": "Rose",
        "coins": 1,
        "tier": 1,
        "streakable": True,
    }
    assert pub["packages"][0] == {  # type: ignore[index]
        "id": "coins_70",
        "coins": 70,
        "price": {"amount": 99, "currency": "USD"},
    }
    assert pub["diamond_value"] == {"amount": 500, "currency": "USD", "diamonds": 1_000}
    assert pub["creator_share_bps"] == 5_000
    assert pub["cashout_min_diamonds"] == 2_000
    assert pub["cashout_daily_cap_diamonds"] == 200_000
    assert pub["max_count"] == catalog.max_count
    effects = pub["effects"]
    assert isinstance(effects, list)
    assert all(set(e) == {"id", "name", "coins", "duration_ms"} for e in effects)
    highlights = pub["highlights"]
    assert isinstance(highlights, list)
    assert all(set(h) == {"id", "coins", "pin_ms", "max_length"} for h in highlights)
    badges = pub["badges"]
    assert isinstance(badges, list)
    assert all(set(b) == {"id", "name", "coins"} for b in badges)
    # Plain JSON, integers only: no floats anywhere.
    assert json.loads(json.dumps(pub)) == pub
    assert _numbers(pub)
    assert all(type(n) is int for n in _numbers(pub))


def _numbers(value: object) -> list[object]:
    """Every non-bool number in a JSON-like value."""
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [value]
    return []


def test_to_public_keeps_file_order(catalog: Catalog) -> None:
    raw = raw_default()
    pub = catalog.to_public()
    for section in ("gifts", "packages", "effects", "highlights", "badges"):
        items = pub[section]
        assert isinstance(items, list)
        assert [item["id"] for item in items] == [e["id"] for e in raw[section]], section


def test_to_public_is_a_fresh_copy(catalog: Catalog) -> None:
    pub = catalog.to_public()
    pub["gifts"] = []
    assert catalog.to_public()["gifts"]


def test_values_are_frozen(catalog: Catalog) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        catalog.gifts["rose"].coins = 0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        catalog.creator_share_bps = 10_000  # type: ignore[misc]


# --------------------------------------------------------------------------- lookups


@pytest.mark.parametrize(
    ("method", "item_id"),
    [
        ("gift_by_id", "nope"),
        ("package_by_id", "coins_71"),
        ("effect_by_id", "rose"),
        ("highlight_by_id", "tier9"),
        ("badge_by_id", ""),
        ("gift_by_id", 5),
        ("gift_by_id", ["rose"]),
        ("gift_by_id", None),
    ],
)
def test_unknown_ids_raise_unknown_item(catalog: Catalog, method: str, item_id: object) -> None:
    with pytest.raises(UnknownItem) as info:
        getattr(catalog, method)(item_id)
    assert info.value.code == "unknown_item"
    assert "unknown" in info.value.message


def test_lookups_find_every_item(catalog: Catalog) -> None:
    for p in catalog.packages.values():
        assert catalog.package_by_id(p.id) is p
    for g in catalog.gifts.values():
        assert catalog.gift_by_id(g.id) is g
    for e in catalog.effects.values():
        assert catalog.effect_by_id(e.id) is e
    for h in catalog.highlights.values():
        assert catalog.highlight_by_id(h.id) is h
    for b in catalog.badges.values():
        assert catalog.badge_by_id(b.id) is b


# --------------------------------------------------------------------------- cash-out math


@pytest.mark.parametrize(
    ("diamonds", "cents"),
    [(0, 0), (1, 0), (2, 1), (3, 1), (1_000, 500), (2_000, 1_000), (200_000, 100_000)],
)
def test_cashout_amount_default(catalog: Catalog, diamonds: int, cents: int) -> None:
    assert catalog.cashout_amount(diamonds) == Price(cents, "USD")


def test_cashout_amount_is_exact_for_huge_counts(catalog: Catalog) -> None:
    assert catalog.cashout_amount(2**63).amount == 2**62  # integers, no float rounding


@pytest.mark.parametrize("bad", [-1, -2_000, True, 1.5, "2000"])
def test_cashout_amount_rejects_bad_counts(catalog: Catalog, bad: Any) -> None:
    with pytest.raises(ValueError, match="diamonds"):
        catalog.cashout_amount(bad)


def test_cashout_unit_default(catalog: Catalog) -> None:
    assert catalog.cashout_unit() == 2
    unit = catalog.cashout_unit()
    assert catalog.cashout_amount(unit).amount * catalog.diamond_value.diamonds == (
        unit * catalog.diamond_value.amount
    )


@pytest.mark.parametrize(
    ("amount", "diamonds", "unit", "probe", "cents"),
    [
        (500, 1_000, 2, 7, 3),
        (1, 3, 3, 10, 3),
        (7, 10, 10, 25, 17),
        (5, 1, 1, 3, 15),
        (600, 1_000, 5, 5, 3),
    ],
)
def test_cashout_unit_and_amount_other_values(
    amount: int, diamonds: int, unit: int, probe: int, cents: int
) -> None:
    data = raw_default()
    data["diamond_value"] = {"amount": amount, "currency": "USD", "diamonds": diamonds}
    data["cashout_min_diamonds"] = unit * 100
    data["cashout_daily_cap_diamonds"] = unit * 10_000
    cat = parse_catalog(data, SOURCE)
    assert cat.cashout_unit() == unit
    assert cat.cashout_amount(probe) == Price(cents, "USD")


def test_diamonds_earned_on_running_total(catalog: Catalog) -> None:
    assert catalog.diamonds_earned(100) == 50
    assert catalog.diamonds_earned(1) == 0
    credited = sum(catalog.diamonds_earned(c + 1) - catalog.diamonds_earned(c) for c in range(100))
    assert credited == 50  # 100 Roses → 50 diamonds, nothing lost


# --------------------------------------------------------------------------- validation

Mutation = Callable[[dict[str, Any]], object]


def _set(path: str, value: object) -> Mutation:
    """Set ``a.0.b`` style ``path`` in the document to ``value``."""

    def mutate(data: dict[str, Any]) -> object:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
        return data

    return mutate


def _delete(path: str) -> Mutation:
    """Remove ``a.0.b`` style ``path`` from the document."""

    def mutate(data: dict[str, Any]) -> object:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        del node[last]
        return data

    return mutate


def _copy_id(section: str, src: int, dst: int) -> Mutation:
    def mutate(data: dict[str, Any]) -> object:
        data[section][dst]["id"] = data[section][src]["id"]
        return data

    return mutate


def _replace_all(value: object) -> Mutation:
    return lambda _data: value


def _too_many_gifts(data: dict[str, Any]) -> object:
    data["gifts"] = [
        {"id": f"g{i}", "name": f"G{i}", "coins": 1, "tier": 1, "streakable": True}
        for i in range(1_001)
    ]
    return data


def _cashout(min_d: int, cap: int) -> Mutation:
    def mutate(data: dict[str, Any]) -> object:
        data["cashout_min_diamonds"] = min_d
        data["cashout_daily_cap_diamonds"] = cap
        return data

    return mutate


BREAKAGES: list[tuple[str, Mutation, tuple[str, ...]]] = [
    # integers must be real integers
    ("float price", _set("packages.0.price.amount", 0.99), ("packages[0]", "'amount'", "float")),
    ("float whole price", _set("packages.0.price.amount", 99.0), ("'amount'", "float")),
    ("float coins", _set("gifts.0.coins", 1.0), ("gifts[0] (rose)", "'coins'", "float")),
    ("string coins", _set("gifts.0.coins", "1"), ("'coins'", "string")),
    ("null coins", _set("gifts.0.coins", None), ("'coins'", "null")),
    ("bool coins", _set("gifts.0.coins", True), ("'coins'", "boolean true")),
    ("bool package coins", _set("packages.1.coins", False), ("packages[1]", "'coins'")),
    ("bool tier", _set("gifts.2.tier", True), ("gifts[2]", "'tier'", "boolean")),
    # positive
    ("negative coins", _set("gifts.0.coins", -1), ("'coins'", "-1")),
    ("zero gift coins", _set("gifts.3.coins", 0), ("gifts[3]", "'coins'")),
    ("zero package coins", _set("packages.0.coins", 0), ("packages[0]", "'coins'")),
    ("zero price", _set("packages.0.price.amount", 0), ("packages[0]", "'amount'")),
    ("negative price", _set("packages.0.price.amount", -99), ("'amount'",)),
    ("zero effect coins", _set("effects.0.coins", 0), ("effects[0]", "'coins'")),
    ("zero highlight coins", _set("highlights.0.coins", 0), ("highlights[0]", "'coins'")),
    ("zero badge coins", _set("badges.0.coins", 0), ("badges[0]", "'coins'")),
    ("zero duration", _set("effects.1.duration_ms", 0), ("effects[1]", "'duration_ms'")),
    ("zero pin", _set("highlights.1.pin_ms", 0), ("highlights[1]", "'pin_ms'")),
    ("zero max_length", _set("highlights.2.max_length", 0), ("'max_length'",)),
    ("huge max_length", _set("highlights.2.max_length", 100_000), ("'max_length'",)),
    ("zero diamond amount", _set("diamond_value.amount", 0), ("diamond_value", "'amount'")),
    ("zero diamond unit", _set("diamond_value.diamonds", 0), ("diamond_value", "'diamonds'")),
    ("float diamond unit", _set("diamond_value.diamonds", 1e3), ("'diamonds'", "float")),
    # bounded
    ("huge coins", _set("gifts.0.coins", MAX_COINS + 1), ("'coins'", str(MAX_COINS + 1))),
    ("2^63 coins", _set("gifts.1.coins", 2**63), ("gifts[1]", "'coins'")),
    ("2^53 price", _set("packages.0.price.amount", 2**53), ("'amount'",)),
    ("huge package", _set("packages.6.coins", 10**12), ("packages[6]", "'coins'")),
    ("max_count 0", _set("limits.max_count", 0), ("limits", "'max_count'")),
    ("max_count huge", _set("limits.max_count", MAX_COUNT + 1), ("'max_count'",)),
    ("max_count float", _set("limits.max_count", 99.5), ("'max_count'", "float")),
    ("huge duration", _set("effects.0.duration_ms", 10**9), ("'duration_ms'",)),
    # ids
    ("duplicate gift id", _copy_id("gifts", 0, 1), ("gifts[1]", "duplicate id 'rose'", "gifts[0]")),
    ("duplicate package id", _copy_id("packages", 0, 3), ("packages[3]", "duplicate id")),
    ("duplicate effect id", _copy_id("effects", 0, 1), ("effects[1]", "duplicate id")),
    ("duplicate highlight id", _copy_id("highlights", 0, 2), ("highlights[2]", "duplicate")),
    ("duplicate badge id", _copy_id("badges", 1, 0), ("badges[1]", "duplicate")),
    ("upper-case id", _set("gifts.0.id", "Rose"), ("gifts[0]", "'id'", "'Rose'")),
    ("empty id", _set("gifts.0.id", ""), ("gifts[0]", "'id'")),
    ("long id", _set("badges.0.id", "a" * 33), ("badges[0]", "'id'")),
    ("dash id", _set("effects.0.id", "confetti-rain"), ("effects[0]", "'id'")),
    ("newline id", _set("gifts.0.id", "rose\n"), ("gifts[0]", "'id'")),
    ("int id", _set("packages.0.id", 70), ("packages[0]", "'id'", "70")),
    # names and other types
    ("empty name", _set("gifts.0.name", ""), ("gifts[0] (rose)", "'name'")),
    ("padded name", _set("gifts.0.name", " Rose"), ("'name'",)),
    ("control name", _set("badges.0.name", "Sup\nporter"), ("badges[0]", "'name'")),
    ("long name", _set("effects.0.name", "x" * 65), ("effects[0]", "'name'")),
    ("int name", _set("gifts.0.name", 1), ("'name'",)),
    ("string streakable", _set("gifts.0.streakable", "yes"), ("'streakable'",)),
    ("int streakable", _set("gifts.0.streakable", 1), ("'streakable'", "integer")),
    # tier
    ("tier 0", _set("gifts.0.tier", 0), ("gifts[0]", "'tier'")),
    ("tier 5", _set("gifts.0.tier", 5), ("gifts[0]", "'tier'", "5")),
    # currency
    ("lower currency", _set("packages.0.price.currency", "usd"), ("'currency'", "'usd'")),
    ("short currency", _set("packages.0.price.currency", "US"), ("'currency'",)),
    ("long currency", _set("diamond_value.currency", "USDD"), ("diamond_value", "'currency'")),
    ("numeric currency", _set("packages.0.price.currency", 840), ("'currency'",)),
    ("mixed currencies", _set("packages.2.price.currency", "EUR"), ("packages[2]", "'EUR'")),
    ("payout currency", _set("diamond_value.currency", "EUR"), ("packages[0]", "'currency'")),
    # share
    ("bps 0", _set("creator_share_bps", 0), ("'creator_share_bps'",)),
    ("bps 10001", _set("creator_share_bps", 10_001), ("'creator_share_bps'", "10001")),
    ("bps float", _set("creator_share_bps", 50.0), ("'creator_share_bps'", "float")),
    ("bps string", _set("creator_share_bps", "5000"), ("'creator_share_bps'", "string")),
    # cash-out
    ("min not unit", _cashout(2_001, 200_000), ("'cashout_min_diamonds'", "multiple")),
    ("cap not unit", _cashout(2_000, 199_999), ("'cashout_daily_cap_diamonds'", "multiple")),
    ("min over cap", _cashout(4_000, 2_000), ("'cashout_min_diamonds'", "must not exceed")),
    ("min 0", _cashout(0, 2_000), ("'cashout_min_diamonds'",)),
    ("cap negative", _cashout(2_000, -2), ("'cashout_daily_cap_diamonds'",)),
    # unknown keys
    ("unknown gift key", _set("gifts.0.coin", 1), ("gifts[0]", "unknown key 'coin'")),
    ("unknown price key", _set("packages.0.price.cents", 99), ("packages[0]", "'cents'")),
    ("unknown top key", _set("creator_share", 5000), ("catalog", "unknown key 'creator_share'")),
    ("unknown limit key", _set("limits.max_counts", 5), ("limits", "'max_counts'")),
    ("unknown dv key", _set("diamond_value.per", 1), ("diamond_value", "'per'")),
    # missing keys
    ("missing tier", _delete("gifts.0.tier"), ("gifts[0]", "missing required key 'tier'")),
    ("missing price", _delete("packages.0.price"), ("packages[0]", "'price'")),
    ("missing currency", _delete("packages.0.price.currency"), ("'currency'",)),
    ("missing duration", _delete("effects.0.duration_ms"), ("effects[0]", "'duration_ms'")),
    ("missing max_length", _delete("highlights.0.max_length"), ("'max_length'",)),
    ("missing badge name", _delete("badges.0.name"), ("badges[0]", "'name'")),
    ("missing limits", _delete("limits"), ("catalog", "'limits'")),
    ("missing bps", _delete("creator_share_bps"), ("'creator_share_bps'",)),
    ("missing badges", _delete("badges"), ("'badges'",)),
    ("missing cap", _delete("cashout_daily_cap_diamonds"), ("'cashout_daily_cap_diamonds'",)),
    # gifter levels: integers, levels and thresholds strictly increasing
    ("levels object", _set("levels", {"1": 1}), ("levels", "array")),
    ("level float coins", _set("levels.1.coins", 100.0), ("levels[1]", "'coins'", "float")),
    ("level string", _set("levels.0.level", "1"), ("levels[0]", "'level'", "string")),
    ("level bool", _set("levels.0.level", True), ("levels[0]", "'level'", "boolean")),
    ("level 0", _set("levels.0.level", 0), ("levels[0]", "'level'")),
    ("level coins 0", _set("levels.0.coins", 0), ("levels[0]", "'coins'")),
    ("level repeated", _set("levels.1.level", 1), ("levels[1]", "'level'", "greater")),
    ("level decreasing", _set("levels.2.level", 1), ("levels[2]", "'level'", "greater")),
    ("threshold repeated", _set("levels.1.coins", 1), ("levels[1]", "'coins'", "greater")),
    ("threshold decreasing", _set("levels.3.coins", 2), ("levels[3]", "'coins'", "greater")),
    ("level unknown key", _set("levels.0.name", "x"), ("levels[0]", "unknown key 'name'")),
    ("level missing coins", _delete("levels.0.coins"), ("levels[0]", "'coins'")),
    # shapes
    ("gifts empty", _set("gifts", []), ("gifts", "empty")),
    ("packages empty", _set("packages", []), ("packages", "empty")),
    ("gifts object", _set("gifts", {"rose": 1}), ("gifts", "array")),
    ("gift string", _set("gifts.0", "rose"), ("gifts[0]", "object")),
    ("price number", _set("packages.0.price", 99), ("packages[0] (coins_70).price", "object")),
    ("limits array", _set("limits", [1000]), ("limits", "object")),
    ("too many gifts", _too_many_gifts, ("gifts", "1001")),
    ("document array", _replace_all([]), ("catalog", "object")),
    ("document null", _replace_all(None), ("catalog", "null")),
]


@pytest.mark.parametrize(
    ("mutate", "fragments"),
    [pytest.param(m, f, id=name) for name, m, f in BREAKAGES],
)
def test_broken_catalog_is_rejected(mutate: Mutation, fragments: tuple[str, ...]) -> None:
    data = mutate(raw_default())
    with pytest.raises(CatalogError) as info:
        parse_catalog(data, SOURCE)
    message = str(info.value)
    assert message.startswith(f"{SOURCE}: ")
    for fragment in fragments:
        assert fragment in message


def test_breakage_ids_are_unique() -> None:
    names = [name for name, _, _ in BREAKAGES]
    assert len(names) == len(set(names))


def test_empty_optional_sections_are_allowed() -> None:
    data = raw_default()
    data["effects"] = []
    data["highlights"] = []
    data["badges"] = []
    cat = parse_catalog(data, SOURCE)
    assert cat.effects == {}
    assert cat.highlights == {}
    assert cat.badges == {}
    assert cat.to_public()["effects"] == []


def test_catalog_error_is_a_value_error() -> None:
    assert issubclass(CatalogError, ValueError)


def test_parse_does_not_alias_input() -> None:
    data = raw_default()
    before = copy.deepcopy(data)
    parse_catalog(data, SOURCE)
    assert data == before


# --------------------------------------------------------------------------- loading


def test_load_from_path_overrides_default(tmp_path: Path) -> None:
    data = raw_default()
    data["creator_share_bps"] = 7_000
    data["gifts"].append(
        {"id": "lighthouse", "name": "Lighthouse", "coins": 2_500, "tier": 3, "streakable": False}
    )
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    for arg in (path, str(path)):
        cat = load_catalog(arg)
        assert cat.creator_share_bps == 7_000
        assert cat.gift_by_id("lighthouse").coins == 2_500
        assert list(cat.gifts)[-1] == "lighthouse"
    assert load_catalog().creator_share_bps == 5_000


def test_gifting_catalog_setting_points_load_at_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gifting.config import Settings

    data = raw_default()
    data["limits"]["max_count"] = 99
    path = tmp_path / "override.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    monkeypatch.setenv("GIFTING_CATALOG", str(path))
    settings = Settings()
    assert settings.catalog_path == path
    assert load_catalog(settings.catalog_path).max_count == 99


def test_load_reports_invalid_file_by_path(tmp_path: Path) -> None:
    data = raw_default()
    data["gifts"][0]["coins"] = 0.5
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(CatalogError) as info:
        load_catalog(path)
    assert str(path) in str(info.value)
    assert "gifts[0] (rose)" in str(info.value)
    assert "'coins'" in str(info.value)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "not valid JSON"),
        (b'{"creator_share_bps": 5000, "creator_share_bps": 6000}', "duplicate key"),
        (b'{"creator_share_bps": NaN}', "NaN"),
        (b'{"creator_share_bps": Infinity}', "Infinity"),
        (b"\xff\xfe\x00", "cannot read"),
    ],
)
def test_load_rejects_unparseable_files(tmp_path: Path, content: bytes, fragment: str) -> None:
    path = tmp_path / "broken.json"
    path.write_bytes(content)
    with pytest.raises(CatalogError) as info:
        load_catalog(path)
    assert str(path) in str(info.value)
    assert fragment in str(info.value)


def test_load_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    with pytest.raises(CatalogError, match="cannot read") as info:
        load_catalog(path)
    assert str(path) in str(info.value)


def test_load_directory(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="cannot read"):
        load_catalog(tmp_path)


def test_levels_are_optional_and_parsed_in_order() -> None:
    data = raw_default()
    del data["levels"]
    assert parse_catalog(data, SOURCE).levels == ()
    assert parse_catalog(data, SOURCE).to_public()["levels"] == []
    data["levels"] = [{"level": 1, "coins": 1}, {"level": 3, "coins": 50}]
    cat = parse_catalog(data, SOURCE)
    assert [(lv.level, lv.coins) for lv in cat.levels] == [(1, 1), (3, 50)]
    assert cat.to_public()["levels"] == [{"level": 1, "coins": 1}, {"level": 3, "coins": 50}]


def test_default_levels_are_a_ladder(catalog: Catalog) -> None:
    levels = catalog.levels
    assert levels[0].level == 1 and len(levels) >= 5
    assert all(a.level < b.level and a.coins < b.coins for a, b in itertools.pairwise(levels))


# -- hype (issue 17) -------------------------------------------------------------

HYPE_BREAKAGES: list[tuple[str, Mutation, tuple[str, ...]]] = [
    ("hype array", _set("hype", [1]), ("hype", "object")),
    ("hype unknown key", _set("hype.color", "red"), ("hype", "unknown key 'color'")),
    ("hype missing levels", _delete("hype.levels"), ("hype", "'levels'")),
    ("hype gifters 0", _set("hype.gifters", 0), ("hype", "'gifters'")),
    ("hype gifters float", _set("hype.gifters", 3.0), ("hype", "'gifters'", "float")),
    ("hype coins string", _set("hype.coins", "300"), ("hype", "'coins'", "string")),
    ("hype window 0", _set("hype.window_s", 0), ("hype", "'window_s'")),
    ("hype window a day", _set("hype.window_s", 86_400), ("hype", "'window_s'")),
    ("hype levels empty", _set("hype.levels", []), ("hype", "'levels'", "non-empty")),
    ("hype levels object", _set("hype.levels", {"1": 5}), ("hype", "'levels'")),
    ("hype level 0", _set("hype.levels.0", 0), ("hype.levels[0]",)),
    ("hype level bool", _set("hype.levels.1", True), ("hype.levels[1]", "boolean")),
    ("hype levels repeat", _set("hype.levels.1", 500), ("hype.levels[1]", "greater")),
    ("hype levels decrease", _set("hype.levels.2", 100), ("hype.levels[2]", "greater")),
    ("hype too many levels", _set("hype.levels", list(range(1, 22))), ("hype", "more than 20")),
]


@pytest.mark.parametrize(
    ("mutate", "fragments"),
    [pytest.param(m, f, id=name) for name, m, f in HYPE_BREAKAGES],
)
def test_a_broken_hype_is_rejected(mutate: Mutation, fragments: tuple[str, ...]) -> None:
    with pytest.raises(CatalogError) as info:
        parse_catalog(mutate(raw_default()), SOURCE)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_hype_is_optional_and_public() -> None:
    data = raw_default()
    assert parse_catalog(data, SOURCE).to_public()["hype"] == {
        "gifters": 3, "coins": 300, "window_s": 60, "levels": [500, 1500, 4000, 8000, 15000],
    }  # fmt: skip
    del data["hype"]
    assert parse_catalog(data, SOURCE).hype is None
    data["hype"] = None
    assert parse_catalog(data, SOURCE).to_public()["hype"] is None
