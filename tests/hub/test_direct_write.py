"""The direct writer (gifting/hub/direct_write.py) on the hub's real uvicorn protocol.

Each scenario serves a small ASGI app with uvicorn and HubWebSocketProtocol
(as ``gifting serve`` does) and talks to it with real websockets clients over
real sockets, on the asyncio loop and on uvloop (what ``gifting serve`` runs).
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest
import uvicorn
import uvloop
import websockets
from websockets.asyncio.client import connect
from websockets.frames import Frame, Opcode

from gifting.core.disconnect import SLOW, STREAM_ENDED
from gifting.hub import metrics
from gifting.hub.direct_write import DirectWriter, open_writer, ws_frame
from gifting.hub.room import Member
from gifting.hub.send_queue import SendQueue
from gifting.hub.uvicorn_ws import HubWebSocketProtocol
from tests.hub.conftest import HubServer, free_port, recv, until

Script = Callable[[DirectWriter, Any], Awaitable[None]]
LOOPS = ["asyncio", "uvloop"]


def run(loop_kind: str, main: Coroutine[Any, Any, None]) -> None:
    """Run a scenario on a fresh loop of the given kind, in its own thread."""
    error: list[BaseException] = []

    def target() -> None:
        try:
            (uvloop.run if loop_kind == "uvloop" else asyncio.run)(main)
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(120)
    assert not thread.is_alive(), "scenario hung"
    if error:
        raise error[0]


class ShortClose(HubWebSocketProtocol):
    """The hub's protocol with a short close timeout (a peer that never reads is cut)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.close_timeout = 0.5


class App:
    """An ASGI app that accepts, opens the direct writer, and runs ``script`` with it."""

    def __init__(self, script: Script, limit: int = 1 << 20) -> None:
        self.script = script
        self.limit = limit
        self.writers: list[DirectWriter | None] = []
        self.errors: list[BaseException] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "websocket"
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        writer = open_writer(scope, "test", self.limit)
        self.writers.append(writer)
        if writer is None:
            await send({"type": "websocket.close", "code": 1011})
            return
        try:
            await self.script(writer, receive)
        except BaseException as exc:
            self.errors.append(exc)
            raise


async def served(app: App, protocol: Any = HubWebSocketProtocol) -> tuple[uvicorn.Server, int]:
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, ws=protocol, lifespan="off", log_level="warning",
        ws_per_message_deflate=False,
    )  # fmt: skip
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    server.task = task  # type: ignore[attr-defined]
    return server, port


async def stop(server: uvicorn.Server) -> None:
    server.should_exit = True
    await asyncio.wait_for(server.task, 15)  # type: ignore[attr-defined]


def stalled_socket(port: int) -> socket.socket:
    """A client socket whose receive buffer stays tiny (no kernel autotuning)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    return sock


# --------------------------------------------------------------------------- frames


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70_000])
def test_ws_frame_is_what_websockets_writes(size: int) -> None:
    text = "é" * (size // 2) + "x" * (size % 2)
    for frame, opcode, payload in [
        (text, Opcode.TEXT, text.encode()),
        (b"\x00" * size, Opcode.BINARY, b"\x00" * size),
    ]:
        expected = Frame(opcode, payload).serialize(mask=False)
        assert ws_frame(frame) == expected


# --------------------------------------------------------------------------- order


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_shared_event_frames_and_acks_arrive_in_push_order_then_the_close(loop_kind: str) -> None:
    async def main() -> None:
        writers: list[DirectWriter] = []
        all_in = asyncio.Event()

        async def script(writer: DirectWriter, receive: Any) -> None:
            writers.append(writer)
            if len(writers) == 3:
                all_in.set()
            await receive()  # until the close

        app = App(script)
        server, port = await served(app)
        try:
            clients = [await connect(f"ws://127.0.0.1:{port}/") for _ in range(3)]
            await asyncio.wait_for(all_in.wait(), 10)
            expected: list[list[str | bytes]] = [[], [], []]
            for i in range(300):
                event = f'{{"op":"event","seq":{i}}}'
                wire = ws_frame(event)  # built once, written to all three
                for k, w in enumerate(writers):
                    assert w.push(event, wire)
                    expected[k].append(event)
                    if (i + k) % 7 == 0:  # this connection's own ack, between events
                        ack = f'{{"op":"ack","id":"{i}"}}'
                        assert w.push(ack)
                        expected[k].append(ack)
                    if i % 50 == 0:  # a binary (msgpack) frame too
                        assert w.push(b"\x81\xa2op\xa3ack")
                        expected[k].append(b"\x81\xa2op\xa3ack")
            big = "y" * 70_000  # a 64-bit length
            for k, w in enumerate(writers):
                assert w.push(big)
                expected[k].append(big)
                w.close(STREAM_ENDED)
                assert w.closed and not w.push("after the close")
            for k, client in enumerate(clients):
                got = [await client.recv() for _ in expected[k]]
                assert got == expected[k]
                with pytest.raises(websockets.ConnectionClosedOK) as closed:
                    await asyncio.wait_for(client.recv(), 10)
                assert closed.value.rcvd is not None
                assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1000, "stream ended")
            assert not app.errors
        finally:
            await stop(server)

    run(loop_kind, main())


# --------------------------------------------------------------------------- coalescing


class CountedTransport:
    """The connection's real transport, counting its ``write`` calls (one ``send`` each)."""

    def __init__(self, inner: asyncio.Transport) -> None:
        self.inner = inner
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self.inner.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class CountedWrites(HubWebSocketProtocol):
    """The hub's protocol on a :class:`CountedTransport`; the last one made is ``last``."""

    last: CountedTransport | None = None

    def connection_made(self, transport: Any) -> None:
        counted = CountedTransport(transport)
        CountedWrites.last = counted
        super().connection_made(counted)


async def counted_connection(
    script: Script, limit: int = 1 << 20
) -> tuple[uvicorn.Server, App, websockets.ClientConnection, CountedTransport]:
    """A server on :class:`CountedWrites` and one client connected to it."""
    CountedWrites.last = None
    app = App(script, limit)
    server, port = await served(app, CountedWrites)
    client = await connect(f"ws://127.0.0.1:{port}/")
    assert CountedWrites.last is not None
    return server, app, client, CountedWrites.last


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_the_pushes_of_one_tick_are_one_write_of_whole_frames_in_push_order(
    loop_kind: str,
) -> None:
    async def main() -> None:
        state: dict[str, Any] = {}
        go = asyncio.Event()

        async def script(writer: DirectWriter, receive: Any) -> None:
            await go.wait()
            t = CountedWrites.last
            assert t is not None
            before = len(t.writes)
            expected: list[str | bytes] = []
            for i in range(40):  # one tick: events, with this connection's acks between
                event = f'{{"op":"event","seq":{i}}}'
                assert writer.push(event, ws_frame(event))
                expected.append(event)
                if i % 3 == 0:
                    ack = f'{{"op":"ack","id":"{i}"}}'
                    assert writer.push(ack)
                    expected.append(ack)
            assert writer.push(b"\x81\xa2op\xa3ack")  # a binary frame too
            expected.append(b"\x81\xa2op\xa3ack")
            state["unwritten"] = len(t.writes) - before  # nothing written within the tick
            state["pending"] = writer.queued_bytes
            await asyncio.sleep(0)  # the tick's flush
            state["one_tick"] = t.writes[before:]
            mid = len(t.writes)
            for i in range(40, 43):  # the next tick: one more write
                assert writer.push(f'{{"op":"event","seq":{i}}}')
                expected.append(f'{{"op":"event","seq":{i}}}')
            await asyncio.sleep(0)
            state["next_tick"] = len(t.writes) - mid
            state["expected"] = expected
            await receive()

        server, app, client, _ = await counted_connection(script)
        try:
            go.set()
            async with asyncio.timeout(10):
                while "expected" not in state:  # noqa: ASYNC110 - the server's state
                    await asyncio.sleep(0.01)
            expected = state["expected"]
            assert state["unwritten"] == 0
            wire = b"".join(ws_frame(f) for f in expected[:-3])
            assert state["pending"] == len(wire)  # queued_bytes counts the pending frames
            assert state["one_tick"] == [wire]  # one write: the frames joined, in push order
            assert state["next_tick"] == 1
            got = [await asyncio.wait_for(client.recv(), 10) for _ in expected]
            assert got == expected  # each its own WebSocket frame
            await client.close()
            assert not app.errors
        finally:
            await stop(server)

    run(loop_kind, main())


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_a_close_writes_the_pending_frames_first_then_nothing_more(loop_kind: str) -> None:
    async def main() -> None:
        state: dict[str, Any] = {}
        go = asyncio.Event()

        async def script(writer: DirectWriter, receive: Any) -> None:
            await go.wait()
            for i in range(5):
                assert writer.push(f"frame {i}")
            writer.close(STREAM_ENDED)  # same tick: the pending frames go out first
            state["after"] = writer.push("after the close")
            state["queued"] = writer.queued_bytes
            await receive()

        server, app, client, t = await counted_connection(script)
        try:
            go.set()
            got = [await asyncio.wait_for(client.recv(), 10) for _ in range(5)]
            assert got == [f"frame {i}" for i in range(5)]
            with pytest.raises(websockets.ConnectionClosedOK) as closed:
                await asyncio.wait_for(client.recv(), 10)
            assert closed.value.rcvd is not None
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1000, "stream ended")
            assert state["after"] is False
            # The frames then the close frame, nothing after them.
            frames = b"".join(ws_frame(f"frame {i}") for i in range(5))
            close = b"\x88\x0e\x03\xe8stream ended"
            assert b"".join(t.writes).endswith(frames + close)
            assert not app.errors
        finally:
            await stop(server)

    run(loop_kind, main())


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_the_limit_counts_the_pending_frames(loop_kind: str) -> None:
    async def main() -> None:
        state: dict[str, Any] = {}
        go = asyncio.Event()
        pad = "p" * 16_000

        async def script(writer: DirectWriter, receive: Any) -> None:
            await go.wait()
            before = metrics.SLOW_CLOSES._value.get()
            pushed = 0
            while writer.push(f"{pushed:05d}" + pad):  # one tick: nothing reaches the socket
                pushed += 1
                assert pushed < 100, "the pending frames were not counted"
            state["pushed"] = pushed
            state["slow"] = metrics.SLOW_CLOSES._value.get() - before
            await receive()

        server, app, client, _ = await counted_connection(script, limit=65_536)
        try:
            go.set()
            # 4 frames (4 x 16,009 bytes) pending; a 5th would take them past 64 KiB.
            got = [await asyncio.wait_for(client.recv(), 10) for _ in range(4)]
            assert [g[:5] for g in got] == ["00000", "00001", "00002", "00003"]
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(client.recv(), 10)
            assert closed.value.rcvd is not None
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1013, SLOW.reason)
            assert state == {"pushed": 4, "slow": 1}
            assert not app.errors
        finally:
            await stop(server)

    run(loop_kind, main())


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_drained_flushes_the_pending_frames_and_a_lost_writer_drops_them(
    loop_kind: str,
) -> None:
    async def main() -> None:
        state: dict[str, Any] = {}
        go = asyncio.Event()
        pad = "d" * 16_000

        async def script(writer: DirectWriter, receive: Any) -> None:
            await go.wait()
            t = CountedWrites.last
            assert t is not None
            n = 0
            while writer.queued_bytes < writer.high_water:  # a catch-up's page, one tick
                assert writer.push(pad)
                n += 1
            before = len(t.writes)
            state["pushed"] = n
            state["drained"] = await writer.drained(10)  # written, then read by the peer
            state["flushed"] = len(t.writes) - before
            # Pending frames of a connection found gone are dropped, never written.
            assert writer.push("never sent")
            writer.cancel()
            mark = len(t.writes)
            await asyncio.sleep(0)
            state["after_gone"] = len(t.writes) - mark
            state["push_after_gone"] = writer.push("nor this")
            await receive()

        server, app, client, _ = await counted_connection(script, limit=256 * 1024)
        try:
            go.set()
            async with asyncio.timeout(20):
                while "pushed" not in state:  # noqa: ASYNC110 - the server's state
                    await asyncio.sleep(0.01)
            for _ in range(state["pushed"]):
                assert await asyncio.wait_for(client.recv(), 10) == pad
            async with asyncio.timeout(20):
                while "push_after_gone" not in state:  # noqa: ASYNC110 - the server's state
                    await asyncio.sleep(0.01)
            assert state["drained"] is True and state["flushed"] == 1
            assert state["after_gone"] == 0 and state["push_after_gone"] is False
            await client.close()
            assert not app.errors
        finally:
            await stop(server)

    run(loop_kind, main())


# --------------------------------------------------------------------------- slow


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_a_peer_that_stops_reading_is_closed_1013_by_the_buffer_then_gets_its_frames(
    loop_kind: str,
) -> None:
    async def main() -> None:
        ready = asyncio.Event()
        outcome: dict[str, Any] = {}
        pad = "p" * 16_000

        async def script(writer: DirectWriter, receive: Any) -> None:
            before = metrics.SLOW_CLOSES._value.get()
            pushed = 0
            while writer.push(f"{pushed:05d}" + pad):  # never blocks: closes instead
                pushed += 1
                assert pushed < 5_000, "the buffer never filled"
                if pushed % 20 == 0:
                    await asyncio.sleep(0.01)  # let the kernel's buffers fill
            outcome.update(pushed=pushed, closed=writer.closed)
            outcome["slow"] = metrics.SLOW_CLOSES._value.get() - before
            outcome["queued"] = writer.queued_bytes
            ready.set()
            await receive()

        app = App(script, limit=65_536)
        server, port = await served(app)
        try:
            sock = stalled_socket(port)
            client = await connect(f"ws://127.0.0.1:{port}/", sock=sock, max_queue=1)
            await asyncio.wait_for(ready.wait(), 30)
            assert outcome["closed"] and outcome["slow"] == 1
            assert outcome["queued"] <= 65_536 + 16_100  # the bound, plus the close frame
            n = 0
            with pytest.raises(websockets.ConnectionClosed) as closed:
                async with asyncio.timeout(20):
                    while True:
                        msg = await client.recv()
                        assert msg[:5] == f"{n:05d}"  # every frame written, in order
                        n += 1
            assert n == outcome["pushed"]
            assert closed.value.rcvd is not None
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1013, SLOW.reason)
            assert not app.errors
        finally:
            await stop(server)

    run(loop_kind, main())


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_drained_waits_for_the_transport_and_a_peer_that_never_reads_is_cut(
    loop_kind: str,
) -> None:
    async def main() -> None:
        state: dict[str, Any] = {}
        full, read_now = asyncio.Event(), asyncio.Event()
        pad = "q" * 16_000

        async def script(writer: DirectWriter, receive: Any) -> None:
            n = 0
            while writer.queued_bytes < writer.high_water:
                assert writer.push(pad)
                n += 1
                await asyncio.sleep(0)
            state["stalled"] = await writer.drained(0.3)  # the peer does not read
            state["pushed"] = n
            full.set()
            await read_now.wait()
            state["drained"] = await writer.drained(20)
            state["left"] = writer.queued_bytes
            # Fill it again, close, and never read: cut at the close timeout.
            while writer.queued_bytes < writer.high_water:
                writer.push(pad)
                await asyncio.sleep(0)
            writer.close(SLOW)
            await receive()

        app = App(script, limit=256 * 1024)
        server, port = await served(app, ShortClose)
        try:
            sock = stalled_socket(port)
            client = await connect(f"ws://127.0.0.1:{port}/", sock=sock, max_queue=1)
            await asyncio.wait_for(full.wait(), 30)
            assert state["stalled"] is False
            read_now.set()
            for _ in range(state["pushed"]):
                assert await asyncio.wait_for(client.recv(), 20) == pad
            async with asyncio.timeout(20):
                while "left" not in state:  # noqa: ASYNC110 - another loop's state
                    await asyncio.sleep(0.01)
            assert state["drained"] is True and state["left"] <= 64 * 1024
            # The client stops reading for good: the server aborts after its close timeout.
            async with asyncio.timeout(20):
                while server.server_state.connections:  # noqa: ASYNC110 - another loop's state
                    await asyncio.sleep(0.05)
            client.transport.abort()
            assert not app.errors
        finally:
            await stop(server)

    run(loop_kind, main())


# --------------------------------------------------------------------------- gone


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_a_peer_gone_mid_write_stops_the_writer_quietly(loop_kind: str) -> None:
    async def main() -> None:
        state: dict[str, Any] = {}
        joined = asyncio.Event()

        async def script(writer: DirectWriter, receive: Any) -> None:
            joined.set()
            n = 0
            while writer.push("z" * 4000):
                n += 1
                assert n < 100_000, "never noticed the peer is gone"
                await asyncio.sleep(0.001)
            state["closed"] = writer.closed
            state["disconnect"] = (await asyncio.wait_for(receive(), 10))["type"]
            state["drained"] = await writer.drained(1.0)
            writer.close(STREAM_ENDED)  # a close after it is gone: nothing happens

        app = App(script)
        server, port = await served(app)
        try:
            client = await connect(f"ws://127.0.0.1:{port}/")
            await asyncio.wait_for(joined.wait(), 10)
            await asyncio.sleep(0.05)
            sock = client.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.transport.abort()  # a reset, mid-stream
            async with asyncio.timeout(20):
                while "drained" not in state and not app.errors:  # noqa: ASYNC110 - another loop's state
                    await asyncio.sleep(0.01)
            assert not app.errors
            assert state == {"closed": True, "disconnect": "websocket.disconnect", "drained": False}
        finally:
            await stop(server)

    run(loop_kind, main())


# --------------------------------------------------------------------------- fallback


def test_a_plain_uvicorn_offers_no_direct_writer() -> None:
    async def main() -> None:
        async def script(writer: DirectWriter, receive: Any) -> None:
            raise AssertionError("unreachable")

        app = App(script)
        server, port = await served(app, "websockets-sansio")
        try:
            async with connect(f"ws://127.0.0.1:{port}/") as client:
                with pytest.raises(websockets.ConnectionClosed):
                    await asyncio.wait_for(client.recv(), 10)
            assert app.writers == [None]
        finally:
            await stop(server)

    run("asyncio", main())


async def test_the_hub_writes_directly_on_its_protocol(hub: HubServer) -> None:
    stream, key = await hub.stream()
    async with hub.overlay(stream, key) as ov, hub.viewer(stream, "dora"):
        assert (await recv(ov))["op"] == "snapshot"
        assert hub.state.hub is not None
        room = hub.state.hub.rooms.get(stream)
        assert room is not None
        await until(lambda: len(room.viewers) == 1)
        members: list[Member] = [*room.overlays, *room.viewers]
        assert len(members) == 2
        assert all(isinstance(m.queue, DirectWriter) for m in members)
        assert not any(isinstance(m.queue, SendQueue) for m in members)


# --------------------------------------------------------------------------- light parts


async def test_the_light_receive_queue_keeps_order_and_wakes_its_reader() -> None:
    from gifting.hub.uvicorn_ws import _Inbox

    inbox = _Inbox()
    reader = asyncio.get_running_loop().create_task(inbox.get())
    await asyncio.sleep(0)
    assert inbox.empty()
    inbox.put_nowait({"n": 1})
    inbox.put_nowait({"n": 2})
    assert await asyncio.wait_for(reader, 1) == {"n": 1}
    assert inbox.qsize() == 1 and await inbox.get() == {"n": 2} and inbox.empty()
    cancelled = asyncio.get_running_loop().create_task(inbox.get())
    await asyncio.sleep(0)
    cancelled.cancel()  # a reader cancelled while waiting leaves the queue usable
    await asyncio.gather(cancelled, return_exceptions=True)
    inbox.put_nowait({"n": 3})
    assert await asyncio.wait_for(inbox.get(), 1) == {"n": 3}


async def test_the_light_writable_flag_wakes_every_waiter_and_survives_a_cancelled_one() -> None:
    from gifting.hub.uvicorn_ws import _Flag

    flag = _Flag()
    assert flag.is_set() and await flag.wait()
    flag.clear()
    loop = asyncio.get_running_loop()
    waiters = [loop.create_task(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0.01)
    assert not any(w.done() for w in waiters)
    waiters[0].cancel()
    await asyncio.sleep(0.01)
    assert not waiters[1].done() and not waiters[2].done()
    flag.set()
    assert await asyncio.wait_for(asyncio.gather(waiters[1], waiters[2]), 1) == [True, True]
    assert waiters[0].cancelled()
