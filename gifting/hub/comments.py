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

from gifting.clock import now_ms
from gifting.core.errors import Blocked, StreamNotLive
from gifting.core.events import comment_event, sender_of
from gifting.core.ids import comment_event_id, fingerprint
from gifting.core.pricing import check_comment
from gifting.hub import metrics
from gifting.store.moderation import Moderation
from gifting.store.rooms import RoomLog
from gifting.store.streams import Streams


class RoomComments:
    """Posts a viewer's free comment to the room of a live stream."""

    def __init__(self, streams: Streams, roomlog: RoomLog) -> None:
        self.streams = streams
        self.roomlog = roomlog
        self.moderation = Moderation(streams.redis, streams.keys, streams)

    async def post(self, stream: str, user: str, name: str, client_id: str, text: object) -> str:
        """Post a free comment to the room, once per client id; returns its event id."""
        body_text = check_comment(text)
        live, creator = await self.streams.redis.hmget(
            self.streams.keys.stream(stream), ["live", "creator"]
        )
        if live != b"1":
            raise StreamNotLive("the stream is not live")
        if creator and await self.moderation.is_blocked(user, creator.decode(), stream):
            metrics.BLOCKED_COMMENTS.inc()
            raise Blocked("you are blocked in this stream")
        event = comment_event_id(user, client_id)
        body = comment_event(stream, event, now_ms(), sender_of(user, name), body_text)
        await self.roomlog.emit(stream, body, fingerprint=fingerprint(body_text))
        return event
