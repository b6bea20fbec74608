"""The durable leaderboards: the persister counts each new credit once, in its spend's period.

Both write paths (COPY first, or checked), a batch replayed, an outbox entry
delivered again, and a hub that never credited (the persister's repair): the
aggregates in PostgreSQL count each credit once and equal Redis's live boards.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import asyncpg
import pytest
from redis.asyncio import Redis

from gifting.board_records import creators_of_period, supporters_of_period
from gifting.clock import now_ms
from gifting.core.catalog import Catalog
from gifting.core.periods import month_of, week_of
from gifting.core.pricing import price_gift
from gifting.persister import schema as migrations
from gifting.persister import writer
from gifting.persister.consumer import GROUP, OutboxConsumer
from gifting.persister.postings import parse_entry
from gifting.persister.progress import wait_caught_up
from gifting.persister.writer import write_batch
from gifting.store.boards import Boards
from gifting.store.keys import Keys
from gifting.store.ledger import Ledger
from gifting.store.streams import Streams

from . import entries as mk
from .conftest import ConsumerFactory
from .support import Traffic, assert_exactly_once, outbox_events, spend_gift

SUNDAY_LATE = 1_796_601_599_999  # 2026-12-06T23:59:59.999Z, ISO week 49
MONDAY = 1_796_601_600_000  # 2026-12-07T00:00:00Z, ISO week 50


@pytest.fixture(params=["copy", "checked"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test on both write paths: COPY first (any batch), or the checked path only."""
    monkeypatch.setattr(writer, "COPY_MIN", 1 if request.param == "copy" else 10**9)
    return str(request.param)


def credit(spend: dict[str, str], *, spend_ts: int | None, credited_at: int) -> dict[str, str]:
    """The credit.lua entry of ``spend``, run at ``credited_at``, for a spend at ``spend_ts``."""
    fields = {**mk.credit(spend, 0), "ts": str(credited_at)}
    if spend_ts is not None:
        fields["sender_name"] = spend["name"]
        fields["spend_ts"] = str(spend_ts)
    return fields


async def _boards(pool: asyncpg.Pool) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    sup = await pool.fetch("SELECT * FROM board_supporters ORDER BY creator_id, period, user_id")
    cre = await pool.fetch("SELECT * FROM board_creators ORDER BY period, creator_id")
    return [tuple(r) for r in sup], [tuple(r) for r in cre]


def test_the_monday_constants_are_what_they_say() -> None:
    assert week_of(SUNDAY_LATE).label == "2026-W49" and week_of(MONDAY).label == "2026-W50"
    assert week_of(SUNDAY_LATE).end_ms == MONDAY


async def test_new_credits_count_once_in_the_period_of_their_spend(
    pool: asyncpg.Pool, path: str
) -> None:
    sunday = mk.spend("alice", "bob", unit=5, count=2)  # 10 coins
    monday = mk.spend("alice", "bob", unit=3)
    carol = mk.spend("carol", "bob", unit=10)
    to_dan = mk.spend("alice", "dan", unit=7)
    old = mk.spend("erin", "bob", unit=2)  # an entry from before leaderboards: no spend_ts
    badge = mk.spend("dave", kind="badge", item="supporter", unit=300)  # the platform's: no board
    fields = [
        sunday, monday, carol, to_dan, badge,
        credit(sunday, spend_ts=SUNDAY_LATE, credited_at=MONDAY + 5000),  # repaired on Monday
        credit(monday, spend_ts=MONDAY, credited_at=MONDAY),
        credit(carol, spend_ts=SUNDAY_LATE, credited_at=SUNDAY_LATE),
        credit(to_dan, spend_ts=MONDAY, credited_at=MONDAY),
        credit(old, spend_ts=None, credited_at=SUNDAY_LATE),
    ]  # fmt: skip
    events = [parse_entry(f"1-{i}", f) for i, f in enumerate(fields)]
    async with pool.acquire() as conn:
        await write_batch(conn, events)
    first = await _boards(pool)
    assert first[0] == [
        ("bob", "2026-12", "alice", "Alice", 13),
        ("bob", "2026-12", "carol", "Carol", 10),
        ("bob", "2026-12", "erin", "erin", 2),  # no name on an old entry: the id
        ("bob", "2026-W49", "alice", "Alice", 10),
        ("bob", "2026-W49", "carol", "Carol", 10),
        ("bob", "2026-W49", "erin", "erin", 2),
        ("bob", "2026-W50", "alice", "Alice", 3),
        ("dan", "2026-12", "alice", "Alice", 7),
        ("dan", "2026-W50", "alice", "Alice", 7),
    ]
    assert first[1] == [
        ("2026-12", "bob", 25), ("2026-12", "dan", 7), ("2026-W49", "bob", 22),
        ("2026-W50", "bob", 3), ("2026-W50", "dan", 7),
    ]  # fmt: skip
    # The same entries again (a replayed batch; re-appended under other outbox ids).
    again = [parse_entry(f"2-{i}", f) for i, f in enumerate(fields)]
    async with pool.acquire() as conn:
        assert await write_batch(conn, [*reversed(again), *events]) == []
    assert await _boards(pool) == first
    # The reads rank them; ties by user id.
    assert [(e.user, e.coins) for e in await supporters_of_period(pool, "bob", "2026-W49", 10)] == [
        ("alice", 10), ("carol", 10), ("erin", 2)
    ]  # fmt: skip
    assert [(e.user, e.coins) for e in await supporters_of_period(pool, "bob", "2026-W49", 1)] == [
        ("alice", 10)
    ]
    assert [(e.user, e.coins) for e in await creators_of_period(pool, "2026-12", 10)] == [
        ("bob", 25), ("dan", 7)
    ]  # fmt: skip


async def _drain(consumer: OutboxConsumer, redis: Redis, keys: Keys) -> None:
    await consumer.ensure_groups()
    for _ in range(200):
        await consumer.run_once()
        if await wait_caught_up(redis, keys, 0):
            return
    raise AssertionError("not caught up")


async def test_a_hub_that_never_credited_and_a_replayed_entry_count_once_everywhere(
    redis: Redis,
    pool: asyncpg.Pool,
    keys: Keys,
    ledger: Ledger,
    streams: Streams,
    catalog: Catalog,
    make_consumer: ConsumerFactory,
) -> None:
    traffic = Traffic()
    for user in ("alice", "carol"):
        await ledger.purchase(f"p-{user}", user, "coins_17500", 24999, "USD")
    stream = await streams.create("bob", "Bob", "live")
    coins = price_gift(catalog, "galaxy", 1).coins
    sent: Counter[str] = Counter()
    for i in range(8):
        sender = "alice" if i % 3 else "carol"
        # Half credited by "the hub", half left for the persister's repair (a crashed hub).
        await spend_gift(
            ledger, catalog, traffic, sender, "bob", stream.stream, "galaxy", 1,
            hub_credit=i % 2 == 0,
        )  # fmt: skip
        sent[sender] += coins
    consumer = make_consumer(batch_size=5)
    await _drain(consumer, redis, keys)
    week, month = week_of(now_ms()).label, month_of(now_ms()).label
    want = sorted(sent.items(), key=lambda kv: (-kv[1], kv[0]))
    live = Boards(redis, keys)
    assert [(e.user, e.coins) for e in await live.supporters("bob", week, 10)] == want
    assert [(e.user, e.coins) for e in await live.supporters("bob", month, 10)] == want
    assert [(e.user, e.coins) for e in await supporters_of_period(pool, "bob", week, 10)] == want
    assert [(e.user, e.coins) for e in await creators_of_period(pool, month, 10)] == [
        ("bob", sum(sent.values()))
    ]
    before = (await _boards(pool), await live.supporters("bob", week, 10))
    # Everything delivered again, and one credit entry appended to its outbox a second time.
    outbox = keys.outbox(keys.shard_of("bob"))
    credit_entry = next(f for _, f in await redis.xrange(outbox) if f[b"type"] == b"credit")
    await redis.xadd(outbox, credit_entry)  # type: ignore[arg-type]
    for s in keys.outboxes():
        await redis.xgroup_setid(s, GROUP, "0")
    await _drain(consumer, redis, keys)
    assert (await _boards(pool), await live.supporters("bob", week, 10)) == before
    traffic.events |= set(await outbox_events(redis, keys))
    await assert_exactly_once(pool, redis, keys, catalog, traffic.expected())


async def test_the_migration_backfills_the_credits_already_persisted(pool: asyncpg.Pool) -> None:
    """0007's backfill, run on a ledger written before it: the same rows the persister writes."""
    sunday = mk.spend("alice", "bob", unit=5, count=2)
    sunday["ts"] = str(SUNDAY_LATE)
    monday = mk.spend("carol", "bob", unit=3)
    monday["ts"] = str(MONDAY)
    fields = [
        sunday, monday,
        credit(sunday, spend_ts=None, credited_at=MONDAY + 5000),  # old shape: no spend_ts
        credit(monday, spend_ts=None, credited_at=MONDAY),
    ]  # fmt: skip
    async with pool.acquire() as conn:
        await write_batch(conn, [parse_entry(f"1-{i}", f) for i, f in enumerate(fields)])
        await conn.execute("TRUNCATE board_supporters, board_creators")
        sql = (
            Path(migrations.__file__).parent / "migrations" / "0007_leaderboards.sql"
        ).read_text()
        await conn.execute(sql[sql.index("-- The credits persisted before") :])
    supporters, creators = await _boards(pool)
    assert supporters == [
        ("bob", "2026-12", "alice", "Alice", 10),
        ("bob", "2026-12", "carol", "Carol", 3),
        ("bob", "2026-W49", "alice", "Alice", 10),  # the spend's week, not the credit's
        ("bob", "2026-W50", "carol", "Carol", 3),
    ]
    assert creators == [("2026-12", "bob", 13), ("2026-W49", "bob", 10), ("2026-W50", "bob", 3)]
