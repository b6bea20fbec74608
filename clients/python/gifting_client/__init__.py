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
"""

from gifting_client.backoff import Backoff
from gifting_client.errors import (
    BadRequest,
    BudgetExceeded,
    Conflict,
    ConnectionFailed,
    CursorExpired,
    ErrorReply,
    Forbidden,
    GiftingError,
    InsufficientFunds,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    StreamNotLive,
    Unauthorized,
    Unavailable,
    UnknownItem,
    error_from_reply,
)
from gifting_client.messages import (
    Ack,
    Badge,
    CommentEvent,
    EffectEvent,
    EffectInfo,
    Encoding,
    GiftEvent,
    GiftInfo,
    GiftRef,
    Goal,
    GoalEvent,
    HighlightEvent,
    HighlightInfo,
    LeaderboardEvent,
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
from gifting_client.viewer import ViewerClient

__all__ = [
    "START_OF_ROOM",
    "Ack",
    "Backoff",
    "BadRequest",
    "Badge",
    "BudgetExceeded",
    "CommentEvent",
    "Conflict",
    "ConnectionFailed",
    "CursorExpired",
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
    "HighlightEvent",
    "HighlightInfo",
    "InsufficientFunds",
    "LeaderboardEvent",
    "NotFound",
    "OutcomeUnknown",
    "OverlayClient",
    "RateLimited",
    "RoomEvent",
    "Sender",
    "Snapshot",
    "StreakEnd",
    "StreamEnded",
    "StreamNotLive",
    "TopGifter",
    "Totals",
    "Unauthorized",
    "Unavailable",
    "UnknownEvent",
    "UnknownItem",
    "ViewerClient",
    "error_from_reply",
]
