"""Free comments: validated, checked against the stream, emitted to the room once per id.

A comment's event id is derived from (sender, message id) without ambiguity
(:func:`~gifting.core.ids.comment_event_id`), so a retry on any hub is the same
comment and nobody else's comment can take its place; the text's fingerprint
is kept with the room's marker, so the same id with another text is a
``conflict`` (as for spends).

A user the stream's creator or a moderator blocked (in this stream, or in
every stream of the creator) is refused with ``blocked``
(:meth:`gifting.store.moderation.Moderation.is_blocked`; a paid highlight
is refused by spend.lua itself, atomically with its debit).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from gifting.clock import now_ms
from gifting.core.badges import badge_view
from gifting.core.errors import Blocked, StreamNotLive
from gifting.core.events import comment_event, sender_of
from gifting.core.ids import comment_event_id, fingerprint
from gifting.core.levels import level_for
from gifting.core.pricing import check_comment
from gifting.hub import metrics
from gifting.store.moderation import Moderation
from gifting.store.rooms import RoomLog
from gifting.store.streams import Streams

#: Reads the badge a user shows (or ``None``) and their lifetime coins spent (one read).
MarksLookup = Callable[[str], Awaitable[tuple[str | None, int]]]


async def _no_marks(_user: str) -> tuple[str | None, int]:
    return None, 0


class RoomComments:
    """Posts a viewer's free comment to the room of a live stream.

    The sender's shown badge and gifter level ride on the comment
    (``sender.badge``, ``sender.level``): one Redis read of their wallet, made
    at once with the stream's live check.
    """

    def __init__(
        self, streams: Streams, roomlog: RoomLog, marks_of: MarksLookup = _no_marks
    ) -> None:
        self.streams = streams
        self.roomlog = roomlog
        self.marks_of = marks_of
        self.moderation = Moderation(streams.redis, streams.keys, streams)

    async def post(self, stream: str, user: str, name: str, client_id: str, text: object) -> str:
        """Post a free comment to the room, once per client id; returns its event id."""
        body_text = check_comment(text)
        (live, creator), (badge, lifetime) = await asyncio.gather(
            self.streams.redis.hmget(self.streams.keys.stream(stream), ["live", "creator"]),
            self.marks_of(user),
        )
        if live != b"1":
            raise StreamNotLive("the stream is not live")
        if creator and await self.moderation.is_blocked(user, creator.decode(), stream):
            metrics.BLOCKED_COMMENTS.inc()
            raise Blocked("you are blocked in this stream")
        event = comment_event_id(user, client_id)
        catalog = self.roomlog.catalog
        sender = sender_of(
            user, name, badge_view(catalog, badge or ""), level_for(catalog, lifetime)
        )
        body = comment_event(stream, event, now_ms(), sender, body_text)
        await self.roomlog.emit(stream, body, fingerprint=fingerprint(body_text))
        return event
