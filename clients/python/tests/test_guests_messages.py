"""Guests in the client's messages: a gift's receiver, the guests event, the snapshot's list."""

from __future__ import annotations

from gifting_client.messages import (
    GiftEvent,
    GuestsEvent,
    GuestView,
    Receiver,
    parse_event,
    parse_snapshot,
)

HEAD = {"stream": "s1", "seq": 1, "cursor": "1-0_1", "event": "e1", "ts": 1}


def test_a_gift_event_carries_its_receiver() -> None:
    gift = {
        **HEAD, "kind": "gift", "sender": {"id": "alice", "name": "Alice"},
        "gift": {"id": "rose", "name": "Rose", "coins": 1, "tier": 1}, "count": 1,
    }  # fmt: skip
    to_guest = parse_event({**gift, "receiver": {"id": "bob", "name": "Bob", "guest": True}})
    assert isinstance(to_guest, GiftEvent)
    assert to_guest.receiver == Receiver("bob", "Bob", True)
    older = parse_event(gift)  # a server from before guests
    assert isinstance(older, GiftEvent) and older.receiver is None


def test_the_guests_event_and_the_snapshot_list_the_guests() -> None:
    event = parse_event({**HEAD, "kind": "guests", "guests": [{"user": "bob", "name": "Bob"}]})
    assert isinstance(event, GuestsEvent)
    assert event.guests == [GuestView("bob", "Bob")]
    snap = parse_snapshot({"op": "snapshot", "stream": "s1", "live": True})
    assert snap.guests == []
    snap = parse_snapshot(
        {"op": "snapshot", "stream": "s1", "live": True, "guests": [{"user": "d", "name": "D"}]}
    )
    assert snap.guests == [GuestView("d", "D")]
