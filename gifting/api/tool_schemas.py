"""Bodies and answers of the creator tools: moderation, cash-out cancel, webhook subscriptions.

The same kind of msgspec Structs as :mod:`gifting.api.schemas` (which
holds the base classes and the shared field types), in a module of their
own so that neither grows past a screenful of classes. Each answer is
exactly what its handler returns (nullable fields as ``X | None``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from gifting.api.schemas import Answer, Body, Count, Id, Millis
from gifting.core.feed import FEED_KINDS, MAX_KINDS, MAX_URL_LENGTH

__all__ = [
    "Block",
    "BlockBody",
    "BlockSet",
    "Blocks",
    "Deliveries",
    "DeliveryAttempt",
    "EventHidden",
    "ModerationAction",
    "ModerationHistory",
    "Moderator",
    "ModeratorAdded",
    "ModeratorBody",
    "ModeratorRemoved",
    "Moderators",
    "ServerSentEvent",
    "Subscription",
    "SubscriptionBody",
    "SubscriptionCreated",
    "SubscriptionDeleted",
    "Subscriptions",
    "Unblocked",
]

BlockScope = Annotated[
    Literal["stream", "creator"],
    Meta(description="`stream`: this stream only; `creator`: every stream of its creator"),
]

# --------------------------------------------------------------------------- bodies


class ModeratorBody(Body):
    """Name ``user`` a moderator of all the caller's streams."""

    user: Id


class BlockBody(Body):
    """Block ``user`` in the stream or in every stream of its creator."""

    user: Id
    scope: BlockScope


class SubscriptionBody(Body):
    """Subscribe ``url`` to the creator's room events of ``kinds`` (of one ``stream``, or all)."""

    url: Annotated[
        str,
        Meta(
            max_length=MAX_URL_LENGTH,
            description="an http:// or https:// URL with a host, no credentials, no #fragment",
        ),
    ]
    kinds: Annotated[
        list[str],
        Meta(
            min_length=1,
            max_length=MAX_KINDS,
            description="at least one room event kind: " + ", ".join(sorted(FEED_KINDS)),
        ),
    ]
    stream: Id | None = None


# --------------------------------------------------------------------------- answers


class Moderator(Answer):
    """A moderator and when it was named."""

    user: str
    at: Millis


class ModeratorAdded(Moderator):
    """A moderator named (``added``: false when it was one already)."""

    creator: str
    added: bool


class Moderators(Answer):
    """The caller's moderators, oldest first."""

    creator: str
    moderators: list[Moderator]


class ModeratorRemoved(Answer):
    """A moderator removed (``removed``: false when it was none)."""

    user: str
    creator: str
    removed: bool


class Block(Answer):
    """A block in force: set in ``stream`` by ``by``, at ``at``."""

    user: str
    scope: BlockScope
    stream: str
    creator: str
    by: str
    at: Millis


class BlockSet(Block):
    """A block set (``added``: false when it was in force already)."""

    added: bool


class Blocks(Answer):
    """The blocks that apply in the stream: its own and its creator's, oldest first."""

    stream: str
    blocks: list[Block]


class Unblocked(Answer):
    """The user's blocks lifted (none when there was none)."""

    user: str
    lifted: list[Block]


class EventHidden(Answer):
    """The ``hidden`` room event (``event``) of a hidden comment or highlight (``target``)."""

    stream: str
    event: str
    target: str
    hidden: bool


class ModerationAction(Answer):
    """One moderation action as PostgreSQL records it."""

    id: Count
    action: Literal["moderator_added", "moderator_removed", "block", "unblock", "hide"]
    actor: str
    creator: str
    stream: str | None
    user: str | None
    event: str | None
    scope: BlockScope | None
    ts: Millis


class ModerationHistory(Answer):
    """A page of the stream's moderation actions, newest first; ``next`` is the next ``before``."""

    stream: str
    actions: list[ModerationAction]
    next: int | None


class Subscription(Answer):
    """A webhook subscription (never its secret); ``stream`` ``null``: every stream."""

    id: str
    url: str
    kinds: list[str]
    stream: str | None
    created: Millis


class SubscriptionCreated(Subscription):
    """A new subscription with its secret, shown this once."""

    secret: str


class Subscriptions(Answer):
    """The caller's active subscriptions, oldest first."""

    subscriptions: list[Subscription]


class SubscriptionDeleted(Answer):
    """A subscription stopped."""

    id: str
    deleted: bool


class DeliveryAttempt(Answer):
    """One delivery attempt and the receiver's answer (``status`` ``null``: none)."""

    event: str
    kind: str
    stream: str
    seq: Count
    attempt: Count
    at: Millis
    status: int | None
    latency_ms: Count
    error: str | None
    next_retry: int | None
    delivery: Literal["pending", "delivered", "failed", "cancelled"]


class Deliveries(Answer):
    """The subscription's latest delivery attempts, newest first."""

    id: str
    deliveries: list[DeliveryAttempt]


class ServerSentEvent(Answer):
    """One message of ``text/event-stream``: a room event, the ``snapshot`` or an ``error``.

    (Before OpenAPI 3.2, the ``schema`` of an event stream describes each event.)
    """

    data: Annotated[str, Meta(description="the overlay's JSON frame of the message")]
    event: Annotated[str, Meta(description="the room event's kind, `snapshot` or `error`")]
    id: Annotated[str, Meta(description="the cursor after this message")] | None = None
