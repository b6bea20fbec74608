"""Floods: every frame is charged, flooders are cut off, honest clients that back off are not.

Every frame a connection sends — pings and malformed frames included, on
overlays too — takes a token from its bucket (the sender's for a viewer, the
connection's own for an overlay). A refused frame is answered ``rate_limited``
with ``retry_after_ms``; frames that arrive while the client was told to wait
are strikes, and too many of them within a window close the connection 1008.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
import websockets

from gifting.core.session import FLOOD_STRIKES
from tests.hub.conftest import decode, encode, metric, recv, recv_until, serve

RATE, BURST = 50, 5


async def replies_until_closed(ws: Any, timeout: float = 30.0) -> tuple[list[dict[str, Any]], int]:
    out: list[dict[str, Any]] = []
    with pytest.raises(websockets.ConnectionClosed) as closed:
        async with asyncio.timeout(timeout):
            while True:
                out.append(decode(await ws.recv()))
    assert closed.value.rcvd is not None
    return out, closed.value.rcvd.code


@pytest.mark.parametrize("role", ["viewer", "overlay"])
async def test_ten_thousand_pings_and_bad_frames_are_not_all_answered(
    redis_url: str, database_url: str, key_prefix: str, role: str
) -> None:
    async with serve(
        redis_url, database_url, key_prefix, GIFTING_RATE_PER_S=RATE, GIFTING_RATE_BURST=BURST
    ) as h:
        stream, key = await h.stream()
        closes = metric("gifting_server_closes_total", code="1008")
        connect = h.viewer(stream, "pinger") if role == "viewer" else h.overlay(stream, key)
        async with connect as ws, h.overlay(stream, key) as watcher:
            if role == "overlay":
                assert (await recv(ws))["op"] == "snapshot"
            assert (await recv(watcher))["op"] == "snapshot"
            frames = [encode({"op": "ping"}), "{not json", encode({"op": "nope"})]
            with contextlib.suppress(websockets.ConnectionClosed):  # it may be cut off mid-way
                for i in range(10_000):
                    await ws.send(frames[i % 3])
            replies, code = await replies_until_closed(ws)
            assert code == 1008
            # The burst, what refilled meanwhile, one refusal, then the strikes: bounded.
            assert len(replies) <= BURST + RATE * 5 + 1 + FLOOD_STRIKES, len(replies)
            limited = [r for r in replies if r.get("code") == "rate_limited"]
            assert limited and all(r["retry_after_ms"] > 0 for r in limited)
            # The room did not notice: another member is served as before.
            await watcher.send(encode({"op": "ping", "id": "w"}))
            assert (await recv_until(watcher, lambda m: m["op"] == "pong"))["id"] == "w"
        assert metric("gifting_server_closes_total", code="1008") == closes + 1


async def test_an_honest_client_that_backs_off_as_told_is_never_closed(
    redis_url: str, database_url: str, key_prefix: str
) -> None:
    gifts = 150  # 30 times the burst: at 50/s, three seconds of refusals and retries
    async with serve(
        redis_url, database_url, key_prefix, GIFTING_RATE_PER_S=RATE, GIFTING_RATE_BURST=BURST
    ) as h:
        stream, _ = await h.stream()
        await h.fund("patient")
        refused = 0
        async with h.viewer(stream, "patient") as ws:
            for i in range(gifts):  # one at a time, from a queue
                while True:
                    await ws.send(encode({"op": "gift", "id": f"q{i}", "gift": "rose"}))
                    reply = await recv_until(ws, lambda m: m["op"] in ("ack", "error"))
                    if reply["op"] == "ack":
                        break
                    assert reply["code"] == "rate_limited" and reply["id"] == f"q{i}", reply
                    refused += 1
                    await asyncio.sleep(reply["retry_after_ms"] / 1000)
            while True:  # a ping is charged too: it may have to wait its turn as well
                await ws.send(encode({"op": "ping", "id": "end"}))
                reply = await recv_until(ws, lambda m: m["op"] in ("pong", "error"))
                if reply["op"] == "pong":
                    break
                await asyncio.sleep(reply["retry_after_ms"] / 1000)
        assert refused > FLOOD_STRIKES  # it was told to wait many times, and was never closed
        assert (await h.state.ledger.wallet("patient")).coins == 700 - gifts


async def test_a_flooding_viewer_does_not_slow_the_room(
    redis_url: str, database_url: str, key_prefix: str
) -> None:
    async with serve(
        redis_url, database_url, key_prefix, GIFTING_RATE_PER_S=RATE, GIFTING_RATE_BURST=BURST
    ) as h:
        stream, key = await h.stream()
        await h.fund("calm")
        async with h.overlay(stream, key) as ov, h.viewer(stream, "calm") as calm:
            assert (await recv(ov))["op"] == "snapshot"

            async def flood() -> None:
                for _ in range(5):  # one connection after another, each cut off
                    async with h.viewer(stream, "flood", max_queue=None) as ws:
                        with contextlib.suppress(websockets.ConnectionClosed):
                            for _ in range(2000):
                                await ws.send(encode({"op": "ping"}))
                        _, code = await replies_until_closed(ws)
                        assert code == 1008

            flooding = asyncio.get_running_loop().create_task(flood())
            for i in range(10):
                await calm.send(encode({"op": "gift", "id": f"c{i}", "gift": "rose"}))
                ack = await recv_until(calm, lambda m: m["op"] in ("ack", "error"))
                assert ack["op"] == "ack", ack
                event = await recv_until(ov, lambda m: m.get("kind") == "gift")
                assert event["event"] == ack["event"]
                await asyncio.sleep(1 / RATE)
            await flooding


async def test_one_greedy_user_is_bounded_the_room_unaffected_and_limits_in_metrics(
    redis_url: str, database_url: str, key_prefix: str
) -> None:
    """One user opens twice their cap of connections, each flooding gifts, pings and garbage,
    and reconnects when cut off, for a few seconds; an honest gifter and an overlay
    beside them see no difference."""
    import resource

    import httpx

    async with serve(
        redis_url, database_url, key_prefix, GIFTING_RATE_PER_S=RATE, GIFTING_RATE_BURST=BURST,
        GIFTING_MAX_CONNECTIONS_PER_USER=4,
    ) as h:  # fmt: skip
        assert h.state.hub is not None
        hub = h.state.hub
        stream, key = await h.stream()
        await h.fund("hog", n=3)
        await h.fund("calm")
        stop = asyncio.Event()
        most = 0

        async def greedy(n: int) -> None:
            nonlocal most
            frames = [
                encode({"op": "gift", "id": f"h{n}", "gift": "rose"}),
                encode({"op": "ping"}),
                "{garbage",
            ]
            while not stop.is_set():
                with contextlib.suppress(websockets.ConnectionClosed, OSError):
                    async with h.viewer(stream, "hog", max_queue=None) as ws:
                        for i in range(1000):
                            await ws.send(frames[i % 3])
                            most = max(most, hub.caps.count("user", "hog"))
                        await replies_until_closed(ws, timeout=10)

        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        hogs = [asyncio.get_running_loop().create_task(greedy(n)) for n in range(8)]
        try:
            async with h.overlay(stream, key) as ov, h.viewer(stream, "calm") as calm:
                assert (await recv(ov))["op"] == "snapshot"
                for i in range(30):  # an honest gifter, a gift every 100 ms
                    await calm.send(encode({"op": "gift", "id": f"c{i}", "gift": "rose"}))
                    ack = await recv_until(calm, lambda m: m["op"] in ("ack", "error"))
                    assert ack["op"] == "ack", ack
                    event = await recv_until(
                        ov, lambda m: m.get("kind") == "gift" and m["sender"]["id"] == "calm"
                    )
                    assert event["event"] == ack["event"]
                    await asyncio.sleep(0.1)
        finally:
            stop.set()
            await asyncio.gather(*hogs)
        grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
        # Bounded: never more than its cap of connections, few buckets, little memory.
        assert most <= 4 and hub.limits.senders <= 3
        assert grown_mb < 200, grown_mb  # server and clients together; generous
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"http://127.0.0.1:{h.port}/metrics")).text
    assert metric("gifting_connections_refused_total", limit="user") > 0
    assert metric("gifting_server_closes_total", code="1008") > 0
    for line in (
        'gifting_connection_limit{limit="user"} 4.0',
        f'gifting_rate_limit{{param="rate"}} {float(RATE)}',
        'gifting_connections_refused_total{limit="user"}',
        'gifting_server_closes_total{code="1008"}',
        'gifting_spends_total{kind="any",result="rate_limited"}',
    ):
        assert line in text, line
