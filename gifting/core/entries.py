"""The outbox entries: one typed record per kind of settled money operation.

(Over 400 lines on purpose: it is the one description of every entry, and
each type's ``to_fields()`` is spelled out rather than looped, because the
hub builds a spend's entry on its hot path.)

Pure: no I/O. Each money script (``gifting/store/lua/*.lua``) appends one flat
field map to the outbox stream of its wallet shard, in the same script that
moves the money. The hub builds the same map for a spend it just settled, and
the persister parses every map into the PostgreSQL ledger. This module is the
one description of those maps (after ``|``: the fields the script appends)::

    type            script              fields, in XADD order
    spend           spend.lua           user name client_id kind item count unit coins
                                        stream creator [text] [host] [receiver_name]
                                        [video] | event ts balance combo lifetime [badge]
    credit          credit.lua          user spend_event coins stream sender [video]
                                        [sender_name spend_ts] | diamonds event ts
    purchase        purchase.lua        user purchase_id package coins amount currency
                                        | event ts balance
    refund          refund.lua          user purchase_id | coins event ts balance
    cashout_hold    cashout_hold.lua    | user cashout diamonds amount currency event ts
    cashout_paid,   cashout_settle.lua  | user cashout diamonds event ts
    cashout_failed
    cashout_cancelled cashout_cancel.lua | user cashout diamonds event ts
    box_claim       box_credit.lua      user box stream dropper order coins | event ts balance
    box_return      box_return.lua      user box stream claimed claims coins | event ts balance

``type`` comes first in every entry; ``text`` only when not empty. The fields
before the bar are the caller's: :class:`SpendArgs`, :class:`CreditArgs`,
:class:`PurchaseArgs` and :class:`RefundArgs` hold them, and their
``to_fields()`` is the field/value tail of the script's ARGV. Each ``*Entry``
is its ``*Args`` plus what only the script knows (the balance after, the
combo, the diamonds), its fields declared in wire order: ``to_fields()`` is
what XADD carried, and ``from_fields()`` (or the module's :func:`from_fields`,
for any type) parses an XRANGE / XREADGROUP entry, bytes or str, strictly:
anything it cannot vouch for raises :class:`MalformedEntry` with a reason.
The field names are the wire names the streams and the ledger's stored
payloads already hold. Every value is a string on the wire; integers are
decimal, within int64.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import ClassVar, Final, Literal, Self, cast, get_args

import msgspec

from gifting.core.boxes import box_id_of, claim_event_id, drop_event_of, params_of, return_event_id
from gifting.core.fields import FieldReader, MalformedEntry, RawFields, decode_fields
from gifting.core.ids import credit_event_id, fingerprint
from gifting.core.pricing import SpendKind

EntryType = Literal[
    "purchase",
    "refund",
    "spend",
    "credit",
    "cashout_hold",
    "cashout_paid",
    "cashout_failed",
    "cashout_cancelled",
    "box_claim",
    "box_return",
]
ENTRY_TYPES: Final[frozenset[str]] = frozenset(get_args(EntryType))
SPEND_KINDS: Final[frozenset[str]] = frozenset(get_args(SpendKind))


def pairs(fields: Mapping[str, str]) -> list[str]:
    """``fields`` flattened to ``[name, value, name, value, ...]`` (a script's ARGV tail)."""
    out: list[str] = []
    for name, value in fields.items():
        out += [name, value]
    return out


class _Fields(msgspec.Struct, frozen=True, kw_only=True):
    """A flat outbox field map, typed; ``TYPE`` is its ``type`` field.

    ``to_fields`` is spelled out per type (a dict display): it runs for every
    spend on the hub's hot path, where a generic loop over the fields cost
    twice as much.
    """

    TYPE: ClassVar[EntryType]

    @property
    def type(self) -> EntryType:
        """The entry's ``type`` field."""
        return self.TYPE

    def to_fields(self) -> dict[str, str]:
        """The field map on the wire, ``type`` first, in XADD order."""
        raise NotImplementedError

    @classmethod
    def from_fields(cls, fields: RawFields) -> Self:
        """Parse an entry of this type, or raise ``MalformedEntry`` (another type included)."""
        entry = from_fields(fields)
        if not isinstance(entry, cls):
            raise MalformedEntry(f"a {entry.type} entry where a {cls.__name__} was expected")
        return entry


class SpendArgs(_Fields, frozen=True, kw_only=True):
    """The caller's part of a spend entry (spend.lua ARGV[11..])."""

    TYPE: ClassVar[EntryType] = "spend"
    user: str
    name: str
    client_id: str
    kind: SpendKind
    item: str
    count: int
    unit: int
    coins: int
    stream: str
    creator: str
    text: str = ""
    #: The stream's creator when ``creator`` (the credited receiver) is a guest; "" otherwise.
    host: str = ""
    #: A gift's receiver's display name (the room event's ``receiver``); "" when not known.
    receiver_name: str = ""
    #: The video a gift is sent on (no stream then; "" for every other spend).
    video: str = ""

    @property
    def stream_host(self) -> str:
        """The stream's creator: ``host`` for a gift to a guest, else ``creator``."""
        return self.host or self.creator

    def to_fields(self) -> dict[str, str]:
        """The caller's fields, in ARGV order (``text``, ``host``, ``receiver_name``,
        ``video`` when set)."""
        fields = {
            "type": "spend", "user": self.user, "name": self.name, "client_id": self.client_id,
            "kind": self.kind, "item": self.item, "count": str(self.count),
            "unit": str(self.unit), "coins": str(self.coins), "stream": self.stream,
            "creator": self.creator,
        }  # fmt: skip
        if self.text:
            fields["text"] = self.text
        if self.host:
            fields["host"] = self.host
        if self.receiver_name:
            fields["receiver_name"] = self.receiver_name
        if self.video:
            fields["video"] = self.video
        return fields

    def fingerprint(self) -> str:
        """What tells a retry of this spend's id from a reuse of it with another payload.

        Kept with the id's result, in Redis (spend.lua) and in PostgreSQL
        (``spend_ids``, whose backfill computes the same digest in SQL). A
        gift to a guest adds its receiver (the same id to another guest is
        another payload); every other spend's digest is as before guests.
        """
        # A video's place is "video:<id>": no stream id holds a colon, so a gift on a
        # video and one in a stream never share a fingerprint.
        place = f"video:{self.video}" if self.video else self.stream
        if self.host:
            return fingerprint(self.kind, self.item, self.count, place, self.text, self.creator)
        return fingerprint(self.kind, self.item, self.count, place, self.text)


class SpendEntry(SpendArgs, frozen=True, kw_only=True):
    """A settled spend: the caller's fields, then the event, time, balance after and combo.

    Badges have no ``stream`` and no ``creator`` (both ``""``); a gift on a
    video has a ``video`` and a ``creator`` and no ``stream``; a creator's
    own effect or highlight has a ``stream`` and no ``creator`` (the platform
    keeps its coins: :mod:`gifting.core.payee`); every other spend has both,
    and the creator is not the sender. ``badge``: the badge the sender showed
    when debited (read by spend.lua, "" for none; it rides on the room event).
    ``lifetime``: the sender's lifetime coins spent after this debit (0 in an
    entry from before gifter levels): it sets the level on the room event
    and whether this debit crossed a level (:mod:`gifting.core.levels`).
    """

    event: str
    ts: int
    balance: int
    combo: int
    lifetime: int = 0
    badge: str = ""

    def to_fields(self) -> dict[str, str]:
        """Every field, as spend.lua appended them (``lifetime``, ``badge`` only when set)."""
        fields = {
            **super().to_fields(), "event": self.event, "ts": str(self.ts),
            "balance": str(self.balance), "combo": str(self.combo),
        }  # fmt: skip
        if (
            self.lifetime
        ):  # spend.lua always writes it (>= the spend's coins); older entries lack it
            fields["lifetime"] = str(self.lifetime)
        if self.badge:
            fields["badge"] = self.badge
        return fields


class CreditArgs(_Fields, frozen=True, kw_only=True):
    """The caller's part of a creator credit (credit.lua ARGV[10..]); ``user`` is the creator.

    ``sender_name`` and ``spend_ts`` (the spend's time, unix ms) place the
    credit on the leaderboards (:mod:`gifting.core.periods`): the period is
    the spend's, whenever the credit runs. Both are on the wire only when set
    (0 / "" in a credit made by hand and in entries from before leaderboards:
    the credit's ``ts`` then stands for the spend's time).
    """

    TYPE: ClassVar[EntryType] = "credit"
    user: str
    spend_event: str
    coins: int
    stream: str
    sender: str
    #: The video of a video gift's credit (its ``stream`` is then ""), else "".
    video: str = ""
    sender_name: str = ""
    spend_ts: int = 0

    def to_fields(self) -> dict[str, str]:
        """The caller's fields, in ARGV order (``video``, ``sender_name``, ``spend_ts``
        only when set)."""
        fields = {
            "type": "credit", "user": self.user, "spend_event": self.spend_event,
            "coins": str(self.coins), "stream": self.stream, "sender": self.sender,
        }  # fmt: skip
        if self.video:
            fields["video"] = self.video
        if self.sender_name:
            fields["sender_name"] = self.sender_name
        if self.spend_ts:
            fields["spend_ts"] = str(self.spend_ts)
        return fields


class CreditEntry(CreditArgs, frozen=True, kw_only=True):
    """A creator credit: the caller's fields, then the diamonds, event (derived) and time."""

    diamonds: int
    event: str
    ts: int

    def to_fields(self) -> dict[str, str]:
        """Every field, as credit.lua appended them."""
        return {
            **super().to_fields(), "diamonds": str(self.diamonds), "event": self.event,
            "ts": str(self.ts),
        }  # fmt: skip


def credit_of(spend: SpendEntry) -> CreditArgs:
    """The credit of ``spend``'s creator (its event id derives from the spend's)."""
    return CreditArgs(
        user=spend.creator,
        spend_event=spend.event,
        coins=spend.coins,
        stream=spend.stream,
        sender=spend.user,
        video=spend.video,
        sender_name=spend.name,
        spend_ts=spend.ts,
    )


class PurchaseArgs(_Fields, frozen=True, kw_only=True):
    """The caller's part of a purchase entry (purchase.lua ARGV[5..])."""

    TYPE: ClassVar[EntryType] = "purchase"
    user: str
    purchase_id: str
    package: str
    coins: int
    amount: int
    currency: str

    def to_fields(self) -> dict[str, str]:
        """The caller's fields, in ARGV order."""
        return {
            "type": "purchase", "user": self.user, "purchase_id": self.purchase_id,
            "package": self.package, "coins": str(self.coins), "amount": str(self.amount),
            "currency": self.currency,
        }  # fmt: skip


class PurchaseEntry(PurchaseArgs, frozen=True, kw_only=True):
    """A credited purchase: the caller's fields, then the event, time and balance after."""

    event: str
    ts: int
    balance: int

    def to_fields(self) -> dict[str, str]:
        """Every field, as purchase.lua appended them."""
        return {
            **super().to_fields(), "event": self.event, "ts": str(self.ts),
            "balance": str(self.balance),
        }  # fmt: skip


class RefundArgs(_Fields, frozen=True, kw_only=True):
    """The caller's part of a refund entry (refund.lua ARGV[3..])."""

    TYPE: ClassVar[EntryType] = "refund"
    user: str
    purchase_id: str

    def to_fields(self) -> dict[str, str]:
        """The caller's fields, in ARGV order."""
        return {"type": "refund", "user": self.user, "purchase_id": self.purchase_id}


class RefundEntry(RefundArgs, frozen=True, kw_only=True):
    """A refund: the caller's fields, then the coins clawed back, event, time, balance after."""

    coins: int
    event: str
    ts: int
    balance: int

    def to_fields(self) -> dict[str, str]:
        """Every field, as refund.lua appended them."""
        return {
            **super().to_fields(), "coins": str(self.coins), "event": self.event,
            "ts": str(self.ts), "balance": str(self.balance),
        }  # fmt: skip


class CashoutHoldEntry(_Fields, frozen=True, kw_only=True):
    """Diamonds held for a cash-out (cashout_hold.lua writes every field itself)."""

    TYPE: ClassVar[EntryType] = "cashout_hold"
    user: str
    cashout: str
    diamonds: int
    amount: int
    currency: str
    event: str
    ts: int

    def to_fields(self) -> dict[str, str]:
        """Every field, as cashout_hold.lua appended them."""
        return {
            "type": "cashout_hold", "user": self.user, "cashout": self.cashout,
            "diamonds": str(self.diamonds), "amount": str(self.amount),
            "currency": self.currency, "event": self.event, "ts": str(self.ts),
        }  # fmt: skip


class CashoutSettleEntry(_Fields, frozen=True, kw_only=True):
    """A held cash-out settled (cashout_settle.lua): :class:`CashoutPaidEntry` or failed."""

    user: str
    cashout: str
    diamonds: int
    event: str
    ts: int

    @property
    def outcome(self) -> Literal["paid", "failed", "cancelled"]:
        """``paid``, or ``failed`` / ``cancelled`` (the diamonds went back to the creator)."""
        if self.TYPE == "cashout_paid":
            return "paid"
        return "cancelled" if self.TYPE == "cashout_cancelled" else "failed"

    def to_fields(self) -> dict[str, str]:
        """Every field, as cashout_settle.lua appended them."""
        return {
            "type": self.TYPE, "user": self.user, "cashout": self.cashout,
            "diamonds": str(self.diamonds), "event": self.event, "ts": str(self.ts),
        }  # fmt: skip


class CashoutPaidEntry(CashoutSettleEntry, frozen=True, kw_only=True):
    """A cash-out paid out."""

    TYPE: ClassVar[EntryType] = "cashout_paid"


class CashoutFailedEntry(CashoutSettleEntry, frozen=True, kw_only=True):
    """A cash-out that failed: its diamonds are the creator's again."""

    TYPE: ClassVar[EntryType] = "cashout_failed"


class CashoutCancelledEntry(CashoutSettleEntry, frozen=True, kw_only=True):
    """A held cash-out its creator cancelled (cashout_cancel.lua): the diamonds are back."""

    TYPE: ClassVar[EntryType] = "cashout_cancelled"


class BoxClaimArgs(_Fields, frozen=True, kw_only=True):
    """The caller's part of a box claim credit (box_credit.lua ARGV[4..]); ``user`` claimed."""

    TYPE: ClassVar[EntryType] = "box_claim"
    user: str
    box: str
    stream: str
    dropper: str
    order: int
    coins: int

    def to_fields(self) -> dict[str, str]:
        """The caller's fields, in ARGV order."""
        return {
            "type": "box_claim", "user": self.user, "box": self.box, "stream": self.stream,
            "dropper": self.dropper, "order": str(self.order), "coins": str(self.coins),
        }  # fmt: skip


class BoxClaimEntry(BoxClaimArgs, frozen=True, kw_only=True):
    """A claimer credited its share of a box (event id derived from box and claimer)."""

    event: str
    ts: int
    balance: int

    def to_fields(self) -> dict[str, str]:
        """Every field, as box_credit.lua appended them."""
        return {
            **super().to_fields(), "event": self.event, "ts": str(self.ts),
            "balance": str(self.balance),
        }  # fmt: skip


class BoxReturnArgs(_Fields, frozen=True, kw_only=True):
    """The caller's part of a box's return (box_return.lua ARGV[4..]); ``user`` dropped it.

    ``claimed`` / ``claims``: the coins and number of the claims the box
    sealed with; ``coins`` (may be 0) is what went back: the drop's coins
    minus ``claimed``. Written once per box, also when nothing returns: it
    is the ledger's record that the box is settled.
    """

    TYPE: ClassVar[EntryType] = "box_return"
    user: str
    box: str
    stream: str
    claimed: int
    claims: int
    coins: int

    def to_fields(self) -> dict[str, str]:
        """The caller's fields, in ARGV order."""
        return {
            "type": "box_return", "user": self.user, "box": self.box, "stream": self.stream,
            "claimed": str(self.claimed), "claims": str(self.claims), "coins": str(self.coins),
        }  # fmt: skip


class BoxReturnEntry(BoxReturnArgs, frozen=True, kw_only=True):
    """What nobody claimed of a box, back to its dropper."""

    event: str
    ts: int
    balance: int

    def to_fields(self) -> dict[str, str]:
        """Every field, as box_return.lua appended them."""
        return {
            **super().to_fields(), "event": self.event, "ts": str(self.ts),
            "balance": str(self.balance),
        }  # fmt: skip


Entry = (
    SpendEntry
    | CreditEntry
    | PurchaseEntry
    | RefundEntry
    | CashoutHoldEntry
    | CashoutPaidEntry
    | CashoutFailedEntry
    | CashoutCancelledEntry
    | BoxClaimEntry
    | BoxReturnEntry
)


def from_fields(fields: RawFields) -> Entry:
    """Parse one outbox entry (an XRANGE / XREADGROUP field map), or raise ``MalformedEntry``.

    Strict: every field of the entry's type must be there and well-formed, and
    the cross-field rules hold (coins = unit x count, a badge has no stream, a
    credit's event id derives from its spend's). Unknown extra fields are
    ignored, so a newer script that adds one does not break an older reader.
    """
    return from_text(decode_fields(fields))


def from_text(fields: Mapping[str, str]) -> Entry:
    """:func:`from_fields` of a map already decoded to str (the persister decodes once)."""
    r = FieldReader(fields)
    kind = r.text("type")
    parse = _PARSERS.get(kind)
    if parse is None:
        raise MalformedEntry(f"unknown entry type {kind[:40]!r}")
    return parse(r)


def _head(r: FieldReader) -> tuple[str, str, int]:
    """The fields every entry has: event id, user, ts."""
    return r.ident("event"), r.ident("user"), r.integer("ts", 0)


def _box_drop(r: FieldReader, creator: str, video: str, count: int) -> str:
    """Check a box drop's own rules; return its stream."""
    if creator or count != 1 or video:
        raise MalformedEntry("a box drop has no creator, no video and a count of 1")
    try:
        params_of(r.text("item"), r.integer("coins", 1))
    except ValueError as exc:
        raise MalformedEntry(f"a box drop's parameters: {exc}") from None
    return r.ident("stream")


def _spend(r: FieldReader) -> SpendEntry:
    event, user, ts = _head(r)
    kind = r.text("kind")
    if kind not in SPEND_KINDS:
        raise MalformedEntry(f"unknown spend kind {kind[:40]!r}")
    name = r.text("name")
    client_id = r.ident("client_id")
    item = r.text("item", allow_empty=False)
    count = r.integer("count", 1)
    unit = r.integer("unit", 1)
    coins = r.integer("coins", 1)
    if unit * count != coins:
        raise MalformedEntry(f"coins {coins} is not unit {unit} x count {count}")
    balance = r.integer("balance")
    combo = r.integer("combo", 0)
    stream = r.text("stream")
    creator = r.text("creator")
    video = r.ident("video") if "video" in r.fields else ""
    if kind == "badge":
        if stream or creator or video:
            raise MalformedEntry("a badge spend has no stream and no creator")
    elif video:
        if kind != "gift" or stream:
            raise MalformedEntry("only a gift is sent on a video, and in no stream")
        creator = r.ident("creator")
        if creator == user:
            raise MalformedEntry("a gift on the sender's own video")
    elif kind == "box":
        stream = _box_drop(r, creator, video, count)
    else:
        stream = r.ident("stream")
        # An empty creator: a creator's own effect or highlight, kept by the platform.
        creator = r.ident("creator") if creator or kind == "gift" else ""
        if creator == user:
            raise MalformedEntry("a spend to the sender's own stream")
    host = r.ident("host") if "host" in r.fields else ""
    if host and (kind != "gift" or host == creator):
        raise MalformedEntry("only a gift to a guest names its stream's host")
    return SpendEntry(
        user=user, name=name, client_id=client_id, kind=cast(SpendKind, kind), item=item,
        count=count, unit=unit, coins=coins, stream=stream, creator=creator,
        text=r.fields.get("text", ""), host=host,
        receiver_name=r.fields.get("receiver_name", ""), video=video, event=event, ts=ts,
        balance=balance, combo=combo,
        lifetime=r.integer("lifetime", 0) if "lifetime" in r.fields else 0,
        badge=r.fields.get("badge", ""),  # display only: never dead-letters a spend
    )  # fmt: skip


def _credit(r: FieldReader) -> CreditEntry:
    event, creator, ts = _head(r)
    spend_event = r.ident("spend_event")
    if event != credit_event_id(spend_event):
        raise MalformedEntry(f"credit event id does not derive from spend {spend_event!r}")
    coins = r.integer("coins", 1)
    diamonds = r.integer("diamonds", 0)
    sender = r.ident("sender")
    video = r.ident("video") if "video" in r.fields else ""
    stream = r.text("stream") if video else r.ident("stream")
    if video and stream:
        raise MalformedEntry("a video gift's credit has no stream")
    spend_ts = r.integer("spend_ts", 0) if "spend_ts" in r.fields else 0
    return CreditEntry(
        user=creator, spend_event=spend_event, coins=coins, stream=stream, sender=sender,
        video=video, sender_name=r.text("sender_name") if "sender_name" in r.fields else "",
        spend_ts=spend_ts, diamonds=diamonds, event=event, ts=ts,
    )  # fmt: skip


def _purchase(r: FieldReader) -> PurchaseEntry:
    event, user, ts = _head(r)
    coins = r.integer("coins", 1)
    balance = r.integer("balance")
    return PurchaseEntry(
        user=user, purchase_id=r.ident("purchase_id"),
        package=r.text("package", allow_empty=False), coins=coins,
        amount=r.integer("amount", 0), currency=r.currency("currency"), event=event, ts=ts,
        balance=balance,
    )  # fmt: skip


def _refund(r: FieldReader) -> RefundEntry:
    event, user, ts = _head(r)
    coins = r.integer("coins", 1)
    balance = r.integer("balance")
    return RefundEntry(
        user=user, purchase_id=r.ident("purchase_id"), coins=coins, event=event, ts=ts,
        balance=balance,
    )  # fmt: skip


def _cashout_hold(r: FieldReader) -> CashoutHoldEntry:
    event, user, ts = _head(r)
    diamonds = r.integer("diamonds", 1)
    return CashoutHoldEntry(
        user=user, cashout=r.ident("cashout"), diamonds=diamonds,
        amount=r.integer("amount", 0), currency=r.currency("currency"), event=event, ts=ts,
    )  # fmt: skip


def _cashout_settled(
    cls: type[CashoutPaidEntry | CashoutFailedEntry | CashoutCancelledEntry],
) -> Callable[[FieldReader], Entry]:
    def parse(r: FieldReader) -> Entry:
        event, user, ts = _head(r)
        diamonds = r.integer("diamonds", 1)
        return cls(user=user, cashout=r.ident("cashout"), diamonds=diamonds, event=event, ts=ts)

    return parse


def _box_claim(r: FieldReader) -> BoxClaimEntry:
    event, user, ts = _head(r)
    box = r.ident("box")
    if event != claim_event_id(box, user):
        raise MalformedEntry(f"box claim event id does not derive from box {box!r}")
    return BoxClaimEntry(
        user=user, box=box, stream=r.ident("stream"), dropper=r.ident("dropper"),
        order=r.integer("order", 1), coins=r.integer("coins", 1), event=event, ts=ts,
        balance=r.integer("balance"),
    )  # fmt: skip


def _box_return(r: FieldReader) -> BoxReturnEntry:
    event, user, ts = _head(r)
    box = r.ident("box")
    if event != return_event_id(box) or box != box_id_of(drop_event_of(box)):
        raise MalformedEntry(f"box return event id does not derive from box {box!r}")
    return BoxReturnEntry(
        user=user, box=box, stream=r.ident("stream"), claimed=r.integer("claimed", 0),
        claims=r.integer("claims", 0), coins=r.integer("coins", 0), event=event, ts=ts,
        balance=r.integer("balance"),
    )  # fmt: skip


_PARSERS: Final[Mapping[str, Callable[[FieldReader], Entry]]] = {
    "spend": _spend,
    "credit": _credit,
    "purchase": _purchase,
    "refund": _refund,
    "cashout_hold": _cashout_hold,
    "cashout_paid": _cashout_settled(CashoutPaidEntry),
    "cashout_failed": _cashout_settled(CashoutFailedEntry),
    "cashout_cancelled": _cashout_settled(CashoutCancelledEntry),
    "box_claim": _box_claim,
    "box_return": _box_return,
}
