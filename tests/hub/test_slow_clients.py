"""Slow clients: readers that never read, and handshakes sent a byte at a time (slowloris).

Neither slows anyone else down: a connection that does not read is closed
1013 while the room goes on, and a request whose headers do not arrive within
``GIFTING_HANDSHAKE_TIMEOUT_S`` is answered 408 and closed (uvicorn alone
never times an incomplete request out: ``gifting serve`` runs it with the
deadline of :mod:`gifting.serving`).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import uvicorn

from gifting.app import create_app
from gifting.config import Settings
from gifting.hub.extension import hub_extension
from gifting.serving import HeaderDeadlineProtocol
from tests.hub.conftest import (
    JWT_SECRET,
    HubServer,
    decode,
    encode,
    free_port,
    metric,
    recv,
    recv_until,
    serve,
    until,
)

UPGRADE = (
    b"GET /v1/ws/viewer?stream=s1 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)


async def test_a_viewer_that_never_reads_is_closed_1013_and_the_room_goes_on(
    redis_url: str, database_url: str, key_prefix: str
) -> None:
    async with serve(redis_url, database_url, key_prefix, GIFTING_SEND_QUEUE_BYTES=65_536) as h:
        stream, key = await h.stream()
        roomlog = h.state.roomlog
        assert roomlog is not None
        closes = metric("gifting_server_closes_total", code="1013")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # no kernel autotuning
        sock.connect(("127.0.0.1", h.port))
        async with (
            h.viewer(stream, "stuck", max_queue=1, sock=sock),
            h.overlay(stream, key) as ov,
            h.viewer(stream, "watch") as watcher,
        ):
            assert (await recv(ov))["op"] == "snapshot"
            worst = 0.0
            pad = "x" * 16_000
            for i in range(400):  # 400 events of 16 kB: far more than the buffers hold
                started = time.monotonic()
                event = f"t{i}"
                body = {"kind": "test", "stream": stream, "event": event, "ts": 0, "pad": pad}
                await roomlog.emit(stream, body, once=False)
                got = await recv_until(ov, lambda m, e=event: m.get("event") == e, timeout=30)
                assert got["seq"] == i + 1
                worst = max(worst, time.monotonic() - started)
            # Delivery to the others stayed bounded (a generous bound: the machine is shared).
            assert worst < 10, worst
            await until(lambda: metric("gifting_server_closes_total", code="1013") > closes)
            seen = 0
            async with asyncio.timeout(30):  # the other viewer got every event, in order
                while seen < 400:
                    msg = decode(await watcher.recv())
                    for event in msg.get("events", []):
                        assert event["event"] == f"t{seen}"
                        seen += 1


@contextlib.asynccontextmanager
async def deadline_server(
    redis_url: str, database_url: str, key_prefix: str, deadline_s: float
) -> AsyncIterator[HubServer]:
    class Protocol(HeaderDeadlineProtocol):
        header_deadline_s = deadline_s

    settings = Settings(
        REDIS_URL=redis_url, DATABASE_URL=database_url, GIFTING_KEY_PREFIX=key_prefix,
        GIFTING_JWT_SECRET=JWT_SECRET, GIFTING_WEBHOOK_SECRET="hub-test-webhook-secret-0123456789",
    )  # fmt: skip
    app = create_app(settings, extensions=[hub_extension(settings)])
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, http=Protocol, log_level="warning")
    server = uvicorn.Server(config)
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


async def slowloris(port: int, stop: asyncio.Event, step_s: float = 0.25) -> tuple[bool, bytes]:
    """Send an upgrade request a byte at a time; return (cut off by the server, its answer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answer = b""
    try:
        for byte in UPGRADE:
            if stop.is_set():
                return False, answer
            writer.write(bytes([byte]))
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                chunk = await asyncio.wait_for(reader.read(200), step_s)
                answer += chunk
                if not chunk:  # EOF: the server hung up
                    return True, answer
        return False, answer
    except ConnectionError:
        return True, answer
    finally:
        writer.close()


async def test_slowloris_handshakes_block_nobody_and_are_cut_at_the_deadline(
    redis_url: str, database_url: str, key_prefix: str
) -> None:
    async with deadline_server(redis_url, database_url, key_prefix, deadline_s=1.0) as h:
        stream, _ = await h.stream()
        stop = asyncio.Event()
        drips = [asyncio.create_task(slowloris(h.port, stop)) for _ in range(50)]
        try:
            await asyncio.sleep(0.3)  # all of them mid-request
            for i in range(5):  # others connect and are served meanwhile
                async with h.viewer(stream, f"u{i}") as ws:
                    await ws.send(encode({"op": "ping", "id": "p"}))
                    assert (await recv(ws))["op"] == "pong"
            async with asyncio.timeout(20):  # ~1 s each; a generous bound
                outcomes: list[Any] = await asyncio.gather(*drips)
        finally:
            stop.set()
        assert all(cut for cut, _ in outcomes), outcomes
        assert all(answer.startswith(b"HTTP/1.1 408") for _, answer in outcomes)


async def test_a_connection_that_sends_nothing_is_cut_at_the_deadline(
    redis_url: str, database_url: str, key_prefix: str
) -> None:
    async with deadline_server(redis_url, database_url, key_prefix, deadline_s=0.5) as h:
        reader, writer = await asyncio.open_connection("127.0.0.1", h.port)
        async with asyncio.timeout(10):
            assert (await reader.read()).startswith(b"HTTP/1.1 408")  # then EOF
        writer.close()
