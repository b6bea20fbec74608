"""The WebSocket endpoints: ``/v1/ws/viewer`` and ``/v1/ws/overlay``.

The asyncio shell around :class:`gifting.core.session.Session`: it accepts
with the negotiated subprotocol, checks who is connecting, joins the room,
then feeds the session every frame and performs the actions it returns —
queue a frame, close, submit a spend, post a comment, read history or a
snapshot — reporting each outcome back. What a connection may do, and what
every error turns into, is decided by the session; the close codes are in
gifting/core/disconnect.py. The session refuses a frame over
``GIFTING_MAX_FRAME_BYTES`` itself (1009), whatever the server; ``gifting
serve`` also sets uvicorn's ``ws_max_size``, so a big frame is not even
buffered. The heartbeat (WebSocket pings, 1011 on no pong) is the server's:
ASGI does not show pings to the app (docs/protocol.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from asyncio import Future
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from typing import Any

from starlette.routing import BaseRoute, WebSocketRoute
from starlette.types import Receive, Scope
from starlette.types import Send as ASGISend
from starlette.websockets import WebSocket

from gifting.auth import principal_from_connection
from gifting.clock import now_ms
from gifting.core.errors import GiftingError, TooManyConnections
from gifting.core.guests import guests_view
from gifting.core.ids import check_id
from gifting.core.protocol import JSON, Encoding, encode, pick_subprotocol
from gifting.core.session import (
    Action,
    ClaimBox,
    Close,
    CountSpend,
    PostComment,
    Recover,
    Role,
    Send,
    SendSnapshot,
    Session,
    SubmitSpend,
)
from gifting.hub import metrics
from gifting.hub.direct_write import open_writer
from gifting.hub.hub import Hub
from gifting.hub.room import START_OF_ROOM, Member, Room
from gifting.hub.send_queue import Outgoing, SendQueue
from gifting.state import app_state
from gifting.store.ledger import SpendOrder, SpendResult
from gifting.store.streams import Stream

log = logging.getLogger(__name__)


def _hub(ws: WebSocket) -> Hub:
    hub = app_state(ws).hub
    if hub is None:
        raise RuntimeError("the hub's routes are mounted without its lifespan")
    return hub


def _frame(message: dict[str, Any], encoding: Encoding) -> str | bytes:
    data = encode(message, encoding)
    return data.decode() if encoding == JSON else data


async def _accept(ws: WebSocket, hub: Hub, role: Role) -> Session:
    offered = [
        p.strip() for p in ws.headers.get("sec-websocket-protocol", "").split(",") if p.strip()
    ]
    encoding = pick_subprotocol(offered) or JSON
    await ws.accept(subprotocol=encoding if offered and encoding in offered else None)
    return Session(encoding, role, hub.catalog, hub.limits, hub.settings.max_frame_bytes)


async def _refuse(ws: WebSocket, session: Session, err: GiftingError) -> None:
    """Refuse before the send queue exists: write the error and the close directly."""
    if isinstance(err, TooManyConnections):
        metrics.CONNECTIONS_REFUSED.labels(err.scope).inc()
    for action in session.refuse(err):
        if isinstance(action, Send):
            frame = _frame(action.message, session.encoding)
            key = "text" if isinstance(frame, str) else "bytes"
            await ws.send({"type": "websocket.send", key: frame})
        elif isinstance(action, Close):
            metrics.CLOSES.labels(str(int(action.disconnect.code))).inc()
            await ws.close(code=action.disconnect.code, reason=action.disconnect.reason)


def _address(ws: WebSocket) -> str:
    """The client's address as uvicorn sees it (behind a proxy: see --forwarded-allow-ips)."""
    return ws.client.host if ws.client is not None else ""


async def overlay_endpoint(ws: WebSocket) -> None:
    """``/v1/ws/overlay?stream=ID&key=KEY[&since=CURSOR]``: every room event, in order."""
    hub = _hub(ws)
    session = await _accept(ws, hub, "overlay")
    ticket = hub.caps.ticket()
    try:
        try:
            ticket.admit("address", _address(ws))
            stream_id = check_id(ws.query_params.get("stream"), "stream")
            key = ws.query_params.get("key") or ""
            stream = await hub.streams.check_overlay_key(stream_id, key)
            ticket.admit("overlay", stream.stream)
        except GiftingError as err:
            await _refuse(ws, session, err)
            return
        session.authenticated(stream.live)
        await _serve(ws, hub, session, stream, ws.query_params.get("since"))
    finally:
        ticket.release()


async def viewer_endpoint(ws: WebSocket) -> None:
    """``/v1/ws/viewer?stream=ID``: send gifts, effects and comments; receive batches."""
    hub = _hub(ws)
    session = await _accept(ws, hub, "viewer")
    ticket = hub.caps.ticket()
    try:
        try:
            ticket.admit("address", _address(ws))
            principal = principal_from_connection(ws, hub.settings.jwt_secret)
            ticket.admit("user", principal.user)
            stream_id = check_id(ws.query_params.get("stream"), "stream")
            stream = await hub.streams.get(stream_id)
        except GiftingError as err:
            await _refuse(ws, session, err)
            return
        session.authenticated(stream.live, principal.user, principal.name)
        await _serve(ws, hub, session, stream)
    finally:
        ticket.release()


async def _serve(
    ws: WebSocket, hub: Hub, session: Session, stream: Stream, since: str | None = None
) -> None:
    """Join the room, recover if asked, then read frames until the peer leaves."""
    overlay = session.role == "overlay"
    limit = hub.settings.send_queue_bytes
    # Frames written straight to the transport on our uvicorn protocol; through
    # ASGI sends (a queue and its writer task) on any other server.
    queue: Outgoing
    direct = open_writer(ws.scope, session.role, limit)
    if direct is not None:
        queue = direct
    else:
        send_queue = SendQueue(ws.send, session.role, limit)
        send_queue.start()
        queue = send_queue
    member = Member(queue, session.encoding, overlay, recovering=overlay)
    room = await hub.rooms.join(stream.stream, member)
    connection = _Connection(ws, hub, session, stream, queue, member, room)
    if overlay:
        member.on_lag = connection.lagged
    try:
        await connection.perform(session.joined(since))
        await connection.read_loop()
    finally:
        session.closed()
        connection.stop()
        await hub.rooms.leave(room, member)
        await queue.wait_closed(0.5)
        queue.cancel()


class _Connection:
    """One joined connection: performs its session's actions on the socket and the hub.

    Spends are not awaited one by one: each is queued for the next ledger
    batch and its ack is written when it settles, so a client may keep many
    gifts in flight on one connection (acks carry the client's id).
    """

    __slots__ = ("_tasks", "hub", "member", "queue", "room", "session", "stream", "ws")

    def __init__(
        self,
        ws: WebSocket,
        hub: Hub,
        session: Session,
        stream: Stream,
        queue: Outgoing,
        member: Member,
        room: Room,
    ) -> None:
        self.ws = ws
        self.hub = hub
        self.session = session
        self.stream = stream
        self.queue = queue
        self.member = member
        self.room = room
        self._tasks: set[asyncio.Task[None]] = set()

    def lagged(self) -> None:
        """The overlay's queue had no room for a live event: catch up from its last cursor."""
        actions = self.session.lagged(self.member.last_cursor or START_OF_ROOM)
        if not actions:
            return
        task = asyncio.get_running_loop().create_task(self.perform(actions))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def stop(self) -> None:
        """The connection is over: stop catching up."""
        for task in self._tasks:
            task.cancel()

    async def read_loop(self) -> None:
        """Feed the session every frame until the peer leaves."""
        while True:
            msg = await self.ws.receive()
            if msg["type"] == "websocket.disconnect":
                return
            if self.queue.closed:
                # Closed by the hub: read no more (a flooder that ignores its close
                # would keep this loop busy). Let the writer send what is queued and
                # the close; uvicorn then drops the peer's frames until its reply.
                await self.queue.wait_closed(self.hub.settings.idle_timeout_s)
                return
            t0 = time.perf_counter()
            raw = msg.get("text")
            if raw is None:
                raw = msg.get("bytes")
            await self.perform(self.session.receive_frame(raw), t0)

    async def perform(self, actions: Iterable[Action], t0: float = 0.0) -> None:
        """Perform actions in order; a request's outcome is fed back and its follow-ups run next."""
        todo = deque(actions)
        while todo:
            action = todo.popleft()
            if isinstance(action, Send | Close | CountSpend):
                self._apply(action)
                continue
            try:
                if isinstance(action, SubmitSpend):
                    follow = self._submit(action, t0)
                else:
                    follow = await self._request(action)
            except Exception as exc:
                if not isinstance(exc, GiftingError):
                    log.warning("%s: %s failed: %r", self.session.role, type(action).__name__, exc)
                follow = self.session.failed(action, exc)
            todo.extendleft(reversed(follow))

    def _apply(self, action: Send | Close | CountSpend) -> None:
        if isinstance(action, Send):
            self.queue.push(_frame(action.message, self.session.encoding))
        elif isinstance(action, Close):
            self.queue.close(action.disconnect)
        else:
            metrics.SPENDS.labels(action.kind, action.result).inc()

    def _submit(self, action: SubmitSpend, t0: float) -> list[Action]:
        s, stream = self.session, self.stream
        order = SpendOrder(
            s.user, s.name, action.client_id, action.priced, stream.stream, stream.creator,
            action.text, to=action.to, creator_name=stream.creator_name,
        )  # fmt: skip
        future = self.hub.pipeline.submit(order)
        future.add_done_callback(partial(self._settled, action.client_id, action.priced.kind, t0))
        return []

    async def _request(
        self, action: PostComment | Recover | SendSnapshot | ClaimBox
    ) -> list[Action]:
        hub, stream, member = self.hub, self.stream, self.member
        if isinstance(action, ClaimBox):
            s = self.session
            claim = await hub.boxes.claim(
                stream.stream, action.box, s.user, s.name, action.client_id
            )
            return s.box_claimed(
                action.client_id, claim.box, claim.event, claim.share, claim.balance
            )
        if isinstance(action, PostComment):
            s = self.session
            await hub.pipeline.shown(s.user)  # the sender's gifts before it come first
            event = await hub.comments.post(
                stream.stream, s.user, s.name, action.client_id, action.text
            )
            return s.comment_posted(action.client_id, event)
        read_page = partial(hub.roomlog.since, stream.stream)
        timeout = hub.settings.idle_timeout_s
        if isinstance(action, Recover):
            caught_up = await member.catch_up(read_page, timeout, action.cursor)
        else:
            snapshot = await _snapshot(hub, stream)
            frame = _frame(snapshot, self.session.encoding)
            member.give_snapshot(frame, snapshot["seq"], snapshot["cursor"] or "")
            caught_up = await member.catch_up(read_page, timeout, None)
        if not caught_up:
            self.session.slow()
            return []
        return self.session.recovered()

    def _settled(self, client_id: str, kind: str, t0: float, future: Future[SpendResult]) -> None:
        exc = future.exception()
        if exc is not None:
            actions = self.session.spend_failed(client_id, kind, exc)
        else:
            r = future.result()
            actions = self.session.spend_acked(client_id, kind, r.event, r.balance, r.combo)
            metrics.ACK_LATENCY.observe(time.perf_counter() - t0)
        for action in actions:
            if isinstance(action, Send | Close | CountSpend):
                self._apply(action)


async def _snapshot(hub: Hub, stream: Stream) -> dict[str, Any]:
    """The ``snapshot`` message: the room read at one seq (snapshot.lua), so the events
    after that seq are exactly what it does not show."""
    snap = await hub.roomlog.snapshot(stream.stream)
    totals, goals = snap.totals, snap.goals
    hype, config = snap.hype, hub.roomlog.catalog.hype
    now = now_ms()
    shown = {**hype.view(config), "ts": now} if hype and config and hype.expires > now else None
    return {
        "op": "snapshot", "stream": stream.stream, "title": snap.title, "live": snap.live,
        "creator": {"id": snap.creator, "name": snap.creator_name},
        "totals": {"coins": totals.coins, "gifts": totals.gifts}, "top": totals.top,
        "goal": goals[0].legacy_view() if goals else None,
        "goals": [g.view() for g in goals],
        "hype": shown,
        "cursor": snap.cursor or None, "seq": snap.seq,
        "guests": guests_view(snap.guests),
    }  # fmt: skip


def _route(path: str, endpoint: Callable[[WebSocket], Awaitable[None]]) -> WebSocketRoute:
    """A WebSocket route calling ``endpoint`` straight from the router.

    Starlette's own wraps each connection's endpoint in a second exception
    handler (and two closures), kept for the connection's whole life; the
    app's ExceptionMiddleware already handles what the endpoint raises with
    the same handlers, so this leaves that wrapper out (memory per idle
    connection).
    """
    route = WebSocketRoute(path, endpoint)

    async def app(scope: Scope, receive: Receive, send: ASGISend) -> None:
        await endpoint(WebSocket(scope, receive=receive, send=send))

    route.app = app
    return route


routes: list[BaseRoute] = [
    _route("/v1/ws/viewer", viewer_endpoint),
    _route("/v1/ws/overlay", overlay_endpoint),
]
