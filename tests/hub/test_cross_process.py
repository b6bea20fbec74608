"""Two hub processes (separate ports, one Redis): rooms span them."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
import websockets
from redis.asyncio import Redis

from gifting.auth import mint_token
from gifting.core.catalog import load_catalog
from gifting.store.keys import Keys
from gifting.store.ledger import Ledger
from gifting.store.streams import Streams
from tests.hub.conftest import JWT_SECRET, decode, encode, free_port, recv_until

pytestmark = pytest.mark.cluster

SERVE = [sys.executable, "-c", "from gifting.cli import main; main()", "serve"]


async def _start(port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, not awaited
        [*SERVE, "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    async with httpx.AsyncClient() as client:
        for _ in range(200):
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "exited")
            try:
                if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return proc
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    proc.kill()
    raise RuntimeError("hub did not become ready")


@pytest_asyncio.fixture(loop_scope="session")
async def two_hubs(
    redis_url: str, database_url: str, key_prefix: str
) -> AsyncIterator[tuple[int, int]]:
    env = dict(os.environ)
    env.update(
        REDIS_URL=redis_url, DATABASE_URL=database_url, GIFTING_KEY_PREFIX=key_prefix,
        GIFTING_JWT_SECRET=JWT_SECRET, GIFTING_WEBHOOK_SECRET="x" * 40, GIFTING_DEV="0",
    )  # fmt: skip
    ports = free_port(), free_port()
    procs = [await _start(p, env) for p in ports]
    try:
        yield ports
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


async def _gifts(ws: Any, n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(15):
        while len(out) < n:
            msg = decode(await ws.recv())
            if msg["op"] == "event" and msg["kind"] == "gift":
                out.append(msg)
    return out


async def test_gifts_on_one_hub_reach_overlays_on_both_in_order(
    two_hubs: tuple[int, int], redis: Redis, key_prefix: str
) -> None:
    a, b = two_hubs
    catalog = load_catalog()
    keys = Keys(key_prefix)
    stream = await Streams(redis, keys, catalog).create("carol", "Carol", "two hubs")
    ledger = Ledger(redis, keys, catalog)
    await ledger.purchase("xp-1", "alice", "coins_700", 999, "USD")
    token = mint_token(JWT_SECRET, "alice", "Alice")
    q = f"stream={stream.stream}&key={stream.overlay_key}"
    async with websockets.connect(f"ws://127.0.0.1:{a}/v1/ws/overlay?{q}") as ov_a, \
            websockets.connect(f"ws://127.0.0.1:{b}/v1/ws/overlay?{q}") as ov_b, \
            websockets.connect(
                f"ws://127.0.0.1:{b}/v1/ws/viewer?stream={stream.stream}&token={token}"
            ) as viewer:  # fmt: skip
        acks = []
        for i in range(25):
            await viewer.send(encode({"op": "gift", "id": f"x{i}", "gift": "rose"}))
            acks.append(await recv_until(viewer, lambda m: m["op"] in ("ack", "error")))
        assert all(a["op"] == "ack" for a in acks)
        seen_a = await _gifts(ov_a, 25)
        seen_b = await _gifts(ov_b, 25)
    assert [e["event"] for e in seen_a] == [e["event"] for e in seen_b]
    assert {e["event"] for e in seen_a} == {a["event"] for a in acks}
    assert [e["seq"] for e in seen_a] == sorted(e["seq"] for e in seen_a)
    # Both hubs credited the creator exactly once per gift.
    assert (await ledger.wallet("carol")).received == 25
