"""Room hype (momentum): when it starts, how it levels up, when it ends; its events.

Pure. The rules, which emit.lua applies on a spend's first emission (its
"Hype" section; Redis's clock):

- While no hype runs, the room keeps the spends of the last ``window_s``
  (coins someone is credited for, by sender). When at least ``gifters``
  distinct senders spent at least ``coins`` within the window, a hype starts at
  level 1 with the window's coins as its progress, and the window is let go:
  a running hype costs a spend one read and one write in Redis.
- Level ``n``'s target is ``levels[n - 1]``. Every later spend adds its coins;
  reaching the target moves to level ``n + 1`` with what is left over (one
  spend may cross several levels; each is announced). The last level has no
  next: its progress keeps counting.
- Each of those spends also moves the expiry to ``window_s`` after it. At the
  expiry the hype ends (``hype_ended``): the ``hype|<stream>`` deadline does
  it (gifting/store/hype.py), or the next spend if it comes first. The window
  starts empty again: the next hype needs momentum of its own (a spend that
  ends a hype inline is the first of the new window).

Ids derive from the spend that started the hype (its *instance*): ``hype``
of level n is ``h<rest>.<n>``, ``hype_ended`` is ``h<rest>.end``. emit.lua
builds the same bodies as the functions below.
"""

from __future__ import annotations

from typing import Any

from gifting.core.catalog_model import Hype


def hype_instance(spend_event: str) -> str:
    """The id of the hype the spend ``spend_event`` started (``e...`` -> ``h...``)."""
    return "h" + spend_event[1:]


def hype_config(hype: Hype | None) -> str:
    """The catalog's hype as emit.lua reads it: ``gifters,coins,window_ms,level1,...``
    (empty: no hype)."""
    if hype is None:
        return ""
    return ",".join(str(n) for n in (hype.gifters, hype.coins, hype.window_s * 1000, *hype.levels))


def hype_event(
    stream: str, instance: str, ts: int, level: int, progress: int, target: int, expires_at: int
) -> dict[str, Any]:
    """The hype ``instance`` reached ``level`` (announced once per level)."""
    return {
        "kind": "hype",
        "stream": stream,
        "event": f"{instance}.{level}",
        "ts": ts,
        "level": level,
        "progress": progress,
        "target": target,
        "expires_at": expires_at,
    }


def hype_progress_event(
    stream: str, event: str, ts: int, level: int, progress: int, target: int, expires_at: int
) -> dict[str, Any]:
    """Where a running hype stands (at most once a second per busy room, from the ticker)."""
    return {
        "kind": "hype_progress",
        "stream": stream,
        "event": event,
        "ts": ts,
        "level": level,
        "progress": progress,
        "target": target,
        "expires_at": expires_at,
    }


def hype_ended_event(stream: str, instance: str, ts: int, level: int) -> dict[str, Any]:
    """The hype ``instance`` ran out at ``level`` (once)."""
    return {
        "kind": "hype_ended",
        "stream": stream,
        "event": f"{instance}.end",
        "ts": ts,
        "level": level,
    }
