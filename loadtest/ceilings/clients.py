"""The load generators: picows WebSocket clients in several processes.

picows clients are the cheapest Python clients there are (docs/contract.md §8: about
half the CPU per frame of ``websockets`` clients); their callbacks only count,
time and answer. The same code drives gifting's own server and every ceiling
or peer, so the figures compare like with like.

Two shapes, each a function that runs the whole measurement:

* :func:`measure_echo` — closed-loop request/response: every connection sends
  a message and waits for its reply before sending the next (one in flight
  per connection, many across connections). Messages/s and round trips.
* :func:`measure_fanout` — C connections receive what a :class:`FanoutSource`
  emits; deliveries/s at the clients, and whether every connection got every
  event (the counts must match).

Both spread the connections over ``processes`` spawned processes (>= 2, so
the generator is not the bottleneck), synchronise on a ``time.monotonic()``
window, and report the generator's own CPU seconds in that window beside the
server's. Protocols: ``"ws"`` (plain WebSocket) and ``"engineio"`` (the raw
Engine.IO v4 / Socket.IO v5 protocol over a WebSocket: open ``0{...}``,
connect ``40``, events ``42[...]``, ping ``2`` answered by ``3``).
"""

from __future__ import annotations

import asyncio
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from picows import WSCloseCode, WSListener, WSMsgType, WSTransport, ws_connect

from loadtest.ceilings.common import (
    AsyncPipe,
    Child,
    Latency,
    asleep_until,
    close_all,
    machine_busy,
    machine_times,
    sleep_until,
)

Protocol_ = Literal["ws", "engineio"]

_TEXT = WSMsgType.TEXT
_BINARY = WSMsgType.BINARY
_CLOSE = WSMsgType.CLOSE
_CONNECT_CONCURRENCY = 64


# --------------------------------------------------------------------------- specs and figures


@dataclass(frozen=True, slots=True)
class EchoSpec:
    """What the echo generator does.

    ``message`` is sent as a text frame, with ``{n}`` (if present) replaced by
    a number unique across all connections and processes (a fresh client
    message id for gifting). A frame counts as the reply when it contains
    ``reply_marker`` (every frame if ``None``: other frames, such as room
    events a gifting viewer also receives, are ignored); a reply containing
    ``error_marker`` is counted as an error too.
    """

    urls: tuple[str, ...]
    connections: int = 100
    processes: int = 2
    message: str = '{"op":"gift","id":"c-{n}","gift":"rose","count":1}'
    reply_marker: bytes | None = None
    error_marker: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    connect_timeout_s: float = 30.0


@dataclass(frozen=True, slots=True)
class FanoutSpec:
    """What the fan-out generator connects to and how it counts.

    ``protocol="ws"`` counts one event per text/binary frame, or the
    occurrences of ``count_marker`` in each frame when given (a gifting
    ``batch`` frame holds several events). ``"engineio"`` counts ``42``
    (event) frames.
    """

    urls: tuple[str, ...]
    connections: int = 200
    processes: int = 2
    protocol: Protocol_ = "ws"
    count_marker: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    connect_timeout_s: float = 30.0


@dataclass(frozen=True, slots=True)
class EchoFigures:
    """Request/response throughput and round trips of one run."""

    name: str
    messages_per_s: float
    latency: Latency
    messages: int
    errors: int
    connections: int
    processes: int
    duration_s: float
    server_cpu_s: float
    generator_cpu_s: float
    aux_cpu_s: float = 0.0
    machine_busy: float = 0.0

    @property
    def messages_per_server_cpu_s(self) -> float:
        """Messages per CPU second of the server: its efficiency, whatever else ran."""
        return self.messages / self.server_cpu_s if self.server_cpu_s > 0 else 0.0

    def summary(self) -> str:
        """One line for a report."""
        return (
            f"{self.name}: {self.messages_per_s:,.0f} msg/s "
            f"({self.messages_per_server_cpu_s:,.0f} per server CPU s), rtt {self.latency}, "
            f"{self.connections} conns; cpu server {self.server_cpu_s:.2f} s, "
            f"generator {self.generator_cpu_s:.2f} s ({self.processes} procs) "
            f"in {self.duration_s:.1f} s, machine {self.machine_busy:.0%} busy"
        )


@dataclass(frozen=True, slots=True)
class FanoutFigures:
    """Fan-out throughput of one run: events delivered per second at the clients.

    ``events_sent`` is what the source emitted in the whole run, ``expected``
    that times the connections, ``delivered`` what the clients counted in the
    whole run; ``complete`` is true when every connection got exactly every
    event. ``available`` is false (and every figure zero) when the peer could
    not run here, ``reason`` says why.
    """

    name: str
    deliveries_per_s: float
    events_per_s: float
    connections: int
    processes: int
    duration_s: float
    events_sent: int
    expected: int
    delivered: int
    complete: bool
    min_per_connection: int
    max_per_connection: int
    server_cpu_s: float
    generator_cpu_s: float
    aux_cpu_s: float = 0.0
    machine_busy: float = 0.0
    rate: float | None = None
    available: bool = True
    reason: str = ""

    @property
    def deliveries_per_server_cpu_s(self) -> float:
        """Deliveries in the window per CPU second of the server: its efficiency."""
        if self.server_cpu_s <= 0:
            return 0.0
        return self.deliveries_per_s * self.duration_s / self.server_cpu_s

    @classmethod
    def unavailable(cls, name: str, reason: str, connections: int = 0) -> FanoutFigures:
        """A run that could not happen; no number is made up."""
        return cls(
            name, 0.0, 0.0, connections, 0, 0.0, 0, 0, 0, False, 0, 0, 0.0, 0.0,
            available=False, reason=reason,
        )  # fmt: skip

    def summary(self) -> str:
        """One line for a report."""
        if not self.available:
            return f"{self.name}: unavailable ({self.reason})"
        return (
            f"{self.name}: {self.deliveries_per_s:,.0f} deliveries/s "
            f"({self.events_per_s:,.0f} events/s x {self.connections} conns; "
            f"{self.deliveries_per_server_cpu_s:,.0f} per server CPU s), "
            f"delivered {self.delivered:,}/{self.expected:,}"
            f"{'' if self.complete else ' INCOMPLETE'}; cpu server {self.server_cpu_s:.2f} s, "
            f"aux {self.aux_cpu_s:.2f} s, generator {self.generator_cpu_s:.2f} s "
            f"({self.processes} procs) in {self.duration_s:.1f} s, "
            f"machine {self.machine_busy:.0%} busy"
        )


class FanoutSource(Protocol):
    """Something that emits room events to the clients of :func:`measure_fanout`."""

    def start(self, rate: float | None) -> None:
        """Start emitting: as fast as it can (``None``) or ``rate`` events/s."""

    def stop(self) -> int | None:
        """Stop emitting; return the events emitted in all (each due to every client)."""

    def server_cpu_s(self) -> float:
        """Cumulative CPU seconds of the server side."""

    def aux_cpu_s(self) -> float:
        """Cumulative CPU seconds of helpers (Redis for pub/sub), 0.0 if none."""


# --------------------------------------------------------------------------- listeners


class _Counter(WSListener):
    """Counts events; answers the Engine.IO handshake and pings when asked to."""

    def __init__(self, marker: bytes | None, engineio: bool) -> None:
        super().__init__()
        self.n = 0
        self.marker = marker
        self.engineio = engineio
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_ws_connected(self, transport: WSTransport) -> None:
        if not self.engineio and not self.ready.done():
            self.ready.set_result(None)

    def on_ws_frame(self, transport: WSTransport, frame: Any) -> None:
        mt = frame.msg_type
        if mt is _TEXT or mt is _BINARY:
            if self.engineio:
                self._engineio(transport, frame)
            elif self.marker is None:
                self.n += 1
            else:
                self.n += frame.get_payload_as_bytes().count(self.marker)
        elif mt is _CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def _engineio(self, transport: WSTransport, frame: Any) -> None:
        mv = frame.get_payload_as_memoryview()
        if len(mv) >= 2 and mv[0] == 0x34 and mv[1] == 0x32:  # "42": an event
            self.n += 1
            return
        head = bytes(mv[:2])
        if head == b"2":  # ping -> pong
            transport.send(_TEXT, b"3")
        elif head[:1] == b"0":  # open -> connect to the default namespace
            transport.send(_TEXT, b"40")
        elif head == b"40" and not self.ready.done():
            self.ready.set_result(None)
        elif head == b"44" and not self.ready.done():
            self.ready.set_exception(ConnectionError(f"socket.io refused: {bytes(mv)!r}"))

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("disconnected before ready"))


class _EchoState:
    """What the echo connections of one process share."""

    def __init__(self, spec: EchoSpec, index: int) -> None:
        prefix, found, suffix = spec.message.partition("{n}")
        self.prefix = prefix.encode()
        self.suffix = suffix.encode() if found else b""
        self.templated = bool(found)
        self.whole = spec.message.encode()
        self.step = spec.processes
        self.next_n = index
        self.reply_marker = spec.reply_marker
        self.error_marker = spec.error_marker
        self.sending = False
        self.recording = False
        self.count = 0
        self.errors = 0
        self.rtts = array("d")
        self.outstanding = 0
        self.idle = asyncio.Event()

    def payload(self) -> bytes:
        if not self.templated:
            return self.whole
        n = self.next_n
        self.next_n = n + self.step
        return self.prefix + str(n).encode() + self.suffix


class _EchoConn(WSListener):
    """One closed-loop connection: send, wait for the reply, send again."""

    def __init__(self, state: _EchoState) -> None:
        super().__init__()
        self.s = state
        self.transport: WSTransport | None = None
        self.sent_at = 0.0
        self.waiting = False
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        if not self.ready.done():
            self.ready.set_result(None)

    def fire(self) -> None:
        assert self.transport is not None
        self.waiting = True
        self.s.outstanding += 1
        self.sent_at = time.perf_counter()
        self.transport.send(_TEXT, self.s.payload())

    def on_ws_frame(self, transport: WSTransport, frame: Any) -> None:
        mt = frame.msg_type
        if mt is _CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()
            return
        if not (mt is _TEXT or mt is _BINARY) or not self.waiting:
            return
        s = self.s
        if s.reply_marker is not None or s.error_marker is not None:
            body = frame.get_payload_as_bytes()
            if s.reply_marker is not None and s.reply_marker not in body:
                return
            if s.recording and s.error_marker is not None and s.error_marker in body:
                s.errors += 1
        now = time.perf_counter()
        if s.recording:
            s.count += 1
            s.rtts.append(now - self.sent_at)
        self.waiting = False
        s.outstanding -= 1
        if s.sending:
            self.fire()
        elif s.outstanding == 0:
            s.idle.set()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("disconnected before ready"))
        if self.waiting:
            self.waiting = False
            self.s.outstanding -= 1
            if self.s.outstanding == 0 and not self.s.sending:
                self.s.idle.set()


# --------------------------------------------------------------------------- worker side


async def _connect_all(
    listeners: list[Any], urls: list[str], headers: tuple[tuple[str, str], ...], limit_s: float
) -> list[WSTransport]:
    """Open one connection per listener (bounded concurrency); wait until each is ready."""
    gate = asyncio.Semaphore(_CONNECT_CONCURRENCY)

    async def one(listener: Any, url: str) -> WSTransport:
        async with gate:
            transport, _ = await ws_connect(
                lambda: listener,
                url,
                extra_headers=list(headers) or None,
                websocket_handshake_timeout=limit_s,
                max_frame_size=16 * 1024 * 1024,
            )
            await listener.ready
            return transport

    async with asyncio.timeout(limit_s):
        return list(
            await asyncio.gather(*(one(x, u) for x, u in zip(listeners, urls, strict=True)))
        )


def _share(total: int, parts: int, index: int) -> range:
    """The global connection indexes of process ``index`` (round robin)."""
    return range(index, total, parts)


def _close(transports: list[WSTransport]) -> None:
    for t in transports:
        if not t.is_disconnected:
            t.send_close(WSCloseCode.OK)
            t.disconnect()


async def _echo_worker(pipe: AsyncPipe, arg: tuple[EchoSpec, int]) -> None:
    spec, index = arg
    mine = _share(spec.connections, spec.processes, index)
    state = _EchoState(spec, index)
    conns = [_EchoConn(state) for _ in mine]
    urls = [spec.urls[i % len(spec.urls)] for i in mine]
    transports = await _connect_all(conns, urls, spec.headers, spec.connect_timeout_s)
    pipe.send("ready", len(transports))
    kind, window = await pipe.recv()
    if kind != "window":
        _close(transports)
        return
    t_start, t0, t1 = window
    await asleep_until(t_start)
    state.sending = True
    for c in conns:
        c.fire()
    await asleep_until(t0)
    state.recording = True
    w0, c0 = time.monotonic(), time.process_time()
    await asleep_until(t1)
    state.recording = False
    state.sending = False
    w1, c1 = time.monotonic(), time.process_time()
    if state.outstanding:
        try:
            async with asyncio.timeout(10.0):
                await state.idle.wait()
        except TimeoutError:
            pass
    pipe.send(
        "result",
        {
            "messages": state.count,
            "errors": state.errors,
            "window_s": w1 - w0,
            "cpu_s": c1 - c0,
            "rtts": state.rtts.tobytes(),
            "unanswered": state.outstanding,
        },
    )
    _close(transports)
    await pipe.recv()


async def _fanout_worker(pipe: AsyncPipe, arg: tuple[FanoutSpec, int]) -> None:
    spec, index = arg
    mine = _share(spec.connections, spec.processes, index)
    engineio = spec.protocol == "engineio"
    counters = [_Counter(spec.count_marker, engineio) for _ in mine]
    urls = [spec.urls[i % len(spec.urls)] for i in mine]
    transports = await _connect_all(counters, urls, spec.headers, spec.connect_timeout_s)
    pipe.send("ready", len(transports))
    kind, window = await pipe.recv()
    if kind != "window":
        _close(transports)
        return
    t0, t1 = window
    await asleep_until(t0)
    w0, c0, n0 = time.monotonic(), time.process_time(), sum(c.n for c in counters)
    await asleep_until(t1)
    w1, c1, n1 = time.monotonic(), time.process_time(), sum(c.n for c in counters)
    pipe.send("window", {"events": n1 - n0, "window_s": w1 - w0, "cpu_s": c1 - c0})
    kind, finish = await pipe.recv()
    if kind == "finish":
        expected, deadline = finish
        while expected is not None and time.monotonic() < deadline:
            if all(c.n >= expected for c in counters):
                break
            await asyncio.sleep(0.01)
        counts = [c.n for c in counters]
        pipe.send(
            "result",
            {
                "counts": counts,
                "exact": expected is not None and all(n == expected for n in counts),
            },
        )
        await pipe.recv()
    _close(transports)


# --------------------------------------------------------------------------- parent side


def _check_processes(processes: int, connections: int) -> None:
    if processes < 1 or connections < processes:
        raise ValueError("need at least one process and one connection per process")


def measure_echo(
    name: str,
    spec: EchoSpec,
    *,
    duration_s: float,
    warmup_s: float = 0.5,
    server_cpu: Callable[[], float] | None = None,
    aux_cpu: Callable[[], float] | None = None,
) -> EchoFigures:
    """Run the closed-loop echo generator against ``spec.urls`` and return its figures.

    ``server_cpu`` / ``aux_cpu`` are callables returning cumulative CPU
    seconds (e.g. :meth:`ProcessCpu.seconds`); they are read at the start and
    the end of the measurement window. Bounded: connects within
    ``spec.connect_timeout_s``, sends for ``warmup_s + duration_s``, waits at
    most 10 s for the last replies.
    """
    _check_processes(spec.processes, spec.connections)
    workers = [Child(_echo_worker, (spec, i), name=f"echo-gen-{i}") for i in range(spec.processes)]
    try:
        for w in workers:
            w.recv(spec.connect_timeout_s + 30.0, expect="ready")
        t_start = time.monotonic() + 0.05
        t0 = t_start + warmup_s
        t1 = t0 + duration_s
        for w in workers:
            w.send("window", (t_start, t0, t1))
        sleep_until(t0)
        s0 = server_cpu() if server_cpu else 0.0
        a0 = aux_cpu() if aux_cpu else 0.0
        m0 = machine_times()
        sleep_until(t1)
        s1 = server_cpu() if server_cpu else 0.0
        a1 = aux_cpu() if aux_cpu else 0.0
        m1 = machine_times()
        results = [w.recv(30.0, expect="result") for w in workers]
    finally:
        close_all(workers)
    rtts: list[float] = []
    for r in results:
        rtts.extend(array("d", r["rtts"]))
    window = max(r["window_s"] for r in results)
    return EchoFigures(
        name=name,
        messages_per_s=sum(r["messages"] / r["window_s"] for r in results),
        latency=Latency.of_seconds(rtts),
        messages=sum(r["messages"] for r in results),
        errors=sum(r["errors"] for r in results),
        connections=spec.connections,
        processes=spec.processes,
        duration_s=window,
        server_cpu_s=s1 - s0,
        generator_cpu_s=sum(r["cpu_s"] for r in results),
        aux_cpu_s=a1 - a0,
        machine_busy=machine_busy(m0, m1),
    )


@dataclass(slots=True)
class FanoutClients:
    """Fan-out generator processes, driven phase by phase (see :func:`measure_fanout`)."""

    spec: FanoutSpec
    workers: list[Child] = field(default_factory=list)

    def connect(self) -> None:
        """Spawn the processes; return once every connection is open (and joined)."""
        _check_processes(self.spec.processes, self.spec.connections)
        self.workers = [
            Child(_fanout_worker, (self.spec, i), name=f"fanout-gen-{i}")
            for i in range(self.spec.processes)
        ]
        for w in self.workers:
            w.recv(self.spec.connect_timeout_s + 30.0, expect="ready")

    def window(self, t0: float, t1: float) -> None:
        """Tell every process the measurement window (non-blocking)."""
        for w in self.workers:
            w.send("window", (t0, t1))

    def window_results(self, timeout: float) -> list[dict[str, Any]]:
        """Each process's events, seconds and CPU in the window (blocks until it ends)."""
        return [w.recv(timeout, expect="window") for w in self.workers]

    def finish(self, expected: int | None, drain_timeout_s: float) -> list[int]:
        """Wait (bounded) until each connection has ``expected`` events; return every count."""
        deadline = time.monotonic() + drain_timeout_s
        for w in self.workers:
            w.send("finish", (expected, deadline))
        counts: list[int] = []
        for w in self.workers:
            counts.extend(w.recv(drain_timeout_s + 30.0, expect="result")["counts"])
        return counts

    def close(self) -> None:
        """Close the connections and the processes."""
        close_all(self.workers)
        self.workers = []


def measure_fanout(
    name: str,
    source: FanoutSource,
    spec: FanoutSpec,
    *,
    duration_s: float,
    warmup_s: float = 0.5,
    rate: float | None = None,
    drain_timeout_s: float = 10.0,
) -> FanoutFigures:
    """Connect the clients, let ``source`` emit, count deliveries in a window, check counts.

    Phases: connect every client (and join, for Engine.IO); ``source.start``;
    after ``warmup_s`` a window of ``duration_s`` in which deliveries and CPU
    are measured; ``source.stop`` returns the events emitted; then each
    client waits (at most ``drain_timeout_s``) until it has them all.
    """
    clients = FanoutClients(spec)
    try:
        clients.connect()
        source.start(rate)
        t0 = time.monotonic() + warmup_s
        t1 = t0 + duration_s
        clients.window(t0, t1)
        sleep_until(t0)
        s0, a0, m0 = source.server_cpu_s(), source.aux_cpu_s(), machine_times()
        sleep_until(t1)
        s1, a1, m1 = source.server_cpu_s(), source.aux_cpu_s(), machine_times()
        windows = clients.window_results(30.0)
        sent = source.stop()
        counts = clients.finish(sent, drain_timeout_s)
    finally:
        clients.close()
    window = max(w["window_s"] for w in windows)
    deliveries = sum(w["events"] / w["window_s"] for w in windows)
    expected = (sent or 0) * spec.connections
    return FanoutFigures(
        name=name,
        deliveries_per_s=deliveries,
        events_per_s=deliveries / spec.connections,
        connections=spec.connections,
        processes=spec.processes,
        duration_s=window,
        events_sent=sent or 0,
        expected=expected,
        delivered=sum(counts),
        complete=sent is not None and all(n == sent for n in counts),
        min_per_connection=min(counts),
        max_per_connection=max(counts),
        server_cpu_s=s1 - s0,
        generator_cpu_s=sum(w["cpu_s"] for w in windows),
        aux_cpu_s=a1 - a0,
        machine_busy=machine_busy(m0, m1),
        rate=rate,
    )
