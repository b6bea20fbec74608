"""The audit's treasure-box side: coins dropped = claimed + returned + in open boxes.

Read from PostgreSQL only, per box: the drop (a ``spend`` of kind ``box``),
its claim credits (``box_claim``, one per claimer) and its return
(``box_return``, written once when the box settles, 0 coins included, with
the coins and number of claims it sealed with). A box with a return is
settled, else open. The rules (:func:`box_problems`):

* a box's claims are at most its winners, and their coins at most its coins;
* a settled box: returned + claimed (as sealed) = dropped, and the claim
  credits persisted are exactly the ones it sealed with (count and coins);
* over all boxes: the ``boxes:escrow`` account (postings) = coins dropped −
  claimed − returned (payloads), i.e. the coins in open boxes.

Exact at any moment for what the snapshot holds, except for the pieces of
one box living in other shards' outboxes (a claim credit in the claimer's,
the return in the dropper's), persisted independently. A box that is short
of a piece is therefore looked at again once every outbox was persisted
through the id it last generated (:func:`gifting.persister.progress.last_ids`):
the close writes every claim credit before the return, so by then a missing
piece is in the ledger or lost (reported).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from gifting.persister.writer import Connection

__all__ = ["BoxRow", "box_problems", "in_flight", "read_boxes"]

_BOXES: Final = """
WITH d AS (
  SELECT 'q' || substr(event_id, 2) AS box, (payload->>'coins')::bigint AS coins,
         split_part(payload->>'item', ':', 1)::bigint AS winners
  FROM ledger_events WHERE type = 'spend' AND payload->>'kind' = 'box'
), c AS (
  SELECT payload->>'box' AS box, SUM((payload->>'coins')::bigint)::bigint AS claimed,
         COUNT(*)::bigint AS claims
  FROM ledger_events WHERE type = 'box_claim' GROUP BY 1
), r AS (
  SELECT payload->>'box' AS box, (payload->>'coins')::bigint AS returned,
         (payload->>'claimed')::bigint AS sealed_claimed,
         (payload->>'claims')::bigint AS sealed_claims
  FROM ledger_events WHERE type = 'box_return'
)
SELECT COALESCE(d.box, c.box, r.box) AS box, d.coins, d.winners,
       COALESCE(c.claimed, 0) AS claimed, COALESCE(c.claims, 0) AS claims,
       r.returned, r.sealed_claimed, r.sealed_claims
FROM d FULL JOIN c ON c.box = d.box FULL JOIN r ON r.box = COALESCE(d.box, c.box)
"""


_SOME_BOXES: Final = _BOXES.replace(
    "FROM d FULL JOIN", "FROM (SELECT * FROM d WHERE box = ANY($1::text[])) d FULL JOIN"
)


@dataclass(frozen=True, slots=True)
class BoxRow:
    """One box as the ledger holds it (``None``: that piece is not persisted)."""

    box: str
    coins: int | None
    winners: int | None
    claimed: int
    claims: int
    returned: int | None
    sealed_claimed: int | None
    sealed_claims: int | None

    @property
    def settled(self) -> bool:
        """Whether the box's return is persisted (it settled)."""
        return self.returned is not None

    @property
    def open_coins(self) -> int:
        """The coins still in the box as the ledger sees it (0 once settled)."""
        if self.settled or self.coins is None:
            return 0
        return self.coins - self.claimed


def _opt(value: object) -> int | None:
    return None if value is None else int(str(value))


async def read_boxes(conn: Connection, only: Sequence[str] | None = None) -> list[BoxRow]:
    """Every box of the ledger (or those named in ``only``), with its pieces."""
    if only is None:
        rows = await conn.fetch(_BOXES)
    else:
        rows = await conn.fetch(_SOME_BOXES, list(only))
    return [
        BoxRow(
            str(r["box"]),
            _opt(r["coins"]),
            _opt(r["winners"]),
            int(r["claimed"]),
            int(r["claims"]),
            _opt(r["returned"]),
            _opt(r["sealed_claimed"]),
            _opt(r["sealed_claims"]),
        )
        for r in rows
    ]


def in_flight(b: BoxRow) -> bool:
    """Whether a piece of the box may still be on its way to the ledger (look again later)."""
    # Its claims or return persisted before its drop, or claim credits of other
    # shards not persisted yet.
    return b.coins is None or (
        b.settled and (b.claims, b.claimed) != (b.sealed_claims, b.sealed_claimed)
    )


def box_problems(b: BoxRow) -> list[tuple[str, int, int, str]]:
    """Every broken rule of one box: ``(account, expected, found, note)``, figures differing."""
    name = f"box:{b.box}"
    if b.coins is None or b.winners is None:
        return [(f"{name}:dropped", 1, 0, "claims or a return without a drop")]
    out: list[tuple[str, int, int, str]] = []
    if b.claims > b.winners:
        out.append((f"{name}:claims", b.winners, b.claims, "more claims than winners"))
    if b.claimed > b.coins:
        out.append((f"{name}:claimed", b.coins, b.claimed, "more coins claimed than dropped"))
    if b.returned is not None:
        sealed_coins, sealed_claims = b.sealed_claimed or 0, b.sealed_claims or 0
        out.append((f"{name}:returned+claimed", b.coins, b.returned + sealed_coins, "settled"))
        out.append((f"{name}:claims", sealed_claims, b.claims, "claim credits persisted"))
        out.append((f"{name}:claimed", sealed_coins, b.claimed, "coins of the claim credits"))
    return [p for p in out if p[1] != p[2]]
