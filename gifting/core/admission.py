"""Connection caps: how many connections one holder may keep open on this hub. Pure: no I/O.

A holder is a user (a viewer's token), an overlay key (one stream's overlays)
or a client address, each with its own cap. The endpoint takes a
:class:`Ticket` per connection, admits it under each holder as soon as it
knows them (the address first, the user or the stream once checked) and
releases all of them when the connection ends. A connection past a cap gets
:class:`~gifting.core.errors.TooManyConnections` (``rate_limited``, close 1013:
come back later). The counts are this process's: with N hubs behind a load
balancer a holder may keep up to N times the cap in all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

from gifting.core.errors import TooManyConnections

Scope = Literal["address", "user", "overlay"]
SCOPES: Final[tuple[Scope, ...]] = ("address", "user", "overlay")
#: What a refused connection is told to wait before trying again.
RETRY_AFTER_MS: Final = 1000
_WHO: Final[dict[Scope, str]] = {
    "address": "from this address",
    "user": "for this user",
    "overlay": "for this overlay key",
}


class ConnectionCaps:
    """Open connections per holder, against a cap per scope; a count that drops to 0 is
    forgotten, so memory follows the open connections."""

    __slots__ = ("_counts", "caps")

    def __init__(self, caps: Mapping[Scope, int]) -> None:
        self.caps = dict(caps)
        self._counts: dict[Scope, dict[str, int]] = {scope: {} for scope in SCOPES}

    def count(self, scope: Scope, holder: str) -> int:
        """How many connections ``holder`` has open in ``scope``."""
        return self._counts[scope].get(holder, 0)

    def ticket(self) -> Ticket:
        """A new connection's ticket (release it when the connection ends)."""
        return Ticket(self)

    def _admit(self, scope: Scope, holder: str) -> None:
        counts = self._counts[scope]
        held = counts.get(holder, 0)
        cap = self.caps[scope]
        if held >= cap:
            raise TooManyConnections(
                f"too many connections {_WHO[scope]} (at most {cap} per server); try later",
                scope,
                RETRY_AFTER_MS,
            )
        counts[holder] = held + 1

    def _release(self, scope: Scope, holder: str) -> None:
        counts = self._counts[scope]
        held = counts.get(holder, 0) - 1
        if held > 0:
            counts[holder] = held
        else:
            counts.pop(holder, None)


class Ticket:
    """The holders one connection is counted under."""

    __slots__ = ("_caps", "_held")

    def __init__(self, caps: ConnectionCaps) -> None:
        self._caps = caps
        self._held: list[tuple[Scope, str]] = []

    def admit(self, scope: Scope, holder: str) -> None:
        """Count the connection under ``holder``, or raise TooManyConnections."""
        self._caps._admit(scope, holder)
        self._held.append((scope, holder))

    def release(self) -> None:
        """The connection ended: give back every slot it held (idempotent)."""
        held, self._held = self._held, []
        for scope, holder in held:
            self._caps._release(scope, holder)
