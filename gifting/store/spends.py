"""Spends: spend.lua debits a sender once per client message id.

A spend is a gift, an effect, a highlighted comment (each to a stream's
creator) or a profile badge (to the platform). The script checks the live
flag the caller read and the stream's gate in its own slot (closed by the
stream's end), the sender's blocks (written in the sender's slot by
:mod:`gifting.store.moderation`), the balance and the monthly budget before
its first write, keeps the result of every message id (failures too) and
appends the settled entry to the sender's outbox. A gift on a video
(``SpendOrder.video``, gifting/api/videos.py) has no stream: no gate, no
streak, and the creator's blocks (in every stream) hold for it too.
:func:`spend_call` builds one call (pure, for a pipeline); :func:`spend_outcome`
reads its reply; :meth:`Spends.debit_many` sends a batch in one round trip.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from gifting.clock import now_ms
from gifting.core.entries import SpendArgs, SpendEntry, pairs
from gifting.core.errors import BadRequest, GiftingError, Unavailable, refusal
from gifting.core.idempotency import KeptSpend
from gifting.core.ids import check_id, new_event_id
from gifting.core.money import MAX_SPEND_COINS, is_whole, month_of
from gifting.core.payee import payee, receiver
from gifting.core.pricing import Priced
from gifting.store.keys import Keys
from gifting.store.scripts import ScriptCall, Scripts

DEFAULT_IDEMPOTENCY_TTL_S = 7 * 24 * 3600
DEFAULT_COMBO_WINDOW_MS = 3000


@dataclass(frozen=True, slots=True)
class SpendOrder:
    """A priced spend from one sender, with the client's message id."""

    sender: str
    sender_name: str
    client_id: str
    priced: Priced
    stream: str = ""
    creator: str = ""
    text: str = ""
    #: A gift's receiver when not the host: a guest of the stream ("": the host).
    to: str = ""
    #: The guest's display name, from the guest list read with the live flag
    #: (:func:`with_guests`); ``None``: ``to`` is not a current guest (refused).
    to_name: str | None = None
    #: The host's (the stream creator's) display name, shown as a gift's receiver.
    creator_name: str = ""
    #: The video of a gift on a video (then no ``stream``), else "".
    video: str = ""

    @property
    def guest(self) -> str:
        """The guest this gift is for ("" when it is for the host, or not a gift)."""
        to = receiver(self.priced.kind, self.creator, self.to)
        return to if to != self.creator else ""


def with_guests(order: SpendOrder, guests: Mapping[str, str]) -> SpendOrder:
    """``order`` with its guest's name from ``guests`` (``user -> name``, the stream's list).

    An order for the host comes back as it is; one for a user not in
    ``guests`` keeps ``to_name`` ``None``, and spend.lua refuses it
    (``unknown_receiver``) after its replay check, so a retry of a gift
    debited before the guest left still gets its original ack.
    """
    guest = order.guest
    if not guest:
        return order
    return replace(order, to_name=guests.get(guest))


def _receiver_name(order: SpendOrder) -> str:
    """The receiver's display name on a gift's entry ("" for any other spend)."""
    if order.priced.kind != "gift":
        return ""
    if order.guest:
        return order.to_name or order.guest
    return order.creator_name or order.creator


@dataclass(frozen=True, slots=True)
class SpendResult:
    """The ack of a spend: the ledger event, the balance after it, the combo count.

    ``badge``: the badge the sender showed when debited (spend.lua reads it
    with the debit and puts it on the outbox entry; "" for none or a replay).
    ``lifetime``: the sender's lifetime coins spent after the debit (0 on a
    replay: a replay is not settled again).
    """

    event: str
    balance: int
    combo: int
    replayed: bool
    badge: str = ""
    lifetime: int = 0


def spend_args(order: SpendOrder) -> SpendArgs:
    """The caller's part of the outbox entry of ``order`` (what spend.lua's ARGV carries).

    ``creator`` is who is credited (:func:`~gifting.core.payee.payee`): the
    gift's guest, else the stream's creator; empty for a creator's own effect
    or highlight, which the platform keeps. ``host``: the stream's creator
    when a guest is credited instead. ``receiver_name``: a gift's receiver's
    display name (the room event shows it).
    """
    p = order.priced
    return SpendArgs(
        user=order.sender, name=order.sender_name, client_id=order.client_id, kind=p.kind,
        item=p.item, count=p.count, unit=p.unit_coins, coins=p.coins, stream=order.stream,
        creator=payee(p.kind, order.sender, receiver(p.kind, order.creator, order.to)),
        text=order.text, host=order.creator if order.guest else "",
        receiver_name=_receiver_name(order), video=order.video,
    )  # fmt: skip


def spend_entry(order: SpendOrder, result: SpendResult, ts: int) -> SpendEntry:
    """The outbox entry of a debited ``order``, as spend.lua appended it (``ts``: its now).

    The same fields as :func:`spend_args`, then the script's (tested against
    what spend.lua appends).
    """
    p = order.priced
    return SpendEntry(
        user=order.sender, name=order.sender_name, client_id=order.client_id, kind=p.kind,
        item=p.item, count=p.count, unit=p.unit_coins, coins=p.coins, stream=order.stream,
        creator=payee(p.kind, order.sender, receiver(p.kind, order.creator, order.to)),
        text=order.text, host=order.creator if order.guest else "",
        receiver_name=_receiver_name(order), video=order.video, event=result.event, ts=ts,
        balance=result.balance, combo=result.combo,
        lifetime=result.lifetime, badge=result.badge,
    )  # fmt: skip


def spend_call(
    keys: Keys,
    order: SpendOrder,
    *,
    live: bool,
    now: int,
    idempotency_ttl_s: int = DEFAULT_IDEMPOTENCY_TTL_S,
    combo_window_ms: int = DEFAULT_COMBO_WINDOW_MS,
) -> ScriptCall:
    """The spend.lua call for ``order`` (validated; pure: it builds, never sends).

    ``live`` is the stream's state read by the caller just before (it lives
    in another slot). A stream that ends between that read and the script
    does not take the spend: the script also checks the stream's gate in the
    sender's slot, which the end closes in every shard before it is announced
    (:meth:`gifting.store.streams.Streams.end`).
    """
    check_id(order.sender, "sender")
    check_id(order.client_id, "id")
    if order.guest:
        check_id(order.guest, "to")
    fields = spend_args(order)  # a self-gift: Forbidden
    p = order.priced
    # The scripts trust ARGV: a price that is not a positive integer would
    # mint coins (negative) or fail after the outbox append (non-integer).
    if not (
        is_whole(p.coins, MAX_SPEND_COINS)
        and is_whole(p.unit_coins, MAX_SPEND_COINS)
        and is_whole(p.count, MAX_SPEND_COINS)
        and p.coins == p.unit_coins * p.count
    ):
        raise BadRequest("the price of a spend must be a positive whole number of coins")
    sender = order.sender
    shard = keys.shard_of(sender)
    # A gift on a video has no room and no streak (its combo is 0, its combo key untouched).
    call_keys = [
        keys.wallet(sender),
        keys.spend_result(sender, order.client_id),
        keys.outbox(keys.shard_of(sender)),
        keys.combo(sender, order.stream),
        keys.stream_gate(shard, order.stream),  # a badge's (no stream) is never touched
        keys.block_by_creator(sender, order.creator),  # read only with a stream
        keys.block_in_stream(sender, order.stream),
        keys.shard_due(shard),  # a streakable gift schedules its streak's end
    ]
    if order.video and (order.stream or p.kind != "gift" or not order.creator):
        raise BadRequest("only a gift to its creator is sent on a video, and in no stream")
    flag = "0" if not live else "1" if order.stream else "v" if order.video else "-"
    if flag == "1" and order.guest and order.to_name is None:
        flag = "r"  # live, but the receiver is not a current guest: unknown_receiver
    args: list[str | int] = [
        fields.fingerprint(), p.coins, month_of(now), new_event_id(now), now, idempotency_ttl_s,
        p.item if p.kind == "gift" and p.streakable and not order.video else "",
        combo_window_ms,
        p.count, flag, *pairs(fields.to_fields()),
    ]  # fmt: skip
    return ScriptCall("spend", call_keys, args)


def kept_outcome(order: SpendOrder, kept: KeptSpend) -> SpendResult | GiftingError:
    """What a retry of ``order`` gets when PostgreSQL kept its id: a replay, or ``conflict``.

    The same as spend.lua answers from its Redis record: the original result
    for the same payload (fingerprint), a conflict for another one.
    """
    if kept.fingerprint != spend_args(order).fingerprint():
        return refusal("spend", "conflict")
    if kept.status != "ok":
        return refusal("spend", kept.status)
    return SpendResult(kept.event, kept.balance, kept.combo, True)


def spend_outcome(reply: Sequence[str]) -> SpendResult:
    """Turn a spend.lua reply into a result, or raise the spend's typed error."""
    status, balance, event, combo = reply[:4]
    outcome = status.removeprefix("replay:")
    if outcome != "ok":
        raise refusal("spend", outcome)
    badge = reply[4] if len(reply) > 4 else ""
    lifetime = int(reply[5]) if len(reply) > 5 else 0
    return SpendResult(
        event, int(balance), int(combo), status.startswith("replay:"), badge, lifetime
    )


class Spends:
    """Debit spends, one by one or in batches."""

    def __init__(
        self,
        keys: Keys,
        scripts: Scripts,
        *,
        idempotency_ttl_s: int = DEFAULT_IDEMPOTENCY_TTL_S,
        combo_window_ms: int = DEFAULT_COMBO_WINDOW_MS,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._keys = keys
        self._scripts = scripts
        self._idempotency_ttl_s = idempotency_ttl_s
        self._combo_window_ms = combo_window_ms
        self._clock = clock

    def call(self, order: SpendOrder, *, live: bool, now: int) -> ScriptCall:
        """The spend.lua call for ``order`` with this ledger's keys and settings."""
        return spend_call(
            self._keys, order, live=live, now=now, idempotency_ttl_s=self._idempotency_ttl_s,
            combo_window_ms=self._combo_window_ms,
        )  # fmt: skip

    async def spend(self, order: SpendOrder, *, live: bool) -> SpendResult:
        """Debit a spend once; refused when short, over budget or not ``live``."""
        call = self.call(order, live=live, now=self._clock())
        return spend_outcome(await self._scripts.run(call.name, call.keys, call.args))

    async def debit_many(
        self, orders: Sequence[SpendOrder], *, live: Mapping[str, bool], now: int
    ) -> list[SpendResult | GiftingError]:
        """Debit ``orders`` in one pipeline; each gets its result or typed error, in order.

        ``live`` holds the live flag of the streams the orders name (a stream
        it lacks counts as ended; an order without a stream, a badge, needs
        none). Each spend is atomic and idempotent on its own: one that fails
        validation, or whose call Redis fails (``Unavailable``, safe to retry),
        fails alone. Raises if the pipeline as a whole fails: then the outcome
        of every order is unknown, and retrying each is safe.
        """
        outcomes: list[SpendResult | GiftingError | None] = []
        calls: list[ScriptCall] = []
        for order in orders:
            flag = live.get(order.stream, False) if order.stream else True
            try:
                calls.append(self.call(order, live=flag, now=now))
            except GiftingError as exc:
                outcomes.append(exc)
            else:
                outcomes.append(None)
        replies = iter(await self._scripts.run_many(calls, lane="debit"))
        return [_outcome(next(replies)) if o is None else o for o in outcomes]


def _outcome(reply: list[str] | Exception) -> SpendResult | GiftingError:
    if isinstance(reply, Exception):
        return Unavailable("the ledger is unavailable; retry")
    try:
        return spend_outcome(reply)
    except GiftingError as exc:
        return exc
