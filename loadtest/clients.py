"""The generator's WebSocket clients: picows listeners that parse as little as they can.

picows calls :meth:`on_ws_frame` for each frame straight from the socket
callback: no task and no queue per message, which keeps the generator's CPU
per frame well below a ``websockets`` client's (docs/contract.md §8).

* :class:`ViewerClient` sends gifts (and bad frames, and retries), matches
  each reply to its request by the client id it echoes (a reply without one
  belongs to the oldest bad frame in flight: the server refuses bad frames
  at once, ahead of spends still settling), holds it against the viewer's
  :class:`~loadtest.model.WalletModel` and times gift -> ack; room events
  arrive in ``batch`` frames that are only counted (``{"seq":`` per event),
  never decoded.
* :class:`OverlayClient` decodes each room event's few fields it needs and
  checks the overlay guarantee as it goes: every event in seq order with no
  gap, every gift once; it times gift -> overlay for gifts whose sender lives
  in this process.

Both reconnect on an unexpected close (viewers re-send what was unanswered,
with the same ids; overlays resume with ``since=`` their last cursor).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from loadtest.model import Verdict, WalletModel
from loadtest.plan import OverlayReport, ViewerSpec, event_hash
from loadtest.stats import Recorder

__all__ = ["Counts", "OverlayClient", "Req", "Shared", "ViewerClient"]

_BATCH = b'{"op":"batch"'
_SEQ = b'{"seq":'
SUBPROTOCOL = "gifting.json.v1"
RECONNECT_ATTEMPTS = 20
RECONNECT_DELAY_S = 0.1
RETRY_DELAY_S = 0.05
#: A viewer whose gift was refused for lack of coins this many times stops (closed loop).
BROKE_GIVE_UP = 3


class _Reply(msgspec.Struct):
    op: str
    id: str | None = None
    event: str | None = None
    balance: int | None = None
    code: str | None = None


class _Sender(msgspec.Struct):
    id: str = ""


class _RoomEvent(msgspec.Struct):
    op: str
    seq: int | None = None
    cursor: str | None = None
    kind: str = ""
    event: str = ""
    sender: _Sender | None = None
    code: str | None = None


_reply = msgspec.json.Decoder(_Reply)
_room_event = msgspec.json.Decoder(_RoomEvent)


class Req:
    """One frame sent by a viewer, waiting for its reply."""

    __slots__ = (
        "bad",
        "cid",
        "cost",
        "count",
        "done",
        "frame",
        "gift",
        "keyed",
        "retry",
        "sent_ns",
    )

    def __init__(
        self,
        cid: str,
        frame: bytes,
        cost: int,
        gift: str,
        count: int,
        bad: str,
        retry: bool,
        keyed: bool = True,
    ) -> None:
        self.cid = cid
        self.frame = frame
        self.cost = cost
        self.gift = gift
        self.count = count
        self.bad = bad
        self.retry = retry
        #: whether the frame carries ``cid`` (bad frames may not)
        self.keyed = keyed
        self.done = False
        self.sent_ns = 0


@dataclass(slots=True)
class Counts:
    """Totals of one generator process."""

    frames_sent: int = 0
    gifts_sent: int = 0
    retries_sent: int = 0
    bad_sent: int = 0
    new_acks: int = 0
    replays: int = 0
    refused_funds: int = 0
    refused_bad: int = 0
    retryable: int = 0
    mismatches: int = 0
    stray_replies: int = 0
    viewer_reconnects: int = 0
    errors_by_code: dict[str, int] = field(default_factory=dict)
    closes_by_code: dict[int, int] = field(default_factory=dict)


class Shared:
    """What every client of one process shares: counters, the clock, latency matching."""

    def __init__(self, recorder: Recorder, retry_share: float, seed: int, record: bool) -> None:
        self.recorder = recorder
        self.counts = Counts()
        self.rng = random.Random(seed)
        self.retry_share = retry_share
        self.local_users: set[str] = set()
        self.acked: dict[int, list[tuple[str, int]]] = {}
        self.last_ack_ns = 0
        #: event id -> send time of its gift (first acks of this process)
        self.sent_at: dict[str, int] = {}
        #: event id -> overlay arrival times that came before the gift's ack
        self.early: dict[str, list[int]] = {}
        self.closing = False
        self.trace: list[tuple[float, str, str, str, int, str]] | None = [] if record else None
        #: Called when a viewer may send more (closed-loop mode).
        self.on_idle: Callable[[ViewerClient], None] | None = None

    def gift_acked(self, room: int, event: str, coins: int, sent: int, now: int) -> None:
        """A first ack: remember it for the checks; time overlay arrivals that came early."""
        self.acked.setdefault(room, []).append((event, coins))
        self.last_ack_ns = now
        self.sent_at[event] = sent
        early = self.early.pop(event, None)
        if early:
            for t in early:
                self.recorder.overlay(sent, t)

    def overlay_gift(self, event: str, sender: str, now: int) -> None:
        """An overlay got a gift: time it if its sender is one of ours."""
        if sender not in self.local_users:
            return
        sent = self.sent_at.get(event)
        if sent is not None:
            self.recorder.overlay(sent, now)
        else:
            self.early.setdefault(event, []).append(now)


def _close(transport: WSTransport, frame: WSFrame) -> int:
    code = frame.get_close_code()
    transport.send_close(code)
    transport.disconnect()
    return int(code.value) if isinstance(code, WSCloseCode) else int(code)


class _Reconnecting(WSListener):
    """A storm connection that reconnects by itself (same ids, or ``since=``) until closing."""

    shared: Shared
    transport: WSTransport | None = None
    _reconnecting: bool = False

    async def connect(self) -> None:
        """Open the connection (raises if the server refuses)."""
        raise NotImplementedError

    def _reconnected(self) -> None:
        """Called once a reconnect succeeded."""

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.transport = None
        if not self.shared.closing and not self._reconnecting:
            self._reconnecting = True
            asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        try:
            for _ in range(RECONNECT_ATTEMPTS):
                await asyncio.sleep(RECONNECT_DELAY_S)
                if self.shared.closing:
                    return
                try:
                    await self.connect()
                except Exception:  # refused, reset, timed out: try again
                    continue
                self._reconnected()
                return
        finally:
            self._reconnecting = False

    def close(self) -> None:
        """Close the connection (normal closure)."""
        if self.transport is not None:
            self.transport.send_close(WSCloseCode.OK)
            self.transport.disconnect()


class ViewerClient(_Reconnecting):
    """One viewer's connection: sends, replies checked against the wallet model."""

    def __init__(
        self, shared: Shared, spec: ViewerSpec, url: str, token: str, room_symbol: str
    ) -> None:
        self.shared = shared
        self.spec = spec
        self.url = url
        self.token = token
        self.room_symbol = room_symbol
        self.model = WalletModel(0)
        #: every request sent, in order (answered ones leave from the left)
        self.order: deque[Req] = deque()
        #: client id -> its requests in flight (a retry may follow its original)
        self.by_id: dict[str, deque[Req]] = {}
        #: requests without an answer yet
        self.outstanding = 0
        self.spendable = 0
        self.refusals = 0
        self.done = False
        self.planned: deque[tuple[str, int, str | None]] = deque()

    # -- connection ----------------------------------------------------------------
    async def connect(self) -> None:
        """Open the connection (raises if the server refuses)."""
        await ws_connect(
            lambda: self,
            self.url,
            extra_headers={
                "Authorization": f"Bearer {self.token}",
                "Sec-WebSocket-Protocol": SUBPROTOCOL,
            },
            enable_auto_pong=True,
        )

    def _reconnected(self) -> None:
        self.shared.counts.viewer_reconnects += 1
        now = time.monotonic_ns()
        for req in self.order:  # the same ids: the server answers them once
            if not req.done:
                req.sent_ns = now
                self._write(req.frame)

    def _write(self, frame: bytes) -> None:
        t = self.transport
        if t is not None:
            t.send(WSMsgType.TEXT, frame)

    # -- sending -------------------------------------------------------------------
    def send(self, req: Req, now: int) -> None:
        """Send a request (queued for the reconnect if the connection is down)."""
        req.sent_ns = now
        self.order.append(req)
        if req.keyed:
            self.by_id.setdefault(req.cid, deque()).append(req)
        self.outstanding += 1
        c = self.shared.counts
        c.frames_sent += 1
        if req.bad:
            c.bad_sent += 1
        elif req.retry:
            c.retries_sent += 1
        else:
            c.gifts_sent += 1
        self.shared.recorder.count("sent", now)
        tr = self.shared.trace
        if tr is not None and not req.bad:
            t_ms = (now - self.shared.recorder.t0) / 1e6
            tr.append((t_ms, self.room_symbol, self.spec.symbol, req.gift, req.count, req.cid))
        self._write(req.frame)

    # -- replies -------------------------------------------------------------------
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind == WSMsgType.TEXT:
            data = frame.get_payload_as_bytes()
            if data.startswith(_BATCH):
                now = time.monotonic_ns()
                rec = self.shared.recorder
                rec.count("viewer_events", now, data.count(_SEQ))
                rec.count("viewer_frames", now)
                return
            self._on_reply(data)
        elif kind == WSMsgType.CLOSE:
            code = _close(transport, frame)
            closes = self.shared.counts.closes_by_code
            closes[code] = closes.get(code, 0) + 1

    def _on_reply(self, data: bytes) -> None:
        now = time.monotonic_ns()
        shared = self.shared
        c = shared.counts
        try:
            msg = _reply.decode(data)
        except msgspec.DecodeError:
            c.stray_replies += 1
            return
        req = self._match(msg) if msg.op in ("ack", "error") else None
        if req is None:
            c.stray_replies += 1
            return
        if msg.op == "error" and msg.code:
            c.errors_by_code[msg.code] = c.errors_by_code.get(msg.code, 0) + 1
        if req.bad:
            verdict = self.model.check_bad(msg.op, msg.code, req.bad)
        else:
            verdict = self.model.check_spend(
                req.cid, req.cost, msg.op, msg.event, msg.balance, msg.code
            )
        if msg.op == "ack":
            shared.recorder.ack(req.sent_ns, now)
        if verdict == Verdict.NEW_ACK:
            c.new_acks += 1
            shared.recorder.count("acked", now)
            assert msg.event is not None
            shared.gift_acked(self.spec.room, msg.event, req.cost, req.sent_ns, now)
            if shared.retry_share and shared.rng.random() < shared.retry_share:
                again = Req(req.cid, req.frame, req.cost, req.gift, req.count, "", True)
                self.send(again, now)
        elif verdict == Verdict.REPLAY:
            c.replays += 1
        elif verdict == Verdict.REFUSED:
            shared.recorder.count("refused", now)
            if req.bad:
                c.refused_bad += 1
            else:
                c.refused_funds += 1
                self.refusals += 1
                self.spendable += req.cost
        elif verdict == Verdict.RETRY:
            c.retryable += 1
            asyncio.get_running_loop().call_later(RETRY_DELAY_S, self._resend, req)
            return
        else:
            c.mismatches += 1
        if shared.on_idle is not None:
            shared.on_idle(self)

    def _match(self, msg: _Reply) -> Req | None:
        """The request a reply answers (and mark it answered)."""
        req: Req | None = None
        if msg.id:
            queue = self.by_id.get(msg.id)
            if queue:
                req = queue.popleft()
                if not queue:
                    del self.by_id[msg.id]
        else:  # a frame the server could not read an id from: the oldest bad one
            req = next((r for r in self.order if not r.done and r.bad), None)
            if req is not None and req.keyed:
                queue = self.by_id[req.cid]
                queue.remove(req)
                if not queue:
                    del self.by_id[req.cid]
        if req is None:
            return None
        req.done = True
        self.outstanding -= 1
        order = self.order
        while order and order[0].done:
            order.popleft()
        return req

    def _resend(self, req: Req) -> None:
        again = Req(req.cid, req.frame, req.cost, req.gift, req.count, req.bad, True, req.keyed)
        self.send(again, time.monotonic_ns())


class OverlayClient(_Reconnecting):
    """One overlay connection: checks order and exactly-once as events arrive."""

    def __init__(self, shared: Shared, report: OverlayReport, base_url: str) -> None:
        self.shared = shared
        self.report = report
        self.base_url = base_url
        self.last_seq = -1
        self.last_cursor: str | None = None
        self.seen: set[str] = set()
        self.snapshot = asyncio.Event()

    async def connect(self) -> None:
        """Open the connection (with ``since=`` after a reconnect)."""
        url = self.base_url
        if self.last_cursor:
            url += f"&since={self.last_cursor}"
        await ws_connect(
            lambda: self,
            url,
            extra_headers={"Sec-WebSocket-Protocol": SUBPROTOCOL},
            enable_auto_pong=True,
        )

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.report.connected = True

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.report.connected = False
        super().on_ws_disconnected(transport)

    def _reconnected(self) -> None:
        self.report.reconnects += 1

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind == WSMsgType.CLOSE:
            code = _close(transport, frame)
            if code != 1000:
                self.report.errors.append(f"closed {code}")
            return
        if kind != WSMsgType.TEXT:
            return
        now = time.monotonic_ns()
        try:
            msg = _room_event.decode(frame.get_payload_as_bytes())
        except msgspec.DecodeError as exc:
            self.report.errors.append(f"undecodable frame: {exc}")
            return
        if msg.op == "event" and msg.seq is not None:
            self._event(msg, msg.seq, now)
        elif msg.op == "snapshot":
            if self.last_seq < 0:
                self.last_seq = msg.seq or 0
            self.last_cursor = self.last_cursor or msg.cursor
            self.snapshot.set()
        elif msg.op == "error":
            self.report.errors.append(f"error {msg.code}")

    def _event(self, msg: _RoomEvent, seq: int, now: int) -> None:
        r = self.report
        if self.last_seq >= 0:
            if seq <= self.last_seq:
                r.out_of_order += 1
                return
            if seq != self.last_seq + 1:
                r.gaps += 1
        self.last_seq = seq
        self.last_cursor = msg.cursor
        r.events += 1
        rec = self.shared.recorder
        rec.count("overlay_events", now)
        if msg.kind != "gift":
            return
        event = msg.event
        if event in self.seen:
            r.duplicates += 1
            return
        self.seen.add(event)
        r.gifts += 1
        r.gift_hash_sum += event_hash(event)
        rec.count("overlay_gifts", now)
        if msg.sender is not None:
            self.shared.overlay_gift(event, msg.sender.id, now)
