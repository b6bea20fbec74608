"""The open event feed's pure rules: SSE messages, webhook URLs and kinds, the retry schedule.

No I/O. The shells are gifting/hub/sse.py (server-sent events) and
gifting/feed/ (webhook subscriptions and their deliveries); docs/protocol.md
"The event feed" is the wire contract.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final
from urllib.parse import urlsplit

import msgspec

from gifting.core.errors import BadRequest

__all__ = [
    "FEED_KINDS",
    "KEEPALIVE",
    "MAX_KINDS",
    "MAX_URL_LENGTH",
    "backoff_s",
    "check_kinds",
    "check_url",
    "sse_message",
]

#: The room event kinds a webhook subscription may name (DESIGN.md §4, §9, §10).
FEED_KINDS: Final = frozenset({
    "gift", "streak_end", "effect", "comment", "highlight", "goal", "leaderboard",
    "stream_ended", "hidden", "video_gift", "level_up", "goal_reached", "hype",
    "hype_ended", "box_dropped", "box_opened", "box_claimed", "box_closed",
    "hype_progress",
})  # fmt: skip
MAX_KINDS: Final = len(FEED_KINDS)
MAX_URL_LENGTH: Final = 2048
#: The cursor before a room's first event (gifting.hub.room.START_OF_ROOM).
START_OF_ROOM: Final = "0-0_0"
#: The SSE comment line that keeps proxies from closing an idle stream.
KEEPALIVE: Final = b": keepalive\n\n"


class _Head(msgspec.Struct):
    """The fields of a frame an SSE message needs (the rest is skipped unread)."""

    op: str = ""
    kind: str = ""
    cursor: str | None = None
    seq: int = 0


_head = msgspec.json.Decoder(_Head)


def sse_message(frame: str) -> bytes:
    """One overlay JSON frame as an SSE message: ``id:`` cursor, ``event:`` kind, ``data:`` JSON.

    A room event (``op: event``) is named by its kind; the snapshot and an
    error (``cursor_expired``) are ``event: snapshot`` / ``event: error``. The
    ``id:`` is the cursor the frame leaves the reader at (a snapshot's too),
    so a browser's ``Last-Event-ID`` resumes right after it (an empty room's
    snapshot: the start of the room). JSON holds no raw
    newline, so the frame is one ``data:`` line.
    """
    head = _head.decode(frame)
    lines = []
    cursor = head.cursor
    if head.op == "snapshot" and not cursor and head.seq == 0:
        cursor = START_OF_ROOM  # an empty room: resume from its first event
    if cursor and head.op in ("event", "snapshot"):
        lines.append(f"id: {cursor}")
    name = head.kind if head.op == "event" else head.op
    if name:
        lines.append(f"event: {name}")
    lines.append(f"data: {frame}")
    return ("\n".join(lines) + "\n\n").encode()


def check_url(value: str) -> str:
    """A webhook receiver URL: ``http`` or ``https`` with a host, at most 2,048 characters."""
    if len(value) > MAX_URL_LENGTH:
        raise BadRequest(f"field 'url' is longer than {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 0x20 for c in value):
        raise BadRequest("field 'url' must not hold spaces or control characters")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise BadRequest(f"field 'url' is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise BadRequest("field 'url' must be an http:// or https:// URL")
    if not parts.hostname:
        raise BadRequest("field 'url' has no host")
    if port == 0:
        raise BadRequest("field 'url' has port 0")
    if parts.username is not None or parts.password is not None:
        raise BadRequest("field 'url' must not carry credentials (sign with the secret instead)")
    if parts.fragment:
        raise BadRequest("field 'url' must not have a #fragment")
    return value


def check_kinds(kinds: Iterable[str]) -> list[str]:
    """The subscribed kinds, each known, without repeats, in the order given; at least one."""
    out: list[str] = []
    for kind in kinds:
        if kind not in FEED_KINDS:
            known = ", ".join(sorted(FEED_KINDS))
            raise BadRequest(f"unknown event kind {kind[:40]!r} (known: {known})")
        if kind not in out:
            out.append(kind)
    if not out:
        raise BadRequest("field 'kinds' must name at least one event kind")
    return out


def backoff_s(attempt: int, base_s: float, cap_s: float, rand: Callable[[], float]) -> float:
    """Seconds before retry number ``attempt`` (1: after the first failure).

    Exponential (``base_s * 2^(attempt-1)``), capped at ``cap_s``, with
    "equal jitter": a uniform draw in the upper half, so retries of many
    subscriptions spread out but none comes sooner than half its step.
    ``rand`` returns a float in [0, 1).
    """
    step = min(cap_s, base_s * float(2 ** min(max(attempt - 1, 0), 62)))
    return step / 2 + step / 2 * rand()
