"""Guests of a live stream (multi-guest LIVE): who besides the host may receive gifts. Pure.

The stream's creator sets the list (``PUT /v1/streams/{id}/guests``): at most
:data:`MAX_GUESTS` users, each a valid id, none twice, never the creator. It
is stored as one JSON field of the stream hash (:meth:`gifting.store.streams.
Streams.set_guests`), read with the live flag once per spend batch, and a
gift's ``to`` must name a current guest (``unknown_receiver`` otherwise). A
guest's display name rides on the list so the room can show who received.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from gifting.core.errors import BadRequest
from gifting.core.ids import check_id

#: The most guests a stream may have at once (besides its host).
MAX_GUESTS: Final = 8
#: The longest display name a guest may be given.
MAX_GUEST_NAME: Final = 64


@dataclass(frozen=True, slots=True)
class Guest:
    """One guest: a user id and the name the room shows (the id when not given)."""

    user: str
    name: str

    def view(self) -> dict[str, str]:
        """``{"user","name"}`` as the API, the snapshot and the ``guests`` event show it."""
        return {"user": self.user, "name": self.name}


def check_guests(creator: str, guests: Iterable[tuple[object, object]]) -> tuple[Guest, ...]:
    """Validate a new guest list of ``(user, name | None)`` pairs for ``creator``'s stream.

    Raises :class:`BadRequest` naming what is wrong: more than :data:`MAX_GUESTS`,
    a bad id, a name that is empty, too long or holds control characters, the
    same user twice, or the creator among them.
    """
    out: list[Guest] = []
    seen: set[str] = set()
    for user, name in guests:
        user = check_id(user, "guest")
        if name is None:
            name = user
        if not isinstance(name, str) or not name:
            raise BadRequest("a guest's name must be a non-empty string")
        if len(name) > MAX_GUEST_NAME or any(ord(c) < 32 for c in name):
            raise BadRequest(
                f"a guest's name must be at most {MAX_GUEST_NAME} characters, "
                "without control characters"
            )
        if user == creator:
            raise BadRequest("the stream's creator is its host, not a guest")
        if user in seen:
            raise BadRequest(f"guest {user!r} is listed twice")
        seen.add(user)
        out.append(Guest(user, name))
    if len(out) > MAX_GUESTS:
        raise BadRequest(f"a stream has at most {MAX_GUESTS} guests")
    return tuple(out)


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(list[tuple[str, str]])


def encode_guests(guests: Sequence[Guest]) -> str:
    """The stored form of a guest list: JSON ``[[user, name], ...]``."""
    return _encoder.encode([(g.user, g.name) for g in guests]).decode()


def decode_guests(raw: bytes | str | None) -> tuple[Guest, ...]:
    """A stored guest list (``None`` or empty: no guests); a damaged one reads as none."""
    if not raw:
        return ()
    try:
        return tuple(Guest(u, n) for u, n in _decoder.decode(raw))
    except msgspec.DecodeError:
        return ()


def guest_names(guests: Iterable[Guest]) -> dict[str, str]:
    """``user -> name`` of a guest list (what the spend batch checks ``to`` against)."""
    return {g.user: g.name for g in guests}


def guests_view(guests: Iterable[Guest]) -> list[dict[str, str]]:
    """The list as the API and the room show it."""
    return [g.view() for g in guests]


def guests_event(stream: str, event: str, ts: int, guests: Sequence[Guest]) -> dict[str, Any]:
    """The ``guests`` room event: the stream's guest list changed (the whole new list)."""
    return {
        "kind": "guests",
        "stream": stream,
        "event": event,
        "ts": ts,
        "guests": guests_view(guests),
    }
