"""Gift streaks: the state a streak's end is decided from, and the event it becomes.

Pure. spend.lua counts the combo and, for every streakable gift, schedules
the streak's end in its shard's deadline set (gifting/store/deadlines.py):
``"streak|<combo hash key>"``, the hash holding the streak as its last gift
left it (a gift continuing the streak moves the member's time), or, for a
streak a new one replaced in the hash before it was ended,
``"streak|<json>"`` with its state. The ``streak_end`` has an id derived
from the streak's last gift: whichever process runs the deadline, the room
shows it once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from gifting.core.badges import badge_view
from gifting.core.catalog_model import Catalog
from gifting.core.errors import BadRequest
from gifting.core.events import sender_of, streak_end_event
from gifting.core.levels import level_for


class _State(msgspec.Struct, frozen=True):
    u: str  # sender
    n: str  # sender's display name
    s: str  # stream
    g: str  # gift id
    c: str  # combo after the last gift
    t: str  # the last gift's time, unix ms
    e: str  # the last gift's event id
    l: str  # noqa: E741 - the sender's lifetime coins after it
    b: str = ""  # the badge shown on it


@dataclass(frozen=True, slots=True)
class Streak:
    """A streak as its last gift left it."""

    sender: str
    name: str
    stream: str
    gift: str
    combo: int
    last_ms: int
    last_event: str
    lifetime: int
    badge: str


_decode = msgspec.json.Decoder(_State)


def streak_of_hash(user: str, stream: str, fields: Mapping[str, str]) -> Streak | None:
    """The streak a combo hash holds (``None``: none, or one from before its fields)."""
    try:
        return Streak(
            user, fields.get("name") or user, stream, fields["gift"], int(fields["count"]),
            int(fields["last"]), fields["event"], int(fields.get("lifetime") or 0),
            fields.get("badge", ""),
        )  # fmt: skip
    except (KeyError, ValueError):
        return None


def parse_streak(raw: str) -> Streak:
    """The streak in a deadline member's rest (spend.lua's JSON); raise BadRequest if malformed."""
    try:
        st = _decode.decode(raw)
        return Streak(
            st.u, st.n, st.s, st.g, int(st.c), int(st.t), st.e, int(st.l), st.b
        )  # fmt: skip
    except (msgspec.DecodeError, ValueError) as exc:
        raise BadRequest(f"malformed streak deadline: {exc}") from None


def streak_end_event_id(last_event: str) -> str:
    """The id of the ``streak_end`` of a streak whose last gift was ``last_event`` (e.. -> k..)."""
    return "k" + last_event[1:]


def streak_end_body(catalog: Catalog, streak: Streak, window_ms: int) -> dict[str, Any]:
    """The ``streak_end`` room event of ``streak``, dated when its window closed."""
    sender = sender_of(
        streak.sender, streak.name, badge_view(catalog, streak.badge),
        level=level_for(catalog, streak.lifetime),
    )  # fmt: skip
    return streak_end_event(
        streak.stream, streak_end_event_id(streak.last_event), streak.last_ms + window_ms,
        sender, streak.gift, streak.combo,
    )  # fmt: skip
