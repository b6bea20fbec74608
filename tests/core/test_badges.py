"""Which badge is shown, its wire form, the payee rule and the entry fields they add."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gifting.core.badges import badge_ranking, badge_view, best_badge, owned_views
from gifting.core.catalog import Catalog, load_catalog
from gifting.core.catalog_model import Badge
from gifting.core.entries import SpendEntry, from_fields
from gifting.core.errors import Forbidden
from gifting.core.events import highlight_level, spend_event
from gifting.core.fields import MalformedEntry
from gifting.core.payee import payee

CATALOG: Catalog = load_catalog()


def test_the_dearest_owned_badge_is_shown_whatever_the_order_bought() -> None:
    assert badge_ranking(CATALOG) == ["legend", "vip", "super_fan", "supporter"]
    assert best_badge(CATALOG, ["supporter", "vip", "super_fan"]) == "vip"
    assert best_badge(CATALOG, ["vip", "supporter"]) == "vip"
    assert best_badge(CATALOG, []) is None
    assert best_badge(CATALOG, ["retired"]) is None


def test_a_tie_in_price_goes_to_the_badge_listed_first() -> None:
    badges = {
        "a": Badge("a", "A", 100),
        "b": Badge("b", "B", 500),
        "c": Badge("c", "C", 500),
    }
    catalog = replace(CATALOG, badges=badges)
    assert badge_ranking(catalog) == ["b", "c", "a"]
    assert best_badge(catalog, ["c", "b", "a"]) == "b"
    assert badge_view(catalog, "c") == {"id": "c", "name": "C", "tier": 2}
    assert badge_view(catalog, "a") == {"id": "a", "name": "A", "tier": 1}


def test_badge_views_rank_by_price() -> None:
    assert badge_view(CATALOG, "supporter") == {"id": "supporter", "name": "Supporter", "tier": 1}
    assert badge_view(CATALOG, "legend") == {"id": "legend", "name": "Legend", "tier": 4}
    assert badge_view(CATALOG, "") is None
    assert badge_view(CATALOG, "nope") is None
    assert [v["id"] for v in owned_views(CATALOG, {"supporter", "legend", "gone"})] == [
        "legend",
        "supporter",
    ]


def test_highlight_levels_rank_by_price() -> None:
    assert [highlight_level(CATALOG, t) for t in ("tier1", "tier2", "tier3")] == [1, 2, 3]
    assert highlight_level(CATALOG, "tier9") == 0


@pytest.mark.parametrize("kind", ["effect", "highlight"])
def test_a_creators_own_effect_or_highlight_is_kept_by_the_platform(kind: str) -> None:
    assert payee(kind, "carol", "carol") == ""
    assert payee(kind, "alice", "carol") == "carol"


def test_a_gift_to_oneself_is_forbidden() -> None:
    with pytest.raises(Forbidden):
        payee("gift", "carol", "carol")
    assert payee("gift", "alice", "carol") == "carol"
    assert payee("badge", "alice", "") == ""


def _entry(**over: object) -> SpendEntry:
    fields: dict[str, object] = {
        "user": "alice", "name": "Alice", "client_id": "c1", "kind": "gift", "item": "rose",
        "count": 1, "unit": 1, "coins": 1, "stream": "s1", "creator": "carol",
        "event": "e-1", "ts": 1764000000123, "balance": 97, "combo": 1,
    }  # fmt: skip
    fields.update(over)
    return SpendEntry(**fields)  # type: ignore[arg-type]


def test_the_badge_rides_on_the_entry_and_on_the_event() -> None:
    entry = _entry(badge="vip")
    fields = entry.to_fields()
    assert fields["badge"] == "vip" and list(fields)[-1] == "badge"
    assert from_fields(fields) == entry
    assert "badge" not in _entry().to_fields()
    body = spend_event(entry, CATALOG)
    assert body["sender"] == {
        "id": "alice", "name": "Alice", "level": 0,
        "badge": {"id": "vip", "name": "VIP", "tier": 3},
    }  # fmt: skip
    # a badge no longer in the catalog is not shown, and never sinks the entry
    assert (
        "badge" not in spend_event(from_fields(_entry(badge="gone").to_fields()), CATALOG)["sender"]
    )


def test_a_self_purchase_entry_has_a_stream_and_no_creator() -> None:
    kept = _entry(kind="effect", item="confetti", coins=99, unit=99, user="carol", creator="")
    assert from_fields(kept.to_fields()) == kept
    with pytest.raises(MalformedEntry):  # a gift always has its creator
        from_fields(_entry(creator="").to_fields())
    with pytest.raises(MalformedEntry):  # and never the sender
        from_fields(_entry(user="carol").to_fields())
