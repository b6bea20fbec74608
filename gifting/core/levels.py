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
    """The highest level a debit of ``coins`` that brought the total to ``lifetime`` reached.

    ``None`` when it crossed no threshold (see :func:`levels_reached` for all).
    """
    reached = levels_reached(catalog, lifetime, coins)
    return reached[-1] if reached else None


def levels_reached(catalog: Catalog, lifetime: int, coins: int) -> list[int]:
    """Every level whose threshold a debit of ``coins`` (total now ``lifetime``) crossed.

    Ascending; empty when it crossed none. Each causes its own ``level_up``:
    a debit that crosses several thresholds at once announces each of them.
    """
    before = bisect.bisect_right(catalog.level_thresholds, lifetime - coins)
    after = bisect.bisect_right(catalog.level_thresholds, lifetime)
    return [catalog.levels[i].level for i in range(before, after)]


def level_up_event_id(spend_event: str, level: int | None = None) -> str:
    """The id of the ``level_up`` to ``level`` caused by spend ``spend_event``.

    ``e...`` -> ``l...`` for the highest level the spend reached (``level``
    None or that level: the id every version gave it), ``l....<level>`` for
    a lower one the same spend crossed. Deterministic, so the hub and the
    persister's repair emit the same events, once each (the room's emission
    marker is per event id).
    """
    return "l" + spend_event[1:] + ("" if level is None else f".{level}")


def level_up_event_ids(
    catalog: Catalog, spend_event: str, lifetime: int, coins: int
) -> list[tuple[str, int]]:
    """(event id, level) of every ``level_up`` a spend causes, lowest level first."""
    reached = levels_reached(catalog, lifetime, coins)
    return [
        (level_up_event_id(spend_event, None if level == reached[-1] else level), level)
        for level in reached
    ]


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
