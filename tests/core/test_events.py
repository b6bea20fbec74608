"""Room event bodies: the same body on the fast path and the repair path. Pure."""

from __future__ import annotations

from typing import Any

import pytest

from gifting.core.catalog import Catalog, load_catalog
from gifting.core.entries import SpendEntry
from gifting.core.events import (
    comment_event,
    leaderboard_event,
    sender_of,
    spend_event,
    streak_end_event,
    stream_ended_event,
)

CATALOG: Catalog = load_catalog()


def _spend(kind: str, item: str, **over: Any) -> SpendEntry:
    fields: dict[str, Any] = {
        "user": "alice", "name": "Alice", "client_id": "c1", "kind": kind, "item": item,
        "count": 3, "unit": 1, "coins": 3, "stream": "s1", "creator": "carol",
        "event": "e-1", "ts": 1764000000123, "balance": 97, "combo": 5,
    }  # fmt: skip
    fields.update(over)
    return SpendEntry(**fields)


def test_a_gift_event_names_the_gift_from_the_catalog() -> None:
    body = spend_event(_spend("gift", "rose"), CATALOG)
    rose = CATALOG.gifts["rose"]
    assert body == {
        "kind": "gift", "stream": "s1", "event": "e-1", "ts": 1764000000123,
        "sender": {"id": "alice", "name": "Alice", "level": 0}, "coins": 3,
        "gift": {"id": "rose", "name": rose.name, "coins": 1, "tier": rose.tier,
                 "streakable": rose.streakable},
        "count": 3, "combo": 5, "receiver": {"id": "carol", "name": "carol", "guest": False},
    }  # fmt: skip


def test_a_gift_event_names_its_receiver_host_or_guest() -> None:
    """``receiver`` is built from the entry alone: the hub and the repair path agree."""
    host = spend_event(_spend("gift", "rose", receiver_name="Carol"), CATALOG)
    assert host["receiver"] == {"id": "carol", "name": "Carol", "guest": False}
    guest = spend_event(
        _spend("gift", "rose", creator="bob", host="carol", receiver_name="Bobby"), CATALOG
    )
    assert guest["receiver"] == {"id": "bob", "name": "Bobby", "guest": True}
    assert "receiver" not in spend_event(_spend("effect", "confetti", count=1), CATALOG)


def test_an_item_gone_from_the_catalog_still_makes_an_event() -> None:
    """A catalog changed since the spend must not lose its event (the repair path)."""
    body = spend_event(_spend("gift", "retired_gift", unit=7, coins=21), CATALOG)
    assert body["gift"] == {
        "id": "retired_gift",
        "name": "retired_gift",
        "coins": 7,
        "tier": 1,
        "streakable": False,
    }
    effect = spend_event(_spend("effect", "gone", count=1), CATALOG)
    assert effect["effect"] == {"id": "gone", "name": "gone", "duration_ms": 0}


def test_effect_and_highlight_events() -> None:
    effect_id = next(iter(CATALOG.effects))
    body = spend_event(_spend("effect", effect_id, count=1), CATALOG)
    assert body["effect"]["id"] == effect_id
    assert body["effect"]["duration_ms"] == CATALOG.effects[effect_id].duration_ms
    assert "count" not in body and "gift" not in body
    tier = next(iter(CATALOG.highlights))
    body = spend_event(_spend("highlight", tier, count=1, text="hi <b>"), CATALOG)
    pin_ms = CATALOG.highlights[tier].pin_ms
    assert body["highlight"] == {"tier": tier, "pin_ms": pin_ms, "level": 1}
    assert body["text"] == "hi <b>"  # text stays text: the pages render it as such


@pytest.mark.parametrize(("name", "shown"), [("Alice", "Alice"), ("", "alice")])
def test_the_sender_shows_the_user_id_when_it_has_no_name(name: str, shown: str) -> None:
    assert sender_of("alice", name) == {"id": "alice", "name": shown, "level": 0}
    assert sender_of("alice", name, "vip") == {
        "id": "alice", "name": shown, "level": 0, "badge": "vip",
    }  # fmt: skip


def test_the_other_kinds_carry_their_fields() -> None:
    sender = sender_of("bob", "Bob")
    assert comment_event("s1", "m1", 5, sender, "yo") == {
        "kind": "comment",
        "stream": "s1",
        "event": "m1",
        "ts": 5,
        "sender": sender,
        "text": "yo",
    }
    end = streak_end_event("s1", "x1", 6, sender, "rose", 12)
    assert (end["kind"], end["gift"], end["combo"]) == ("streak_end", {"id": "rose"}, 12)
    top = [{"user": "bob", "name": "Bob", "coins": 9}]
    assert leaderboard_event("s1", "l1", 7, top)["top"] == top
    assert stream_ended_event("s1", "z1", 9) == {
        "kind": "stream_ended",
        "stream": "s1",
        "event": "z1",
        "ts": 9,
    }
