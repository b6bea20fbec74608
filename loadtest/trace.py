"""Gift traces: a JSON-lines record of who sent which gift to which room, when.

The format (documented in loadtest/README.md):

* line 1, the header: ``{"format": "gifting-trace", "version": 1, ...}`` with
  optional ``description``, ``duration_ms``, ``rooms`` (room names in order)
  and ``funds`` (symbolic sender -> coins to fund them with; senders not
  listed are funded to cover every gift they send);
* then one line per gift, in time order::

      {"t_ms": 1250, "room": "r1", "sender": "u17", "gift": "rose", "count": 1, "id": "u17-3"}

  ``t_ms`` is milliseconds since the start (non-decreasing); ``room`` and
  ``sender`` are symbolic names, mapped to real streams and users at replay (a
  sender is one viewer per room it sends in); ``id`` is the client message id,
  optional (default: ``<sender>-<line>``) — the same sender and id twice is a
  retry, which must get the original ack and debit nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

__all__ = ["FORMAT", "Trace", "TraceError", "TraceEvent", "TraceWriter", "read_trace"]

FORMAT: Final = "gifting-trace"
VERSION: Final = 1
_NAME = re.compile(r"[A-Za-z0-9._~@+\-=!#$%&*^|]{1,24}")
_ID = re.compile(r"[A-Za-z0-9._~@+\-/=!#$%&*^|]{1,48}")
_EVENT_FIELDS: Final = frozenset({"t_ms", "room", "sender", "gift", "count", "id"})


class TraceError(ValueError):
    """A trace file that does not follow the format (with the line number)."""


@dataclass(frozen=True, slots=True)
class TraceEvent:
    """One gift of a trace."""

    t_ms: float
    room: str
    sender: str
    gift: str
    count: int
    id: str

    def to_json(self) -> str:
        """The event's line (without the newline)."""
        t = int(self.t_ms) if float(self.t_ms).is_integer() else round(self.t_ms, 3)
        return json.dumps(
            {"t_ms": t, "room": self.room, "sender": self.sender, "gift": self.gift,
             "count": self.count, "id": self.id},
            separators=(",", ":"),
        )  # fmt: skip


@dataclass
class Trace:
    """A parsed trace: its header and its events in time order."""

    header: dict[str, Any]
    events: list[TraceEvent]
    rooms: list[str] = field(default_factory=list)

    @property
    def duration_ms(self) -> float:
        """The time of the last event (or the header's ``duration_ms`` if later)."""
        last = self.events[-1].t_ms if self.events else 0.0
        return max(last, float(self.header.get("duration_ms", 0) or 0))

    @property
    def funds(self) -> dict[str, int]:
        """Symbolic sender -> coins, for senders funded on purpose (e.g. low)."""
        raw = self.header.get("funds") or {}
        return {str(k): int(v) for k, v in raw.items()}

    def senders_by_room(self) -> dict[str, list[str]]:
        """Each room's senders in order of first appearance."""
        out: dict[str, dict[str, None]] = {r: {} for r in self.rooms}
        for e in self.events:
            out.setdefault(e.room, {})[e.sender] = None
        return {room: list(senders) for room, senders in out.items()}


def _fail(path: Path | str, line: int, why: str) -> TraceError:
    return TraceError(f"{path}:{line}: {why}")


def _parse_header(path: Path | str, text: str) -> dict[str, Any]:
    try:
        header = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(path, 1, f"the header is not JSON ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise _fail(path, 1, f'the header must be an object with "format": "{FORMAT}"')
    if header.get("version") != VERSION:
        raise _fail(path, 1, f"unsupported version {header.get('version')!r} (want {VERSION})")
    return header


def _parse_event(path: Path | str, n: int, text: str, last_t: float) -> TraceEvent:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(path, n, f"not JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise _fail(path, n, "an event must be a JSON object")
    unknown = set(raw) - _EVENT_FIELDS
    if unknown:
        raise _fail(path, n, f"unknown field(s) {sorted(unknown)}")
    t = raw.get("t_ms")
    if isinstance(t, bool) or not isinstance(t, int | float) or t < 0:
        raise _fail(path, n, "t_ms must be a non-negative number")
    if t < last_t:
        raise _fail(path, n, f"t_ms goes back in time ({t} after {last_t})")
    for name in ("room", "sender"):
        if not isinstance(raw.get(name), str) or not _NAME.fullmatch(raw[name]):
            raise _fail(
                path, n, f"{name} must be a name of 1-24 letters, digits or ._~@+-=!#$%&*^|"
            )
    if not isinstance(raw.get("gift"), str) or not raw["gift"]:
        raise _fail(path, n, "gift must be a gift id")
    count = raw.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise _fail(path, n, "count must be a positive integer")
    ident = raw.get("id", f"{raw['sender']}-{n}")
    if not isinstance(ident, str) or not _ID.fullmatch(ident):
        raise _fail(path, n, "id must be 1-48 id characters (no spaces, braces, colons, quotes)")
    return TraceEvent(float(t), raw["room"], raw["sender"], raw["gift"], count, ident)


def read_trace(path: Path | str) -> Trace:
    """Read and validate a trace file; raise :class:`TraceError` naming the bad line."""
    events: list[TraceEvent] = []
    header: dict[str, Any] | None = None
    last_t = 0.0
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            text = line.strip()
            if not text:
                continue
            if header is None:
                header = _parse_header(path, text)
                continue
            event = _parse_event(path, n, text, last_t)
            last_t = event.t_ms
            events.append(event)
    if header is None:
        raise TraceError(f"{path}: empty file (no header)")
    rooms = [str(r) for r in header.get("rooms") or []]
    for e in events:
        if e.room not in rooms:
            rooms.append(e.room)
    return Trace(header, events, rooms)


class TraceWriter:
    """Writes a trace: the header first, then events (in time order)."""

    def __init__(self, out: IO[str], **header: Any) -> None:
        self._out = out
        self._out.write(json.dumps({"format": FORMAT, "version": VERSION, **header}) + "\n")

    def write(self, event: TraceEvent) -> None:
        """Append one event."""
        self._out.write(event.to_json() + "\n")

    def write_all(self, events: Iterable[TraceEvent]) -> None:
        """Append events."""
        for e in events:
            self.write(e)
