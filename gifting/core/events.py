"""Room events: the bodies the hub emits, built from settled ledger entries.

Pure. The same function builds the event of a spend on the fast path (the hub,
right after the ack) and on the repair path (the persister, from the outbox
entry of a spend whose hub died), so both emit the same body.
"""

from __future__ import annotations

import hashlib
from typing import Any

from gifting.core.badges import BadgeView, badge_view
from gifting.core.boxes import box_dropped_event, params_of
from gifting.core.catalog import Catalog
from gifting.core.entries import SpendEntry
from gifting.core.levels import level_for


def sender_of(
    user: str, name: str, badge: BadgeView | None = None, level: int = 0
) -> dict[str, Any]:
    """The ``sender`` object of an event; ``badge`` (the shown one) only when the user has one.

    ``level``: the sender's gifter level (:mod:`gifting.core.levels`), on every event.
    """
    out: dict[str, Any] = {"id": user, "name": name or user, "level": level}
    if badge is not None:
        out["badge"] = badge
    return out


def receiver_of(entry: SpendEntry) -> dict[str, Any]:
    """A gift's ``receiver``: ``{"id","name","guest"}`` (the host, or the guest it was sent to).

    Built from the outbox entry alone (its ``creator`` is who was credited,
    ``receiver_name`` their name), so the hub and the persister's repair
    show the same. ``guest``: whether the receiver is a guest, not the host.
    """
    return {
        "id": entry.creator,
        "name": entry.receiver_name or entry.creator,
        "guest": bool(entry.host),
    }


def spend_event(entry: SpendEntry, catalog: Catalog) -> dict[str, Any]:
    """The room event body of a settled spend outbox entry (gift, effect or highlight)."""
    kind = entry.kind
    body: dict[str, Any] = {
        "kind": kind,
        "stream": entry.stream,
        "event": entry.event,
        "ts": entry.ts,
        "sender": sender_of(
            entry.user,
            entry.name,
            badge_view(catalog, entry.badge),
            level_for(catalog, entry.lifetime),
        ),
        "coins": entry.coins,
    }
    item = entry.item
    if kind == "box":  # a treasure box: its drop's event is ``box_dropped`` (gifting.core.boxes)
        return box_dropped_event(
            entry.stream, entry.event, entry.ts, body["sender"], params_of(item, entry.coins)
        )
    if kind == "gift":
        gift = catalog.gifts.get(item)
        body["gift"] = {
            "id": item,
            "name": gift.name if gift else item,
            "coins": entry.unit,
            "tier": gift.tier if gift else 1,
            "streakable": gift.streakable if gift else False,
        }
        body["count"] = entry.count
        body["combo"] = entry.combo
        body["receiver"] = receiver_of(entry)
    elif kind == "effect":
        effect = catalog.effects.get(item)
        body["effect"] = {
            "id": item,
            "name": effect.name if effect else item,
            "duration_ms": effect.duration_ms if effect else 0,
        }
    elif kind == "highlight":
        tier = catalog.highlights.get(item)
        body["highlight"] = {
            "tier": item,
            "pin_ms": tier.pin_ms if tier else 0,
            "level": highlight_level(catalog, item),
        }
        body["text"] = entry.text
    return body


def highlight_level(catalog: Catalog, tier: str) -> int:
    """The rank of highlight ``tier`` by price (1 = the cheapest; 0 if not in the catalog).

    Overlays pin by it: a higher level is never taken down for a lower one.
    """
    prices = sorted({h.coins for h in catalog.highlights.values()})
    found = catalog.highlights.get(tier)
    return prices.index(found.coins) + 1 if found else 0


def comment_event(
    stream: str, event: str, ts: int, sender: dict[str, Any], text: str
) -> dict[str, Any]:
    """A free comment."""
    return {
        "kind": "comment",
        "stream": stream,
        "event": event,
        "ts": ts,
        "sender": sender,
        "text": text,
    }


def streak_end_event(
    stream: str, event: str, ts: int, sender: dict[str, Any], gift: str, combo: int
) -> dict[str, Any]:
    """Closes a gift streak: no more of ``gift`` from ``sender`` within the combo window."""
    return {
        "kind": "streak_end",
        "stream": stream,
        "event": event,
        "ts": ts,
        "sender": sender,
        "gift": {"id": gift},
        "combo": combo,
    }


def leaderboard_event(
    stream: str, event: str, ts: int, top: list[dict[str, Any]]
) -> dict[str, Any]:
    """The top gifters of the stream."""
    return {"kind": "leaderboard", "stream": stream, "event": event, "ts": ts, "top": top}


def stream_ended_event(stream: str, event: str, ts: int) -> dict[str, Any]:
    """The creator ended the stream; connections close after it."""
    return {"kind": "stream_ended", "stream": stream, "event": event, "ts": ts}


def hidden_event_id(target: str) -> str:
    """The id of the ``hidden`` event of room event ``target`` (one per target: idempotent)."""
    return "h" + hashlib.sha256(target.encode()).hexdigest()[:32]


def hidden_event(stream: str, event: str, ts: int, target: str) -> dict[str, Any]:
    """A moderator hid room event ``target`` (a comment or highlight): overlays take it down."""
    return {"kind": "hidden", "stream": stream, "event": event, "ts": ts, "target": target}


def video_gift_event(entry: SpendEntry, catalog: Catalog) -> dict[str, Any]:
    """The ``video_gift`` event of a settled gift on a video (its creator's webhooks get it)."""
    gift = catalog.gifts.get(entry.item)
    return {
        "kind": "video_gift",
        "video": entry.video,
        "creator": entry.creator,
        "event": entry.event,
        "ts": entry.ts,
        "sender": sender_of(
            entry.user,
            entry.name,
            badge_view(catalog, entry.badge),
            level_for(catalog, entry.lifetime),
        ),
        "gift": {
            "id": entry.item,
            "name": gift.name if gift else entry.item,
            "coins": entry.unit,
            "tier": gift.tier if gift else 1,
        },
        "count": entry.count,
        "coins": entry.coins,
    }
