"""Treasure boxes: the rules, ids and event bodies. Pure: no I/O.

A viewer drops a box of N coins for at most K winners that opens D seconds
later (DESIGN.md §10). The drop is a spend of kind ``box`` (spend.lua: the
dropper's id, budget, blocks, live gate) with no payee: its coins go to the
``boxes:escrow`` account, never to the creator. Its item ``"<K>:<D>"``
carries the box's parameters, so the spend's fingerprint covers them (the
same id with other parameters is a ``conflict``).

Every id of a box derives from the drop's event id, so the hub, the
persister's repair and every deadline run compute the same ones and each
step is idempotent by them:

=================  =====================================
what               id
=================  =====================================
the box            ``q`` + drop event[1:]
``box_dropped``    the drop's own event id
``box_opened``     ``qo`` + drop event[1:]
``box_closed``     ``qc`` + drop event[1:]
claim credit       ``qk`` + digest(box, claimer)  (also the ``box_claimed`` event)
return             ``qr`` + drop event[1:]
=================  =====================================

Shares: claim ``i`` (1-based, in claim order) of a box of N coins for K
winners gets ``N // K + (1 if i <= N % K else 0)``: shares differ by at most
one coin, K claims take exactly N, and what fewer claimers leave returns to
the dropper at the close.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Final

from gifting.core.errors import BadRequest
from gifting.core.money import MAX_SPEND_COINS
from gifting.core.pricing import Priced

MIN_COINS: Final = 100
MAX_WINNERS: Final = 100
MIN_OPENS_IN_S: Final = 10
MAX_OPENS_IN_S: Final = 300
#: How long a box stays open for claims.
CLAIM_WINDOW_MS: Final = 30_000
#: How long a settled box's state stays in Redis (display, replays of late claims).
SETTLED_TTL_S: Final = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class BoxParams:
    """What a drop asks for: N coins, K winners, opening D seconds after the drop."""

    coins: int
    winners: int
    opens_in_s: int

    @property
    def item(self) -> str:
        """The spend's item: ``"<K>:<D>"`` (the coins are the spend's own)."""
        return f"{self.winners}:{self.opens_in_s}"


def _whole(value: object, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{name} must be an integer")
    if not lo <= value <= hi:
        raise BadRequest(f"{name} must be between {lo} and {hi}")
    return value


def check_box(coins: object, winners: object, opens_in_s: object) -> BoxParams:
    """Validate a drop's parameters (N >= 100, 1 <= K <= 100, 10 <= D <= 300) or raise."""
    return BoxParams(
        _whole(coins, "coins", MIN_COINS, MAX_SPEND_COINS),
        _whole(winners, "winners", 1, MAX_WINNERS),
        _whole(opens_in_s, "opens_in_s", MIN_OPENS_IN_S, MAX_OPENS_IN_S),
    )


def price_box(coins: object, winners: object, opens_in_s: object) -> Priced:
    """The spend of a box drop: kind ``box``, item ``"<K>:<D>"``, one unit of N coins."""
    p = check_box(coins, winners, opens_in_s)
    return Priced("box", p.item, "Treasure box", p.coins, 1, p.coins)


def params_of(item: str, coins: int) -> BoxParams:
    """The parameters of a box spend from its item and coins; raise ``ValueError`` if bad."""
    winners, sep, opens = item.partition(":")
    if not sep or not winners.isdigit() or not opens.isdigit():
        raise ValueError(f"a box item is '<winners>:<opens_in_s>', not {item[:40]!r}")
    try:
        return check_box(coins, int(winners), int(opens))
    except BadRequest as exc:
        raise ValueError(exc.message) from None


def share_of(coins: int, winners: int, order: int) -> int:
    """The share of the ``order``-th claim (1-based) of a box of ``coins`` for ``winners``."""
    if not 1 <= order <= winners:
        raise ValueError("a box has no such claim")
    return coins // winners + (1 if order <= coins % winners else 0)


def opens_at(drop_ts: int, params: BoxParams) -> int:
    """When the box opens (unix ms): the drop's time + D seconds."""
    return drop_ts + params.opens_in_s * 1000


def closes_at(drop_ts: int, params: BoxParams) -> int:
    """When the box closes (unix ms): the claim window after it opens."""
    return opens_at(drop_ts, params) + CLAIM_WINDOW_MS


# -- ids -----------------------------------------------------------------------------
def box_id_of(drop_event: str) -> str:
    """The box dropped by spend ``drop_event``."""
    return "q" + drop_event[1:]


def drop_event_of(box: str) -> str:
    """The drop spend's event id of ``box`` (inverse of :func:`box_id_of`)."""
    return "e" + box[1:]


def opened_event_id(box: str) -> str:
    """The id of the box's ``box_opened`` room event."""
    return "qo" + box[1:]


def closed_event_id(box: str) -> str:
    """The id of the box's ``box_closed`` room event."""
    return "qc" + box[1:]


def return_event_id(box: str) -> str:
    """The ledger event id of the return of what nobody claimed."""
    return "qr" + box[1:]


def claim_event_id(box: str, user: str) -> str:
    """The ledger event of ``user``'s claim credit (and its ``box_claimed`` room event)."""
    pair = f"{len(box)}:{box}{len(user)}:{user}"
    return "qk" + hashlib.sha256(pair.encode()).hexdigest()[:32]


# -- deadlines -------------------------------------------------------------------------
OPEN_KIND: Final = "box_open"
CLOSE_KIND: Final = "box_close"


def task_rest(stream: str, box: str) -> str:
    """The part of a box deadline after its kind: ``<stream>|<box>``."""
    return f"{stream}|{box}"


def drop_tasks(
    stream: str, drop_event: str, drop_ts: int, item: str, coins: int
) -> list[tuple[str, int]]:
    """The two deadlines of a box drop: (``box_open|<stream>|<box>``, opens at), (close, ...)."""
    params = params_of(item, coins)
    rest = task_rest(stream, box_id_of(drop_event))
    return [
        (f"{OPEN_KIND}|{rest}", opens_at(drop_ts, params)),
        (f"{CLOSE_KIND}|{rest}", closes_at(drop_ts, params)),
    ]


def parse_task(rest: str) -> tuple[str, str]:
    """``(stream, box)`` of a box deadline's rest; raise ``ValueError`` if malformed."""
    stream, sep, box = rest.partition("|")
    if not sep or not stream or not box.startswith("q"):
        raise ValueError(f"not a box task: {rest[:80]!r}")
    return stream, box


# -- room events -----------------------------------------------------------------------
def box_dropped_event(
    stream: str, event: str, ts: int, dropper: dict[str, Any], params: BoxParams
) -> dict[str, Any]:
    """A box was dropped: who, how many coins, for how many, when it opens and closes."""
    return {
        "kind": "box_dropped", "stream": stream, "event": event, "ts": ts,
        "box": box_id_of(event), "sender": dropper, "coins": params.coins,
        "winners": params.winners, "opens_at": opens_at(ts, params),
        "closes_at": closes_at(ts, params),
    }  # fmt: skip


def box_opened_event(stream: str, box: str, ts: int, closes: int) -> dict[str, Any]:
    """The box is open: claims are taken until ``closes_at``."""
    return {
        "kind": "box_opened", "stream": stream, "event": opened_event_id(box), "ts": ts,
        "box": box, "closes_at": closes,
    }  # fmt: skip


def box_claimed_event(
    stream: str, box: str, ts: int, user: str, name: str, share: int, order: int
) -> dict[str, Any]:
    """``user`` claimed ``share`` coins (the ``order``-th claim)."""
    return {
        "kind": "box_claimed", "stream": stream, "event": claim_event_id(box, user), "ts": ts,
        "box": box, "user": user, "name": name or user, "share": share, "order": order,
    }  # fmt: skip


def box_closed_event(
    stream: str, box: str, ts: int, claimed: int, claims: int, returned: int
) -> dict[str, Any]:
    """The box closed: coins claimed (by how many) and coins returned to the dropper."""
    return {
        "kind": "box_closed", "stream": stream, "event": closed_event_id(box), "ts": ts,
        "box": box, "claimed": claimed, "claims": claims, "returned": returned,
    }  # fmt: skip
