"""A hub killed with SIGKILL in the middle of a gift storm, then restarted.

Clients keep their message ids across the crash and retry what was not
answered; afterwards every acked gift was debited once, credited once,
persisted once, shown once in its room, and the audit passes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from typing import Any

import asyncpg
import httpx
from gifting_client import ViewerClient
from gifting_client.backoff import Backoff
from redis.asyncio import Redis

from gifting.auth import mint_token
from gifting.core.catalog import load_catalog
from gifting.persister.audit import run_audit
from gifting.persister.progress import wait_caught_up
from gifting.store.keys import Keys
from gifting.store.ledger import Ledger
from gifting.store.streams import Streams
from tests.hub.conftest import JWT_SECRET, free_port

SERVE = [sys.executable, "-c", "from gifting.cli import main; main()", "serve"]
VIEWERS = 6
GIFTS_EACH = 60


async def _start(port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, then polled
        [*SERVE, "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    async with httpx.AsyncClient() as client:
        for _ in range(300):
            try:
                if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return proc
            except httpx.TransportError:
                pass
            assert proc.poll() is None, "the hub exited at start"
            await asyncio.sleep(0.05)
    raise AssertionError("the hub did not become ready")


async def test_hub_killed_mid_storm_loses_and_doubles_nothing(
    redis: Redis, redis_url: str, db_url: str, key_prefix: str
) -> None:
    catalog = load_catalog()
    keys = Keys(key_prefix)
    ledger = Ledger(redis, keys, catalog)
    stream = await Streams(redis, keys, catalog).create("star", "Star", "crash")
    users = [f"fan{i}" for i in range(VIEWERS)]
    for u in users:
        await ledger.purchase(f"crash-{u}", u, "coins_700", 999, "USD")
    env = dict(os.environ)
    env.update(
        REDIS_URL=redis_url, DATABASE_URL=db_url, GIFTING_KEY_PREFIX=key_prefix,
        GIFTING_JWT_SECRET=JWT_SECRET, GIFTING_WEBHOOK_SECRET="w" * 40, GIFTING_DEV="0",
        GIFTING_PERSISTER_IN_PROCESS="1", GIFTING_PERSISTER_CLAIM_IDLE_MS="300",
        GIFTING_RATE_PER_S="10000", GIFTING_RATE_BURST="10000",
    )  # fmt: skip
    port = free_port()
    hub = await _start(port, env)
    acks: dict[str, list[Any]] = {u: [] for u in users}
    reconnects: dict[str, int] = {}

    async def fan(user: str) -> None:
        token = mint_token(JWT_SECRET, user, user.title(), [], 600)
        client = ViewerClient(
            f"ws://127.0.0.1:{port}", stream.stream, token,
            backoff=Backoff(initial=0.05, maximum=0.5), max_retries=50,
        )  # fmt: skip
        async with client:
            sends = []
            for _ in range(GIFTS_EACH):  # paced over ~1.2 s, so the kill lands mid-storm
                sends.append(asyncio.ensure_future(client.send_gift("rose")))
                await asyncio.sleep(0.02)
            acks[user] = list(await asyncio.gather(*sends))
            reconnects[user] = client.reconnects

    storm = asyncio.gather(*(fan(u) for u in users))
    await asyncio.sleep(0.4)  # mid-storm
    hub.send_signal(signal.SIGKILL)
    hub.wait(10)
    await asyncio.sleep(0.3)
    hub = await _start(port, env)
    try:
        async with asyncio.timeout(60):
            await storm
        assert await wait_caught_up(redis, keys, 30)
        pool = await asyncpg.create_pool(db_url, min_size=1, max_size=2)
        assert pool is not None
        try:
            report = await run_audit(pool, redis, keys, catalog)
            assert report.ok, report.render()
            persisted = await pool.fetchval(
                "SELECT count(*) FROM ledger_events WHERE type = 'spend'"
            )
        finally:
            await pool.close()
    finally:
        hub.terminate()
        hub.wait(10)
    assert all(n >= 1 for n in reconnects.values()), reconnects  # the crash hit every client
    events = {a.event for u in users for a in acks[u]}
    assert len(events) == VIEWERS * GIFTS_EACH  # every gift acked once, with its own event
    for u in users:
        assert (await ledger.wallet(u)).coins == 700 - GIFTS_EACH  # one coin per acked rose
    assert persisted == VIEWERS * GIFTS_EACH
    star = await ledger.wallet("star")
    assert star.received == VIEWERS * GIFTS_EACH
    assert star.diamonds == VIEWERS * GIFTS_EACH // 2
    # The room shows each acked gift exactly once (the persister emitted what the
    # killed hub had debited but not yet shown).
    history = await redis.xrange(keys.room_history(stream.stream))
    shown = [f[b"d"] for _, f in history if b'"kind":"gift"' in f[b"d"]]
    shown_events = [e for e in events if any(e.encode() in d for d in shown)]
    assert len(shown) == len(events)
    assert len(shown_events) == len(events)
