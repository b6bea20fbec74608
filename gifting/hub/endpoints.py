"""The WebSocket endpoints: ``/v1/ws/viewer`` and ``/v1/ws/overlay``.

A thin shell: it accepts with the negotiated subprotocol, checks who is
connecting, joins the room, then reads frames, hands each decoded message to
the hub and writes the reply. Errors become ``{"op":"error"}`` frames with
the client's id; a frame that cannot be used at all closes the connection
(1003 wrong frame type, 1008 policy, 1009 too big — uvicorn enforces the size).
"""

from __future__ import annotations

import time
from asyncio import Future
from functools import partial
from typing import Any

from starlette.routing import BaseRoute, WebSocketRoute
from starlette.websockets import WebSocket

from gifting.api.auth import principal_from_connection
from gifting.core.errors import BadRequest, CursorExpired, GiftingError, RateLimited, Unavailable
from gifting.core.ids import check_id
from gifting.core.pricing import price_effect, price_gift, price_highlight
from gifting.core.protocol import (
    JSON,
    CloseCode,
    Comment,
    Effect,
    Encoding,
    Gift,
    InvalidMessage,
    Ping,
    decode_message,
    encode,
    error_message,
    pick_subprotocol,
)
from gifting.hub import metrics
from gifting.hub.connection import Outbox
from gifting.hub.hub import Hub
from gifting.hub.room import Member, Room
from gifting.store.ledger import SpendOrder, SpendResult
from gifting.store.streams import Stream

# A sender this far past the rate limit is flooding: close the connection.
FLOOD_STRIKES = 50


def _hub(ws: WebSocket) -> Hub:
    hub: Hub = ws.app.state.gifting.extra["hub"]
    return hub


def _frame(message: dict[str, Any], encoding: Encoding) -> str | bytes:
    data = encode(message, encoding)
    return data.decode() if encoding == JSON else data


async def _accept(ws: WebSocket) -> Encoding:
    offered = [
        p.strip() for p in ws.headers.get("sec-websocket-protocol", "").split(",") if p.strip()
    ]
    encoding = pick_subprotocol(offered) or JSON
    await ws.accept(subprotocol=encoding if offered and encoding in offered else None)
    return encoding


async def _refuse(ws: WebSocket, encoding: Encoding, err: GiftingError, code: int) -> None:
    await ws.send(_send_message(_frame(error_message(err.code, err.message), encoding)))
    await ws.close(code=code, reason=err.message[:120])


def _send_message(frame: str | bytes) -> dict[str, Any]:
    if isinstance(frame, str):
        return {"type": "websocket.send", "text": frame}
    return {"type": "websocket.send", "bytes": frame}


async def _snapshot(hub: Hub, stream: Stream, room: Room) -> dict[str, Any]:
    totals = await hub.streams.totals(stream)
    goal = None
    if stream.goal is not None:
        goal = {
            "target": stream.goal.target,
            "progress": totals.goal_progress,
            "gift": stream.goal.gift,
        }
    return {
        "op": "snapshot", "stream": stream.stream, "title": stream.title, "live": stream.live,
        "creator": {"id": stream.creator, "name": stream.creator_name},
        "totals": {"coins": totals.coins, "gifts": totals.gifts}, "top": totals.top,
        "goal": goal, "cursor": room.last_cursor or None, "seq": room.last_seq,
    }  # fmt: skip


async def overlay_endpoint(ws: WebSocket) -> None:
    """``/v1/ws/overlay?stream=ID&key=KEY[&since=CURSOR]``: every room event, in order."""
    hub = _hub(ws)
    encoding = await _accept(ws)
    try:
        stream_id = check_id(ws.query_params.get("stream"), "stream")
        stream = await hub.streams.check_overlay_key(stream_id, ws.query_params.get("key") or "")
    except GiftingError as err:
        await _refuse(ws, encoding, err, CloseCode.POLICY)
        return
    since = ws.query_params.get("since")
    outbox = Outbox(ws.send, "overlay", hub.settings.send_queue_frames)
    member = Member(outbox, encoding, is_overlay=True)
    member.pending = []
    room = await hub.join(stream.stream, member)
    outbox.start()
    try:
        try:
            if since:
                await hub.recover(room, member, since)
            else:
                outbox.push(_frame(await _snapshot(hub, stream, room), encoding))
                member.last_seq = room.last_seq
                hub.release(member)
        except CursorExpired as err:
            outbox.push(_frame(error_message(err.code, err.message), encoding))
            outbox.push(_frame(await _snapshot(hub, stream, room), encoding))
            member.last_seq = room.last_seq
            hub.release(member)
        except BadRequest as err:
            outbox.push(_frame(error_message(err.code, err.message), encoding))
            outbox.close(CloseCode.POLICY, "bad cursor")
        if not stream.live:
            outbox.close(CloseCode.NORMAL, "stream ended")
        await _read_loop(ws, hub, encoding, outbox, None)
    finally:
        await hub.leave(room, member)
        await outbox.wait_closed(0.5)
        outbox.cancel()


async def viewer_endpoint(ws: WebSocket) -> None:
    """``/v1/ws/viewer?stream=ID``: send gifts, effects and comments; receive batches."""
    hub = _hub(ws)
    encoding = await _accept(ws)
    try:
        principal = principal_from_connection(ws, hub.settings.jwt_secret)
        stream_id = check_id(ws.query_params.get("stream"), "stream")
        stream = await hub.streams.get(stream_id)
    except GiftingError as err:
        await _refuse(ws, encoding, err, CloseCode.POLICY)
        return
    outbox = Outbox(ws.send, "viewer", hub.settings.send_queue_frames)
    member = Member(outbox, encoding, is_overlay=False)
    room = await hub.join(stream.stream, member)
    outbox.start()
    try:
        if not stream.live:
            outbox.push(
                _frame(error_message("stream_not_live", "the stream is not live"), encoding)
            )
            outbox.close(CloseCode.NORMAL, "stream ended")
        viewer = _Viewer(hub, principal.user, principal.name, stream, outbox, encoding)
        await _read_loop(ws, hub, encoding, outbox, viewer)
    finally:
        await hub.leave(room, member)
        await outbox.wait_closed(0.5)
        outbox.cancel()


RETRY_SAME_ID = "internal error; retry with the same id"
# Spends one connection may have waiting for their ack; past it, ``rate_limited``.
MAX_IN_FLIGHT = 256


class _Viewer:
    """What a viewer connection may do, bound to its user and stream.

    Spends are not awaited one by one: each is queued for the next ledger
    batch and its ack is written when it settles, so a client may keep many
    gifts in flight on one connection (acks carry the client's id).
    """

    def __init__(
        self, hub: Hub, user: str, name: str, stream: Stream, outbox: Outbox, encoding: Encoding
    ) -> None:
        self.hub = hub
        self.user = user
        self.name = name
        self.stream = stream
        self.outbox = outbox
        self.encoding: Encoding = encoding
        self.strikes = 0
        self.in_flight = 0

    def admit(self) -> None:
        """Apply the sender's rate limit; a sender that keeps flooding is closed (1008)."""
        try:
            self.hub.allow(self.user)
        except GiftingError:
            self.strikes += 1
            if self.strikes >= FLOOD_STRIKES:
                self.outbox.close(CloseCode.POLICY, "flooding")
            raise

    async def handle(self, message: Gift | Effect | Comment, t0: float) -> dict[str, Any] | None:
        """Start a spend (its ack follows later: returns None) or post a free comment."""
        hub, s = self.hub, self.stream
        text = ""
        if isinstance(message, Gift):
            priced = price_gift(hub.catalog, message.gift, message.count)
        elif isinstance(message, Effect):
            priced = price_effect(hub.catalog, message.effect)
        elif message.highlight is not None:
            priced = price_highlight(hub.catalog, message.highlight, message.text)
            text = message.text
        else:
            event = await hub.comment(s.stream, self.user, self.name, message.id, message.text)
            return {"op": "ack", "id": message.id, "event": event}
        if self.in_flight >= MAX_IN_FLIGHT:
            raise RateLimited(f"at most {MAX_IN_FLIGHT} spends may wait for their ack")
        order = SpendOrder(self.user, self.name, message.id, priced, s.stream, s.creator, text)
        future = hub.pipeline.submit(order)
        self.in_flight += 1
        future.add_done_callback(partial(self._acked, message.id, priced.kind, t0))
        return None

    def _acked(self, client_id: str, kind: str, t0: float, future: Future[SpendResult]) -> None:
        self.in_flight -= 1
        try:
            result = future.result()
        except GiftingError as err:
            metrics.SPENDS.labels(kind, err.code).inc()
            reply = error_message(err.code, err.message, client_id)
        except Exception:
            metrics.SPENDS.labels(kind, "unavailable").inc()
            reply = error_message(
                "unavailable", "internal error; retry with the same id", client_id
            )
        else:
            metrics.SPENDS.labels(kind, "ok").inc()
            reply = {"op": "ack", "id": client_id, "event": result.event, "balance": result.balance}
            if kind == "gift":
                reply["combo"] = result.combo
            metrics.ACK_LATENCY.observe(time.perf_counter() - t0)
        self.outbox.push(_frame(reply, self.encoding))


async def _read_loop(
    ws: WebSocket, hub: Hub, encoding: Encoding, outbox: Outbox, viewer: _Viewer | None
) -> None:
    """Read frames until the peer leaves or the connection is closed."""
    while True:
        msg = await ws.receive()
        if msg["type"] == "websocket.disconnect":
            return
        if outbox.closed:
            continue
        raw: str | bytes | None = msg.get("text") if encoding == JSON else msg.get("bytes")
        if raw is None:
            wrong = f"this connection speaks {encoding}: wrong frame type"
            outbox.push(_frame(error_message("bad_request", wrong), encoding))
            outbox.close(CloseCode.UNSUPPORTED, "wrong frame type")
            continue
        t0 = time.perf_counter()
        client_id = None
        try:
            message = decode_message(raw, encoding)
            client_id = message.id
            if isinstance(message, Ping):
                pong = {"op": "pong", "id": message.id} if message.id else {"op": "pong"}
                outbox.push(_frame(pong, encoding))
                continue
            if viewer is None:
                raise BadRequest("overlays only listen (and ping)")
            viewer.admit()
            reply = await viewer.handle(message, t0)
            if reply is None:
                continue
        except InvalidMessage as err:
            reply = error_message(err.code, err.message, err.client_id)
        except GiftingError as err:
            metrics.SPENDS.labels("any", err.code).inc()
            reply = error_message(err.code, err.message, client_id)
        except Exception:
            err2 = Unavailable("internal error; retry with the same id")
            reply = error_message(err2.code, err2.message, client_id)
        outbox.push(_frame(reply, encoding))


routes: list[BaseRoute] = [
    WebSocketRoute("/v1/ws/viewer", viewer_endpoint),
    WebSocketRoute("/v1/ws/overlay", overlay_endpoint),
]
