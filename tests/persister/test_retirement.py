"""Durable ids: PostgreSQL keeps every debited spend's id, Redis only a recent window.

A storm's idempotency records (spend results, credited and emitted markers)
must not stay in Redis for days (at 1,000 gifts/s that is hundreds of GB
under ``noeviction``): once the persister committed and acknowledged a spend,
each of its records expires within the recent window. Refused spends keep
their own, longer, expiry (they never reach PostgreSQL).
"""

from __future__ import annotations

import asyncio
import secrets

import asyncpg
from redis.asyncio import Redis

from gifting.config import Settings
from gifting.core.catalog import Catalog
from gifting.core.entries import SpendArgs
from gifting.core.errors import InsufficientFunds
from gifting.core.pricing import price_gift
from gifting.persister.schema import migrations
from gifting.store.keys import Keys
from gifting.store.ledger import Ledger, SpendOrder, SpendResult, spend_entry
from gifting.store.rooms import RoomLog
from gifting.store.scripts import ScriptCall
from gifting.store.streams import Streams
from gifting.store.wiring import build_ledger
from tests.conftest import drop_database

from .conftest import ConsumerFactory, with_database
from .support import caught_up

RECENT_S = 60
WEEK_S = 7 * 24 * 3600


async def _idempotency_keys(redis: Redis, keys: Keys) -> dict[str, int]:
    """Every spend result, credited and emitted marker of the test: key -> TTL (s)."""
    found: dict[str, int] = {}
    for pattern in ("*:spend:*", "*:credited:*", "*:emitted:*"):
        async for raw in redis.scan_iter(match=f"{keys.prefix}:{pattern}", count=1000):
            found[raw.decode()] = int(await redis.ttl(raw))
    return found


async def test_a_storm_then_retirement_keeps_redis_idempotency_bounded(
    redis: Redis,
    pool: asyncpg.Pool,
    keys: Keys,
    streams: Streams,
    catalog: Catalog,
    make_consumer: ConsumerFactory,
) -> None:
    settings = Settings(GIFTING_KEY_PREFIX=keys.prefix, GIFTING_IDEMPOTENCY_RECENT_S=RECENT_S)
    ledger = build_ledger(settings, redis, catalog)
    rooms = RoomLog(redis, keys, catalog)
    senders = [f"v{i}" for i in range(10)]
    for s in senders:
        await ledger.purchase(f"p-{s}", s, "coins_700", 999, "USD")
    lives = {c: (await streams.create(c, c.title(), "storm")).stream for c in ("ann", "ben")}
    consumer = make_consumer(ledger=ledger, on_spends=rooms.emit_spends)
    consumer.start()

    debited: list[SpendResult] = []
    refused = 0

    async def sender(s: str) -> None:
        nonlocal refused
        for i in range(30):
            creator = "ann" if i % 2 else "ben"
            count = 1 if i < 28 else 700  # the last two cannot be paid for
            order = SpendOrder(
                s, s.title(), f"m{i}", price_gift(catalog, "rose", count), lives[creator], creator
            )
            try:
                result = await ledger.spend(order, live=True)
            except InsufficientFunds:
                refused += 1
                continue
            debited.append(result)
            if i % 3 == 0:  # the hub's settle step for some; the persister repairs the rest
                entry = spend_entry(order, result, int(result.event[1:12], 16))
                emit = ScriptCall("emit", *rooms.spend_emit_args(entry))
                assert await ledger.settle_many([entry], [emit]) == []

    await asyncio.gather(*(sender(s) for s in senders))
    await caught_up(redis, keys)
    await asyncio.sleep(0.2)  # the retirement follows the last XACK
    assert refused == 2 * len(senders)

    records = await _idempotency_keys(redis, keys)
    # 3 records per debited spend (result, credited, emitted) + 1 per refused spend,
    # + the emitted marker of each sender's level_up (their first rose: level 1).
    assert len(records) == 3 * len(debited) + refused + len(senders)
    no_expiry = [k for k, ttl in records.items() if ttl < 0]
    assert not no_expiry, f"{len(no_expiry)} records never expire, e.g. {no_expiry[:3]}"
    long_lived = sorted(k for k, ttl in records.items() if ttl > RECENT_S)
    # Only refused spends (kept for the idempotency TTL) outlive the recent window.
    assert len(long_lived) == refused, long_lived[:5]
    assert all(":spend:" in k and records[k] <= WEEK_S for k in long_lived)

    # Once the window has passed (simulated: Redis would expire them), Redis holds
    # no record of the storm's debited spends, and PostgreSQL holds every one.
    await redis.delete(*(k for k, ttl in records.items() if ttl <= RECENT_S))
    assert len(await _idempotency_keys(redis, keys)) == refused
    kept = await pool.fetch("SELECT sender_id, client_id, event_id FROM spend_ids")
    assert sorted(r["event_id"] for r in kept) == sorted(r.event for r in debited)
    await ledger.aclose()
    await rooms.aclose()


async def test_spend_ids_keep_the_original_result_and_fingerprint(
    redis: Redis, pool: asyncpg.Pool, keys: Keys, ledger: Ledger, streams: Streams,
    catalog: Catalog, make_consumer: ConsumerFactory,
) -> None:  # fmt: skip
    stream = (await streams.create("cy", "Cy", "ids")).stream
    await ledger.purchase("p-kit", "kit", "coins_700", 999, "USD")
    order = SpendOrder("kit", "Kit", "g-1", price_gift(catalog, "rose", 3), stream, "cy", "")
    result = await ledger.spend(order, live=True)
    make_consumer().start()
    await caught_up(redis, keys)
    row = await pool.fetchrow("SELECT * FROM spend_ids WHERE sender_id = 'kit'")
    assert row is not None
    fp = SpendArgs(
        user="kit", name="Kit", client_id="g-1", kind="gift", item="rose", count=3, unit=1,
        coins=3, stream=stream, creator="cy",
    ).fingerprint()  # fmt: skip
    assert dict(row) | {"ts": 0} == {
        "sender_id": "kit", "client_id": "g-1", "event_id": result.event, "status": "ok",
        "balance": result.balance, "combo": result.combo, "fingerprint": fp, "ts": 0,
    }  # fmt: skip
    # The same fingerprint spend.lua keeps in Redis, so both stores tell a reuse alike.
    assert (await redis.hget(keys.spend_result("kit", "g-1"), "fp")).decode() == fp


async def test_the_migration_backfills_ids_with_the_fingerprint_python_computes(
    database_url: str,
) -> None:
    url = with_database(database_url, f"backfill_{secrets.token_hex(4)}")
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{url.rsplit("/", 1)[1]}"')
    finally:
        await admin.close()
    conn = await asyncpg.connect(url)
    try:
        first, second = migrations()[:2]
        assert (first.version, second.version) == (1, 2)
        await conn.execute(first.sql)
        payloads = [
            ("e1", "u1", '{"client_id":"a","kind":"gift","item":"rose","count":"2",'
             '"stream":"s1","balance":"5","combo":"2"}'),
            ("e2", "u1", '{"client_id":"b","kind":"badge","item":"vip","count":"1",'
             '"stream":"","balance":"1","combo":"0"}'),
            ("e3", "u2", '{"client_id":"c","kind":"highlight","item":"gold","count":"1",'
             '"stream":"s1","text":"héllo ✨","balance":"9","combo":"0"}'),
            ("e4", "u1", '{"client_id":"a","kind":"gift","item":"rose","count":"9",'
             '"stream":"s1","balance":"0","combo":"1"}'),  # an id debited twice long ago
        ]  # fmt: skip
        for i, (event, user, payload) in enumerate(payloads):
            await conn.execute(
                "INSERT INTO ledger_events (event_id, type, user_id, ts, outbox_id, outbox_ms, "
                "outbox_seq, payload) VALUES ($1, 'spend', $2, 1, $3, $4, 0, $5::jsonb)",
                event, user, f"{i + 1}-0", i + 1, payload,
            )  # fmt: skip
        await conn.execute(second.sql)
        rows = {r["event_id"]: r for r in await conn.fetch("SELECT * FROM spend_ids")}
    finally:
        await conn.close()
        await drop_database(url)
    assert sorted(rows) == ["e1", "e2", "e3"]  # the first event of an id is its result
    args = {
        "e1": ("gift", "rose", 2, "s1", ""),
        "e2": ("badge", "vip", 1, "", ""),
        "e3": ("highlight", "gold", 1, "s1", "héllo ✨"),
    }
    for event, (kind, item, count, stream, text) in args.items():
        fp = SpendArgs(
            user="u", name="U", client_id="x", kind=kind, item=item, count=count, unit=1,  # type: ignore[arg-type]
            coins=count, stream=stream, creator="", text=text,
        ).fingerprint()  # fmt: skip
        assert rows[event]["fingerprint"] == fp, event
