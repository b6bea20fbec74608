"""Outbox entries to ledger events and balanced double-entry postings. Pure: no I/O.

The Lua scripts append one flat string map per settled money operation to an
outbox stream (see ``gifting/store/lua/*.lua``). :func:`parse_entry` parses one
such map strictly into its typed entry (:func:`gifting.core.entries.from_fields`)
and turns that into a :class:`LedgerEvent` whose postings sum to zero in each
currency; anything it cannot vouch for raises :class:`MalformedEntry` with a
reason, and the persister sends that entry to the dead-letter stream instead
of guessing. :func:`plan_rows` turns the events of a batch that PostgreSQL had
not seen yet into the rows of every table.

The accounts and what each event posts are in :mod:`gifting.core.accounts`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from gifting.core.accounts import (
    BOX_ESCROW,
    DIAMOND_ISSUANCE,
    EXTERNAL_PAYMENTS,
    PLATFORM_REVENUE,
    creator_received,
    user_coins,
    user_diamonds,
    user_held,
    user_paid,
)
from gifting.core.entries import (
    ENTRY_TYPES,
    BoxClaimEntry,
    BoxReturnEntry,
    CashoutCancelledEntry,
    CashoutFailedEntry,
    CashoutHoldEntry,
    CashoutPaidEntry,
    CashoutSettleEntry,
    CreditEntry,
    Entry,
    EntryType,
    PurchaseEntry,
    RefundEntry,
    SpendEntry,
    from_text,
)
from gifting.core.fields import INT64_MAX, MalformedEntry, RawFields, decode_fields
from gifting.core.periods import month_of, week_of

__all__ = [
    "DIAMOND_ISSUANCE",
    "EVENT_TYPES",
    "EXTERNAL_PAYMENTS",
    "PLATFORM_REVENUE",
    "BadgeRow",
    "BatchRows",
    "Currency",
    "EarningsDelta",
    "EventType",
    "LedgerEvent",
    "MalformedEntry",
    "Posting",
    "SpendIdRow",
    "StreamDelta",
    "aggregate",
    "board_rows",
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
EventType = EntryType
EVENT_TYPES: Final[frozenset[str]] = ENTRY_TYPES


@dataclass(frozen=True, slots=True)
class Posting:
    """One leg of a ledger event: ``amount`` (signed) of ``currency`` on ``account``."""

    account: str
    currency: Currency
    amount: int


@dataclass(frozen=True, slots=True)
class LedgerEvent:
    """A validated outbox entry with its postings.

    ``entry`` is the typed entry; ``fields`` the map as read (unknown fields
    included: it is the payload PostgreSQL keeps). ``reference`` is the
    purchase id (purchase, refund), the cash-out id (cash-outs) or the spend
    event (credit). ``creator`` is the recipient of a spend and the credited
    user of a credit.
    """

    event_id: str
    type: EventType
    user: str
    ts: int
    outbox_id: str
    fields: Mapping[str, str] = field(compare=False)
    entry: Entry = field(compare=False)
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


def parse_entry(outbox_id: str, fields: RawFields) -> LedgerEvent:
    """Validate one outbox entry and return its ledger event, or raise ``MalformedEntry``.

    Unknown extra fields are kept in ``fields`` and ignored, so a newer script
    that adds a field does not send entries to the dead letters.
    """
    text = decode_fields(fields)
    entry = from_text(text)
    # One constructor call per type (dataclasses.replace on a head cost twice as much).
    match entry:
        case SpendEntry():
            return _spend(entry, outbox_id, text)
        case CreditEntry():
            return _credit(entry, outbox_id, text)
        case PurchaseEntry():
            return _purchase(entry, outbox_id, text)
        case RefundEntry():
            return _refund(entry, outbox_id, text)
        case CashoutHoldEntry():
            return _cashout_hold(entry, outbox_id, text)
        case CashoutSettleEntry():
            return _cashout_settled(entry, outbox_id, text)
        case BoxClaimEntry():
            return _box_claim(entry, outbox_id, text)
        case BoxReturnEntry():
            return _box_return(entry, outbox_id, text)


def place_of(stream: str, video: str) -> str:
    """Where a spend or credit happened, as the ledger names it: the stream, or
    ``video:<id>`` for a gift on a video (no stream id holds a colon).

    It is the ``stream_id`` of its ``ledger_events`` row and the key of its
    ``stream_totals`` and ``creator_earnings`` rows, so a video's coins are
    in the totals the audit checks.
    """
    return f"video:{video}" if video else stream


def _purchase(e: PurchaseEntry, outbox_id: str, text: Mapping[str, str]) -> LedgerEvent:
    return LedgerEvent(
        e.event, e.type, e.user, e.ts, outbox_id, text, e,
        (
            Posting(user_coins(e.user), "coins", e.coins),
            Posting(EXTERNAL_PAYMENTS, "coins", -e.coins),
        ),
        coins=e.coins, reference=e.purchase_id, package=e.package, amount=e.amount,
        currency=e.currency,
    )  # fmt: skip


def _refund(e: RefundEntry, outbox_id: str, text: Mapping[str, str]) -> LedgerEvent:
    return LedgerEvent(
        e.event, e.type, e.user, e.ts, outbox_id, text, e,
        (
            Posting(user_coins(e.user), "coins", -e.coins),
            Posting(EXTERNAL_PAYMENTS, "coins", e.coins),
        ),
        coins=e.coins, reference=e.purchase_id,
    )  # fmt: skip


def _spend(e: SpendEntry, outbox_id: str, text: Mapping[str, str]) -> LedgerEvent:
    # No creator: a badge, or a creator's own effect or highlight (gifting.core.payee);
    # a treasure box's coins wait in the escrow until claimed or returned.
    if e.kind == "box":
        recipient = BOX_ESCROW
    else:
        recipient = creator_received(e.creator) if e.creator else PLATFORM_REVENUE
    return LedgerEvent(
        e.event, "spend", e.user, e.ts, outbox_id, text, e,
        (Posting(user_coins(e.user), "coins", -e.coins), Posting(recipient, "coins", e.coins)),
        place_of(e.stream, e.video), e.creator, e.kind, e.item, e.count, e.coins,
    )  # fmt: skip


def _credit(e: CreditEntry, outbox_id: str, text: Mapping[str, str]) -> LedgerEvent:
    postings: tuple[Posting, ...] = ()
    if e.diamonds:
        postings = (
            Posting(user_diamonds(e.user), "diamonds", e.diamonds),
            Posting(DIAMOND_ISSUANCE, "diamonds", -e.diamonds),
        )
    return LedgerEvent(
        e.event, "credit", e.user, e.ts, outbox_id, text, e, postings,
        stream=place_of(e.stream, e.video), creator=e.user, coins=e.coins, diamonds=e.diamonds,
        reference=e.spend_event,
    )  # fmt: skip


def _cashout_hold(e: CashoutHoldEntry, outbox_id: str, text: Mapping[str, str]) -> LedgerEvent:
    return LedgerEvent(
        e.event, e.type, e.user, e.ts, outbox_id, text, e,
        (
            Posting(user_diamonds(e.user), "diamonds", -e.diamonds),
            Posting(user_held(e.user), "diamonds", e.diamonds),
        ),
        diamonds=e.diamonds, reference=e.cashout, amount=e.amount, currency=e.currency,
    )  # fmt: skip


def _cashout_settled(
    e: CashoutPaidEntry | CashoutFailedEntry | CashoutCancelledEntry,
    outbox_id: str,
    text: Mapping[str, str],
) -> LedgerEvent:
    to = user_paid(e.user) if e.outcome == "paid" else user_diamonds(e.user)
    return LedgerEvent(
        e.event, e.type, e.user, e.ts, outbox_id, text, e,
        (
            Posting(user_held(e.user), "diamonds", -e.diamonds),
            Posting(to, "diamonds", e.diamonds),
        ),
        diamonds=e.diamonds, reference=e.cashout,
    )  # fmt: skip


def _box_claim(e: BoxClaimEntry, outbox_id: str, text: Mapping[str, str]) -> LedgerEvent:
    return LedgerEvent(
        e.event, e.type, e.user, e.ts, outbox_id, text, e,
        (Posting(user_coins(e.user), "coins", e.coins), Posting(BOX_ESCROW, "coins", -e.coins)),
        stream=e.stream, coins=e.coins, reference=e.box,
    )  # fmt: skip


def _box_return(e: BoxReturnEntry, outbox_id: str, text: Mapping[str, str]) -> LedgerEvent:
    postings: tuple[Posting, ...] = ()
    if e.coins:
        postings = (
            Posting(user_coins(e.user), "coins", e.coins),
            Posting(BOX_ESCROW, "coins", -e.coins),
        )
    return LedgerEvent(
        e.event, e.type, e.user, e.ts, outbox_id, text, e, postings,
        stream=e.stream, coins=e.coins, reference=e.box,
    )  # fmt: skip


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
        # A spend the platform keeps (no creator) is no stream's or creator's income.
        if e.type == "spend" and e.stream and e.creator:
            gifts = e.count if e.kind == "gift" else 0
            s = streams.get(e.stream)
            if s is None:  # the stream's host: not a guest who received the first gift
                host = e.entry.stream_host if isinstance(e.entry, SpendEntry) else e.creator
                s = streams[e.stream] = StreamDelta(e.stream, host)
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
SpendIdRow = tuple[str, str, str, str, int, int, str, int]
BadgeRow = tuple[str, str, str, int]
SupporterRow = tuple[str, str, str, str, int]
CreatorBoardRow = tuple[str, str, int]


def board_rows(
    events: Iterable[LedgerEvent],
) -> tuple[list[SupporterRow], list[CreatorBoardRow]]:
    """What new credits add to the leaderboards, summed per key and sorted by key.

    Supporters: ``(creator, period, sender, name, coins)``; creators:
    ``(period, creator, coins)``; each credit counts in its ISO week and its
    month, of the spend's time (``spend_ts``; the credit's ``ts`` in an entry
    from before leaderboards). Sorted so concurrent persisters lock rows in
    the same order.
    """
    supporters: dict[tuple[str, str, str], tuple[str, int]] = {}
    creators: dict[tuple[str, str], int] = {}
    for e in events:
        credit = e.entry
        if not isinstance(credit, CreditEntry):
            continue
        at = credit.spend_ts or credit.ts
        name = credit.sender_name or credit.sender
        for period in (week_of(at).label, month_of(at).label):
            key = (credit.user, period, credit.sender)
            supporters[key] = (name, supporters.get(key, ("", 0))[1] + credit.coins)
            creators[(period, credit.user)] = creators.get((period, credit.user), 0) + credit.coins
    return (
        [(c, p, u, *supporters[(c, p, u)]) for c, p, u in sorted(supporters)],
        [(p, c, creators[(p, c)]) for p, c in sorted(creators)],
    )


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
    spend_ids: list[SpendIdRow] = field(default_factory=list)
    badges: list[BadgeRow] = field(default_factory=list)
    supporters: list[SupporterRow] = field(default_factory=list)
    creators: list[CreatorBoardRow] = field(default_factory=list)


def plan_rows(events: Sequence[LedgerEvent]) -> BatchRows:
    """The rows to write for ``events``, which must all be new to the database.

    Postings: ``(event_id, account, currency, amount)``; purchases:
    ``(purchase_id, user, package, coins, amount, currency, event_id, ts)``;
    refunds: ``(purchase_id, user, coins, event_id, ts)``; holds: ``(cashout,
    user, diamonds, amount, currency, event_id, ts)``; settlements:
    ``(cashout, user, diamonds, status, event_id, ts)``; spend ids:
    ``(sender, client_id, event_id, status, balance, combo, fingerprint, ts)``;
    badges owned: ``(user, badge, event_id, ts)``, one per badge spend.
    """
    postings: list[PostingRow] = []
    purchases: list[PurchaseRow] = []
    refunds: list[RefundRow] = []
    holds: list[HoldRow] = []
    settlements: list[SettleRow] = []
    spend_ids: list[SpendIdRow] = []
    badges: list[BadgeRow] = []
    for e in events:
        postings.extend((e.event_id, p.account, p.currency, p.amount) for p in e.postings)
        if isinstance(e.entry, SpendEntry):
            s = e.entry
            spend_ids.append(
                (s.user, s.client_id, s.event, "ok", s.balance, s.combo, s.fingerprint(), s.ts)
            )
            if s.kind == "badge":
                badges.append((s.user, s.item, s.event, s.ts))
        if e.type == "purchase":
            purchases.append(
                (e.reference, e.user, e.package, e.coins, e.amount, e.currency, e.event_id, e.ts)
            )
        elif e.type == "refund":
            refunds.append((e.reference, e.user, e.coins, e.event_id, e.ts))
        elif e.type == "cashout_hold":
            holds.append((e.reference, e.user, e.diamonds, e.amount, e.currency, e.event_id, e.ts))
        elif isinstance(e.entry, CashoutSettleEntry):
            status = e.entry.outcome
            settlements.append((e.reference, e.user, e.diamonds, status, e.event_id, e.ts))
    streams, earnings = aggregate(events)
    supporters, creators = board_rows(events)
    return BatchRows(
        postings, purchases, refunds, holds, settlements, streams, earnings, spend_ids, badges,
        supporters, creators,
    )  # fmt: skip
