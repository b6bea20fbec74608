"""A pub/sub gap the room cannot read from its history is never a silent hole (contract §3.4).

The room fills a gap in ``seq`` from the history; when that read fails, every
overlay catches up from its own cursor instead: one whose missed events were
trimmed gets ``cursor_expired`` and a snapshot, one that cannot be served is
closed 1011 (reconnect with its cursor).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import websockets

from tests.hub.conftest import HubServer, decode, recv
from tests.hub.test_catch_up import emit, read_tests


async def frames_until(ws: Any, done: Any, timeout: float = 15.0) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while not out or not done(out[-1]):
            out.append(decode(await ws.recv()))
    return out


async def test_an_unreadable_gap_gives_overlays_cursor_expired_and_a_snapshot(
    hub: HubServer,
) -> None:
    stream, key = await hub.stream()
    roomlog = hub.state.roomlog
    assert roomlog is not None
    async with hub.overlay(stream, key) as ov:
        assert (await recv(ov))["op"] == "snapshot"
        await emit(roomlog, stream, 1)
        (first,) = await read_tests(ov, 1)
        # 20 events the hub never hears of, then the history moves past the room's cursor.
        await emit(roomlog, stream, 20, start=1, published=False)
        await hub.state.redis.xtrim(hub.state.keys.room_history(stream), maxlen=5)
        await emit(roomlog, stream, 1, start=21)  # seq 22 shows the gap; seq 2..16 are gone
        got = await frames_until(
            ov, lambda m: m["op"] == "snapshot" or (m["op"] == "event" and m["seq"] >= 22)
        )
        ops = [(m["op"], m.get("code")) for m in got]
        assert ops == [("error", "cursor_expired"), ("snapshot", None)], ops
        assert got[-1]["seq"] >= 22 and got[-1]["seq"] > first["seq"]
        await emit(roomlog, stream, 1, start=22)  # and it is live again
        (after,) = await read_tests(ov, 1)
        assert after["event"] == "t22" and after["seq"] == got[-1]["seq"] + 1


async def test_a_gap_read_that_fails_closes_overlays_1011_not_a_hole(hub: HubServer) -> None:
    stream, key = await hub.stream()
    roomlog = hub.state.roomlog
    assert roomlog is not None
    redis, history = hub.state.redis, hub.state.keys.room_history(stream)
    async with hub.overlay(stream, key) as ov:
        assert (await recv(ov))["op"] == "snapshot"
        await emit(roomlog, stream, 1)
        (first,) = await read_tests(ov, 1)
        await emit(roomlog, stream, 5, start=1, published=False)
        # The history cannot be read for a while (here: the key holds the wrong type).
        await redis.rename(history, history + ":away")
        await redis.set(history, "not a stream")
        body = {"kind": "test", "stream": stream, "event": "t6", "ts": 0}
        await redis.publish(hub.state.keys.room_channel(stream), b"7|9-0_7|" + _json(body))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            async with asyncio.timeout(15):
                while True:
                    msg = decode(await ov.recv())
                    assert msg.get("seq", 0) < 7, f"delivered past a hole: {msg}"
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
        await redis.delete(history)
        await redis.rename(history + ":away", history)
    async with hub.overlay(stream, key, since=first["cursor"]) as ov:  # what a client does
        again = await read_tests(ov, 5)
        assert [e["event"] for e in again] == [f"t{i}" for i in range(1, 6)]


def _json(body: dict[str, Any]) -> bytes:
    import msgspec

    return msgspec.json.encode(body)
