"""Connection caps per user, per overlay key and per address (per hub process).

A connection past a cap is accepted, told ``rate_limited`` (with
``retry_after_ms``) and closed 1013: the client may come back later, as when
a reloaded overlay's old connection has not gone yet.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets

from gifting.core.admission import ConnectionCaps
from tests.hub.conftest import HubServer, metric, recv, serve, until


def caps(h: HubServer) -> ConnectionCaps:
    assert h.state.hub is not None
    return h.state.hub.caps


async def refused(ws: Any) -> dict[str, Any]:
    err = await recv(ws)
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    assert err["op"] == "error" and err["code"] == "rate_limited", err
    assert err["retry_after_ms"] > 0
    return err


async def served(ws: Any, overlay: bool = False) -> None:
    if overlay:
        assert (await recv(ws))["op"] == "snapshot"
    else:
        await ws.send('{"op":"ping","id":"in"}')
        assert (await recv(ws))["op"] == "pong"


@contextlib.asynccontextmanager
async def capped(
    redis_url: str, database_url: str, key_prefix: str, **caps: int
) -> AsyncIterator[HubServer]:
    async with serve(
        redis_url, database_url, key_prefix, GIFTING_RATE_PER_S=1000, GIFTING_RATE_BURST=1000,
        **caps,
    ) as h:  # fmt: skip
        yield h


async def test_a_user_past_their_cap_is_refused_1013_until_one_leaves(
    redis_url: str, database_url: str, key_prefix: str
) -> None:
    async with capped(redis_url, database_url, key_prefix, GIFTING_MAX_CONNECTIONS_PER_USER=2) as h:
        stream, _ = await h.stream()
        before = metric("gifting_connections_refused_total", limit="user")
        async with h.viewer(stream, "ann") as one, h.viewer(stream, "ann") as two:
            await served(one)
            await served(two)
            async with h.viewer(stream, "ann") as three:
                err = await refused(three)
                assert "user" in err["message"]
            async with h.viewer(stream, "bob") as other:  # others are not affected
                await served(other)
        # The hub gives the slots back as each connection's handler ends.
        await until(lambda: caps(h).count("user", "ann") == 0)
        async with h.viewer(stream, "ann") as again:
            await served(again)
        assert metric("gifting_connections_refused_total", limit="user") == before + 1


async def test_an_overlay_key_past_its_cap_is_refused_1013(
    redis_url: str, database_url: str, key_prefix: str
) -> None:
    async with capped(
        redis_url, database_url, key_prefix, GIFTING_MAX_CONNECTIONS_PER_OVERLAY=2
    ) as h:
        stream, key = await h.stream()
        other_stream, other_key = await h.stream("dora")
        async with h.overlay(stream, key) as one, h.overlay(stream, key) as two:
            await served(one, overlay=True)
            await served(two, overlay=True)
            async with h.overlay(stream, key) as three:
                assert "overlay" in (await refused(three))["message"]
            async with h.overlay(other_stream, other_key) as other:
                await served(other, overlay=True)


async def test_an_address_past_its_cap_is_refused_1013_and_limits_show_in_metrics(
    redis_url: str, database_url: str, key_prefix: str
) -> None:
    async with capped(
        redis_url, database_url, key_prefix, GIFTING_MAX_CONNECTIONS_PER_ADDRESS=3
    ) as h:
        stream, key = await h.stream()
        async with (
            h.viewer(stream, "u1") as a,
            h.viewer(stream, "u2") as b,
            h.overlay(stream, key) as c,
        ):
            await served(a)
            await served(b)
            await served(c, overlay=True)
            async with h.viewer(stream, "u3") as d:
                assert "address" in (await refused(d))["message"]
            async with h.overlay(stream, key) as e:
                await refused(e)
        await until(lambda: caps(h).count("address", "127.0.0.1") == 0)
        async with h.viewer(stream, "u3") as d:
            await served(d)
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"http://127.0.0.1:{h.port}/metrics")).text
    assert 'gifting_connection_limit{limit="address"} 3.0' in text
    assert 'gifting_connections_refused_total{limit="address"}' in text
    assert 'gifting_server_closes_total{code="1013"}' in text
