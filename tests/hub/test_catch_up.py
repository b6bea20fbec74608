"""Overlays far behind their room catch up in paced steps (contract §3.4, §3.5).

An overlay that reconnects with an old cursor, or that a pub/sub gap left far
behind, gets every missed event in order and stays connected: the hub reads
the room's history a page at a time and hands the connection the next events
only when its send queue has drained, so the backlog never trips the slow
consumer close (1013) of a connection that does read.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import websockets

from gifting.store.rooms import RoomLog
from tests.hub.conftest import HubServer, decode, encode, metric, recv, serve, until

PAD = "p" * 300


async def emit(
    roomlog: RoomLog, stream: str, n: int, start: int = 0, published: bool = True, pad: str = PAD
) -> None:
    """Emit ``n`` test events; unpublished ones reach the history but not the hubs (a lost
    pub/sub message, as when a hub's subscription reconnects)."""
    for i in range(start, start + n):
        body = {"kind": "test", "stream": stream, "event": f"t{i}", "ts": 0, "pad": pad}
        if published:
            await roomlog.emit(stream, body, once=False)
        else:
            keys, args = roomlog.emit_args(stream, body, once=False)
            args[4] = f"{args[4]}:nobody-listens"
            await roomlog.scripts.run("emit", keys, args)


async def read_tests(ws: Any, n: int, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Read until ``n`` test events arrived (a close fails the test)."""
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while len(out) < n:
            msg = decode(await ws.recv())
            items = msg["events"] if msg["op"] == "batch" else [msg] if msg["op"] == "event" else []
            out += [e for e in items if e.get("kind") == "test"]
    return out


async def still_open(ws: Any, msgpack: bool = False) -> None:
    await ws.send(encode({"op": "ping", "id": "still-there"}, msgpack))
    async with asyncio.timeout(10):
        while True:
            msg = decode(await ws.recv())
            if msg.get("op") == "pong":
                return


def in_order(events: list[dict[str, Any]], first: int, n: int) -> None:
    assert [e["event"] for e in events] == [f"t{i}" for i in range(first, first + n)]
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs))


async def test_an_overlay_300_events_behind_catches_up_on_reconnect(hub: HubServer) -> None:
    stream, key = await hub.stream()
    roomlog = hub.state.roomlog
    assert roomlog is not None
    async with hub.overlay(stream, key) as ov:
        assert (await recv(ov))["op"] == "snapshot"
        await emit(roomlog, stream, 1)
        (first,) = await read_tests(ov, 1)
    await emit(roomlog, stream, 300, start=1)  # missed while away
    async with hub.overlay(stream, key, since=first["cursor"]) as ov:
        got = await read_tests(ov, 300)
        in_order(got, 1, 300)
        await still_open(ov)


async def test_an_overlay_far_behind_a_small_queue_catches_up_in_steps(
    redis_url: str, database_url: str, key_prefix: str
) -> None:
    # 2,000 events of ~400 bytes: 50 times what the connection's queue may hold.
    async with serve(redis_url, database_url, key_prefix, GIFTING_SEND_QUEUE_BYTES=16_384) as h:
        stream, key = await h.stream()
        roomlog = h.state.roomlog
        assert roomlog is not None
        await emit(roomlog, stream, 1)
        async with h.overlay(stream, key, since="0-0_0") as ov:
            (first,) = await read_tests(ov, 1)
        await emit(roomlog, stream, 2000, start=1)
        async with h.overlay(stream, key, since=first["cursor"]) as ov:
            got = await read_tests(ov, 2000)
            in_order(got, 1, 2000)
            await emit(roomlog, stream, 1, start=2001)  # and it is live again
            in_order(await read_tests(ov, 1), 2001, 1)
            await still_open(ov)


async def test_a_pub_sub_gap_bigger_than_the_queue_is_caught_up(
    redis_url: str, database_url: str, key_prefix: str
) -> None:
    async with serve(redis_url, database_url, key_prefix, GIFTING_SEND_QUEUE_BYTES=16_384) as h:
        stream, key = await h.stream()
        roomlog = h.state.roomlog
        assert roomlog is not None
        async with h.overlay(stream, key) as ov, h.overlay(stream, key, msgpack=True) as ov_mp:
            assert (await recv(ov))["op"] == "snapshot"
            assert (await recv(ov_mp))["op"] == "snapshot"
            await emit(roomlog, stream, 1)
            in_order(await read_tests(ov, 1), 0, 1)
            in_order(await read_tests(ov_mp, 1), 0, 1)
            # 1,500 events reach the history but no hub; the next published one shows the gap.
            await emit(roomlog, stream, 1500, start=1, published=False)
            await emit(roomlog, stream, 1, start=1501)
            in_order(await read_tests(ov, 1501), 1, 1501)
            in_order(await read_tests(ov_mp, 1501), 1, 1501)
            await still_open(ov)
            await still_open(ov_mp, msgpack=True)


async def test_a_reader_that_never_reads_is_closed_1013_and_others_catch_up(
    redis_url: str, database_url: str, key_prefix: str
) -> None:
    import socket

    async with serve(
        redis_url, database_url, key_prefix,
        GIFTING_SEND_QUEUE_BYTES=16_384, GIFTING_IDLE_TIMEOUT_S=2,
    ) as h:  # fmt: skip
        stream, key = await h.stream()
        roomlog = h.state.roomlog
        assert roomlog is not None
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", h.port))
        async with (
            h.overlay(stream, key, max_queue=1, sock=sock) as stalled,
            h.overlay(stream, key, max_queue=None) as reader,
        ):
            assert (await recv(reader))["op"] == "snapshot"
            closes_before = metric("gifting_slow_consumer_closes_total")
            # 800 events of 16 kB: more than the kernel buffers on loopback hold.
            await emit(roomlog, stream, 800, pad="x" * 16_000)
            in_order(await read_tests(reader, 800), 0, 800)
            # The stalled queue did not drain within the idle timeout (2 s): closed 1013.
            await until(lambda: metric("gifting_slow_consumer_closes_total") > closes_before)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                async with asyncio.timeout(30):
                    while True:
                        await stalled.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
