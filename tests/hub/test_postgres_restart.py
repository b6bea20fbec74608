"""PostgreSQL stopped and started under a gift storm through the hub.

Redis is the fast store: gifts keep being acked while PostgreSQL is down (the
hub's lookup of kept ids fails, and it goes on with Redis alone), the
persister backs off, then catches up once PostgreSQL is back. Afterwards
every acked gift is persisted once, shown once in its room, and the audit
passes. The ``soak`` variant runs a longer storm through several restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import asyncpg
import msgspec
import pytest
import websockets
from prometheus_client import REGISTRY

from gifting.embedded import EmbeddedPostgres
from gifting.persister.audit import run_audit
from gifting.persister.progress import wait_caught_up
from tests.conftest import create_database, drop_database
from tests.hub.conftest import HubServer, decode, encode, serve


async def _viewer(
    hub: HubServer, stream: str, user: str, gifts: int, acks: dict[str, tuple[str, float]]
) -> None:
    """Send ``gifts`` roses, ~100/s, each retried with its id until acked."""
    todo = [f"{user}-{i}" for i in range(gifts)]
    while todo:
        with contextlib.suppress(websockets.ConnectionClosed, TimeoutError):
            async with hub.viewer(stream, user) as ws:
                while todo:
                    client_id = todo[0]
                    await ws.send(encode({"op": "gift", "id": client_id, "gift": "rose"}))
                    async with asyncio.timeout(15):
                        while True:
                            msg = decode(await ws.recv())
                            if msg.get("id") == client_id and msg["op"] in ("ack", "error"):
                                break
                    if msg["op"] == "ack":
                        acks[client_id] = (msg["event"], time.monotonic())
                        todo.pop(0)
                    else:
                        assert msg["code"] == "unavailable", msg
                    await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)


def _lookup_failures() -> float:
    return REGISTRY.get_sample_value("gifting_spend_kept_lookup_failures_total") or 0.0


async def _storm_through_postgres_restarts(
    postgres: EmbeddedPostgres, redis_url: str, key_prefix: str, *, viewers: int, gifts: int,
    restarts: int,
) -> None:  # fmt: skip
    url = await create_database(postgres.admin_url())
    try:
        async with serve(
            redis_url, url, key_prefix, with_persister=True, GIFTING_PERSISTER_IN_PROCESS=True,
            GIFTING_PERSISTER_CLAIM_IDLE_MS=300, GIFTING_RATE_PER_S=1000,
            GIFTING_RATE_BURST=2000, GIFTING_HISTORY_MAX_EVENTS=100_000,  # the room keeps all
        ) as hub:  # fmt: skip
            stream, _ = await hub.stream("cleo")
            users = [f"fan{i}" for i in range(viewers)]
            for u in users:
                await hub.fund(u, n=max(1, gifts // 600 + 1))
            failures = _lookup_failures()
            acks: dict[str, tuple[str, float]] = {}
            storm = asyncio.gather(*(_viewer(hub, stream, u, gifts, acks) for u in users))
            outages: list[tuple[float, float]] = []
            for _ in range(restarts):
                await asyncio.sleep(0.5)  # mid-storm
                down = time.monotonic()
                await asyncio.to_thread(postgres.kill)
                await asyncio.sleep(1.5)
                up = time.monotonic()
                await asyncio.to_thread(postgres.restart)
                outages.append((down, up))
            async with asyncio.timeout(60 + gifts / 10):
                await storm
            # Gifts were acked while PostgreSQL was down; the hub's lookups failed meanwhile.
            assert all(any(d <= t <= u for _, t in acks.values()) for d, u in outages)
            assert _lookup_failures() > failures
            assert await wait_caught_up(hub.state.redis, hub.state.keys, 60)

            events = {e for e, _ in acks.values()}
            assert len(acks) == len(events) == viewers * gifts
            pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
            assert pool is not None
            try:
                rows = await pool.fetch("SELECT event_id FROM ledger_events WHERE type = 'spend'")
                assert sorted(r["event_id"] for r in rows) == sorted(events)  # each once
                report = await run_audit(pool, hub.state.redis, hub.state.keys, hub.state.catalog)
                assert report.ok, report.render()
            finally:
                await pool.close()
            for u in users:
                coins = 700 * max(1, gifts // 600 + 1) - gifts
                assert (await hub.state.ledger.wallet(u)).coins == coins
            for _ in range(100):  # the settle steps behind the last acks
                history = await hub.state.redis.xrange(hub.state.keys.room_history(stream))
                shown = [msgspec.json.decode(f[b"d"]) for _, f in history]
                gifts_shown = [b["event"] for b in shown if b["kind"] == "gift"]
                if len(gifts_shown) >= len(events):
                    break
                await asyncio.sleep(0.05)
            assert sorted(gifts_shown) == sorted(events)  # each shown once
    finally:
        await drop_database(url)


async def test_postgres_stopped_and_started_mid_storm_loses_and_doubles_nothing(
    private_postgres: EmbeddedPostgres, redis_url: str, key_prefix: str
) -> None:
    await _storm_through_postgres_restarts(
        private_postgres, redis_url, key_prefix, viewers=4, gifts=150, restarts=1
    )


@pytest.mark.soak
async def test_soak_postgres_restarted_three_times_under_a_long_storm(
    private_postgres: EmbeddedPostgres, redis_url: str, key_prefix: str
) -> None:
    await _storm_through_postgres_restarts(
        private_postgres, redis_url, key_prefix, viewers=8, gifts=1500, restarts=3
    )
