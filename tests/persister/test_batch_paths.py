"""The persister's batch paths: every entry type at once, duplicates, failures of either half.

The consumer repairs the creator credits first, then runs the room emissions
and the PostgreSQL transaction at the same time; these tests pin what that
must keep: PostgreSQL never holds a spend whose credit Redis has not applied,
a batch is acknowledged only once both halves succeeded, a failure of either
leaves every entry pending, and the replay changes nothing (the audit passes).
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis

from gifting.core.catalog import Catalog
from gifting.core.entries import SpendEntry
from gifting.persister import writer
from gifting.persister.consumer import GROUP
from gifting.persister.postings import LedgerEvent, imbalance, parse_entry
from gifting.persister.writer import write_batch
from gifting.store.keys import Keys, shard_of
from gifting.store.ledger import Ledger
from gifting.store.streams import Streams

from . import entries as mk
from .conftest import ConsumerFactory
from .support import Traffic, assert_exactly_once, caught_up, outbox_events, spend_gift


@pytest.fixture(params=["copy", "checked"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test on both write paths: COPY first (any batch), or the checked path only."""
    monkeypatch.setattr(writer, "COPY_MIN", 1 if request.param == "copy" else 10**9)
    return str(request.param)


def _every_type() -> list[dict[str, str]]:
    gift = mk.spend("alice", "bob", unit=5, count=2)
    held = [mk.hold("bob", 2000), mk.hold("bob", 3000), mk.hold("bob", 4000)]
    return [
        mk.purchase("alice", 500),
        mk.refund("carol", 70),
        gift,
        mk.spend("dave", kind="badge", item="supporter", unit=300),
        mk.credit(gift, 5),
        *held,
        mk.settle(held[0], "paid"),
        mk.settle(held[1], "failed"),
        mk.settle(held[2], "cancelled"),
    ]


async def _counts(pool: asyncpg.Pool) -> dict[str, object]:
    tables = ["ledger_events", "postings", "purchases", "refunds", "cashouts", "spend_ids",
              "badges_owned", "stream_totals", "creator_earnings"]  # fmt: skip
    out: dict[str, object] = {t: await pool.fetchval(f"SELECT count(*) FROM {t}") for t in tables}
    out["balances"] = [
        tuple(r) for r in await pool.fetch(
            "SELECT account, currency, sum(amount) FROM postings GROUP BY 1, 2 ORDER BY 1, 2"
        )
    ]  # fmt: skip
    out["streams"] = [tuple(r) for r in await pool.fetch("SELECT * FROM stream_totals")]
    out["earnings"] = [tuple(r) for r in await pool.fetch("SELECT * FROM creator_earnings")]
    out["statuses"] = sorted(
        tuple(r) for r in await pool.fetch("SELECT cashout_id, status FROM cashouts")
    )
    return out


def test_every_entry_type_parses_into_a_balanced_event_of_its_own_type() -> None:
    for i, fields in enumerate(_every_type()):
        raw = {k.encode(): v.encode() for k, v in fields.items()}
        for given in (fields, raw):
            event = parse_entry(f"1-{i}", given)
            assert event.type == fields["type"] and event.event_id == fields["event"]
            assert event.user == fields["user"] and event.ts == int(fields["ts"])
            assert event.outbox_id == f"1-{i}" and dict(event.fields) == fields
            assert event.entry.to_fields() == fields
            assert not imbalance(event.postings)
    spend = parse_entry("1-1", mk.spend("alice", "bob", unit=5, count=2))
    assert (spend.creator, spend.kind, spend.count, spend.coins) == ("bob", "gift", 2, 10)
    assert [(p.account, p.amount) for p in spend.postings] == [
        ("user:alice:coins", -10),
        ("creator:bob:received", 10),
    ]


async def test_a_batch_of_every_type_with_duplicates_inside_and_across_batches(
    pool: asyncpg.Pool, path: str
) -> None:
    fields = _every_type()
    events = [parse_entry(f"1-{i}", f) for i, f in enumerate(fields)]
    # The same entries delivered twice in one batch (other outbox ids: a re-append).
    doubled = [*events, *(parse_entry(f"2-{i}", f) for i, f in enumerate(fields[:5]))]
    async with pool.acquire() as conn:
        fresh = await write_batch(conn, doubled)
    assert [e.event_id for e in fresh] == [e.event_id for e in events]
    first = await _counts(pool)
    assert first["ledger_events"] == len(events)
    assert first["postings"] == sum(len(e.postings) for e in events)
    assert (first["purchases"], first["refunds"], first["spend_ids"]) == (1, 1, 2)
    assert (first["badges_owned"], first["cashouts"]) == (1, 3)
    assert sorted(s for _, s in first["statuses"]) == ["cancelled", "failed", "paid"]  # type: ignore[attr-defined]
    stream = first["streams"][0]  # type: ignore[index]
    assert stream[0] == "s1" and stream[2:5] == (10, 2, 1)  # coins, gifts, spends
    # A later batch: every old one again, and one new spend.
    new = parse_entry("3-0", mk.spend("alice", "bob", unit=1, count=1))
    async with pool.acquire() as conn:
        again: list[LedgerEvent] = await write_batch(conn, [*reversed(events), new])
    assert [e.event_id for e in again] == [new.event_id]
    after = await _counts(pool)
    assert after["ledger_events"] == len(events) + 1
    assert after["postings"] == first["postings"] + 2  # type: ignore[operator]
    assert after["streams"][0][2:5] == (11, 3, 2)  # type: ignore[index]
    assert after["statuses"] == first["statuses"] and after["purchases"] == 1


async def test_the_same_entry_twice_in_one_read_and_in_a_later_one_is_written_once(
    redis: Redis, pool: asyncpg.Pool, keys: Keys, make_consumer: ConsumerFactory, path: str
) -> None:
    outbox = keys.outbox(shard_of("dave"))
    badge = mk.spend("dave", kind="badge", item="supporter", unit=300)
    bought = mk.purchase("dave", 500)
    for f in (badge, bought, badge):
        await redis.xadd(outbox, f)  # type: ignore[arg-type]
    consumer = make_consumer()
    await consumer.ensure_groups()
    assert await consumer.run_once() == 3
    await redis.xadd(outbox, badge)  # type: ignore[arg-type]
    assert await consumer.run_once() == 1
    assert await pool.fetchval("SELECT count(*) FROM ledger_events") == 2
    assert await pool.fetchval("SELECT count(*) FROM badges_owned") == 1
    assert await pool.fetchval("SELECT count(*) FROM postings") == 4
    assert int((await redis.xpending(outbox, GROUP))["pending"]) == 0


async def _gifts(
    ledger: Ledger, streams: Streams, catalog: Catalog, redis: Redis, keys: Keys
) -> Traffic:
    """Gifts whose creator credits no hub made (the persister's repairs must)."""
    traffic = Traffic()
    await ledger.purchase("p-alice", "alice", "coins_17500", 24999, "USD")
    stream = await streams.create("bob", "Bob", "live")
    for _ in range(6):
        await spend_gift(ledger, catalog, traffic, "alice", "bob", stream.stream, "galaxy")
    traffic.events |= set(await outbox_events(redis, keys))
    return traffic


async def _pending(redis: Redis, keys: Keys) -> int:
    total = 0
    for stream in keys.outboxes():
        if await redis.exists(stream):
            total += int((await redis.xpending(stream, GROUP))["pending"])
    return total


async def test_a_postgres_failure_beside_successful_repairs_acknowledges_nothing(
    redis: Redis,
    pool: asyncpg.Pool,
    keys: Keys,
    ledger: Ledger,
    streams: Streams,
    catalog: Catalog,
    make_consumer: ConsumerFactory,
    path: str,
) -> None:
    traffic = await _gifts(ledger, streams, catalog, redis, keys)
    entries = len(traffic.events)
    await pool.execute(
        """
        CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN RAISE EXCEPTION 'injected: the database is refusing writes'; END $$;
        CREATE TRIGGER test_refuse BEFORE INSERT ON postings
            FOR EACH STATEMENT EXECUTE FUNCTION test_refuse();
        """
    )
    consumer = make_consumer()
    await consumer.ensure_groups()
    with pytest.raises(asyncpg.RaiseError, match="injected"):
        await consumer.run_once()
    # The events insert ran before the postings failed: rolled back with it.
    assert await pool.fetchval("SELECT count(*) FROM ledger_events") == 0
    assert await _pending(redis, keys) == entries  # nothing acknowledged
    assert (await ledger.wallet("bob")).diamonds > 0  # the repairs did run
    await pool.execute("DROP TRIGGER test_refuse ON postings")
    consumer.start()
    await caught_up(redis, keys)
    await assert_exactly_once(pool, redis, keys, catalog, traffic.expected())


async def test_a_repair_failure_beside_a_committed_batch_acknowledges_nothing(
    redis: Redis,
    pool: asyncpg.Pool,
    keys: Keys,
    ledger: Ledger,
    streams: Streams,
    catalog: Catalog,
    make_consumer: ConsumerFactory,
    path: str,
) -> None:
    traffic = await _gifts(ledger, streams, catalog, redis, keys)
    entries = len(traffic.events)
    calls: list[int] = []

    async def on_spends(spends: list[SpendEntry], not_after: int) -> None:
        calls.append(len(spends))
        if len(calls) == 1:
            raise ConnectionError("injected: Redis lost during the room's repair")

    consumer = make_consumer(on_spends=on_spends)
    await consumer.ensure_groups()
    with pytest.raises(ConnectionError, match="injected"):
        await consumer.run_once()
    # The transaction ran to its end beside the failed repair; the batch stays pending.
    assert await pool.fetchval("SELECT count(*) FROM ledger_events") == entries
    assert await _pending(redis, keys) == entries
    consumer.start()
    await caught_up(redis, keys)
    assert len(calls) >= 2
    await assert_exactly_once(pool, redis, keys, catalog, traffic.expected())
    assert await pool.fetchval("SELECT count(*) FROM ledger_events") == len(traffic.expected())


class CreditsFailOnce(Ledger):
    """A ledger whose first credit repair fails (Redis lost in the middle of it)."""

    failed = False

    async def repair_credits(self, spends: Any, **kw: Any) -> int:
        if not self.failed:
            self.failed = True
            raise ConnectionError("injected: Redis lost during the credits' repair")
        return await super().repair_credits(spends, **kw)


async def test_postgres_never_sees_a_spend_before_its_credit_is_repaired(
    redis: Redis,
    pool: asyncpg.Pool,
    keys: Keys,
    ledger: Ledger,
    streams: Streams,
    catalog: Catalog,
    make_consumer: ConsumerFactory,
) -> None:
    traffic = await _gifts(ledger, streams, catalog, redis, keys)
    entries = len(traffic.events)
    failing = CreditsFailOnce(redis, keys, catalog)
    consumer = make_consumer(ledger=failing)
    await consumer.ensure_groups()
    with pytest.raises(ConnectionError, match="injected"):
        await consumer.run_once()
    # The credits come before the transaction (the audit counts on it): nothing written.
    assert await pool.fetchval("SELECT count(*) FROM ledger_events") == 0
    assert await _pending(redis, keys) == entries
    consumer.start()
    await caught_up(redis, keys)
    await assert_exactly_once(pool, redis, keys, catalog, traffic.expected())
    await failing.aclose()


async def test_two_writers_racing_on_overlapping_batches_write_each_event_once(
    pool: asyncpg.Pool, path: str
) -> None:
    """Two persisters with a shared middle part: one wins each event, the other skips it."""
    gifts = [parse_entry(f"1-{i}", mk.spend("alice", "bob")) for i in range(300)]
    first, second = gifts[:200], gifts[100:]
    for _ in range(3):  # the loser may block on the winner's uncommitted rows, or not
        async with pool.acquire() as a, pool.acquire() as b:
            won = await asyncio.gather(write_batch(a, first), write_batch(b, second))
        ids = [e.event_id for batch in won for e in batch]
        assert sorted(ids) == sorted({e.event_id for e in gifts}) or not ids
        first, second = second, first
    assert await pool.fetchval("SELECT count(*) FROM ledger_events") == 300
    assert await pool.fetchval("SELECT count(*) FROM postings") == 600
    assert await pool.fetchval("SELECT count(*) FROM spend_ids") == 300
    assert await pool.fetchval("SELECT spends FROM stream_totals") == 300


async def test_the_copy_path_skips_nothing_the_checked_path_would_write(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replayed batch on the COPY path falls back to the checked one: only the new rows."""
    monkeypatch.setattr(writer, "COPY_MIN", 1)
    old = [parse_entry(f"1-{i}", f) for i, f in enumerate(_every_type())]
    async with pool.acquire() as conn:
        assert len(await write_batch(conn, old[:4])) == 4
        before = await pool.fetchval("SELECT count(*) FROM postings")
        fresh = await write_batch(conn, old)
    assert [e.event_id for e in fresh] == [e.event_id for e in old[4:]]
    assert await pool.fetchval("SELECT count(*) FROM ledger_events") == len(old)
    assert await pool.fetchval("SELECT count(*) FROM postings") == before + sum(
        len(e.postings) for e in old[4:]
    )
