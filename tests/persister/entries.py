"""Outbox entries shaped exactly like the Lua scripts write them (for the pure tests)."""

from __future__ import annotations

import itertools

_seq = itertools.count(1)
TS = 1_764_000_000_000


def event_id() -> str:
    """A fresh event id in the ledger's format."""
    return f"e{TS:011x}{next(_seq):012x}"


def purchase(user: str = "alice", coins: int = 70, event: str | None = None) -> dict[str, str]:
    """A purchase.lua entry."""
    return {
        "type": "purchase",
        "user": user,
        "purchase_id": f"p{next(_seq)}",
        "package": "coins_70",
        "coins": str(coins),
        "amount": "99",
        "currency": "USD",
        "event": event or event_id(),
        "ts": str(TS),
        "balance": str(coins),
    }


def refund(user: str = "alice", coins: int = 70) -> dict[str, str]:
    """A refund.lua entry (the balance may be negative)."""
    return {
        "type": "refund",
        "user": user,
        "purchase_id": f"p{next(_seq)}",
        "coins": str(coins),
        "event": event_id(),
        "ts": str(TS),
        "balance": "-5",
    }


def spend(
    user: str = "alice",
    creator: str = "bob",
    *,
    kind: str = "gift",
    item: str = "rose",
    unit: int = 1,
    count: int = 1,
    stream: str = "s1",
    event: str | None = None,
) -> dict[str, str]:
    """A spend.lua entry (badges: no stream, no creator)."""
    if kind == "badge":
        creator, stream = "", ""
    return {
        "type": "spend",
        "user": user,
        "name": user.title(),
        "client_id": f"m{next(_seq)}",
        "kind": kind,
        "item": item,
        "count": str(count),
        "unit": str(unit),
        "coins": str(unit * count),
        "stream": stream,
        "creator": creator,
        "event": event or event_id(),
        "ts": str(TS),
        "balance": "100",
        "combo": "1",
    }


def credit(spend_entry: dict[str, str], diamonds: int) -> dict[str, str]:
    """The credit.lua entry crediting the creator of ``spend_entry``."""
    return {
        "type": "credit",
        "user": spend_entry["creator"],
        "spend_event": spend_entry["event"],
        "coins": spend_entry["coins"],
        "stream": spend_entry["stream"],
        "sender": spend_entry["user"],
        "diamonds": str(diamonds),
        "event": "c" + spend_entry["event"][1:],
        "ts": str(TS),
    }


def hold(user: str = "bob", diamonds: int = 2000, cashout: str | None = None) -> dict[str, str]:
    """A cashout_hold.lua entry."""
    return {
        "type": "cashout_hold",
        "user": user,
        "cashout": cashout or f"co01-{next(_seq)}",
        "diamonds": str(diamonds),
        "amount": str(diamonds // 2),
        "currency": "USD",
        "event": event_id(),
        "ts": str(TS),
    }


def settle(hold_entry: dict[str, str], outcome: str = "paid") -> dict[str, str]:
    """A cashout_settle.lua entry for ``hold_entry``."""
    return {
        "type": f"cashout_{outcome}",
        "user": hold_entry["user"],
        "cashout": hold_entry["cashout"],
        "diamonds": hold_entry["diamonds"],
        "event": event_id(),
        "ts": str(TS),
    }
