"""Soak tests: many connections, long floods, many slow clients, against `gifting serve`.

Marked ``soak``: not part of ``make test`` (pyproject's addopts deselect
them); ``make soak`` runs them and prints what they measured. The hub runs
as its own process (``gifting serve`` on the session's Redis and PostgreSQL)
so its memory is measured apart from the clients', which are raw sockets
that speak just enough WebSocket (a few kB each on this side).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psutil
import pytest
from redis.asyncio import Redis

from gifting.auth import mint_token
from gifting.core.catalog import load_catalog
from gifting.store.keys import Keys
from gifting.store.rooms import RoomLog
from gifting.store.streams import Streams
from tests.hub.conftest import JWT_SECRET, decode, encode, free_port

pytestmark = [pytest.mark.soak, pytest.mark.timeout(1200)]

SERVE = [sys.executable, "-c", "from gifting.cli import main; main()", "serve"]


@dataclass
class Served:
    """A `gifting serve` process and what the test needs to talk to it."""

    port: int
    proc: subprocess.Popen[bytes]
    keys: Keys
    redis: Redis

    @property
    def rss_mb(self) -> float:
        return float(psutil.Process(self.proc.pid).memory_info().rss) / 2**20

    def token(self, user: str) -> str:
        return mint_token(JWT_SECRET, user, None, [], 3600)

    async def metrics(self) -> str:
        async with httpx.AsyncClient() as client:
            return (await client.get(f"http://127.0.0.1:{self.port}/metrics")).text


@contextlib.asynccontextmanager
async def gifting_serve(
    redis_url: str, database_url: str, key_prefix: str, **env: str
) -> AsyncIterator[Served]:
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GIFTING_")}
    environ.update(
        REDIS_URL=redis_url, DATABASE_URL=database_url, GIFTING_KEY_PREFIX=key_prefix,
        GIFTING_JWT_SECRET=JWT_SECRET, GIFTING_PERSISTER_IN_PROCESS="0", GIFTING_DEV="0",
        GIFTING_WEBHOOK_SECRET="soak-webhook-secret-0123456789abcdef", **env,
    )  # fmt: skip
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, stopped below
        [*SERVE, "--port", str(port)], env=environ, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    redis = Redis.from_url(redis_url)
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(300):
                assert proc.poll() is None, "gifting serve exited at start"
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
        yield Served(port, proc, Keys(key_prefix), redis)
    finally:
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, 30)
        except subprocess.TimeoutExpired:
            proc.kill()
        await redis.aclose()


class RawWs:
    """A WebSocket client of a few kB: the upgrade, then raw reads (server frames are
    unmasked); it never answers pings, so the soaks run with a long heartbeat."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, path: str, token: str | None = None) -> RawWs:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(secrets.token_bytes(16)).decode()
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: gifting.json.v1\r\n{auth}\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    async def frame(self) -> tuple[int, bytes]:
        """The next frame: (opcode, payload)."""
        b0, b1 = await self.reader.readexactly(2)
        size = b1 & 0x7F
        if size == 126:
            size = int.from_bytes(await self.reader.readexactly(2), "big")
        elif size == 127:
            size = int.from_bytes(await self.reader.readexactly(8), "big")
        return b0 & 0x0F, await self.reader.readexactly(size)

    def send_text(self, text: str) -> None:
        data, mask = text.encode(), secrets.token_bytes(4)
        size = len(data)
        head = bytes([0x81, 0x80 | size])
        if size >= 126:
            head = bytes([0x81, 0xFE]) + size.to_bytes(2, "big")
        self.writer.write(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def close(self) -> None:
        self.writer.close()


async def open_many(n: int, opener: Any, parallel: int = 200) -> list[RawWs]:
    out: list[RawWs] = []
    gate = asyncio.Semaphore(parallel)

    async def one(i: int) -> None:
        async with gate:
            out.append(await opener(i))

    await asyncio.gather(*(one(i) for i in range(n)))
    return out


@contextlib.contextmanager
def report(title: str) -> Iterator[dict[str, Any]]:
    figures: dict[str, Any] = {}
    yield figures
    lines = "\n".join(f"  {k}: {v}" for k, v in figures.items())
    print(f"\n[soak] {title}\n{lines}", flush=True)


async def test_ten_thousand_idle_connections_on_one_hub(
    redis_url: str, database_url: str, key_prefix: str
) -> None:
    n = 10_000
    async with gifting_serve(
        redis_url, database_url, key_prefix, GIFTING_MAX_CONNECTIONS_PER_ADDRESS="20000",
        GIFTING_HEARTBEAT_S="600", GIFTING_IDLE_TIMEOUT_S="600",
    ) as hub:  # fmt: skip
        catalog = load_catalog()
        stream = await Streams(hub.redis, hub.keys, catalog).create("carol", "Carol", "soak")
        tokens = [hub.token(f"v{i}") for i in range(n)]
        path = f"/v1/ws/viewer?stream={stream.stream}"
        first = await RawWs.open(hub.port, path, tokens[0])  # the room exists, code is warm
        await asyncio.sleep(1)
        before = hub.rss_mb
        started = time.monotonic()
        rest = await open_many(n - 1, lambda i: RawWs.open(hub.port, path, tokens[i + 1]))
        conns = [first, *rest]
        opened_s = time.monotonic() - started
        await asyncio.sleep(2)
        after = hub.rss_mb
        # One event reaches every one of them.
        await RoomLog(hub.redis, hub.keys, catalog).emit(
            stream.stream, {"kind": "comment", "stream": stream.stream, "event": "m1", "ts": 0},
            once=False,
        )  # fmt: skip
        started = time.monotonic()
        frames = await asyncio.wait_for(asyncio.gather(*(c.frame() for c in conns)), 120)
        fanout_s = time.monotonic() - started
        assert all(op == 1 and decode(data.decode())["op"] == "batch" for op, data in frames)
        text = await hub.metrics()
        assert 'gifting_connections{kind="viewer"} 10000.0' in text
        for c in conns:
            c.close()
        with report("10,000 idle viewer connections on one hub") as figures:
            figures["connections"] = n
            figures["opened in (s)"] = round(opened_s, 1)
            figures["hub RSS before / after (MiB)"] = f"{before:.0f} / {after:.0f}"
            figures["hub memory per connection (KiB)"] = round((after - before) * 1024 / n, 1)
            figures["one event to all of them (s)"] = round(fanout_s, 2)
        assert (after - before) * 1024 / n < 200  # KiB: uvicorn alone measured ~29


async def test_one_user_flooding_for_a_minute_memory_stays_flat_the_room_unaffected(
    redis_url: str, database_url: str, key_prefix: str
) -> None:
    import websockets

    seconds = 60
    async with gifting_serve(
        redis_url, database_url, key_prefix, GIFTING_MAX_CONNECTIONS_PER_USER="8",
    ) as hub:  # fmt: skip
        catalog = load_catalog()
        streams = Streams(hub.redis, hub.keys, catalog)
        stream = await streams.create("carol", "Carol", "soak")
        from gifting.store.ledger import Ledger

        ledger = Ledger(hub.redis, hub.keys, catalog)
        p = catalog.packages["coins_7000"]
        for user in ("hog", "calm"):
            await ledger.purchase(
                f"buy-{user}", user, "coins_7000", p.price.amount, p.price.currency
            )
        base = f"ws://127.0.0.1:{hub.port}/v1/ws"
        stop = asyncio.Event()
        cut = refused = 0

        async def hog(n: int) -> None:
            nonlocal cut, refused
            frames = [encode({"op": "gift", "id": f"h{n}-{i}", "gift": "rose"}) for i in range(50)]
            frames += [encode({"op": "ping"}), "{garbage", encode({"op": "nope"})]
            while not stop.is_set():
                try:
                    async with websockets.connect(
                        f"{base}/viewer?stream={stream.stream}", max_queue=None,
                        additional_headers={"Authorization": f"Bearer {hub.token('hog')}"},
                    ) as ws:  # fmt: skip
                        for i in range(2000):
                            await ws.send(frames[i % len(frames)])
                        await asyncio.wait_for(ws.wait_closed(), 30)
                        code = ws.close_code
                        cut += code == 1008
                        refused += code == 1013
                except (websockets.ConnectionClosed, OSError, TimeoutError):
                    pass

        samples: list[float] = []
        latencies: list[float] = []
        hogs = [asyncio.get_running_loop().create_task(hog(n)) for n in range(16)]
        try:
            overlay = f"{base}/overlay?stream={stream.stream}&key={stream.overlay_key}"
            async with (
                websockets.connect(overlay) as ov,
                websockets.connect(
                    f"{base}/viewer?stream={stream.stream}",
                    additional_headers={"Authorization": f"Bearer {hub.token('calm')}"},
                ) as calm,
            ):  # fmt: skip
                assert decode(await ov.recv())["op"] == "snapshot"
                started, i = time.monotonic(), 0
                while time.monotonic() - started < seconds:
                    sent = time.monotonic()
                    await calm.send(encode({"op": "gift", "id": f"c{i}", "gift": "rose"}))
                    async with asyncio.timeout(30):
                        while (reply := decode(await calm.recv())).get("id") != f"c{i}":
                            pass  # the room's batches (a viewer that does not read is closed)
                        assert reply["op"] == "ack", reply
                        while decode(await ov.recv()).get("event") != reply["event"]:
                            pass
                    latencies.append(time.monotonic() - sent)
                    if i % 20 == 0:
                        samples.append(hub.rss_mb)
                    i += 1
                    await asyncio.sleep(0.1)
        finally:
            stop.set()
            await asyncio.gather(*hogs, return_exceptions=True)
        text = await hub.metrics()
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99)]
    with report("one user flooding from 16 connections (cap 8) for a minute") as figures:
        figures["flood connections cut 1008 / refused 1013"] = f"{cut} / {refused}"
        figures["honest gifts delivered"] = len(latencies)
        figures["gift -> overlay p50 / p99 / max (ms)"] = (
            f"{latencies[len(latencies) // 2] * 1000:.0f} / {p99 * 1000:.0f} / "
            f"{latencies[-1] * 1000:.0f}"
        )
        figures["hub RSS first / last / max (MiB)"] = (
            f"{samples[0]:.0f} / {samples[-1]:.0f} / {max(samples):.0f}"
        )
    assert cut > 0 and refused > 0
    assert p99 < 2.0  # generous: a shared machine
    assert samples[-1] - samples[len(samples) // 4] < 50  # MiB: flat once warm
    assert 'gifting_connections_refused_total{limit="user"}' in text


async def test_a_thousand_slowloris_handshakes_and_fifty_readers_that_never_read(
    redis_url: str, database_url: str, key_prefix: str
) -> None:
    import socket

    import websockets

    async with gifting_serve(
        redis_url, database_url, key_prefix, GIFTING_HANDSHAKE_TIMEOUT_S="3",
        GIFTING_MAX_CONNECTIONS_PER_ADDRESS="5000", GIFTING_MAX_CONNECTIONS_PER_OVERLAY="500",
        GIFTING_SEND_QUEUE_BYTES="65536", GIFTING_IDLE_TIMEOUT_S="5",
    ) as hub:  # fmt: skip
        catalog = load_catalog()
        stream = await Streams(hub.redis, hub.keys, catalog).create("carol", "Carol", "soak")
        roomlog = RoomLog(hub.redis, hub.keys, catalog)
        overlay = f"/v1/ws/overlay?stream={stream.stream}&key={stream.overlay_key}"
        upgrade = (
            f"GET {overlay} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        ).encode()

        async def drip() -> bool:
            reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
            try:
                for byte in upgrade:
                    writer.write(bytes([byte]))
                    await writer.drain()
                    with contextlib.suppress(TimeoutError):
                        if not await asyncio.wait_for(reader.read(100), 1.0):
                            return True
                return False
            except ConnectionError:
                return True
            finally:
                writer.close()

        async def stalled() -> socket.socket:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", hub.port))
            sock.send(
                f"GET {overlay} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade"
                "\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n".encode()
            )  # and never reads again
            return sock

        drips = [asyncio.get_running_loop().create_task(drip()) for _ in range(1000)]
        stuck = [await stalled() for _ in range(50)]
        before = hub.rss_mb
        worst = 0.0
        async with websockets.connect(f"ws://127.0.0.1:{hub.port}{overlay}", max_queue=None) as ov:
            assert decode(await ov.recv())["op"] == "snapshot"
            # 400 events of 16 kB: 6.4 MB, more than a socket's send buffer holds (4 MB).
            for i in range(400):
                sent = time.monotonic()
                body = {"kind": "test", "stream": stream.stream, "event": f"t{i}", "ts": 0,
                        "pad": "x" * 16_000}  # fmt: skip
                await roomlog.emit(stream.stream, body, once=False)
                async with asyncio.timeout(30):
                    while decode(await ov.recv()).get("event") != f"t{i}":
                        pass
                worst = max(worst, time.monotonic() - sent)
        cut = await asyncio.wait_for(asyncio.gather(*drips), 120)
        await asyncio.sleep(8)  # past the idle timeout: the stalled ones are closed
        text = await hub.metrics()
        after = hub.rss_mb
        for sock in stuck:
            sock.close()
    closed_slow = sum(
        float(line.split()[-1]) for line in text.splitlines()
        if line.startswith('gifting_server_closes_total{code="1013"}')
    )  # fmt: skip
    with report("1,000 slowloris handshakes and 50 overlays that never read, one room") as f:
        f["slowloris connections cut at the 3 s deadline"] = f"{sum(cut)} / {len(cut)}"
        f["stalled overlays closed 1013"] = f"{closed_slow:.0f} / {len(stuck)}"
        f["gift -> live overlay worst (ms)"] = round(worst * 1000)
        f["hub RSS before / after (MiB)"] = f"{before:.0f} / {after:.0f}"
    assert all(cut)
    assert closed_slow >= len(stuck)
    assert worst < 5.0
