"""Gifter levels: lifetime coins spent set a level; crossing a threshold is a ``level_up``.

Pure. spend.lua keeps each user's lifetime coins spent (``lifetime`` in the
wallet hash, every spend counted: gifts, effects, highlights, badges, a
creator's own effects) and writes the total after the debit on the spend's
outbox entry. Everything here derives from that one number and the
catalog's ladder (``levels``): the level shown on the sender's events, and
whether this debit is the one that moved the total across a threshold. Only
one debit can be, so the ``level_up`` it causes is decided atomically with
the debit, and its event id derives from the spend's: the hub's emission and
the persister's repair emit it once between them.
"""

from __future__ import annotations

import bisect
from typing import Any

from gifting.core.catalog_model import Catalog


def level_for(catalog: Catalog, lifetime: int) -> int:
    """The level of a user who spent ``lifetime`` coins in all (0 below the first threshold)."""
    i = bisect.bisect_right(catalog.level_thresholds, lifetime)
    return catalog.levels[i - 1].level if i else 0


def level_reached(catalog: Catalog, lifetime: int, coins: int) -> int | None:
    """The level a debit of ``coins`` that brought the total to ``lifetime`` crossed into.

    ``None`` when it crossed no threshold. A debit that crosses several
    thresholds at once reaches the highest: one ``level_up`` announces it.
    """
    after = level_for(catalog, lifetime)
    return after if after > level_for(catalog, lifetime - coins) else None


def level_up_event_id(spend_event: str) -> str:
    """The id of the ``level_up`` caused by spend ``spend_event`` (``e...`` -> ``l...``).

    Deterministic, so the hub and the persister's repair emit the same event,
    once (the room's emission marker is per event id).
    """
    return "l" + spend_event[1:]


def level_up_event(
    stream: str, event: str, ts: int, user: str, name: str, level: int
) -> dict[str, Any]:
    """``user`` reached ``level`` (``name``: their display name, for overlays)."""
    return {
        "kind": "level_up",
        "stream": stream,
        "event": event,
        "ts": ts,
        "user": user,
        "name": name or user,
        "level": level,
    }
