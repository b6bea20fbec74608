"""Server-sent events of a room (DESIGN.md §9): resume, expiry, keepalive, auth, slow readers."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from typing import Any

from tests.feed.conftest import bearer, feed_server, http, sse
from tests.hub.conftest import HubServer, encode, metric, recv_until


async def send_gifts(h: HubServer, stream: str, user: str, n: int) -> list[str]:
    """Send ``n`` roses one by one; return the acked event ids."""
    await h.fund(user)
    events = []
    async with h.viewer(stream, user) as ws:
        for i in range(n):
            await ws.send(encode({"op": "gift", "id": f"g{i}", "gift": "rose", "count": 1}))
            ack = await recv_until(ws, lambda m: m.get("op") in ("ack", "error"))
            assert ack["op"] == "ack", ack
            events.append(ack["event"])
            await asyncio.sleep(0.005)
    return events


async def emit_comments(h: HubServer, stream: str, n: int, pad: str) -> None:
    """Emit ``n`` large events straight into the room, as fast as Redis takes them."""
    roomlog = h.state.roomlog
    assert roomlog is not None
    for i in range(n):
        body = {"kind": "comment", "stream": stream, "event": f"c{i}", "ts": 0, "t": pad}
        await roomlog.emit(stream, body, once=False)


async def test_resume_with_last_event_id_no_miss_no_repeat(feed: HubServer) -> None:
    stream, key = await feed.stream("carol")
    seen: list[dict[str, Any]] = []
    async with http(feed) as client:
        gifts = asyncio.create_task(send_gifts(feed, stream, "alice", 60))
        last_id = None
        for round_ in range(4):  # read some, drop the connection, resume, while gifts flow
            async with sse(client, stream, key=key, headers=(
                {"Last-Event-ID": last_id} if last_id else {}
            )) as reader:  # fmt: skip
                for _ in range(15 if round_ < 3 else 10_000):
                    if round_ == 3 and sum(1 for e in seen if e["kind"] == "gift") >= 60:
                        break
                    msg = await reader.next(10)
                    if msg.event == "snapshot":
                        assert last_id is None
                        if msg.id:
                            last_id = msg.id
                        continue
                    assert msg.event != "error", msg
                    body = msg.json()
                    assert msg.id == body["cursor"] and msg.event == body["kind"]
                    seen.append(body)
                    last_id = msg.id
        acked = await gifts
    gift_events = [e["event"] for e in seen if e["kind"] == "gift"]
    assert sorted(gift_events) == sorted(acked)  # none missed, none repeated
    seqs = [e["seq"] for e in seen]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


async def test_cursor_expired_then_snapshot(feed: HubServer) -> None:
    stream, key = await feed.stream("carol")
    await send_gifts(feed, stream, "bob", 5)
    history = feed.state.keys.room_history(stream)
    first = await feed.state.redis.xrange(history, "-", "+", count=1)
    old_cursor = f"{first[0][0].decode()}_{int(first[0][1][b's'])}"
    await feed.state.redis.xtrim(
        history, maxlen=1, approximate=False
    )  # what retention does to an old cursor
    async with http(feed) as client, sse(client, stream, key=key, since=old_cursor) as reader:
        err = await reader.next()
        assert err.event == "error" and err.json()["code"] == "cursor_expired"
        snap = await reader.next()
        assert snap.event == "snapshot" and snap.json()["totals"]["gifts"] == 5
        assert snap.id == snap.json()["cursor"]
        more = asyncio.create_task(send_gifts(feed, stream, "dave", 1))
        msg = await reader.next()
        while msg.event != "gift":
            msg = await reader.next()
        assert msg.json()["sender"]["id"] == "dave"
        await more


async def test_keepalive_comments(feed: HubServer) -> None:
    stream, key = await feed.stream("carol")
    async with http(feed) as client, sse(client, stream, key=key) as reader:
        assert (await reader.next()).event == "snapshot"
        t0 = time.monotonic()
        async with asyncio.timeout(3):
            async for line in reader.lines:
                if line.startswith(":"):
                    assert line == ": keepalive"
                    break
        assert time.monotonic() - t0 < 3


async def test_auth_overlay_key_creator_token_and_refusals(feed: HubServer) -> None:
    stream, key = await feed.stream("carol")
    async with http(feed) as client:
        async with sse(client, stream, headers=bearer(feed, "carol", creator=True)) as reader:
            assert (await reader.next()).event == "snapshot"
        path = f"/v1/streams/{stream}/events"
        cases = [
            ({"key": "wrong"}, {}, 403),
            ({}, bearer(feed, "mallory", creator=True), 403),  # another creator's token
            ({}, {}, 401),
            ({"key": key}, {"Last-Event-ID": "not-a-cursor"}, 400),
        ]
        for params, headers, status in cases:
            r = await client.get(path, params=params, headers=headers)
            assert r.status_code == status, (params, headers, r.text)
            assert r.json()["code"] in ("forbidden", "unauthorized", "bad_request")
        r = await client.get("/v1/streams/nosuch/events", params={"key": "x"})
        assert r.status_code == 403  # an unknown stream looks like a wrong key


async def test_head_answers_the_headers_and_ends(feed: HubServer) -> None:
    """HEAD checks the credentials and ends: it joins no room, so the connection is free again."""
    stream, key = await feed.stream("carol")
    path = f"/v1/streams/{stream}/events"
    async with http(feed) as client:
        r = await asyncio.wait_for(client.head(path, params={"key": key}), 5)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["cache-control"] == "no-cache"
        r = await asyncio.wait_for(client.head(path, params={"key": "wrong"}), 5)
        assert r.status_code == 403
        # The same keep-alive connection takes the next request at once.
        r = await asyncio.wait_for(client.get(f"/v1/streams/{stream}"), 5)
        assert r.status_code == 200


async def test_ended_stream_resumed_at_its_end_is_204(feed: HubServer) -> None:
    stream, key = await feed.stream("carol")
    async with http(feed) as client:
        r = await client.post(f"/v1/streams/{stream}/end", headers=bearer(feed, "carol", True))
        assert r.status_code == 200
        last = await feed.state.roomlog.last_cursor(stream)  # type: ignore[union-attr]
        r = await client.get(f"/v1/streams/{stream}/events", params={"key": key, "since": last})
        assert r.status_code == 204


async def test_slow_reader_is_closed_while_the_room_goes_on(
    redis_url: str, db_url: str, key_prefix: str
) -> None:
    async with feed_server(redis_url, db_url, key_prefix, GIFTING_SEND_QUEUE_BYTES=16 * 1024) as h:
        stream, key = await h.stream("carol")
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect(("127.0.0.1", h.port))
        slow.sendall(
            f"GET /v1/streams/{stream}/events?key={key} HTTP/1.1\r\nHost: x\r\n"
            "Accept: text/event-stream\r\nConnection: close\r\n\r\n".encode()
        )
        closes = metric("gifting_slow_consumer_closes_total")
        n, pad = 2000, "x" * 2000
        async with http(h) as client:
            async with sse(client, stream, key=key) as fast:
                snap = await fast.next()
                assert snap.event == "snapshot"
            await asyncio.sleep(0.2)  # the slow reader is in the room
            emitting = asyncio.create_task(emit_comments(h, stream, n, pad))
            # The reader that reads gets every event, resuming with Last-Event-ID if its
            # own queue overflowed during the burst: the room went on.
            got: set[str] = set()
            last = snap.id
            while len(got) < n:
                headers = {"Last-Event-ID": last} if last else {}
                async with sse(client, stream, key=key, headers=headers) as fast:
                    with contextlib.suppress(EOFError):
                        while len(got) < n:
                            msg = await fast.next(10)
                            if msg.event == "comment":
                                event = msg.json()["event"]
                                assert event not in got
                                got.add(event)
                                last = msg.id
            await emitting
        assert metric("gifting_slow_consumer_closes_total") > closes
        # The slow reader's response ended (backlog dropped): it reads to EOF, short of all.
        slow.setblocking(False)
        total = 0
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(10):
            while chunk := await loop.sock_recv(slow, 65536):
                total += len(chunk)
        slow.close()
        assert total < n * len(pad)


async def test_sse_reader_on_another_hub_gets_the_events(
    feed: HubServer, redis_url: str, db_url: str, key_prefix: str
) -> None:
    stream, key = await feed.stream("carol")
    async with (
        feed_server(redis_url, db_url, key_prefix) as other,
        http(other) as client,
        sse(client, stream, key=key) as reader,
    ):
        assert (await reader.next()).event == "snapshot"
        acked = await send_gifts(feed, stream, "erin", 3)  # sent through the first hub
        got = []
        while len(got) < 3:
            msg = await reader.next()
            if msg.event == "gift":
                got.append(msg.json()["event"])
        assert got == acked
