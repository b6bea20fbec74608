"""Typed answers of the HTTP API (docs/protocol.md; contract §4 and §9).

Every answer is a frozen :class:`msgspec.Struct` decoded strictly: a field
of the wrong type (a string where the API says integer, a float for coins)
or a missing required field raises
:class:`~gifting_client.errors.UnexpectedResponse`, never a silently wrong
value. Fields a newer server adds are ignored, so it never breaks an older
client. Money is integers only: coins, diamonds, and real money in minor
units (:class:`Money`).
"""

from __future__ import annotations

from typing import TypeVar

import msgspec

from gifting_client.messages import Badge, Goal, GoalProgress, TopGifter, Totals

__all__ = [
    "BadgeItem",
    "BadgePurchase",
    "Block",
    "BlockList",
    "Budget",
    "Cashout",
    "CashoutList",
    "Catalog",
    "CatalogEffect",
    "CatalogGift",
    "CatalogHighlight",
    "CreatedStream",
    "DeliveryList",
    "DevPurchase",
    "DevToken",
    "DiamondValue",
    "Guest",
    "HiddenEvent",
    "HistoryEntry",
    "HistoryPage",
    "Moderator",
    "ModeratorList",
    "ModeratorRemoved",
    "Money",
    "OverlayAccess",
    "Package",
    "StreamGoal",
    "StreamGoals",
    "StreamGuests",
    "StreamInfo",
    "SubscriptionList",
    "Unblocked",
    "VideoGift",
    "VideoInfo",
    "Wallet",
    "WebhookDelivery",
    "WebhookSubscription",
    "decode_answer",
]

_T = TypeVar("_T")


def decode_answer(raw: bytes, type: type[_T]) -> _T:
    """Decode a JSON answer as ``type``, strictly (no str→int or float→int coercion).

    Raises :class:`msgspec.ValidationError` or :class:`msgspec.DecodeError`;
    the client turns either into ``UnexpectedResponse``.
    """
    return msgspec.json.decode(raw, type=type, strict=True)


class _Answer(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every answer: frozen, keyword-only."""


# ----------------------------------------------------------------------------- catalog


class Money(_Answer, frozen=True):
    """Real money: ``amount`` in integer minor units (cents) of ISO 4217 ``currency``."""

    amount: int
    currency: str


class CatalogGift(_Answer, frozen=True):
    """A gift: ``tier`` 1 (side alert) .. 4 (full screen); ``streakable`` builds combos."""

    id: str
    name: str
    coins: int
    tier: int
    streakable: bool


class Package(_Answer, frozen=True):
    """A coin package bought with real money through the payment provider."""

    id: str
    coins: int
    price: Money


class CatalogEffect(_Answer, frozen=True):
    """A paid live-stream effect."""

    id: str
    name: str
    coins: int
    duration_ms: int = 0


class CatalogHighlight(_Answer, frozen=True):
    """A highlighted-comment tier: pinned ``pin_ms``, text up to ``max_length`` characters."""

    id: str
    coins: int
    pin_ms: int = 0
    max_length: int = 0


class BadgeItem(_Answer, frozen=True):
    """A profile badge bought with coins (kept by the platform)."""

    id: str
    name: str
    coins: int


class DiamondValue(_Answer, frozen=True):
    """``diamonds`` diamonds are worth ``amount`` minor units of ``currency`` at cash-out."""

    amount: int
    currency: str
    diamonds: int = 1


class Catalog(_Answer, frozen=True):
    """``GET /v1/catalog``: what can be bought and at what price; lists in catalog order."""

    gifts: list[CatalogGift]
    packages: list[Package]
    effects: list[CatalogEffect]
    highlights: list[CatalogHighlight]
    badges: list[BadgeItem]
    creator_share_bps: int
    diamond_value: DiamondValue
    cashout_min_diamonds: int
    cashout_daily_cap_diamonds: int | None = None
    max_count: int | None = None

    def gift(self, gift_id: str) -> CatalogGift:
        """The gift ``gift_id`` (``KeyError`` when the catalog has none)."""
        for gift in self.gifts:
            if gift.id == gift_id:
                return gift
        raise KeyError(gift_id)

    def package(self, package_id: str) -> Package:
        """The package ``package_id`` (``KeyError`` when the catalog has none)."""
        for package in self.packages:
            if package.id == package_id:
                return package
        raise KeyError(package_id)


# ----------------------------------------------------------------------------- wallet


class Budget(_Answer, frozen=True):
    """The monthly spending budget: ``monthly`` coins (``None``: no budget) in ``period``."""

    monthly: int | None
    spent: int
    period: str
    remaining: int | None = None


class Wallet(_Answer, frozen=True):
    """``GET /v1/wallet``: the caller's balances, best badge and monthly budget."""

    user: str
    coins: int
    diamonds: int
    budget: Budget
    diamonds_held: int = 0
    diamonds_paid: int = 0
    diamonds_earned: int = 0
    #: The id of the best (dearest) badge owned, shown on the user's events.
    badge: str | None = None
    badges: list[Badge] = msgspec.field(default_factory=list)


class HistoryEntry(_Answer, frozen=True):
    """One ledger event of the caller, from the durable record.

    ``coins`` and ``diamonds`` are the change it made to the caller's
    balances; the rest are the details of its ``type`` (``purchase``,
    ``refund``, ``spend``, ``credit``, ``cashout_hold``, ``cashout_paid``,
    ``cashout_failed``, ...), absent when they do not apply.
    """

    event: str
    type: str
    ts: int
    coins: int
    diamonds: int
    diamonds_held: int = 0
    balance: int | None = None
    kind: str | None = None
    item: str | None = None
    count: int | None = None
    unit: int | None = None
    stream: str | None = None
    creator: str | None = None
    sender: str | None = None
    text: str | None = None
    combo: int | None = None
    purchase_id: str | None = None
    package: str | None = None
    amount: int | None = None
    currency: str | None = None
    cashout: str | None = None
    spend_event: str | None = None
    coins_received: int | None = None


class HistoryPage(_Answer, frozen=True):
    """A page of history, newest first; ``next`` is ``None`` on the last page."""

    entries: list[HistoryEntry]
    next: str | None


class BadgePurchase(_Answer, frozen=True):
    """``POST /v1/badges``: the spend's ``event`` id and the caller's ``balance`` after it.

    ``replayed`` is true when this answers a retry of an id already settled
    (from the ``Idempotent-Replayed`` header; nothing was debited again).
    """

    event: str
    balance: int
    id: str | None = None
    badge: str | None = None
    coins: int | None = None
    #: The badge the user's events show now (the dearest owned).
    shown: str | None = None
    replayed: bool = False


class Cashout(_Answer, frozen=True):
    """A cash-out: ``diamonds`` held for a payout worth ``amount``; ``status`` moves on.

    ``status``: ``held`` (waiting; the creator may cancel), ``processing``
    (being paid out), ``paid``, ``failed`` (diamonds returned) or
    ``cancelled`` (by the creator; diamonds returned).
    ``id`` is the request's idempotency id when the answer is to a request.
    """

    cashout: str
    status: str
    diamonds: int
    amount: Money
    created: int | None = None
    id: str | None = None


class CashoutList(_Answer, frozen=True):
    """The caller's cash-outs, newest first."""

    cashouts: list[Cashout]


# ----------------------------------------------------------------------------- streams


class _StreamView(_Answer, frozen=True):
    """The fields of a stream's public view."""

    stream: str
    creator: str
    title: str
    live: bool
    totals: Totals
    top: list[TopGifter]
    goal: Goal | None
    goals: list[GoalProgress] = msgspec.field(default_factory=list)
    creator_name: str | None = None
    created: int | None = None
    ended: int | None = None
    guests: list[Guest] = msgspec.field(default_factory=list)


class StreamInfo(_StreamView, frozen=True):
    """``GET /v1/streams/{id}``: a stream's public view (never its overlay key)."""


class CreatedStream(_StreamView, frozen=True):
    """``POST /v1/streams``: the new stream with its secret overlay key and URL."""

    overlay_key: str = ""
    overlay_url: str = ""

    def __post_init__(self) -> None:
        if not self.overlay_key or not self.overlay_url:
            raise ValueError("a created stream carries its overlay_key and overlay_url")


class OverlayAccess(_Answer, frozen=True):
    """``GET /v1/streams/{id}/overlay``: the overlay key and URL again (the creator only)."""

    overlay_key: str
    overlay_url: str


class Guest(_Answer, frozen=True):
    """A guest of a stream: user id and the display name the room shows."""

    user: str
    name: str


class StreamGuests(_Answer, frozen=True):
    """``PUT /v1/streams/{id}/guests``: the stream and its guest list now."""

    stream: str
    guests: list[Guest]


class StreamGoal(_Answer, frozen=True):
    """``PUT /v1/streams/{id}/goal``: the stream and its goal now."""

    stream: str
    goal: Goal | None
    goals: list[GoalProgress] = msgspec.field(default_factory=list)


class StreamGoals(_Answer, frozen=True):
    """``PUT /v1/streams/{id}/goals``: the stream and its goals now."""

    stream: str
    goals: list[GoalProgress]


# ----------------------------------------------------------------------------- moderation


class Moderator(_Answer, frozen=True):
    """A moderator a creator named, ``at`` (unix ms); ``added`` false when already one."""

    user: str
    at: int | None = None
    creator: str | None = None
    added: bool | None = None


class ModeratorList(_Answer, frozen=True):
    """The moderators a creator named."""

    moderators: list[Moderator]


class Block(_Answer, frozen=True):
    """A blocked user: ``scope`` ``stream`` (this stream) or ``creator`` (all its streams)."""

    user: str
    scope: str
    stream: str | None = None
    creator: str | None = None
    by: str | None = None
    at: int | None = None
    #: On ``block()``'s answer: false when the user was already blocked so.
    added: bool | None = None


class Unblocked(_Answer, frozen=True):
    """``DELETE /v1/streams/{id}/blocks/{user}``: the blocks ``lifted`` (none: none was)."""

    user: str
    lifted: list[Block]


class ModeratorRemoved(_Answer, frozen=True):
    """``DELETE /v1/moderators/{user}``: ``removed`` false when ``user`` was no moderator."""

    user: str
    removed: bool


class HiddenEvent(_Answer, frozen=True):
    """``POST .../events/{event}/hide``: the ``hidden`` room event's id and its ``target``."""

    stream: str
    event: str
    target: str


class BlockList(_Answer, frozen=True):
    """The users blocked in a stream (and by its creator)."""

    blocks: list[Block]


# ----------------------------------------------------------------------------- webhooks


class WebhookSubscription(_Answer, frozen=True):
    """A webhook subscription; ``secret`` signs its deliveries (shown when created)."""

    id: str
    url: str | None = None
    kinds: list[str] = msgspec.field(default_factory=list)
    secret: str | None = None
    stream: str | None = None
    created: int | None = None


class SubscriptionList(_Answer, frozen=True):
    """The caller's webhook subscriptions."""

    subscriptions: list[WebhookSubscription]


class WebhookDelivery(_Answer, frozen=True):
    """One delivery attempt of a room event to a subscription, and the receiver's answer.

    ``status``: the receiver's HTTP status (``None``: no answer, see
    ``error``); ``at`` and ``next_retry`` are unix ms; ``delivery`` is the
    delivery's state (pending, delivered, failed ...).
    """

    event: str
    kind: str | None = None
    stream: str | None = None
    seq: int | None = None
    attempt: int | None = None
    at: int | None = None
    status: int | None = None
    latency_ms: int | None = None
    error: str | None = None
    next_retry: int | None = None
    delivery: str | None = None


class DeliveryList(_Answer, frozen=True):
    """A subscription's delivery attempts, newest first."""

    deliveries: list[WebhookDelivery]


# ----------------------------------------------------------------------------- dev mode


class DevToken(_Answer, frozen=True):
    """``POST /v1/dev/token`` (GIFTING_DEV=1 only): a bearer token for ``user``."""

    token: str
    user: str
    roles: list[str] = msgspec.field(default_factory=list)


class DevPurchase(_Answer, frozen=True):
    """``POST /v1/dev/purchase`` (GIFTING_DEV=1 only): a package credited as if paid."""

    purchase_id: str
    coins: int
    balance: int
    user: str | None = None


# ----------------------------------------------------------------------------- videos


class VideoInfo(_Answer, frozen=True):
    """``GET /v1/videos/{id}`` (and ``POST /v1/videos``): a video's public view.

    ``totals``: coins and gifts it received; ``top``: its top gifters by coins.
    """

    video: str
    creator: str
    title: str
    totals: Totals
    top: list[TopGifter]
    creator_name: str | None = None
    created: int | None = None


class VideoGift(_Answer, frozen=True):
    """``POST /v1/videos/{id}/gifts``: the spend's ``event`` id and the ``balance`` after it.

    ``replayed`` is true when this answers a retry of an id already settled
    (from the ``Idempotent-Replayed`` header; nothing was debited again).
    """

    event: str
    balance: int
    id: str | None = None
    video: str | None = None
    gift: str | None = None
    count: int | None = None
    coins: int | None = None
    replayed: bool = False
