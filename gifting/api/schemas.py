"""The HTTP API's bodies and answers as msgspec Structs: they validate and they document.

A request body is a :class:`Body` (unknown fields refused); its constraints
are ``msgspec.Meta`` on the field types below, so the decoder
(:func:`gifting.api.http.read_body_as`) enforces exactly what the OpenAPI
document (:mod:`gifting.api.openapi`) publishes. Answers are open Structs
(a client must tolerate fields added later); the handlers build them from
the stores' values.

Field types reused across bodies: :data:`Id` (the rule of
:func:`gifting.core.ids.check_id`), :data:`ItemId` (a catalog id, checked
against the catalog by the handler: ``unknown_item``), :data:`Coins`.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec
from msgspec import Meta

from gifting.core.catalog import MAX_COUNT
from gifting.core.goals import MAX_GOAL, MAX_GOAL_TITLE, MAX_GOALS, MAX_STEPS
from gifting.core.guests import MAX_GUEST_NAME, MAX_GUESTS
from gifting.core.ids import ID_PATTERN, MAX_ID_LENGTH
from gifting.store.streams import MAX_TITLE_LENGTH
from gifting.store.wallets import MAX_BUDGET

__all__ = [
    "MAX_SAFE_INTEGER",
    "Answer",
    "BadgeBody",
    "BadgeBought",
    "Body",
    "Budget",
    "BudgetBody",
    "Cashout",
    "CashoutBody",
    "Cashouts",
    "Catalog",
    "CatalogBadge",
    "CatalogEffect",
    "CatalogGift",
    "CatalogHighlight",
    "CatalogHype",
    "CatalogPackage",
    "Coins",
    "Count",
    "Credited",
    "DevPurchaseBody",
    "DevTokenBody",
    "DiamondValue",
    "Earnings",
    "EarningsTotals",
    "EmptyBody",
    "Error",
    "Goal",
    "GoalBody",
    "GoalSet",
    "GoalSpecBody",
    "GoalView",
    "GoalsBody",
    "GoalsSet",
    "GuestBody",
    "GuestView",
    "GuestsBody",
    "GuestsSet",
    "Health",
    "History",
    "HistoryEntry",
    "Id",
    "ItemId",
    "ListedStream",
    "Millis",
    "Money",
    "NotReady",
    "Overlay",
    "PayoutWebhook",
    "PersistedCashout",
    "PersistedCashouts",
    "Price",
    "PurchaseWebhook",
    "Ready",
    "RefundWebhook",
    "Settled",
    "SignedCoins",
    "Stream",
    "StreamBody",
    "StreamCreated",
    "StreamEarnings",
    "StreamPage",
    "StreamTotals",
    "Token",
    "TopGifter",
    "Video",
    "VideoBody",
    "VideoCreated",
    "VideoGiftBody",
    "VideoGiftSent",
    "VideoList",
    "Wallet",
]

#: Largest integer a JSON client (JavaScript) represents exactly: 2^53 - 1.
MAX_SAFE_INTEGER: Final = 2**53 - 1
#: Text without control characters (U+0000..U+001F); see ``ID_PATTERN`` for ``(?!\n)``.
_NO_CONTROL: Final = "^[^\\x00-\\x1f]*$(?!\\n)"

Id = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=MAX_ID_LENGTH,
        pattern=ID_PATTERN,
        description="an id: 1..64 printable ASCII characters, no spaces, braces, colons or quotes",
    ),
]
ItemId = Annotated[str, Meta(min_length=1, max_length=64, description="a catalog id")]
Coins = Annotated[int, Meta(ge=0, le=MAX_SAFE_INTEGER)]
Count = Annotated[int, Meta(ge=0, le=MAX_SAFE_INTEGER)]
SignedCoins = Annotated[int, Meta(ge=-MAX_SAFE_INTEGER, le=MAX_SAFE_INTEGER)]
Millis = Annotated[int, Meta(ge=0, le=MAX_SAFE_INTEGER, description="Unix time in ms")]


class Body(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every request body: a JSON object whose unknown fields are refused."""


class Answer(msgspec.Struct, kw_only=True):
    """Base of every answer: a JSON object (clients must tolerate fields added later)."""


class Error(Answer):
    """Every error answer: a stable ``code`` and a human ``message``."""

    code: str
    message: str


# --------------------------------------------------------------------------- bodies


class EmptyBody(Body):
    """An empty object, or no body at all."""


class BudgetBody(Body):
    """Set (``monthly``: coins) or clear (``null``) the monthly spending budget."""

    monthly: Annotated[int, Meta(ge=0, le=MAX_BUDGET)] | None


class BadgeBody(Body):
    """Buy a profile badge; ``id`` makes the purchase idempotent."""

    id: Id
    badge: ItemId


class CashoutBody(Body):
    """Hold ``diamonds`` for a cash-out; ``id`` (or the ``Idempotency-Key`` header)."""

    diamonds: Annotated[int, Meta(ge=1, le=MAX_BUDGET)]
    id: Id | None = None


class StreamBody(Body):
    """Start a live stream with this title (no control characters)."""

    title: Annotated[str, Meta(max_length=MAX_TITLE_LENGTH, pattern=_NO_CONTROL)]


class GoalBody(Body):
    """A goal of ``target`` coins, of one gift (``gift``) or of every gift (``null``)."""

    target: Annotated[int, Meta(ge=1, le=MAX_GOAL)]
    gift: ItemId | None = None


class PurchaseWebhook(Body):
    """A completed purchase, told by the payment provider."""

    purchase_id: Id
    user: Id
    package: ItemId
    amount: Annotated[int, Meta(ge=1, le=MAX_SAFE_INTEGER, description="minor units")]
    currency: Annotated[str, Meta(min_length=1, max_length=8)]


class RefundWebhook(Body):
    """A refunded purchase: its coins are taken back once."""

    purchase_id: Id


class PayoutWebhook(Body):
    """A cash-out's payout settled by the provider."""

    cashout: Id
    status: Literal["paid", "failed", "processing"]


class DevTokenBody(Body):
    """Mint a development token for ``user``."""

    user: Id
    name: Annotated[str, Meta(min_length=1, max_length=64)] | None = None
    creator: bool = False


class DevPurchaseBody(Body):
    """Buy a package for the caller without a provider (development only)."""

    package: ItemId


# --------------------------------------------------------------------------- answers


class Budget(Answer):
    """A monthly budget: ``monthly`` and ``remaining`` are ``null`` without one."""

    monthly: int | None
    spent: Coins
    remaining: int | None
    period: str


class OwnedBadge(Answer):
    """A profile badge as shown on events and in the wallet."""

    id: str
    name: str
    tier: Annotated[int, Meta(ge=1)]


class Wallet(Answer):
    """The caller's balances, badges and budget."""

    user: str
    coins: SignedCoins
    diamonds: Count
    diamonds_held: Count
    diamonds_paid: Count
    diamonds_earned: Count
    badge: str | None
    badges: list[OwnedBadge]
    budget: Budget


class BadgeBought(Answer):
    """A badge bought (or the first answer again, on a replay)."""

    id: str
    event: str
    balance: SignedCoins
    badge: str
    coins: Coins
    shown: str | None


class Money(Answer):
    """An amount of real money in minor units."""

    amount: Count
    currency: str


class Cashout(Answer):
    """A cash-out and its state."""

    cashout: str
    status: Annotated[
        str, Meta(description="held, processing (being paid out), paid, failed or cancelled")
    ]
    diamonds: Count
    amount: Money
    created: Millis
    id: str | None = None


class Cashouts(Answer):
    """The caller's cash-outs, newest first."""

    cashouts: list[Cashout]


class Settled(Cashout, kw_only=True):
    """A cash-out after its payout webhook, with its user."""

    user: str


class Goal(Answer):
    """A stream's goal and how far it is."""

    target: Coins
    gift: str | None
    progress: Coins


class StreamTotals(Answer):
    """What a stream received."""

    coins: Coins
    gifts: Count


class ListedStream(Answer):
    """A live stream in the discovery listing."""

    stream: str
    creator: str
    title: str
    viewers: Count
    totals: StreamTotals


class StreamPage(Answer):
    """A page of live streams, most viewers first; ``next`` is null on the last page."""

    streams: list[ListedStream]
    next: str | None


class TopGifter(Answer):
    """One of a stream's top gifters."""

    user: str
    name: str
    coins: Coins


class Stream(Answer):
    """A stream's public view (never holds the overlay key)."""

    stream: str
    creator: str
    creator_name: str
    title: str
    live: bool
    created: Millis
    ended: int | None
    totals: StreamTotals
    top: list[TopGifter]
    goal: Goal | None
    guests: list[GuestView]
    goals: list[GoalView]


class Overlay(Answer):
    """The overlay key (a secret) and the URL an overlay opens."""

    stream: str
    overlay_key: str
    overlay_url: str


class StreamCreated(Stream):
    """A new stream's public view with its overlay key and URL."""

    overlay_key: str
    overlay_url: str


class GoalSet(Answer):
    """The stream's goal after a change."""

    stream: str
    goal: Goal | None
    goals: list[GoalView]


class Credited(Answer):
    """A purchase credited (or refunded: ``refunded``); a replay repeats the first."""

    purchase_id: str
    user: str
    coins: Coins
    balance: SignedCoins
    refunded: bool | None = None


class Token(Answer):
    """A development token."""

    token: str
    user: str
    roles: list[str]


class Price(Answer):
    """A package's price."""

    amount: Count
    currency: str


class CatalogGift(Answer):
    """A gift."""

    id: str
    name: str
    coins: Coins
    tier: Count
    streakable: bool


class CatalogPackage(Answer):
    """A coin package."""

    id: str
    coins: Coins
    price: Price


class CatalogEffect(Answer):
    """A paid effect."""

    id: str
    name: str
    coins: Coins
    duration_ms: Count


class CatalogHighlight(Answer):
    """A highlighted-comment tier."""

    id: str
    coins: Coins
    pin_ms: Count
    max_length: Count


class CatalogBadge(Answer):
    """A profile badge."""

    id: str
    name: str
    coins: Coins


class CatalogLevel(Answer):
    """A gifter level: reached at ``coins`` lifetime coins spent."""

    level: Count
    coins: Coins


class DiamondValue(Answer):
    """What ``diamonds`` diamonds are worth."""

    amount: Count
    currency: str
    diamonds: Count


class Catalog(Answer):
    """What can be bought and sold, at what price."""

    gifts: list[CatalogGift]
    packages: list[CatalogPackage]
    effects: list[CatalogEffect]
    highlights: list[CatalogHighlight]
    badges: list[CatalogBadge]
    creator_share_bps: Count
    diamond_value: DiamondValue
    cashout_min_diamonds: Count
    cashout_daily_cap_diamonds: Count
    max_count: Count
    levels: list[CatalogLevel] = []
    hype: CatalogHype | None = None


class HistoryEntry(Answer):
    """One ledger event of the caller (more fields by ``type``)."""

    event: str
    type: str
    ts: Millis
    coins: SignedCoins
    diamonds: int


class History(Answer):
    """A page of the caller's ledger, newest first; ``next`` pages on."""

    entries: list[HistoryEntry]
    next: str | None


class EarningsTotals(Answer):
    """A creator's totals."""

    coins: SignedCoins
    diamonds: int
    gifts: Count
    streams: Count
    coins_received: SignedCoins


class StreamEarnings(Answer):
    """What one stream earned."""

    stream: str
    coins: SignedCoins
    diamonds: int
    gifts: Count
    spends: Count
    first_ts: int | None
    last_ts: int


class Earnings(Answer):
    """The caller's earnings as a creator, in total and per stream."""

    creator: str
    totals: EarningsTotals
    streams: list[StreamEarnings]


class PersistedCashout(Answer):
    """A cash-out as PostgreSQL keeps it."""

    cashout: str
    diamonds: Count
    amount: Money | None
    status: str
    created: int | None
    settled: int | None


class PersistedCashouts(Answer):
    """The caller's cash-outs from the durable record."""

    cashouts: list[PersistedCashout]


class Health(Answer):
    """The process answers."""

    status: Literal["ok"]


class Ready(Answer):
    """Every dependency answered."""

    status: Literal["ready"]
    checks: dict[str, str]


class NotReady(Error):
    """A dependency did not answer (503)."""

    checks: dict[str, str]


# --------------------------------------------------------------------------- guests


class GuestBody(Body):
    """A guest with the display name the room shows (``name`` absent: the user id)."""

    user: Id
    name: (
        Annotated[str, Meta(min_length=1, max_length=MAX_GUEST_NAME, pattern=_NO_CONTROL)] | None
    ) = None


class GuestsBody(Body):
    """The stream's whole guest list: user ids, or ``{"user","name"}`` objects (at most 8)."""

    guests: Annotated[list[Id | GuestBody], Meta(max_length=MAX_GUESTS)]


class GuestView(Answer):
    """A guest as shown: user id and display name."""

    user: str
    name: str


class GuestsSet(Answer):
    """The stream's guest list after ``PUT .../guests``."""

    stream: str
    guests: list[GuestView]


# --------------------------------------------------------------------------- videos


class VideoBody(Body):
    """Register a published video with this title (no control characters)."""

    title: Annotated[str, Meta(max_length=MAX_TITLE_LENGTH, pattern=_NO_CONTROL)]


class VideoGiftBody(Body):
    """Send ``count`` of ``gift`` on a video; ``id`` (the client's) makes it idempotent."""

    id: Id
    gift: ItemId
    count: Annotated[int, Meta(ge=1, le=MAX_COUNT)] = 1


class Video(Answer):
    """A video's public view: its creator, title, totals and top gifters."""

    video: str
    creator: str
    creator_name: str
    title: str
    created: Millis
    totals: StreamTotals
    top: list[TopGifter]


class VideoCreated(Video):
    """A video just registered."""


class VideoList(Answer):
    """A creator's video ids, newest first."""

    creator: str
    videos: list[str]


class VideoGiftSent(Answer):
    """A gift sent on a video (or the first answer again, on a replay)."""

    id: str
    event: str
    balance: SignedCoins
    video: str
    gift: str
    count: Count
    coins: Coins


# -- leaderboards (gifting/api/leaderboards.py) ----------------------------------------


class BoardPlace(Answer):
    """One place on a leaderboard: rank (1 first; ties ordered by user id), user, coins."""

    rank: Annotated[int, Meta(ge=1)]
    user: str
    name: str
    coins: Coins


class Leaderboard(Answer):
    """A leaderboard: ``period`` (``week``, ``month`` or ``stream``), ``at`` (the ISO week,
    month or stream id) and its places, best first."""

    period: Literal["week", "month", "stream"]
    at: str
    entries: list[BoardPlace]


# --------------------------------------------------------------------------- goals (issue 17)


class GoalSpecBody(Body):
    """One goal: ``target`` coins (``gift`` null) or a count of one gift; ``steps`` are
    intermediate marks, strictly increasing, each below the target."""

    id: Id
    target: Annotated[int, Meta(ge=1, le=MAX_GOAL)]
    title: Annotated[str, Meta(max_length=MAX_GOAL_TITLE, pattern=_NO_CONTROL)] = ""
    gift: ItemId | None = None
    steps: Annotated[list[Annotated[int, Meta(ge=1, le=MAX_GOAL)]], Meta(max_length=MAX_STEPS)] = []


class GoalsBody(Body):
    """A stream's goals (at most three, unique ids); replaces the list."""

    goals: Annotated[list[GoalSpecBody], Meta(max_length=MAX_GOALS)]


class GoalView(Answer):
    """One goal and how far it is (``steps_reached``: the steps at or below ``progress``)."""

    id: str
    title: str
    progress: Count
    target: Count
    gift: str | None
    steps: list[Count]
    steps_reached: list[Count]
    reached: bool


class GoalsSet(Answer):
    """The stream's goals after a change."""

    stream: str
    goals: list[GoalView]


# --------------------------------------------------------------------------- hype (issue 17)


class CatalogHype(Answer):
    """Room hype: ``gifters`` distinct senders spending ``coins`` within ``window_s``
    start level 1; ``levels[n-1]`` coins lead from level n to n + 1."""

    gifters: Count
    coins: Coins
    window_s: Count
    levels: list[Coins]
