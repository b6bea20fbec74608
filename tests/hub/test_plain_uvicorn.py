"""The app enforces its own limits whatever serves it (`uvicorn --factory ...create_app`).

``gifting serve`` passes ``ws_max_size`` to uvicorn; a plain uvicorn takes
frames up to 16 MiB. The endpoint refuses a frame over
``GIFTING_MAX_FRAME_BYTES`` itself (1009) on every uvicorn WebSocket
implementation, and the frame changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import msgspec
import pytest
import uvicorn
import websockets

from gifting.app import create_app
from gifting.config import Settings
from gifting.hub.extension import hub_extension
from tests.hub.conftest import JWT_SECRET, HubServer, encode, free_port, recv


@contextlib.asynccontextmanager
async def plain_uvicorn(
    redis_url: str, database_url: str, key_prefix: str, ws: str
) -> AsyncIterator[HubServer]:
    """create_app on uvicorn with uvicorn's own defaults (no ws_max_size, no ping settings)."""
    settings = Settings(
        REDIS_URL=redis_url, DATABASE_URL=database_url, GIFTING_KEY_PREFIX=key_prefix,
        GIFTING_JWT_SECRET=JWT_SECRET, GIFTING_WEBHOOK_SECRET="hub-test-webhook-secret-0123456789",
        GIFTING_MAX_FRAME_BYTES=1024,
    )  # fmt: skip
    app = create_app(settings, extensions=[hub_extension(settings)])
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, ws=ws, log_level="warning")
    )
    task = asyncio.get_running_loop().create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield HubServer(port, app.state.gifting)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


@pytest.mark.parametrize("ws", ["auto", "websockets-sansio", "wsproto"])
@pytest.mark.parametrize("msgpack", [False, True])
async def test_a_frame_over_the_limit_is_closed_1009_on_a_plain_uvicorn(
    redis_url: str, database_url: str, key_prefix: str, ws: str, msgpack: bool
) -> None:
    async with plain_uvicorn(redis_url, database_url, key_prefix, ws) as h:
        stream, key = await h.stream()
        await h.fund("max")
        before = (await h.state.ledger.wallet("max")).coins
        async with h.overlay(stream, key) as ov, h.viewer(stream, "max", msgpack=msgpack) as v:
            assert (await recv(ov))["op"] == "snapshot"
            # Just over the limit in bytes, though not in characters: "é" is two bytes.
            text = "é" * 300 + "x" * 500
            big = {"op": "comment", "id": "big", "text": text[:500], "pad": "y" * 2000}
            await v.send(msgspec.msgpack.encode(big) if msgpack else encode(big))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                async with asyncio.timeout(5):
                    while True:
                        await v.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
            async with h.viewer(stream, "max") as fits:  # a frame within it is served
                await fits.send(encode({"op": "comment", "id": "ok", "text": "é" * 400}))
                reply = await recv(fits)
                assert reply["op"] == "ack", reply
        assert (await h.state.ledger.wallet("max")).coins == before
