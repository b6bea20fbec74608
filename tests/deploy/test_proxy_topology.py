"""The deployment's topology as processes, on one Redis and on a Redis Cluster:
HAProxy in front of two hubs, a standalone persister, viewers and overlays
through the proxy, one hub SIGKILLed mid-storm.

Clients reconnect through the proxy (to the surviving hub) and retry with the
same ids; afterwards every acked gift was debited once, persisted once, shown
once on every overlay in room order, and the audit passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from gifting_client import GiftEvent, OverlayClient, Snapshot, ViewerClient
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

GIFTING = [sys.executable, "-c", "from gifting.cli import main; main()"]
HAPROXY_CFG = Path(__file__).resolve().parents[2] / "deploy" / "haproxy.cfg"
VIEWERS = 6
GIFTS_EACH = 50
OVERLAYS = 2
FAST = Backoff(initial=0.05, maximum=0.5)


def _proxy_config(port: int, hubs: list[int]) -> str:
    """The deployment's haproxy.cfg with our loopback ports in place of the services."""
    text = HAPROXY_CFG.read_text().replace("bind :80", f"bind 127.0.0.1:{port}")
    # This machine's open-file limit is below what 50,000 connections need.
    text = re.sub(r"maxconn \d+", "maxconn 4000", text)
    text = re.sub(r"^\s*server .*\n", "", text, flags=re.M)
    servers = "".join(f"    server hub-{i} 127.0.0.1:{p} check\n" for i, p in enumerate(hubs))
    return text + servers


async def _wait_ready(url: str, proc: subprocess.Popen[bytes], what: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(400):
            assert proc.poll() is None, f"{what} exited at start"
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.05)
    raise AssertionError(f"{what} did not become ready")


@contextlib.asynccontextmanager
async def _topology(env: dict[str, str], tmp: Path) -> AsyncIterator[tuple[int, list[Any]]]:
    haproxy = shutil.which("haproxy")
    if haproxy is None:
        pytest.skip("haproxy is not installed (Debian: apt-get install haproxy; make does it)")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        hub_ports = [free_port(), free_port()]
        for port in hub_ports:
            procs.append(subprocess.Popen(  # noqa: ASYNC220 - started once, stopped below
                [*GIFTING, "serve", "--port", str(port)], env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))  # fmt: skip
        procs.append(subprocess.Popen(  # noqa: ASYNC220
            [*GIFTING, "persist"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))  # fmt: skip
        for port, proc in zip(hub_ports, procs, strict=False):
            await _wait_ready(f"http://127.0.0.1:{port}/readyz", proc, "a hub")
        proxy_port = free_port()
        cfg = tmp / "haproxy.cfg"
        cfg.write_text(_proxy_config(proxy_port, hub_ports))
        proxy = subprocess.Popen(  # noqa: ASYNC220
            [haproxy, "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        procs.append(proxy)
        await _wait_ready(f"http://127.0.0.1:{proxy_port}/readyz", proxy, "haproxy")
        yield proxy_port, procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@pytest.mark.cluster
async def test_hub_killed_behind_haproxy_loses_and_doubles_nothing(
    redis: Redis, redis_url: str, db_url: str, key_prefix: str, tmp_path: Path
) -> None:
    catalog = load_catalog()
    keys = Keys(key_prefix)
    ledger = Ledger(redis, keys, catalog)
    stream = await Streams(redis, keys, catalog).create("star", "Star", "proxy")
    users = [f"fan{i}" for i in range(VIEWERS)]
    for u in users:
        await ledger.purchase(f"proxy-{u}", u, "coins_700", 999, "USD")
    env = dict(os.environ)
    env.update(
        REDIS_URL=redis_url, DATABASE_URL=db_url, GIFTING_KEY_PREFIX=key_prefix,
        GIFTING_JWT_SECRET=JWT_SECRET, GIFTING_WEBHOOK_SECRET="w" * 40, GIFTING_DEV="0",
        GIFTING_PERSISTER_IN_PROCESS="0", GIFTING_PERSISTER_CLAIM_IDLE_MS="300",
        GIFTING_RATE_PER_S="10000", GIFTING_RATE_BURST="10000",
    )  # fmt: skip
    async with _topology(env, tmp_path) as (port, procs):
        base = f"ws://127.0.0.1:{port}"
        seen: list[list[GiftEvent]] = [[] for _ in range(OVERLAYS)]
        stop_watching = asyncio.Event()

        async def watch(i: int) -> None:
            async with OverlayClient(base, stream.stream, stream.overlay_key, backoff=FAST) as ov:
                async for item in ov:
                    if isinstance(item, GiftEvent):
                        seen[i].append(item)
                    elif isinstance(item, Snapshot):
                        assert not item.expired
                    if stop_watching.is_set():
                        return

        watchers = [asyncio.create_task(watch(i)) for i in range(OVERLAYS)]
        await asyncio.sleep(0.5)  # the overlays joined
        acks: dict[str, list[Any]] = {}
        reconnects: dict[str, int] = {}

        async def fan(user: str) -> None:
            token = mint_token(JWT_SECRET, user, user.title(), [], 600)
            async with ViewerClient(
                base, stream.stream, token, backoff=FAST, max_retries=80
            ) as client:
                sends = []
                for _ in range(GIFTS_EACH):  # paced, so the kill lands mid-storm
                    sends.append(asyncio.ensure_future(client.send_gift("rose")))
                    await asyncio.sleep(0.02)
                acks[user] = list(await asyncio.gather(*sends))
                reconnects[user] = client.reconnects

        storm = asyncio.gather(*(fan(u) for u in users))
        await asyncio.sleep(0.4)
        procs[0].send_signal(signal.SIGKILL)  # one hub dies; haproxy sends everyone to the other
        async with asyncio.timeout(90):
            await storm
        assert sum(reconnects.values()) >= 1, "the kill reached no client"
        events = {a.event for u in users for a in acks[u]}
        assert len(events) == VIEWERS * GIFTS_EACH  # every gift acked once, its own event
        assert await wait_caught_up(redis, keys, 60)
        async with asyncio.timeout(30):  # the overlays catch up through the proxy
            while any({e.event for e in s} < events for s in seen):  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        stop_watching.set()
        for w in watchers:
            w.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await w
    for s in seen:
        gifts = [e.event for e in s]
        assert len(gifts) == len(set(gifts)) == len(events)  # each shown once
        seqs = [e.seq for e in s]
        assert seqs == sorted(seqs)  # in room order
    for u in users:
        assert (await ledger.wallet(u)).coins == 700 - GIFTS_EACH  # debited once each
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=2)
    assert pool is not None
    try:
        persisted = await pool.fetchval("SELECT count(*) FROM ledger_events WHERE type = 'spend'")
        report = await run_audit(pool, redis, keys, catalog)
    finally:
        await pool.close()
    assert persisted == len(events)
    assert report.ok, report.render()
