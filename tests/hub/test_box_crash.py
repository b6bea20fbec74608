"""A `gifting serve` killed with SIGKILL while a treasure box is open; another process closes it.

The box's close is a deadline in Redis, not a timer of the process that took
the drop: after the kill, a second `gifting serve` (its deadline runner and
its in-process persister) settles the box. Every coin moves once: each
claimer keeps its share, the dropper gets the rest back, the ledger agrees
and the audit passes.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

import asyncpg
import websockets
from redis.asyncio import Redis

from gifting.auth import mint_token
from gifting.core.catalog import load_catalog
from gifting.persister.audit import run_audit
from gifting.persister.progress import wait_caught_up
from gifting.store.deadlines import Deadlines
from gifting.store.keys import Keys
from gifting.store.ledger import Ledger
from gifting.store.streams import Streams
from tests.hub.conftest import JWT_SECRET, free_port
from tests.hub.test_hub_crash import _start


async def _ask(ws: websockets.ClientConnection, msg: dict[str, object]) -> dict[str, object]:
    await ws.send(json.dumps(msg))
    async with asyncio.timeout(10):
        while True:
            reply = json.loads(await ws.recv())
            if reply.get("op") in ("ack", "error") and reply.get("id") == msg["id"]:
                return dict(reply)


async def test_a_box_open_when_its_hub_is_killed_is_settled_by_another_process(
    redis: Redis, redis_url: str, db_url: str, key_prefix: str
) -> None:
    catalog = load_catalog()
    keys = Keys(key_prefix)
    ledger = Ledger(redis, keys, catalog)
    stream = (await Streams(redis, keys, catalog).create("star", "Star", "boxes")).stream
    users = ["dropper", "v1", "v2", "v3"]
    for u in users:
        await ledger.purchase(f"box-crash-{u}", u, "coins_700", 999, "USD")
    env = dict(os.environ)
    env.update(
        REDIS_URL=redis_url, DATABASE_URL=db_url, GIFTING_KEY_PREFIX=key_prefix,
        GIFTING_JWT_SECRET=JWT_SECRET, GIFTING_WEBHOOK_SECRET="w" * 40, GIFTING_DEV="0",
        GIFTING_PERSISTER_IN_PROCESS="1", GIFTING_PERSISTER_CLAIM_IDLE_MS="300",
    )  # fmt: skip
    port = free_port()
    hub = await _start(port, env)
    second = None
    try:

        def url(user: str) -> str:
            token = mint_token(JWT_SECRET, user, user.title(), [], 600)
            return f"ws://127.0.0.1:{port}/v1/ws/viewer?stream={stream}&token={token}"

        async with websockets.connect(url("dropper")) as ws:
            ack = await _ask(
                ws, {"op": "box", "id": "b1", "coins": 101, "winners": 5, "opens_in_s": 10}
            )
        box = str(ack["box"])
        async with asyncio.timeout(10):
            while not await redis.exists(keys.box(stream, box)):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        await redis.hset(keys.box(stream, box), "opens_at", int(time.time() * 1000))  # open now
        shares = []
        for u in ["v1", "v2", "v3"]:
            async with websockets.connect(url(u)) as ws:
                shares.append((await _ask(ws, {"op": "claim", "id": "c", "box": box}))["share"])
        assert shares == [21, 20, 20]

        hub.send_signal(signal.SIGKILL)
        hub.wait(10)
        # The window ends while no process runs: the close is due now.
        now = int(time.time() * 1000)
        await redis.hset(keys.box(stream, box), "closes_at", now - 1)
        deadlines = Deadlines(redis, keys)
        await deadlines.schedule(f"box_close|{stream}|{box}", now - 1)
        await deadlines.aclose()

        second = await _start(free_port(), env)
        async with asyncio.timeout(20):
            while await redis.hget(keys.box(stream, box), "state") != b"settled":  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert await wait_caught_up(redis, keys, 30)
        pool = await asyncpg.create_pool(db_url, min_size=1, max_size=2)
        assert pool is not None
        try:
            report = await run_audit(pool, redis, keys, catalog)
            assert report.ok, report.render()
            escrow = await pool.fetchval(
                "SELECT COALESCE(SUM(amount), 0) FROM postings WHERE account = 'boxes:escrow'"
            )
            kinds = await pool.fetch(
                "SELECT type, COUNT(*) AS n FROM ledger_events WHERE type LIKE 'box_%' "
                "GROUP BY type ORDER BY type"
            )
        finally:
            await pool.close()
    finally:
        for proc in (hub, second):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(10)
    assert escrow == 0
    assert [(r["type"], r["n"]) for r in kinds] == [("box_claim", 3), ("box_return", 1)]
    coins = {u: (await ledger.wallet(u)).coins for u in users}
    assert coins == {"dropper": 700 - 101 + 40, "v1": 721, "v2": 720, "v3": 720}
    assert sum(coins.values()) == 4 * 700
