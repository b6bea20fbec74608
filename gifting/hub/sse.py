"""Server-sent events: ``GET /v1/streams/{id}/events``, the overlay's feed open to code.

Authorised by the overlay key (``?key=``) or the stream creator's bearer
token. Each room event is one SSE message (``id:`` its cursor, ``event:`` its
kind, ``data:`` the overlay's JSON of it: :func:`gifting.core.feed.sse_message`).
``Last-Event-ID`` (or ``?since=``) resumes exactly like an overlay's
``since=``: the same :class:`~gifting.core.session.Session` and
:class:`~gifting.hub.room.Member` recovery run here, so there is no miss and
no repeat, and a cursor older than the room's history gets an ``error``
message (``cursor_expired``) and then a ``snapshot``. A comment line
(``: keepalive``) every ``GIFTING_FEED_KEEPALIVE_S`` (15 s) keeps proxies
from closing an idle stream.

A slow reader never slows the room: its messages wait in a
:class:`~gifting.hub.send_queue.SendQueue` bounded by
``GIFTING_SEND_QUEUE_BYTES``; past it the response ends (the client resumes
with ``Last-Event-ID``). The room's events come through its pub/sub, so a
reader on any hub sees every event. A stream that has ended and whose last
event the reader already has answers 204, which tells an ``EventSource``
to stop reconnecting.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Iterable
from functools import partial
from typing import Any, Final

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import Receive, Scope, Send

from gifting.api.routing import ApiRoute, QueryText
from gifting.api.tool_schemas import ServerSentEvent
from gifting.auth import principal_from_connection
from gifting.core.admission import Ticket
from gifting.core.errors import Forbidden, NotFound, TooManyConnections, Unavailable
from gifting.core.feed import KEEPALIVE, sse_message
from gifting.core.ids import check_id
from gifting.core.protocol import JSON
from gifting.core.session import Action, Close, Recover, SendSnapshot, Session
from gifting.core.session import Send as SendAction
from gifting.hub.endpoints import _snapshot as room_snapshot
from gifting.hub.hub import Hub
from gifting.hub.room import Member
from gifting.hub.send_queue import SendQueue
from gifting.state import app_state
from gifting.store.rooms import parse_cursor
from gifting.store.streams import Stream

__all__ = ["EventStream", "routes", "stream_events"]

#: What the queue holds for a keepalive (a JSON frame never starts with ":").
_KEEPALIVE_FRAME: Final = ":"
_HEADERS: Final = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # nginx: pass each message on at once
]
_json = msgspec.json.Encoder()
#: Longest cursor ``?since=`` takes (a real one is about 30 characters).
MAX_CURSOR_LENGTH: Final = 100
SINCE = QueryText(
    "since", max_length=MAX_CURSOR_LENGTH,
    description="resume after this cursor (an event's `id:`), as `Last-Event-ID` does",
)  # fmt: skip


def _hub(request: Request) -> Hub:
    hub = app_state(request).hub
    if hub is None:
        raise Unavailable("this server runs no hub")
    return hub


async def stream_events(request: Request) -> Response:
    """The room's events as server-sent events: the overlay's feed, open to code.

    Authorised by the overlay key (``?key=``) or the stream creator's bearer
    token. Each room event is one message (``id:`` its cursor, ``event:`` its
    kind, ``data:`` the overlay's JSON); without a cursor the stream opens
    with a ``snapshot``. ``Last-Event-ID`` or ``?since=`` resumes right after
    a cursor; a cursor older than the room's history gets an ``error``
    message (``cursor_expired``), then a snapshot. See docs/protocol.md.
    """
    hub = _hub(request)
    stream_id = check_id(request.path_params["stream"], "stream")
    key = request.query_params.get("key")
    if key is not None:
        stream = await hub.streams.check_overlay_key(stream_id, key)
    else:
        caller = principal_from_connection(request, hub.settings.jwt_secret)
        stream = await hub.streams.get(stream_id)
        if stream.creator != caller.user:
            raise Forbidden("only the stream's creator (or its overlay key) can read its events")
    since = request.headers.get("last-event-id") or SINCE.read(request) or None
    if since is not None:
        _, seq = parse_cursor(since)  # a malformed cursor is a 400 before the stream opens
        if not stream.live:
            last = await hub.roomlog.last_cursor(stream.stream)
            if last is None or seq >= parse_cursor(last)[1]:
                return Response(status_code=204)  # nothing more will ever come
    if request.method == "HEAD":  # the headers only: no room joined, no slot held
        return Response(status_code=200, headers={k.decode(): v.decode() for k, v in _HEADERS})
    ticket = hub.caps.ticket()
    try:
        ticket.admit("address", request.client.host if request.client else "")
        ticket.admit("overlay", stream.stream)
    except Exception:
        ticket.release()
        raise
    return EventStream(hub, stream, since, ticket)


class EventStream(Response):
    """The streaming answer of one SSE reader: a room member until either side ends it."""

    def __init__(self, hub: Hub, stream: Stream, since: str | None, ticket: Ticket) -> None:
        super().__init__(status_code=200)
        self.hub = hub
        self.stream = stream
        self.since = since
        self.ticket = ticket
        self.session = Session(JSON, "overlay", hub.catalog, hub.limits, None)
        self.session.authenticated(stream.live)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the headers, join the room, recover, then stream until closed or gone."""
        try:
            await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
            queue = SendQueue(partial(_write, send), "sse", self.hub.settings.send_queue_bytes)
            # No on_lag: a reader with no room for the next event is closed (its
            # backlog dropped) and resumes with Last-Event-ID.
            member = Member(queue, JSON, True, recovering=True)
            room = await self.hub.rooms.join(self.stream.stream, member)
            try:
                await self._serve(receive, queue, member)
            finally:
                self.session.closed()
                await self.hub.rooms.leave(room, member)
                queue.cancel()
        finally:
            self.ticket.release()

    async def _serve(self, receive: Receive, queue: SendQueue, member: Member) -> None:
        queue.start()
        loop = asyncio.get_running_loop()
        tasks = [
            loop.create_task(self._perform(self.session.joined(self.since), queue, member)),
            loop.create_task(_keepalive(queue, self.hub.settings.feed_keepalive_s)),
        ]
        ends = [
            loop.create_task(_until_disconnect(receive)),
            loop.create_task(queue.wait_closed(float(10**9))),
        ]
        try:
            await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in [*tasks, *ends]:
                task.cancel()
            await asyncio.gather(*tasks, *ends, return_exceptions=True)

    async def _perform(self, actions: Iterable[Action], queue: SendQueue, member: Member) -> None:
        todo = deque(actions)
        while todo:
            action = todo.popleft()
            if isinstance(action, SendAction):
                queue.push(_json.encode(action.message).decode())
            elif isinstance(action, Close):
                queue.close(action.disconnect)
            elif isinstance(action, Recover | SendSnapshot):
                try:
                    follow = await self._recover(action, queue, member)
                except Exception as exc:
                    follow = self.session.failed(action, exc)
                todo.extendleft(reversed(follow))

    async def _recover(
        self, action: Recover | SendSnapshot, queue: SendQueue, member: Member
    ) -> list[Action]:
        hub, stream = self.hub, self.stream
        read_page = partial(hub.roomlog.since, stream.stream)
        timeout = hub.settings.idle_timeout_s
        if isinstance(action, Recover):
            caught_up = await member.catch_up(read_page, timeout, action.cursor)
        else:
            snapshot = await room_snapshot(hub, stream)
            frame = _json.encode(snapshot).decode()
            member.give_snapshot(frame, snapshot["seq"], snapshot["cursor"] or "")
            caught_up = await member.catch_up(read_page, timeout, None)
        if not caught_up:
            self.session.slow()
            return []
        return self.session.recovered()


async def _write(send: Send, message: dict[str, Any]) -> None:
    """The send queue's writer: a frame as one SSE message, a close as the end of the body."""
    if message["type"] == "websocket.send":
        text: str = message["text"]
        data = KEEPALIVE if text == _KEEPALIVE_FRAME else sse_message(text)
        await send({"type": "http.response.body", "body": data, "more_body": True})
    else:
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _keepalive(queue: SendQueue, every_s: float) -> None:
    while not queue.closed:
        await asyncio.sleep(every_s)
        queue.push(_KEEPALIVE_FRAME)


async def _until_disconnect(receive: Receive) -> None:
    with contextlib.suppress(OSError):
        while (await receive())["type"] != "http.disconnect":
            pass


routes: list[BaseRoute] = [
    ApiRoute("/v1/streams/{stream}/events", stream_events, "GET",
             answer=ServerSentEvent, media_type="text/event-stream",
             auth="overlay_key_or_bearer", query=[SINCE],
             request_headers={"Last-Event-ID": "resume after this cursor (what `EventSource` "
                                               "sends on reconnect; wins over `since`)"},
             other_answers={204: "the stream has ended and the reader has its last event"},
             errors=[Forbidden, NotFound, TooManyConnections],
             tags=["feed"]),
]  # fmt: skip
