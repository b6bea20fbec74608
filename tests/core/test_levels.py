"""Gifter levels (pure): the level of a lifetime total, the debit that crosses a threshold."""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import strategies as st

from gifting.core.catalog import load_catalog
from gifting.core.catalog_model import Level
from gifting.core.entries import SpendEntry
from gifting.core.events import spend_event
from gifting.core.levels import (
    level_for,
    level_reached,
    level_up_event,
    level_up_event_id,
    level_up_event_ids,
    levels_reached,
)

CATALOG = dataclasses.replace(
    load_catalog(), levels=(Level(1, 1), Level(2, 100), Level(3, 500), Level(5, 1000))
)


def test_level_of_a_lifetime_total() -> None:
    assert [level_for(CATALOG, n) for n in (0, 1, 99, 100, 499, 500, 999, 1000, 10**9)] == [
        0, 1, 1, 2, 2, 3, 3, 5, 5,
    ]  # fmt: skip
    assert level_for(dataclasses.replace(CATALOG, levels=()), 10**9) == 0


def test_only_the_crossing_debit_reaches_a_level() -> None:
    assert level_reached(CATALOG, 1, 1) == 1
    assert level_reached(CATALOG, 99, 98) is None
    assert level_reached(CATALOG, 100, 1) == 2
    assert level_reached(CATALOG, 101, 1) is None
    assert level_reached(CATALOG, 1200, 1199) == 5  # several at once: the highest
    assert level_reached(CATALOG, 0, 0) is None  # an entry from before levels
    assert levels_reached(CATALOG, 1200, 1199) == [2, 3, 5]  # each crossed
    assert levels_reached(CATALOG, 100, 1) == [2]
    assert levels_reached(CATALOG, 101, 1) == []


def test_a_spend_crossing_several_thresholds_announces_each_once() -> None:
    ids = level_up_event_ids(CATALOG, "e0a1", 1200, 1199)
    assert ids == [("l0a1.2", 2), ("l0a1.3", 3), ("l0a1", 5)]
    assert level_up_event_ids(CATALOG, "e0a1", 100, 1) == [("l0a1", 2)]  # the id it always had


@given(st.lists(st.integers(1, 400), max_size=30))
def test_each_level_is_reached_by_at_most_one_debit(prices: list[int]) -> None:
    total, reached = 0, []
    for price in prices:
        total += price
        reached += levels_reached(CATALOG, total, price)
    # Every level up to the user's is announced, each by exactly one debit.
    assert reached == [lv.level for lv in CATALOG.levels if lv.level <= level_for(CATALOG, total)]


def test_level_up_event() -> None:
    assert level_up_event_id("e0123abc") == "l0123abc"
    assert level_up_event("s1", "l1", 5, "bea", "", 3) == {
        "kind": "level_up", "stream": "s1", "event": "l1", "ts": 5, "user": "bea",
        "name": "bea", "level": 3,
    }  # fmt: skip


def test_the_level_rides_on_the_spend_event() -> None:
    entry = SpendEntry(
        user="bea", name="Bea", client_id="c1", kind="gift", item="rose", count=1, unit=1,
        coins=1, stream="s1", creator="cara", event="e1", ts=1, balance=0, combo=1,
        lifetime=650,
    )  # fmt: skip
    assert spend_event(entry, CATALOG)["sender"] == {"id": "bea", "name": "Bea", "level": 3}
