"""Outbox entries to ledger events and balanced double-entry postings. Pure: no I/O.

The Lua scripts append one flat string map per settled money operation to an
outbox stream (see ``gifting/store/lua/*.lua``). :func:`parse_entry` validates
one such map strictly and turns it into a :class:`LedgerEvent` whose postings
sum to zero in each currency; anything it cannot vouch for raises
:class:`MalformedEntry` with a reason, and the persister sends that entry to the
dead-letter stream instead of guessing. :func:`plan_rows` turns the events of a
batch that PostgreSQL had not seen yet into the rows of every table.

Accounts (``user:<id>:coins`` etc.; ids never contain ``:``)::

    currency  account                    what it holds
    coins     user:<id>:coins            a user's spendable coins (may go negative on refund)
    coins     external:payments          minus the coins sold for real money, net of refunds
    coins     creator:<id>:received      coins of gifts, effects and highlights received
    coins     platform:revenue           coins spent on profile badges
    diamonds  user:<id>:diamonds         a creator's spendable diamonds
    diamonds  user:<id>:held             diamonds held for pending cash-outs
    diamonds  user:<id>:paid             diamonds paid out
    diamonds  platform:diamond_issuance  minus every diamond ever credited

    purchase        user:<u>:coins +c          external:payments -c
    refund          user:<u>:coins -c          external:payments +c
    spend           user:<u>:coins -c          creator:<c>:received +c  (badges: platform:revenue)
    credit          user:<c>:diamonds +d       platform:diamond_issuance -d  (none when d = 0)
    cashout_hold    user:<u>:diamonds -d       user:<u>:held +d
    cashout_paid    user:<u>:held -d           user:<u>:paid +d
    cashout_failed  user:<u>:held -d           user:<u>:diamonds +d
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Final, Literal, cast

from gifting.core.errors import BadRequest
from gifting.core.ids import check_id, credit_event_id

__all__ = [
    "DIAMOND_ISSUANCE",
    "EVENT_TYPES",
    "EXTERNAL_PAYMENTS",
    "PLATFORM_REVENUE",
    "BatchRows",
    "Currency",
    "EarningsDelta",
    "EventType",
    "LedgerEvent",
    "MalformedEntry",
    "Posting",
    "StreamDelta",
    "aggregate",
    "creator_received",
    "imbalance",
    "parse_entry",
    "plan_rows",
    "user_coins",
    "user_diamonds",
    "user_held",
    "user_paid",
]

Currency = Literal["coins", "diamonds"]
EventType = Literal[
    "purchase", "refund", "spend", "credit", "cashout_hold", "cashout_paid", "cashout_failed"
]
EVENT_TYPES: Final[frozenset[str]] = frozenset(
    ("purchase", "refund", "spend", "credit", "cashout_hold", "cashout_paid", "cashout_failed")
)
SPEND_KINDS: Final[frozenset[str]] = frozenset(("gift", "effect", "highlight", "badge"))

EXTERNAL_PAYMENTS: Final = "external:payments"
PLATFORM_REVENUE: Final = "platform:revenue"
DIAMOND_ISSUANCE: Final = "platform:diamond_issuance"

INT64_MAX: Final = 2**63 - 1
_INT = re.compile(r"-?[0-9]{1,19}")
_CURRENCY = re.compile(r"[A-Z]{3}")
MAX_TEXT = 4096


def user_coins(user: str) -> str:
    """The coin account of ``user``."""
    return f"user:{user}:coins"


def user_diamonds(user: str) -> str:
    """The spendable diamond account of ``user``."""
    return f"user:{user}:diamonds"


def user_held(user: str) -> str:
    """The diamonds of ``user`` held for pending cash-outs."""
    return f"user:{user}:held"


def user_paid(user: str) -> str:
    """The diamonds of ``user`` paid out."""
    return f"user:{user}:paid"


def creator_received(creator: str) -> str:
    """The coins received by ``creator`` (gifts, effects, highlights in their streams)."""
    return f"creator:{creator}:received"


class MalformedEntry(ValueError):
    """An outbox entry that cannot be turned into a ledger event; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Posting:
    """One leg of a ledger event: ``amount`` (signed) of ``currency`` on ``account``."""

    account: str
    currency: Currency
    amount: int


@dataclass(frozen=True, slots=True)
class LedgerEvent:
    """A validated outbox entry with its postings.

    ``reference`` is the purchase id (purchase, refund), the cash-out id
    (cash-outs) or the spend event (credit). ``creator`` is the recipient of a
    spend and the credited user of a credit.
    """

    event_id: str
    type: EventType
    user: str
    ts: int
    outbox_id: str
    fields: Mapping[str, str] = field(compare=False)
    postings: tuple[Posting, ...]
    stream: str = ""
    creator: str = ""
    kind: str = ""
    item: str = ""
    count: int = 0
    coins: int = 0
    diamonds: int = 0
    reference: str = ""
    package: str = ""
    amount: int = 0
    currency: str = ""


class _Reader:
    """Typed access to one entry's fields; every failure is a MalformedEntry."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        self.fields = fields

    def text(self, name: str, *, allow_empty: bool = True) -> str:
        value = self.fields.get(name)
        if value is None:
            raise MalformedEntry(f"missing field {name!r}")
        if not allow_empty and not value:
            raise MalformedEntry(f"empty field {name!r}")
        if len(value) > MAX_TEXT:
            raise MalformedEntry(f"field {name!r} is longer than {MAX_TEXT} characters")
        return value

    def ident(self, name: str) -> str:
        value = self.text(name)
        try:
            return check_id(value, name)
        except BadRequest as exc:
            raise MalformedEntry(f"field {name!r}: {exc.message}") from None

    def integer(self, name: str, lo: int = -INT64_MAX, hi: int = INT64_MAX) -> int:
        raw = self.text(name)
        if not _INT.fullmatch(raw):
            raise MalformedEntry(f"field {name!r} is not an integer: {raw[:40]!r}")
        value = int(raw)
        if not lo <= value <= hi:
            raise MalformedEntry(f"field {name!r} is out of range [{lo}, {hi}]: {value}")
        return value

    def currency(self, name: str) -> str:
        value = self.text(name)
        if not _CURRENCY.fullmatch(value):
            raise MalformedEntry(f"field {name!r} is not an ISO currency code: {value[:8]!r}")
        return value


def parse_entry(outbox_id: str, fields: Mapping[str, str]) -> LedgerEvent:
    """Validate one outbox entry and return its ledger event, or raise ``MalformedEntry``.

    Unknown extra fields are kept in ``fields`` and ignored, so a newer script
    that adds a field does not send entries to the dead letters.
    """
    if any("\x00" in k or "\x00" in v for k, v in fields.items()):
        raise MalformedEntry("a field holds a NUL character")
    r = _Reader(fields)
    kind = r.text("type")
    if kind not in EVENT_TYPES:
        raise MalformedEntry(f"unknown entry type {kind[:40]!r}")
    event_type = cast(EventType, kind)
    head = LedgerEvent(
        event_id=r.ident("event"),
        type=event_type,
        user=r.ident("user"),
        ts=r.integer("ts", 0),
        outbox_id=outbox_id,
        fields=dict(fields),
        postings=(),
    )
    return _PARSERS[event_type](r, head)


def _purchase(r: _Reader, head: LedgerEvent) -> LedgerEvent:
    user = head.user
    coins = r.integer("coins", 1)
    r.integer("balance")
    return replace(
        head,
        postings=(
            Posting(user_coins(user), "coins", coins),
            Posting(EXTERNAL_PAYMENTS, "coins", -coins),
        ),
        coins=coins,
        reference=r.ident("purchase_id"),
        package=r.text("package", allow_empty=False),
        amount=r.integer("amount", 0),
        currency=r.currency("currency"),
    )


def _refund(r: _Reader, head: LedgerEvent) -> LedgerEvent:
    user = head.user
    coins = r.integer("coins", 1)
    r.integer("balance")
    return replace(
        head,
        postings=(
            Posting(user_coins(user), "coins", -coins),
            Posting(EXTERNAL_PAYMENTS, "coins", coins),
        ),
        coins=coins,
        reference=r.ident("purchase_id"),
    )


def _spend(r: _Reader, head: LedgerEvent) -> LedgerEvent:
    user = head.user
    kind = r.text("kind")
    if kind not in SPEND_KINDS:
        raise MalformedEntry(f"unknown spend kind {kind[:40]!r}")
    r.text("name")
    r.ident("client_id")
    item = r.text("item", allow_empty=False)
    count = r.integer("count", 1)
    unit = r.integer("unit", 1)
    coins = r.integer("coins", 1)
    if unit * count != coins:
        raise MalformedEntry(f"coins {coins} is not unit {unit} x count {count}")
    r.integer("balance")
    r.integer("combo", 0)
    stream = r.text("stream")
    creator = r.text("creator")
    if kind == "badge":
        if stream or creator:
            raise MalformedEntry("a badge spend has no stream and no creator")
        recipient = PLATFORM_REVENUE
    else:
        stream = r.ident("stream")
        creator = r.ident("creator")
        if creator == user:
            raise MalformedEntry("a spend to the sender's own stream")
        recipient = creator_received(creator)
    return replace(
        head,
        postings=(Posting(user_coins(user), "coins", -coins), Posting(recipient, "coins", coins)),
        stream=stream,
        creator=creator,
        kind=kind,
        item=item,
        count=count,
        coins=coins,
    )


def _credit(r: _Reader, head: LedgerEvent) -> LedgerEvent:
    creator = head.user
    spend_event = r.ident("spend_event")
    if head.event_id != credit_event_id(spend_event):
        raise MalformedEntry(f"credit event id does not derive from spend {spend_event!r}")
    coins = r.integer("coins", 1)
    diamonds = r.integer("diamonds", 0)
    r.ident("sender")
    postings: tuple[Posting, ...] = ()
    if diamonds:
        postings = (
            Posting(user_diamonds(creator), "diamonds", diamonds),
            Posting(DIAMOND_ISSUANCE, "diamonds", -diamonds),
        )
    return replace(
        head,
        postings=postings,
        stream=r.ident("stream"),
        creator=creator,
        coins=coins,
        diamonds=diamonds,
        reference=spend_event,
    )


def _cashout_hold(r: _Reader, head: LedgerEvent) -> LedgerEvent:
    user = head.user
    diamonds = r.integer("diamonds", 1)
    return replace(
        head,
        postings=(
            Posting(user_diamonds(user), "diamonds", -diamonds),
            Posting(user_held(user), "diamonds", diamonds),
        ),
        diamonds=diamonds,
        reference=r.ident("cashout"),
        amount=r.integer("amount", 0),
        currency=r.currency("currency"),
    )


def _cashout_settled(r: _Reader, head: LedgerEvent) -> LedgerEvent:
    user = head.user
    diamonds = r.integer("diamonds", 1)
    to = user_paid(user) if head.type == "cashout_paid" else user_diamonds(user)
    return replace(
        head,
        postings=(
            Posting(user_held(user), "diamonds", -diamonds),
            Posting(to, "diamonds", diamonds),
        ),
        diamonds=diamonds,
        reference=r.ident("cashout"),
    )


_PARSERS = {
    "purchase": _purchase,
    "refund": _refund,
    "spend": _spend,
    "credit": _credit,
    "cashout_hold": _cashout_hold,
    "cashout_paid": _cashout_settled,
    "cashout_failed": _cashout_settled,
}


def imbalance(postings: Iterable[Posting]) -> dict[str, int]:
    """The non-zero sums of ``postings`` per currency (empty when balanced)."""
    sums: dict[str, int] = {}
    for p in postings:
        sums[p.currency] = sums.get(p.currency, 0) + p.amount
    return {c: s for c, s in sums.items() if s}


# --------------------------------------------------------------------------- rows


@dataclass(slots=True)
class StreamDelta:
    """What a batch adds to one stream's totals."""

    stream: str
    creator: str
    coins: int = 0
    gifts: int = 0
    spends: int = 0
    first_ts: int = INT64_MAX
    last_ts: int = 0


@dataclass(slots=True)
class EarningsDelta:
    """What a batch adds to one creator's earnings in one stream."""

    creator: str
    stream: str
    coins: int = 0
    credited_coins: int = 0
    diamonds: int = 0
    gifts: int = 0
    spends: int = 0
    last_ts: int = 0


def aggregate(events: Iterable[LedgerEvent]) -> tuple[list[StreamDelta], list[EarningsDelta]]:
    """Sum spends and credits per stream and per (creator, stream), sorted by key.

    Sorted so that concurrent persisters lock aggregate rows in the same order.
    """
    streams: dict[str, StreamDelta] = {}
    earnings: dict[tuple[str, str], EarningsDelta] = {}
    for e in events:
        if e.type == "spend" and e.stream:
            gifts = e.count if e.kind == "gift" else 0
            s = streams.setdefault(e.stream, StreamDelta(e.stream, e.creator))
            s.coins += e.coins
            s.gifts += gifts
            s.spends += 1
            s.first_ts = min(s.first_ts, e.ts)
            s.last_ts = max(s.last_ts, e.ts)
            d = earnings.setdefault((e.creator, e.stream), EarningsDelta(e.creator, e.stream))
            d.coins += e.coins
            d.gifts += gifts
            d.spends += 1
            d.last_ts = max(d.last_ts, e.ts)
        elif e.type == "credit":
            d = earnings.setdefault((e.creator, e.stream), EarningsDelta(e.creator, e.stream))
            d.credited_coins += e.coins
            d.diamonds += e.diamonds
            d.last_ts = max(d.last_ts, e.ts)
    return (
        [streams[k] for k in sorted(streams)],
        [earnings[k] for k in sorted(earnings)],
    )


PostingRow = tuple[str, str, str, int]
PurchaseRow = tuple[str, str, str, int, int, str, str, int]
RefundRow = tuple[str, str, int, str, int]
HoldRow = tuple[str, str, int, int, str, str, int]
SettleRow = tuple[str, str, int, str, str, int]


@dataclass(frozen=True, slots=True)
class BatchRows:
    """The rows a batch of new events adds to each table (besides ``ledger_events``)."""

    postings: list[PostingRow]
    purchases: list[PurchaseRow]
    refunds: list[RefundRow]
    holds: list[HoldRow]
    settlements: list[SettleRow]
    streams: list[StreamDelta]
    earnings: list[EarningsDelta]


def plan_rows(events: Sequence[LedgerEvent]) -> BatchRows:
    """The rows to write for ``events``, which must all be new to the database.

    Postings: ``(event_id, account, currency, amount)``; purchases:
    ``(purchase_id, user, package, coins, amount, currency, event_id, ts)``;
    refunds: ``(purchase_id, user, coins, event_id, ts)``; holds: ``(cashout,
    user, diamonds, amount, currency, event_id, ts)``; settlements:
    ``(cashout, user, diamonds, status, event_id, ts)``.
    """
    postings: list[PostingRow] = []
    purchases: list[PurchaseRow] = []
    refunds: list[RefundRow] = []
    holds: list[HoldRow] = []
    settlements: list[SettleRow] = []
    for e in events:
        postings.extend((e.event_id, p.account, p.currency, p.amount) for p in e.postings)
        if e.type == "purchase":
            purchases.append(
                (e.reference, e.user, e.package, e.coins, e.amount, e.currency, e.event_id, e.ts)
            )
        elif e.type == "refund":
            refunds.append((e.reference, e.user, e.coins, e.event_id, e.ts))
        elif e.type == "cashout_hold":
            holds.append((e.reference, e.user, e.diamonds, e.amount, e.currency, e.event_id, e.ts))
        elif e.type in ("cashout_paid", "cashout_failed"):
            status = "paid" if e.type == "cashout_paid" else "failed"
            settlements.append((e.reference, e.user, e.diamonds, status, e.event_id, e.ts))
    streams, earnings = aggregate(events)
    return BatchRows(postings, purchases, refunds, holds, settlements, streams, earnings)
