"""Bad input on the WebSockets: each gets its error (or close) and changes nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest
import websockets

from tests.hub.conftest import HubServer, encode, recv, recv_until, serve


async def _wallet(hub: HubServer, user: str) -> tuple[int, int]:
    w = await hub.state.ledger.wallet(user)
    outbox = sum([await hub.state.redis.xlen(k) for k in hub.state.keys.outboxes()])
    return w.coins, outbox


BAD_FRAMES: list[tuple[Any, str]] = [
    ("{", "bad_request"),
    ("[]", "bad_request"),
    ('"gift"', "bad_request"),
    ('{"op":"nope","id":"b1"}', "bad_request"),
    ('{"id":"b1","gift":"rose"}', "bad_request"),
    ('{"op":"gift","id":"b1"}', "bad_request"),
    ('{"op":"gift","id":"b1","gift":"rose","count":0}', "bad_request"),
    ('{"op":"gift","id":"b1","gift":"rose","count":-1}', "bad_request"),
    ('{"op":"gift","id":"b1","gift":"rose","count":9007199254740992}', "bad_request"),
    ('{"op":"gift","id":"b1","gift":"rose","count":9223372036854775808}', "bad_request"),
    ('{"op":"gift","id":"b1","gift":"rose","count":true}', "bad_request"),
    ('{"op":"gift","id":"b1","gift":"rose","count":1.5}', "bad_request"),
    ('{"op":"gift","id":"b1","gift":"rose","count":"3"}', "bad_request"),
    ('{"op":"gift","id":"b1","gift":"rose","extra":1}', "bad_request"),
    ('{"op":"gift","id":"b1","gift":"no_such_gift"}', "unknown_item"),
    ('{"op":"effect","id":"b1","effect":"no_such_effect"}', "unknown_item"),
    ('{"op":"comment","id":"b1","text":"hi","highlight":"tier9"}', "unknown_item"),
    ('{"op":"comment","id":"b1","text":""}', "bad_request"),
    ('{"op":"gift","id":"' + "x" * 65 + '","gift":"rose"}', "bad_request"),
    ('{"op":"gift","id":"a b","gift":"rose"}', "bad_request"),
    ('{"op":"gift","id":"a\\u0001b","gift":"rose"}', "bad_request"),
    ('{"op":"gift","id":"{x}","gift":"rose"}', "bad_request"),
    ('{"op":"gift","id":12,"gift":"rose"}', "bad_request"),
    ('{"op":"gift","id":"b1","gift":"rose","gift":"universe"}', "bad_request"),
    ('{"op":"gift","id":"b1","gift":"rose","count":1,"count":1000}', "bad_request"),
    ('{"op":"comment","id":"b1","text":"a","text":"b"}', "bad_request"),
]


@pytest.mark.parametrize(("frame", "code"), BAD_FRAMES)
async def test_bad_frames_get_an_error_and_change_nothing(
    hub: HubServer, frame: str, code: str
) -> None:
    stream, _ = await hub.stream()
    await hub.fund("mallory")
    before = await _wallet(hub, "mallory")
    async with hub.viewer(stream, "mallory") as ws:
        await ws.send(frame)
        err = await recv_until(ws, lambda m: m["op"] == "error")
        assert err["code"] == code, err
        assert err["message"]
        # The connection is still usable afterwards.
        await ws.send(encode({"op": "ping"}))
        assert (await recv_until(ws, lambda m: m["op"] in ("pong", "error")))["op"] == "pong"
    assert await _wallet(hub, "mallory") == before


async def test_msgpack_bad_frames_and_wrong_frame_type(hub: HubServer) -> None:
    stream, _ = await hub.stream()
    await hub.fund("mia")
    before = await _wallet(hub, "mia")
    async with hub.viewer(stream, "mia", msgpack=True) as ws:
        await ws.send(b"\xc1\xc1garbage")
        assert (await recv(ws))["code"] == "bad_request"
        await ws.send(
            msgspec.msgpack.encode({"op": "gift", "id": "m1", "gift": "rose", "count": -5})
        )
        assert (await recv(ws))["code"] == "bad_request"
        await ws.send('{"op":"gift","id":"m2","gift":"rose"}')  # text on a msgpack connection
        err = await recv(ws)
        assert err["code"] == "bad_request"
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1003
    async with hub.viewer(stream, "mia") as ws:
        await ws.send(b'{"op":"gift","id":"m3","gift":"rose"}')  # binary on a JSON connection
        assert (await recv(ws))["code"] == "bad_request"
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1003
    assert await _wallet(hub, "mia") == before


async def test_oversized_frame_is_closed_1009(
    redis_url: str, database_url: str, key_prefix: str
) -> None:
    async with serve(redis_url, database_url, key_prefix, GIFTING_MAX_FRAME_BYTES=1024) as h:
        stream, _ = await h.stream()
        await h.fund("max")
        before = await _wallet(h, "max")
        async with h.viewer(stream, "max") as ws:
            big = '{"op":"comment","id":"big","text":"' + "x" * 5000 + '"}'
            await ws.send(big)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1009
        assert await _wallet(h, "max") == before


@pytest.mark.parametrize(
    "auth",
    ["none", "forged", "expired", "alg_none"],
)
async def test_bad_viewer_credentials_are_refused_1008(hub: HubServer, auth: str) -> None:
    import jwt

    from gifting.auth import mint_token

    stream, _ = await hub.stream()
    headers: dict[str, str] = {}
    if auth == "forged":
        headers["Authorization"] = "Bearer " + mint_token("not-the-secret-" + "x" * 32, "eve")
    elif auth == "expired":
        token = jwt.encode(
            {"sub": "eve", "name": "Eve", "exp": 1}, "hub-test-jwt-secret-0123456789abcdef0123"
        )
        headers["Authorization"] = f"Bearer {token}"
    elif auth == "alg_none":
        token = jwt.encode({"sub": "eve", "exp": 4102444800}, None, algorithm="none")
        headers["Authorization"] = f"Bearer {token}"
    async with websockets.connect(
        f"{hub.ws}/v1/ws/viewer?stream={stream}", additional_headers=headers
    ) as ws:
        err = await recv(ws)
        assert err["code"] == "unauthorized"
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1008


async def test_unknown_stream_and_wrong_overlay_key_are_refused(hub: HubServer) -> None:
    stream, key = await hub.stream()
    async with hub.viewer("s-does-not-exist", "eve") as ws:
        assert (await recv(ws))["code"] == "not_found"
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
    async with hub.overlay(stream, key + "x") as ws:
        assert (await recv(ws))["code"] == "forbidden"
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1008
    async with hub.overlay(stream, key, since="not-a-cursor") as ws:
        assert (await recv(ws))["code"] == "bad_request"


async def test_a_flood_is_rate_limited_then_closed_and_others_do_not_notice(
    redis_url: str, database_url: str, key_prefix: str
) -> None:
    async with serve(
        redis_url, database_url, key_prefix, GIFTING_RATE_PER_S=5, GIFTING_RATE_BURST=5
    ) as h:
        stream, _ = await h.stream()
        await h.fund("flood")
        await h.fund("calm")
        async with h.viewer(stream, "flood") as bad, h.viewer(stream, "calm") as good:
            for i in range(100):
                await bad.send(encode({"op": "gift", "id": f"f{i}", "gift": "rose"}))
            codes: list[str] = []
            with pytest.raises(websockets.ConnectionClosed) as closed:
                async with asyncio.timeout(10):
                    while True:
                        msg = await recv(bad)
                        codes.append(msg.get("code", msg["op"]))
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1008
            # Past the burst every frame was refused; the flooder was cut off at 50 strikes.
            assert codes.count("rate_limited") >= 40
            await good.send(encode({"op": "gift", "id": "calm-1", "gift": "rose"}))
            ack = await recv_until(good, lambda m: m["op"] in ("ack", "error"))
            assert ack["op"] == "ack"
        # Only the burst (and maybe a refill) was debited: refused frames changed nothing.
        spent = 700 - (await h.state.ledger.wallet("flood")).coins
        assert 5 <= spent <= 7
        assert codes.count("ack") <= spent  # acks still in flight at the close were dropped


async def test_metrics_are_exposed(hub: HubServer) -> None:
    import httpx

    stream, _ = await hub.stream()
    await hub.fund("mo")
    async with hub.viewer(stream, "mo") as ws:
        await ws.send(encode({"op": "gift", "id": "met-1", "gift": "rose"}))
        await recv_until(ws, lambda m: m["op"] == "ack")
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"http://127.0.0.1:{hub.port}/metrics")).text
    for name in (
        "gifting_connections",
        "gifting_spends_total",
        "gifting_ack_latency_seconds_bucket",
        "gifting_fanout_queue_depth",
        "gifting_slow_consumer_closes_total",
    ):
        assert name in text
    assert 'gifting_spends_total{kind="gift",result="ok"}' in text
