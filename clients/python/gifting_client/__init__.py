"""Async client library for the gifting server: viewers send gifts, overlays follow rooms.

::

    from gifting_client import InsufficientFunds, OverlayClient, ViewerClient

    async with ViewerClient("ws://127.0.0.1:8000", stream, token) as viewer:
        try:
            ack = await viewer.send_gift("rose", count=5)
        except InsufficientFunds:
            ...
        async for event in viewer:          # the room's events
            ...

    async with OverlayClient("ws://127.0.0.1:8000", stream, overlay_key) as overlay:
        async for item in overlay:          # a Snapshot, then every event once, in order
            ...

Both reconnect by themselves with capped exponential backoff and jitter. A
viewer keeps each message's id across reconnects, so a send whose ack was
lost is answered by the original ack and never debits twice; an overlay
resumes with its last cursor (``since=``) and skips what it already saw.
The wire protocol is docs/protocol.md of the server.

The HTTP API (catalog, wallet, history, badges, cash-outs, streams,
moderation, webhook subscriptions) is :class:`ApiClient`; its answers are
typed (:mod:`gifting_client.api_types`) and its refusals raise the same
classes as the WebSocket side; :class:`SyncApiClient` is its blocking
facade. :func:`verify_signature` checks a webhook delivery's
``X-Gifting-Signature`` for receivers.
"""

from gifting_client.api import ApiClient, new_client_id
from gifting_client.api_types import (
    BadgeItem,
    BadgePurchase,
    Block,
    Budget,
    Cashout,
    Catalog,
    CatalogEffect,
    CatalogGift,
    CatalogHighlight,
    CreatedStream,
    DevPurchase,
    DevToken,
    DiamondValue,
    HiddenEvent,
    HistoryEntry,
    HistoryPage,
    Moderator,
    Money,
    OverlayAccess,
    Package,
    StreamGoal,
    StreamGuests,
    StreamInfo,
    VideoGift,
    VideoInfo,
    Wallet,
    WebhookDelivery,
    WebhookSubscription,
)
from gifting_client.backoff import Backoff
from gifting_client.errors import (
    AlreadyClaimed,
    BadRequest,
    Blocked,
    BoxClosed,
    BoxNotOpen,
    BudgetExceeded,
    Conflict,
    ConnectionFailed,
    CursorExpired,
    ErrorReply,
    Forbidden,
    GiftingError,
    InsufficientFunds,
    InvalidSignature,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    StreamNotLive,
    Unauthorized,
    Unavailable,
    UnexpectedResponse,
    UnknownBox,
    UnknownItem,
    UnknownReceiver,
    error_from_reply,
)
from gifting_client.messages import (
    Ack,
    Badge,
    BoxClaimedEvent,
    BoxClosedEvent,
    BoxDroppedEvent,
    BoxOpenedEvent,
    CommentEvent,
    EffectEvent,
    EffectInfo,
    Encoding,
    GiftEvent,
    GiftInfo,
    GiftRef,
    Goal,
    GoalEvent,
    GuestsEvent,
    GuestView,
    HighlightEvent,
    HighlightInfo,
    LeaderboardEvent,
    LevelUp,
    Receiver,
    RoomEvent,
    Sender,
    Snapshot,
    StreakEnd,
    StreamEnded,
    TopGifter,
    Totals,
    UnknownEvent,
)
from gifting_client.overlay import START_OF_ROOM, OverlayClient
from gifting_client.signatures import SIGNATURE_HEADER, sign, verify_signature
from gifting_client.sync_api import SyncApiClient
from gifting_client.viewer import ViewerClient

__all__ = [
    "SIGNATURE_HEADER",
    "START_OF_ROOM",
    "Ack",
    "AlreadyClaimed",
    "ApiClient",
    "Backoff",
    "BadRequest",
    "Badge",
    "BadgeItem",
    "BadgePurchase",
    "Block",
    "Blocked",
    "BoxClaimedEvent",
    "BoxClosed",
    "BoxClosedEvent",
    "BoxDroppedEvent",
    "BoxNotOpen",
    "BoxOpenedEvent",
    "Budget",
    "BudgetExceeded",
    "Cashout",
    "Catalog",
    "CatalogEffect",
    "CatalogGift",
    "CatalogHighlight",
    "CommentEvent",
    "Conflict",
    "ConnectionFailed",
    "CreatedStream",
    "CursorExpired",
    "DevPurchase",
    "DevToken",
    "DiamondValue",
    "EffectEvent",
    "EffectInfo",
    "Encoding",
    "ErrorReply",
    "Forbidden",
    "GiftEvent",
    "GiftInfo",
    "GiftRef",
    "GiftingError",
    "Goal",
    "GoalEvent",
    "GuestView",
    "GuestsEvent",
    "HiddenEvent",
    "HighlightEvent",
    "HighlightInfo",
    "HistoryEntry",
    "HistoryPage",
    "InsufficientFunds",
    "InvalidSignature",
    "LeaderboardEvent",
    "LevelUp",
    "Moderator",
    "Money",
    "NotFound",
    "OutcomeUnknown",
    "OverlayAccess",
    "OverlayClient",
    "Package",
    "RateLimited",
    "Receiver",
    "RoomEvent",
    "Sender",
    "Snapshot",
    "StreakEnd",
    "StreamEnded",
    "StreamGoal",
    "StreamGuests",
    "StreamInfo",
    "StreamNotLive",
    "SyncApiClient",
    "TopGifter",
    "Totals",
    "Unauthorized",
    "Unavailable",
    "UnexpectedResponse",
    "UnknownBox",
    "UnknownEvent",
    "UnknownItem",
    "UnknownReceiver",
    "VideoGift",
    "VideoInfo",
    "ViewerClient",
    "Wallet",
    "WebhookDelivery",
    "WebhookSubscription",
    "error_from_reply",
    "new_client_id",
    "sign",
    "verify_signature",
]
