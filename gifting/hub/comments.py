"""Free comments: validated, checked against the stream, emitted to the room once per id."""

from __future__ import annotations

from gifting.clock import now_ms
from gifting.core.errors import StreamNotLive
from gifting.core.events import comment_event, sender_of
from gifting.core.pricing import check_comment
from gifting.store.rooms import RoomLog
from gifting.store.streams import Streams


class RoomComments:
    """Posts a viewer's free comment to the room of a live stream."""

    def __init__(self, streams: Streams, roomlog: RoomLog) -> None:
        self.streams = streams
        self.roomlog = roomlog

    async def post(self, stream: str, user: str, name: str, client_id: str, text: object) -> str:
        """Post a free comment to the room, once per client id; returns its event id."""
        body_text = check_comment(text)
        if not await self.streams.is_live(stream):
            raise StreamNotLive("the stream is not live")
        event = f"m{client_id}.{user}"[:120]
        body = comment_event(stream, event, now_ms(), sender_of(user, name), body_text)
        await self.roomlog.emit(stream, body)
        return event
