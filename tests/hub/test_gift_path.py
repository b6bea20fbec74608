"""The gift path end to end: real uvicorn, real Redis, real websockets clients."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
import websockets

from tests.hub.conftest import HubServer, decode, encode, metric, recv, recv_until, until

pytestmark = pytest.mark.cluster


async def _events(
    ws: Any, n: int, kind: str = "gift", timeout: float = 10.0
) -> list[dict[str, Any]]:
    """Read frames until ``n`` events of ``kind`` arrived (batches unpacked)."""
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while len(out) < n:
            msg = decode(await ws.recv())
            items = msg["events"] if msg["op"] == "batch" else [msg] if msg["op"] == "event" else []
            out += [e for e in items if e["kind"] == kind]
    return out


async def test_every_acked_gift_reaches_every_overlay_once_in_order(hub: HubServer) -> None:
    stream, key = await hub.stream()
    await hub.fund("alice")
    async with (
        hub.overlay(stream, key) as ov_json,
        hub.overlay(stream, key, msgpack=True) as ov_mp,
        hub.viewer(stream, "alice") as viewer,
        hub.viewer(stream, "bob", msgpack=True) as watcher,
    ):
        assert (await recv(ov_json))["op"] == "snapshot"
        assert (await recv(ov_mp))["op"] == "snapshot"
        acks = []
        for i in range(30):
            await viewer.send(encode({"op": "gift", "id": f"g{i}", "gift": "rose", "count": 1}))
        while len(acks) < 30:
            msg = await recv(viewer)
            if msg["op"] == "ack":
                acks.append(msg)
            elif msg["op"] == "error":
                pytest.fail(f"unexpected error {msg}")
        seen_json = await _events(ov_json, 30)
        seen_mp = await _events(ov_mp, 30)
        seen_watch = await _events(watcher, 30)
    events = {a["event"] for a in acks}
    assert len(events) == 30
    for seen in (seen_json, seen_mp, seen_watch):
        assert [e["event"] for e in seen] == [e["event"] for e in seen_json]
        assert {e["event"] for e in seen} == events
        seqs = [e["seq"] for e in seen]
        assert seqs == sorted(seqs) and len(set(seqs)) == 30
    # JSON and msgpack overlays see the same events, field for field.
    assert seen_json == seen_mp
    first = seen_json[0]
    assert first["sender"] == {"id": "alice", "name": "alice", "level": 1}
    assert first["gift"]["id"] == "rose" and first["count"] == 1
    assert [e["combo"] for e in seen_json] == list(range(1, 31))
    wallet = await hub.state.ledger.wallet("alice")
    assert wallet.coins == 700 - 30
    creator = await hub.state.ledger.wallet("carol")
    assert creator.received == 30 and creator.diamonds == 15


async def test_retry_after_a_dropped_connection_debits_once(hub: HubServer) -> None:
    stream, _ = await hub.stream()
    await hub.fund("dave")
    async with hub.viewer(stream, "dave") as ws:
        await ws.send(encode({"op": "gift", "id": "once-1", "gift": "doughnut", "count": 2}))
        first = await recv_until(ws, lambda m: m["op"] == "ack")
    # The client drops the connection, reconnects and sends the same message again.
    async with hub.viewer(stream, "dave") as ws:
        for _ in range(3):
            await ws.send(encode({"op": "gift", "id": "once-1", "gift": "doughnut", "count": 2}))
            again = await recv_until(ws, lambda m: m["op"] == "ack")
            assert again == first
        await ws.send(encode({"op": "gift", "id": "once-1", "gift": "rose", "count": 2}))
        conflict = await recv_until(ws, lambda m: m["op"] == "error")
        assert conflict["code"] == "conflict" and conflict["id"] == "once-1"
    price = hub.state.catalog.gifts["doughnut"].coins * 2
    assert (await hub.state.ledger.wallet("dave")).coins == 700 - price


async def test_overlay_reconnecting_with_its_cursor_misses_nothing(hub: HubServer) -> None:
    stream, key = await hub.stream()
    await hub.fund("erin", n=2)
    async with hub.viewer(stream, "erin") as viewer:

        async def gift(i: int) -> None:
            await viewer.send(encode({"op": "gift", "id": f"r{i}", "gift": "rose"}))
            await recv_until(viewer, lambda m: m["op"] == "ack" and m["id"] == f"r{i}")

        async with hub.overlay(stream, key) as ov:
            await recv(ov)  # snapshot
            for i in range(5):
                await gift(i)
            before = await _events(ov, 5)
        cursor = before[-1]["cursor"]
        for i in range(5, 15):  # sent while the overlay is away
            await gift(i)
        async with hub.overlay(stream, key, since=cursor) as ov:
            for i in range(15, 20):
                await gift(i)
            after = await _events(ov, 15)
    events = [e["event"] for e in before + after]
    assert len(events) == len(set(events)) == 20
    seqs = [e["seq"] for e in before + after]
    assert seqs == sorted(seqs)


async def test_cursor_older_than_history_gets_expired_and_a_snapshot(hub: HubServer) -> None:
    stream, key = await hub.stream()
    await hub.fund("fay")
    async with hub.viewer(stream, "fay") as viewer:
        for i in range(3):
            await viewer.send(encode({"op": "gift", "id": f"x{i}", "gift": "rose"}))
            await recv_until(viewer, lambda m: m["op"] == "ack")
    await asyncio.sleep(0.2)
    history = hub.state.keys.room_history(stream)
    rows = await hub.state.redis.xrange(history)
    old_cursor = f"{rows[0][0].decode()}_{int(rows[0][1][b's'])}"
    await hub.state.redis.xtrim(history, maxlen=1, approximate=False)  # the history moved on
    async with hub.overlay(stream, key, since=old_cursor) as ov:
        err = await recv(ov)
        assert err["op"] == "error" and err["code"] == "cursor_expired"
        snap = await recv(ov)
        assert snap["op"] == "snapshot" and snap["totals"]["coins"] == 3
        assert snap["top"][0]["user"] == "fay"


async def test_a_stalled_reader_is_closed_1013_and_the_room_goes_on(
    redis_url: str, database_url: str, key_prefix: str
) -> None:
    from tests.hub.conftest import serve

    async with serve(
        redis_url, database_url, key_prefix,
        GIFTING_SEND_QUEUE_BYTES=65_536, GIFTING_IDLE_TIMEOUT_S=2,
    ) as h:  # fmt: skip
        stream, key = await h.stream()
        roomlog = h.state.roomlog
        assert roomlog is not None
        # A small receive buffer turns off the kernel's autotuning (up to 32 MB here),
        # and max_queue=1 makes the client stop reading its socket at once.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        sock.connect(("127.0.0.1", h.port))
        async with (
            h.overlay(stream, key, max_queue=1, sock=sock) as slow,
            h.overlay(stream, key, max_queue=None) as fast,
        ):
            await recv(fast)
            closes_before = metric("gifting_slow_consumer_closes_total")
            reader = asyncio.get_running_loop().create_task(
                _events(fast, 800, kind="test", timeout=60)
            )
            pad = "x" * 16_000
            for i in range(800):
                await roomlog.emit(
                    stream,
                    {"kind": "test", "stream": stream, "event": f"t{i}", "ts": 0, "pad": pad},
                    once=False,
                )
            got = await reader
            # The stalled overlay did not slow the room: the fast one got every event, in order.
            assert [e["event"] for e in got] == [f"t{i}" for i in range(800)]
            # Its queue did not drain within the idle timeout: the hub closed it ...
            await until(lambda: metric("gifting_slow_consumer_closes_total") > closes_before)
            # ... and the stalled one, once it reads again, finds its close: 1013.
            with pytest.raises(websockets.ConnectionClosed) as closed:
                async with asyncio.timeout(30):
                    while True:
                        await slow.recv()
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1013


async def test_outbox_closes_a_stalled_connection_with_1013_without_blocking() -> None:
    from gifting.hub.send_queue import SendQueue

    sent: list[dict[str, Any]] = []
    stall = asyncio.get_running_loop().create_future()

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if len(sent) == 1:
            await stall  # the peer stopped reading: the first write never completes

    outbox = SendQueue(send, "overlay", limit=80)  # bytes: eight 10-byte frames
    outbox.start()
    assert outbox.push("frame 0")
    await asyncio.sleep(0.01)  # the writer took frame 0 and is stuck writing it
    pushed = [outbox.push(f"frame {i:03d}") for i in range(1, 20)]
    assert pushed[:8] == [True] * 8 and pushed[8:] == [False] * 11  # never blocked the caller
    assert outbox.closed
    stall.set_result(None)  # the peer reads again: it gets the close, not the backlog
    await outbox.wait_closed(1.0)
    assert sent[0]["text"] == "frame 0"
    assert sent[-1] == {"type": "websocket.close", "code": 1013, "reason": "too slow: reconnect"}
    assert len(sent) == 2


async def test_stream_end_sends_stream_ended_and_closes(hub: HubServer) -> None:
    stream, key = await hub.stream()
    async with hub.overlay(stream, key) as ov, hub.viewer(stream, "gus") as viewer:
        await recv(ov)
        await hub.state.streams.end(stream, "carol")
        assert hub.state.hub is not None
        await hub.state.hub.end_stream(stream)
        ended = await recv_until(ov, lambda m: m.get("kind") == "stream_ended")
        assert ended["stream"] == stream
        with pytest.raises(websockets.ConnectionClosedOK):
            async with asyncio.timeout(5):
                while True:
                    await ov.recv()
        with pytest.raises(websockets.ConnectionClosed):
            async with asyncio.timeout(5):
                while True:
                    await viewer.recv()
    await hub.fund("gus")
    async with hub.viewer(stream, "gus") as viewer:
        err = await recv(viewer)
        assert err["code"] == "stream_not_live"


async def test_http_goal_and_end_reach_the_room(hub: HubServer) -> None:
    import httpx

    stream, key = await hub.stream("hana")
    auth = {"Authorization": f"Bearer {hub.token('hana', creator=True)}"}
    base = f"http://127.0.0.1:{hub.port}/v1/streams/{stream}"
    async with hub.overlay(stream, key) as ov, httpx.AsyncClient() as client:
        await recv(ov)  # snapshot
        r = await client.put(f"{base}/goal", json={"target": 500, "gift": None}, headers=auth)
        assert r.status_code == 200
        goal = await recv_until(ov, lambda m: m.get("kind") == "goal")
        assert goal["goal"] == {"target": 500, "progress": 0, "gift": None}
        r = await client.post(f"{base}/end", headers=auth)
        assert r.status_code == 200
        await recv_until(ov, lambda m: m.get("kind") == "stream_ended")
        with pytest.raises(websockets.ConnectionClosedOK):
            async with asyncio.timeout(5):
                while True:
                    await ov.recv()


async def test_combo_streak_ends_after_the_window(
    redis_url: str, database_url: str, key_prefix: str
) -> None:
    from tests.hub.conftest import serve

    async with serve(redis_url, database_url, key_prefix, GIFTING_COMBO_WINDOW_MS=300) as h:
        stream, key = await h.stream()
        await h.fund("ivy")
        async with h.overlay(stream, key) as ov, h.viewer(stream, "ivy") as viewer:
            await recv(ov)
            combos = []
            for i in range(3):
                await viewer.send(encode({"op": "gift", "id": f"c{i}", "gift": "rose", "count": 2}))
                combos.append((await recv_until(viewer, lambda m: m["op"] == "ack"))["combo"])
            assert combos == [2, 4, 6]
            end = await recv_until(ov, lambda m: m.get("kind") == "streak_end")
            assert end["combo"] == 6
            assert end["sender"]["id"] == "ivy"
            assert end["gift"]["id"] == "rose"
            await asyncio.sleep(0.4)  # past the window: a new streak starts
            await viewer.send(encode({"op": "gift", "id": "c9", "gift": "rose"}))
            assert (await recv_until(viewer, lambda m: m["op"] == "ack"))["combo"] == 1


async def test_effects_highlights_comments_and_the_leaderboard_reach_the_room(
    hub: HubServer,
) -> None:
    stream, key = await hub.stream("lena")
    await hub.fund("otto")
    catalog = hub.state.catalog
    async with hub.overlay(stream, key) as ov, hub.viewer(stream, "otto") as viewer:
        await recv(ov)
        await viewer.send(encode({"op": "effect", "id": "fx-1", "effect": "confetti"}))
        fx = await recv_until(viewer, lambda m: m["op"] == "ack")
        text = "pin me <b>please</b>"
        await viewer.send(
            encode({"op": "comment", "id": "hl-1", "text": text, "highlight": "tier2"})
        )
        hl = await recv_until(viewer, lambda m: m["op"] == "ack" and m["id"] == "hl-1")
        await viewer.send(encode({"op": "comment", "id": "cm-1", "text": "free!"}))
        await recv_until(viewer, lambda m: m["op"] == "ack" and m["id"] == "cm-1")
        kinds: dict[str, dict[str, Any]] = {}
        async with asyncio.timeout(5):  # the leaderboard follows within a second
            while "leaderboard" not in kinds:
                msg = decode(await ov.recv())
                if msg["op"] == "event":
                    kinds[msg["kind"]] = msg
    effect = catalog.effects["confetti"]
    tier = catalog.highlights["tier2"]
    assert kinds["effect"]["event"] == fx["event"]
    assert kinds["effect"]["effect"] == {
        "id": "confetti", "name": effect.name, "duration_ms": effect.duration_ms,
    }  # fmt: skip
    assert kinds["highlight"]["event"] == hl["event"]
    assert kinds["highlight"]["text"] == text
    assert kinds["highlight"]["highlight"] == {"tier": "tier2", "pin_ms": tier.pin_ms, "level": 2}
    assert kinds["comment"]["text"] == "free!"
    spent = effect.coins + tier.coins
    assert kinds["leaderboard"]["top"] == [{"user": "otto", "name": "otto", "coins": spent}]
    assert (await hub.state.ledger.wallet("otto")).coins == 700 - spent
