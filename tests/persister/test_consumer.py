"""The outbox consumer against real Redis and PostgreSQL: exactly once, repairs, dead letters."""

from __future__ import annotations

import itertools
from typing import Any

import asyncpg
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from gifting.core.catalog import Catalog
from gifting.core.entries import SpendEntry
from gifting.core.pricing import price_badge
from gifting.persister.consumer import GROUP, OutboxConsumer
from gifting.persister.progress import wait_caught_up
from gifting.records import cashout_history, creator_earnings, wallet_history
from gifting.store.keys import Keys, shard_of
from gifting.store.ledger import Ledger, SpendOrder
from gifting.store.streams import Streams

from .conftest import ConsumerFactory
from .support import (
    Traffic,
    assert_exactly_once,
    cash_out_all,
    caught_up,
    outbox_events,
    persisted,
    spend_gift,
)


def metric(name: str, **labels: str) -> float:
    """The current value of a persister metric (0 when never touched)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def _some_traffic(
    ledger: Ledger, streams: Streams, catalog: Catalog, redis: Redis, keys: Keys
) -> Traffic:
    traffic = Traffic()
    for user in ("alice", "carol"):
        await ledger.purchase(f"p-{user}", user, "coins_17500", 24999, "USD")
    stream = await streams.create("bob", "Bob", "live")
    for i in range(12):
        await spend_gift(
            ledger,
            catalog,
            traffic,
            "alice" if i % 3 else "carol",
            "bob",
            stream.stream,
            "galaxy",
            1,
            hub_credit=i % 2 == 0,
        )
    traffic.events |= set(await outbox_events(redis, keys))
    return traffic


async def test_persists_every_event_once_and_repairs_creator_credits(
    redis: Redis,
    pool: asyncpg.Pool,
    keys: Keys,
    ledger: Ledger,
    streams: Streams,
    catalog: Catalog,
    make_consumer: ConsumerFactory,
) -> None:
    traffic = await _some_traffic(ledger, streams, catalog, redis, keys)
    badge = await ledger.spend(
        SpendOrder("carol", "Carol", "b1", price_badge(catalog, "supporter")), live=True
    )
    traffic.events.add(badge.event)
    await ledger.refund("p-carol")
    hooked: list[tuple[str, int]] = []

    async def on_spends(entries: list[SpendEntry], not_after: int) -> None:
        # Called before the XACK: the spends are still pending in their outboxes.
        for entry in entries:
            summary = await redis.xpending(keys.outbox(shard_of(entry.user)), GROUP)
            hooked.append((entry.event, int(summary["pending"])))

    consumer = make_consumer(on_spends=on_spends)
    consumer.start()
    await caught_up(redis, keys)
    # The hub credited only every other gift: the persister credited the rest.
    bob = await ledger.wallet("bob")
    assert bob.received == 12 * 1000 and bob.diamonds == 12 * 500
    # Cash-outs after the diamonds arrived.
    await cash_out_all(ledger, catalog, ["bob"], traffic, redis, keys)
    traffic.events |= set(await outbox_events(redis, keys))
    await caught_up(redis, keys)
    await assert_exactly_once(pool, redis, keys, catalog, traffic.expected())

    assert sorted(e for e, _ in hooked) == sorted(traffic.spends_to_creators)
    assert all(pending > 0 for _, pending in hooked)

    entries, cursor = await wallet_history(pool, "alice", limit=5)
    pages = [entries]
    while cursor is not None:
        entries, cursor = await wallet_history(pool, "alice", limit=5, cursor=cursor)
        pages.append(entries)
    flat = [e for page in pages for e in page]
    assert len(flat) == 1 + 8  # one purchase, eight gifts
    assert len({e["event"] for e in flat}) == len(flat)
    assert [e["ts"] for e in flat] == sorted((e["ts"] for e in flat), reverse=True)
    # Newest first in the order the money moved: each balance follows from the next one.
    for newer, older in itertools.pairwise(flat):
        assert newer["balance"] == older["balance"] + newer["coins"]
    assert flat[-1]["type"] == "purchase" and flat[-1]["coins"] == 17500
    gift = flat[0]
    assert gift["type"] == "spend" and gift["coins"] == -1000 and gift["item"] == "galaxy"
    assert gift["creator"] == "bob" and gift["count"] == 1

    earnings = await creator_earnings(pool, "bob")
    assert earnings["totals"]["coins"] == 12_000 and earnings["totals"]["diamonds"] == 6_000
    assert [s["gifts"] for s in earnings["streams"]] == [12]
    bob_history, _ = await wallet_history(pool, "bob", limit=50)
    assert sum(e["diamonds"] for e in bob_history) == (await ledger.wallet("bob")).diamonds
    cashouts = await cashout_history(pool, "bob")
    assert sorted(c["status"] for c in cashouts) == ["failed", "paid"]
    assert all(c["amount"] == {"amount": 1000, "currency": "USD"} for c in cashouts)


async def _drain(consumer: OutboxConsumer, redis: Redis, keys: Keys) -> None:
    """Run single batches (no maintenance, so nothing is trimmed) until caught up."""
    await consumer.ensure_groups()
    for _ in range(200):
        await consumer.run_once()
        if await wait_caught_up(redis, keys, 0):
            return
    raise AssertionError("not caught up")


async def _snapshot(pool: asyncpg.Pool) -> list[Any]:
    return [
        await pool.fetchval("SELECT COUNT(*) FROM ledger_events"),
        await pool.fetchval("SELECT COUNT(*) FROM postings"),
        await pool.fetch("SELECT * FROM stream_totals ORDER BY stream_id"),
        await pool.fetch("SELECT * FROM creator_earnings ORDER BY creator_id, stream_id"),
        await pool.fetch("SELECT account, SUM(amount) FROM postings GROUP BY 1 ORDER BY 1"),
    ]


async def test_redelivering_everything_changes_nothing(
    redis: Redis,
    pool: asyncpg.Pool,
    keys: Keys,
    ledger: Ledger,
    streams: Streams,
    catalog: Catalog,
    make_consumer: ConsumerFactory,
) -> None:
    traffic = await _some_traffic(ledger, streams, catalog, redis, keys)
    consumer = make_consumer(batch_size=7)
    await _drain(consumer, redis, keys)
    before = await _snapshot(pool)
    duplicates = metric("gifting_persister_duplicates_skipped_total")
    for stream in keys.outboxes():
        await redis.xgroup_setid(stream, GROUP, "0")
    await _drain(consumer, redis, keys)
    assert await _snapshot(pool) == before
    assert metric("gifting_persister_duplicates_skipped_total") - duplicates >= len(
        traffic.expected()
    )
    await assert_exactly_once(pool, redis, keys, catalog, traffic.expected())


class AckFailsOnce(OutboxConsumer):
    """A consumer whose first XACK fails after the commit (a crash in that window)."""

    failed = False

    async def _ack(self, entries: Any) -> None:
        if not self.failed:
            self.failed = True
            raise ConnectionError("injected: lost Redis right after the commit")
        await super()._ack(entries)


async def test_a_failure_between_commit_and_ack_is_retried_without_doubles(
    redis: Redis,
    pool: asyncpg.Pool,
    keys: Keys,
    ledger: Ledger,
    streams: Streams,
    catalog: Catalog,
) -> None:
    traffic = await _some_traffic(ledger, streams, catalog, redis, keys)
    retries = metric("gifting_persister_retries_total", reason="ack")
    consumer = AckFailsOnce(
        redis, pool, keys, ledger, consumer="ackfails", block_ms=50, backoff_initial_s=0.01
    )
    consumer.start()
    try:
        await caught_up(redis, keys)
    finally:
        await consumer.stop()
    assert consumer.failed
    assert metric("gifting_persister_retries_total", reason="ack") == retries + 1
    await assert_exactly_once(pool, redis, keys, catalog, traffic.expected())


async def test_malformed_entries_go_to_dead_letters_and_do_not_block(
    redis: Redis,
    pool: asyncpg.Pool,
    keys: Keys,
    ledger: Ledger,
    catalog: Catalog,
    make_consumer: ConsumerFactory,
) -> None:
    outbox = keys.outbox(shard_of("alice"))
    await ledger.purchase("p1", "alice", "coins_70", 99, "USD")
    bad_ids = [
        await redis.xadd(outbox, {"garbage": "1"}),
        await redis.xadd(outbox, {"type": "teleport", "event": "e1", "user": "alice"}),
        await redis.xadd(outbox, {b"type": b"spend", b"user": b"\xff\xfe"}),
        await redis.xadd(
            outbox, {"type": "purchase", "event": "e2", "user": "alice", "ts": "1", "coins": "-5"}
        ),
    ]
    await ledger.purchase("p2", "alice", "coins_350", 499, "USD")
    good = set(await outbox_events(redis, keys)) - {"e1", "e2"}
    dead_before = metric("gifting_persister_dead_letters_total")
    make_consumer().start()
    await caught_up(redis, keys)
    assert set(await persisted(pool)) == good
    letters = await redis.xrange(keys.dead_letters())
    assert [f[b"source_id"] for _, f in letters] == bad_ids
    reasons = [f[b"reason"].decode() for _, f in letters]
    assert "missing field 'type'" in reasons[0]
    assert "unknown entry type" in reasons[1]
    assert "UTF-8" in reasons[2]
    assert "field 'coins'" in reasons[3]
    assert letters[0][1][b"field:garbage"] == b"1"
    assert letters[2][1][b"field:user"] == b"\xff\xfe"
    assert all(f[b"source_stream"] == outbox.encode() for _, f in letters)
    assert metric("gifting_persister_dead_letters_total") - dead_before == 4
    await assert_exactly_once(pool, redis, keys, catalog, good)


async def test_entries_of_a_dead_consumer_are_reclaimed(
    redis: Redis,
    pool: asyncpg.Pool,
    keys: Keys,
    ledger: Ledger,
    streams: Streams,
    catalog: Catalog,
    make_consumer: ConsumerFactory,
) -> None:
    traffic = await _some_traffic(ledger, streams, catalog, redis, keys)
    consumer = make_consumer(claim_idle_ms=200)
    await consumer.ensure_groups()
    # A persister that read everything and died before writing anything.
    got = await redis.xreadgroup(GROUP, "ghost", dict.fromkeys(keys.outboxes(), ">"), count=1000)
    assert sum(len(items) for _, items in got) > 0
    reclaimed = metric("gifting_persister_reclaimed_total")
    consumer.start()
    await caught_up(redis, keys)
    assert metric("gifting_persister_reclaimed_total") > reclaimed
    await assert_exactly_once(pool, redis, keys, catalog, traffic.expected())


async def test_trims_only_acknowledged_entries(
    redis: Redis,
    pool: asyncpg.Pool,
    keys: Keys,
    ledger: Ledger,
    catalog: Catalog,
    make_consumer: ConsumerFactory,
) -> None:
    outbox = keys.outbox(shard_of("alice"))
    for i in range(5):
        await ledger.purchase(f"p{i}", "alice", "coins_70", 99, "USD")
    consumer = make_consumer(claim_idle_ms=600_000)
    await consumer.ensure_groups()
    # Another consumer holds the oldest entry, unacknowledged.
    got = await redis.xreadgroup(GROUP, "slow", {outbox: ">"}, count=1)
    held_id = got[0][1][0][0]
    for i in range(5, 8):
        await ledger.purchase(f"p{i}", "alice", "coins_70", 99, "USD")
    await consumer.run_once()
    assert await redis.xlen(outbox) == 8
    await consumer.maintain()
    # Nothing older than the pending entry was unacked, and nothing after it is trimmed
    # past it: the pending entry survives.
    remaining = [i for i, _ in await redis.xrange(outbox)]
    assert remaining[0] == held_id
    await redis.xack(outbox, GROUP, held_id)
    await consumer.maintain()
    assert await redis.xlen(outbox) == 0
    assert len(await persisted(pool)) == 7  # the held entry was never handed to us


async def test_rows_the_database_refuses_are_dead_lettered_one_by_one(
    redis: Redis,
    pool: asyncpg.Pool,
    keys: Keys,
    ledger: Ledger,
    catalog: Catalog,
    make_consumer: ConsumerFactory,
) -> None:
    # A rule only PostgreSQL knows: the batch fails as a whole, then entry by entry.
    await pool.execute(
        "ALTER TABLE ledger_events ADD CONSTRAINT no_mallory CHECK (user_id <> 'mallory')"
    )
    for user in ("alice", "mallory", "carol"):
        await ledger.purchase(f"p-{user}", user, "coins_70", 99, "USD")
    good = {e for e, f in (await outbox_events(redis, keys)).items() if f["user"] != "mallory"}
    make_consumer().start()
    await caught_up(redis, keys)
    assert set(await persisted(pool)) == good
    letters = await redis.xrange(keys.dead_letters())
    assert len(letters) == 1
    fields = letters[0][1]
    assert fields[b"field:user"] == b"mallory"
    assert b"database refused" in fields[b"reason"] and b"no_mallory" in fields[b"reason"]
