"""Typed server messages: acks, room events, snapshots; and the two encodings.

Room events are frozen :class:`msgspec.Struct` values, one class per ``kind``
(a tagged union on ``kind``), all sharing ``stream``, ``seq``, ``cursor``,
``event`` and ``ts``. Fields the server adds later are ignored, and a
``kind`` this version does not know arrives as :class:`UnknownEvent` with its
raw fields, so a newer server never breaks an older client.
"""

from __future__ import annotations

from typing import Any, Final, Literal, TypeAlias

import msgspec

__all__ = [
    "JSON",
    "MSGPACK",
    "Ack",
    "Badge",
    "CommentEvent",
    "EffectEvent",
    "EffectInfo",
    "Encoding",
    "GiftEvent",
    "GiftInfo",
    "GiftRef",
    "Goal",
    "GoalEvent",
    "GoalProgress",
    "GoalReached",
    "GuestView",
    "GuestsEvent",
    "HighlightEvent",
    "HighlightInfo",
    "HypeEnded",
    "HypeEvent",
    "HypeProgress",
    "HypeState",
    "LeaderboardEvent",
    "LevelUp",
    "Receiver",
    "RoomEvent",
    "Sender",
    "Snapshot",
    "StreakEnd",
    "StreamEnded",
    "TopGifter",
    "Totals",
    "UnknownEvent",
    "decode_frame",
    "encode_frame",
    "parse_event",
    "parse_snapshot",
    "subprotocol_of",
]

Encoding: TypeAlias = Literal["json", "msgpack"]
JSON: Final = "json"
MSGPACK: Final = "msgpack"
_SUBPROTOCOLS: Final[dict[str, str]] = {
    JSON: "gifting.json.v1",
    MSGPACK: "gifting.msgpack.v1",
}

# ----------------------------------------------------------------------------- parts


class Badge(msgspec.Struct, frozen=True):
    """A profile badge on an event: ``tier`` ranks it by price (1 = the cheapest)."""

    id: str
    name: str
    tier: int = 1


class Sender(msgspec.Struct, frozen=True):
    """Who sent a gift, effect or comment (``badge``: the best badge they own, if any).

    ``level``: their gifter level (lifetime coins spent, by the catalog's ``levels``).
    """

    id: str
    name: str
    badge: Badge | None = None
    level: int = 0


class GiftInfo(msgspec.Struct, frozen=True):
    """A gift of the catalog as it rides on an event (``tier`` 3 and 4 are full-screen)."""

    id: str
    name: str
    coins: int
    tier: int = 1
    streakable: bool = False


class GiftRef(msgspec.Struct, frozen=True):
    """A gift named by id only (``streak_end``)."""

    id: str


class EffectInfo(msgspec.Struct, frozen=True):
    """A live-stream effect and how long it plays."""

    id: str
    name: str
    duration_ms: int


class HighlightInfo(msgspec.Struct, frozen=True):
    """A highlighted-comment tier and how long the comment stays pinned."""

    tier: str
    pin_ms: int
    level: int = 0  # the tier's rank by price (1 = the cheapest); overlays pin by it


class TopGifter(msgspec.Struct, frozen=True):
    """One line of a stream's leaderboard."""

    user: str
    name: str
    coins: int


class Goal(msgspec.Struct, frozen=True):
    """A stream goal: ``progress`` of ``target`` coins (of one ``gift`` when set)."""

    target: int
    progress: int
    gift: str | None = None


class GoalProgress(msgspec.Struct, frozen=True, kw_only=True):
    """One of a stream's goals (at most three): ``progress`` toward ``target`` (coins, or
    the count of one ``gift``), its ``steps`` and the ones reached."""

    id: str
    target: int
    progress: int
    title: str = ""
    gift: str | None = None
    steps: list[int] = msgspec.field(default_factory=list)
    steps_reached: list[int] = msgspec.field(default_factory=list)
    reached: bool = False


class HypeState(msgspec.Struct, frozen=True, kw_only=True):
    """A running hype: ``level``, ``progress`` toward the level's ``target``, its expiry
    (unix ms, server time; ``ts``: the server's time then, in snapshots)."""

    level: int
    progress: int
    target: int
    expires_at: int
    ts: int | None = None


class Totals(msgspec.Struct, frozen=True):
    """What a stream received so far."""

    coins: int
    gifts: int


# ----------------------------------------------------------------------------- replies


class Ack(msgspec.Struct, frozen=True):
    """A message was accepted: its ``event`` id, the sender's new ``balance``, the ``combo``.

    ``balance`` is ``None`` for free comments, ``combo`` for anything but gifts.
    ``box``: the treasure box a drop made or a claim claimed; ``share``: the
    coins a claim won. A retry of the same id returns the same ack.
    """

    id: str
    event: str
    balance: int | None = None
    combo: int | None = None
    box: str | None = None
    share: int | None = None


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    """The state of a room when an overlay joins (or after ``cursor_expired``).

    ``cursor`` and ``seq`` are the room's position: events after it follow.
    ``expired`` is set by the client when this snapshot replaces history
    that was trimmed (the overlay missed events it can no longer get).
    """

    stream: str
    live: bool
    title: str = ""
    creator: Sender | None = None
    totals: Totals = Totals(0, 0)
    top: list[TopGifter] = msgspec.field(default_factory=list)
    goal: Goal | None = None
    goals: list[GoalProgress] = msgspec.field(default_factory=list)
    hype: HypeState | None = None
    cursor: str | None = None
    seq: int = 0
    expired: bool = False
    guests: list[GuestView] = msgspec.field(default_factory=list)


# ----------------------------------------------------------------------------- events


class _Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind"):
    """Fields every room event carries."""

    stream: str
    seq: int
    cursor: str
    event: str
    ts: int

    @property
    def kind(self) -> str:
        """The event's kind on the wire (``"gift"``, ``"streak_end"``, ...)."""
        return str(self.__struct_config__.tag)


class Receiver(msgspec.Struct, frozen=True):
    """Who received a gift: the host, or a guest of the stream (``guest`` true)."""

    id: str
    name: str
    guest: bool = False


class GiftEvent(_Event, frozen=True, tag="gift"):
    """``count`` of ``gift`` from ``sender``: ``combo`` is the streak so far, ``coins`` paid.

    ``receiver``: the host or the guest it was sent to (``None`` from older servers).
    """

    sender: Sender
    gift: GiftInfo
    count: int
    combo: int = 0
    coins: int = 0
    receiver: Receiver | None = None


class StreakEnd(_Event, frozen=True, tag="streak_end"):
    """The combo window passed: ``sender``'s streak of ``gift`` ended at ``combo``."""

    sender: Sender
    gift: GiftRef
    combo: int


class EffectEvent(_Event, frozen=True, tag="effect"):
    """A paid live-stream effect."""

    sender: Sender
    effect: EffectInfo
    coins: int = 0


class HighlightEvent(_Event, frozen=True, tag="highlight"):
    """A paid comment, pinned on the overlay for ``highlight.pin_ms``."""

    sender: Sender
    text: str
    highlight: HighlightInfo
    coins: int = 0


class CommentEvent(_Event, frozen=True, tag="comment"):
    """A free comment."""

    sender: Sender
    text: str


class LeaderboardEvent(_Event, frozen=True, tag="leaderboard"):
    """The stream's top gifters (when they changed, at most once a second)."""

    top: list[TopGifter]


class GoalEvent(_Event, frozen=True, tag="goal"):
    """The goals were set or moved: ``goals``, and ``goal`` the first in the older form."""

    goal: Goal | None = None
    goals: list[GoalProgress] = msgspec.field(default_factory=list)


class GoalReached(_Event, frozen=True, tag="goal_reached"):
    """Goal ``goal`` reached ``step`` (``None``: its target); once per goal and step."""

    goal: str
    step: int | None


class HypeEvent(_Event, frozen=True, tag="hype"):
    """A hype reached ``level`` (level 1: it started); once per level."""

    level: int
    progress: int
    target: int
    expires_at: int


class HypeProgress(_Event, frozen=True, tag="hype_progress"):
    """Where a running hype stands (at most once a second)."""

    level: int
    progress: int
    target: int
    expires_at: int


class HypeEnded(_Event, frozen=True, tag="hype_ended"):
    """The hype ran out at ``level``; once."""

    level: int


class StreamEnded(_Event, frozen=True, tag="stream_ended"):
    """The creator ended the stream; the server closes the connection after it."""


class LevelUp(_Event, frozen=True, tag="level_up"):
    """``user`` reached gifter ``level`` (``name``: their display name); once per level."""

    user: str
    name: str
    level: int


class GuestView(msgspec.Struct, frozen=True):
    """A guest of the stream (multi-guest LIVE): user id and display name."""

    user: str
    name: str


class GuestsEvent(_Event, frozen=True, tag="guests"):
    """The stream's guest list changed: ``guests`` is the whole new list."""

    guests: list[GuestView]


class BoxDroppedEvent(_Event, frozen=True, tag="box_dropped"):
    """``sender`` dropped treasure box ``box``: ``coins`` for at most ``winners`` viewers.

    Claims are taken from ``opens_at`` until ``closes_at`` (unix ms, the server's clock).
    """

    box: str
    sender: Sender
    coins: int
    winners: int
    opens_at: int
    closes_at: int


class BoxOpenedEvent(_Event, frozen=True, tag="box_opened"):
    """Treasure box ``box`` is open for claims until ``closes_at``."""

    box: str
    closes_at: int


class BoxClaimedEvent(_Event, frozen=True, tag="box_claimed"):
    """``user`` (``name``) won ``share`` coins of ``box``, the ``order``-th claim."""

    box: str
    user: str
    name: str
    share: int
    order: int


class BoxClosedEvent(_Event, frozen=True, tag="box_closed"):
    """Treasure box ``box`` closed: ``claimed`` coins by ``claims`` viewers, ``returned``."""

    box: str
    claimed: int
    claims: int
    returned: int


class UnknownEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event of a kind this client does not know (``data`` holds every field)."""

    kind: str
    stream: str
    seq: int
    cursor: str
    event: str
    ts: int
    data: dict[str, Any]


RoomEvent: TypeAlias = (
    GiftEvent
    | StreakEnd
    | EffectEvent
    | HighlightEvent
    | CommentEvent
    | LeaderboardEvent
    | GoalEvent
    | GoalReached
    | HypeEvent
    | HypeProgress
    | HypeEnded
    | StreamEnded
    | LevelUp
    | GuestsEvent
    | BoxDroppedEvent
    | BoxOpenedEvent
    | BoxClaimedEvent
    | BoxClosedEvent
    | UnknownEvent
)
_KnownEvent: TypeAlias = (
    GiftEvent
    | StreakEnd
    | EffectEvent
    | HighlightEvent
    | CommentEvent
    | LeaderboardEvent
    | GoalEvent
    | GoalReached
    | HypeEvent
    | HypeProgress
    | HypeEnded
    | StreamEnded
    | LevelUp
    | GuestsEvent
    | BoxDroppedEvent
    | BoxOpenedEvent
    | BoxClaimedEvent
    | BoxClosedEvent
)
_KNOWN_KINDS: Final = frozenset(
    {
        "gift",
        "streak_end",
        "effect",
        "highlight",
        "comment",
        "leaderboard",
        "goal",
        "goal_reached",
        "hype",
        "hype_progress",
        "hype_ended",
        "stream_ended",
        "level_up",
        "guests",
        "box_dropped",
        "box_opened",
        "box_claimed",
        "box_closed",
    }
)


def parse_event(raw: dict[str, Any]) -> RoomEvent:
    """A typed room event from its decoded map (the ``op`` key, if any, is ignored).

    Raises :class:`msgspec.ValidationError` when a known kind lacks a field it
    needs; an unknown kind becomes :class:`UnknownEvent`.
    """
    if raw.get("kind") in _KNOWN_KINDS:
        event: _KnownEvent = msgspec.convert(raw, _KnownEvent)
        return event
    return UnknownEvent(
        kind=str(raw.get("kind")),
        stream=str(raw.get("stream", "")),
        seq=int(raw.get("seq", 0)),
        cursor=str(raw.get("cursor", "")),
        event=str(raw.get("event", "")),
        ts=int(raw.get("ts", 0)),
        data=raw,
    )


def parse_snapshot(raw: dict[str, Any], *, expired: bool = False) -> Snapshot:
    """A typed :class:`Snapshot` from its decoded map."""
    fields = {k: v for k, v in raw.items() if k != "op"}
    fields["expired"] = expired
    return msgspec.convert(fields, Snapshot)


# ----------------------------------------------------------------------------- frames

_json_encoder = msgspec.json.Encoder()
_msgpack_encoder = msgspec.msgpack.Encoder()
_json_decoder = msgspec.json.Decoder()
_msgpack_decoder = msgspec.msgpack.Decoder()


def subprotocol_of(encoding: Encoding) -> str:
    """The WebSocket subprotocol that selects ``encoding``."""
    return _SUBPROTOCOLS[encoding]


def encode_frame(message: dict[str, Any], encoding: Encoding) -> str | bytes:
    """A client message as a text (JSON) or binary (msgpack) frame."""
    if encoding == JSON:
        return _json_encoder.encode(message).decode()
    return _msgpack_encoder.encode(message)


def decode_frame(frame: str | bytes) -> dict[str, Any]:
    """A server frame as a map (text frames are JSON, binary ones msgpack).

    Raises :class:`msgspec.DecodeError` for a malformed frame and
    :class:`ValueError` for one that is not a map.
    """
    data: object = (
        _json_decoder.decode(frame) if isinstance(frame, str) else _msgpack_decoder.decode(frame)
    )
    if not isinstance(data, dict):
        raise ValueError("a server frame must be a map")
    return data
