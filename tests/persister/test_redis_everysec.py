"""Redis with ``appendfsync everysec`` killed mid-storm: how many acked spends are lost.

``everysec`` acknowledges a write once it is in the append-only file's OS
buffer and fsyncs once a second, so:

* a **process** kill (SIGKILL: the OS keeps its page cache) loses what Redis
  had not yet written to the file, normally nothing (a write is postponed only
  while a slow fsync is still running, up to 2 s);
* an **OS crash or power cut** also loses the last second the OS had not yet
  flushed. We simulate it by cutting the file back to its size a second before
  the kill.

Either way PostgreSQL may already hold spends Redis lost (the persister read
them in time): the audit must then report exactly that drift, account by
account, and nothing else in the Redis comparison. Each run counts acked
spends against those present after the restart; the figures are in
RELIABILITY_ROWS.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from gifting.core.catalog import Catalog
from gifting.core.errors import GiftingError
from gifting.core.pricing import price_gift
from gifting.embedded import EmbeddedRedis
from gifting.persister.audit import run_audit
from gifting.store.keys import Keys
from gifting.store.ledger import Ledger, SpendOrder
from gifting.store.rooms import RoomLog
from gifting.store.streams import Streams

from .conftest import ConsumerFactory
from .support import caught_up

log = logging.getLogger(__name__)
SENDERS = 8
CREATOR = "dan"
REDIS_CHECK = "Redis wallets = the ledger at each wallet's outbox position"
CREDIT_CHECK = "every spend to a creator is credited once, with its coins"
DIAMONDS_CHECK = "per creator: diamonds earned = floor(coins credited x bps / 10,000)"


@dataclass
class Acked:
    """Spends the ledger acknowledged: (sender, client id) -> (coins, when acked)."""

    spends: dict[tuple[str, str], tuple[int, float]] = field(default_factory=dict)


def _incr_aof(server: EmbeddedRedis) -> Path:
    """The append-only file Redis appends to now (Redis 7: the last ``incr`` file)."""
    files = sorted((server.dir / "appendonlydir").glob("*.incr.aof"))
    assert files, "no incremental AOF file"
    return files[-1]


async def _storm(
    ledger: Ledger, catalog: Catalog, stream: str, acked: Acked, stop: asyncio.Event, tag: str
) -> None:
    """Gifts from every sender, as fast as the ledger acks them, until ``stop``."""

    async def sender(user: str) -> None:
        for i in range(1_000_000):
            if stop.is_set():
                return
            count = 1 + i % 3
            order = SpendOrder(
                user, user.title(), f"{tag}{i}", price_gift(catalog, "rose", count), stream,
                CREATOR,
            )  # fmt: skip
            try:
                await ledger.spend(order, live=True)
            except (RedisError, OSError, GiftingError):
                await asyncio.sleep(0.01)  # Redis is down: the outcome is unknown, move on
                continue
            acked.spends[(user, order.client_id)] = (count, time.monotonic())

    await asyncio.gather(*(sender(f"v{n}") for n in range(SENDERS)))


async def _run_and_crash(
    server: EmbeddedRedis,
    ledger: Ledger,
    catalog: Catalog,
    stream: str,
    tag: str,
    crash: Callable[[], None],
) -> tuple[Acked, float]:
    """Storm, ``crash()`` Redis mid-storm (in a thread), restart it; return acks and crash time."""
    acked = Acked()
    stop = asyncio.Event()
    storm = asyncio.ensure_future(_storm(ledger, catalog, stream, acked, stop, tag))
    for _ in range(500):  # until the storm is well on
        if len(acked.spends) >= 1500:
            break
        await asyncio.sleep(0.01)
    crashed_at = await asyncio.to_thread(crash)
    stop.set()
    await storm
    await asyncio.to_thread(server.restart)
    return acked, crashed_at


async def _lost(redis: Redis, keys: Keys, acked: Acked) -> list[tuple[str, str]]:
    """The acked spends Redis no longer knows (their result record is gone)."""
    ids = list(acked.spends)
    pipe = redis.pipeline(transaction=False)
    for user, client_id in ids:
        pipe.exists(keys.spend_result(user, client_id))
    return [i for i, present in zip(ids, await pipe.execute(), strict=True) if not present]


@dataclass
class Drift:
    """What Redis lacks of what PostgreSQL holds."""

    #: Per audited Redis account: Redis's figure minus the ledger's.
    accounts: dict[str, int]
    #: Spends in PostgreSQL that Redis lost (their event ids).
    lost_spends: set[str]


async def _expected_drift(pool: asyncpg.Pool, redis: Redis, keys: Keys) -> Drift:
    """What Redis lacks of what PostgreSQL holds, per audited account (found - expected).

    A spend in PostgreSQL whose result record Redis lost took coins Redis
    still shows; a credit in PostgreSQL whose marker Redis lost gave its
    creator received coins and diamonds Redis does not show (the audit
    compares Redis's running total with the credits), and one Redis redid may
    have given a diamond more or less.
    """
    drift: dict[str, int] = {}

    def add(account: str, amount: int) -> None:
        drift[account] = drift.get(account, 0) + amount

    spends = await pool.fetch(
        "SELECT event_id, user_id, payload->>'client_id' AS c, payload->>'creator' AS creator, "
        "(payload->>'coins')::bigint AS coins FROM ledger_events WHERE type = 'spend'"
    )
    pipe = redis.pipeline(transaction=False)
    for r in spends:
        pipe.exists(keys.spend_result(r["user_id"], r["c"]))
    lost: set[str] = set()
    for r, present in zip(spends, await pipe.execute(), strict=True):
        if not present:
            lost.add(r["event_id"])
            add(f"user:{r['user_id']}:coins", int(r["coins"]))
    credits = await pool.fetch(
        "SELECT user_id, payload->>'spend_event' AS s, (payload->>'coins')::bigint AS coins, "
        "(payload->>'diamonds')::bigint AS diamonds FROM ledger_events WHERE type = 'credit'"
    )
    pipe = redis.pipeline(transaction=False)
    for r in credits:
        pipe.get(keys.credit_done(r["user_id"], r["s"]))
    for r, marker in zip(credits, await pipe.execute(), strict=True):
        # The marker holds the diamonds of the credit Redis has: none if it lost the
        # credit, or those of a credit redone after the restart on Redis's running
        # total (its spend's entry was redelivered: the XACK was lost too).
        redis_diamonds = int(marker) if marker is not None else 0
        if marker is None:  # Redis's running total (``received``) lacks the credit's coins
            add(f"creator:{r['user_id']}:received", -int(r["coins"]))
        for name in ("earned", "diamonds"):
            add(f"user:{r['user_id']}:{name}", redis_diamonds - int(r["diamonds"]))
    return Drift({a: d for a, d in drift.items() if d}, lost)


@pytest.mark.parametrize("cut_last_second", [False, True], ids=["sigkill", "os-crash"])
async def test_redis_everysec_killed_mid_storm_the_audit_finds_exactly_the_loss(
    tmp_path: Path,
    pool: asyncpg.Pool,
    key_prefix: str,
    catalog: Catalog,
    make_consumer: ConsumerFactory,
    cut_last_second: bool,
) -> None:
    server = EmbeddedRedis(tmp_path, appendfsync="everysec")
    server.start()
    client = Redis.from_url(server.url)
    keys = Keys(key_prefix)
    ledger = Ledger(client, keys, catalog)
    rooms = RoomLog(client, keys, catalog)
    try:
        for n in range(SENDERS):
            await ledger.purchase(f"p-v{n}", f"v{n}", "coins_17500", 24999, "USD")
        stream = (await Streams(client, keys, catalog).create(CREATOR, "Dan", "everysec")).stream
        consumer = make_consumer(redis=client, ledger=ledger, on_spends=rooms.emit_spends)
        consumer.start()
        await asyncio.sleep(1.5)  # the purchases are fsynced: only the storm is at risk

        def crash() -> float:
            if not cut_last_second:
                server.kill()
                return time.monotonic()
            aof = _incr_aof(server)
            size, cut_at = aof.stat().st_size, time.monotonic()
            time.sleep(1.0)  # the second an OS crash would lose
            server.kill()
            with open(aof, "r+b") as f:  # what reached the disk: the file a second ago
                f.truncate(size)
            return cut_at

        acked, crashed_at = await _run_and_crash(server, ledger, catalog, stream, "g", crash)
        await caught_up(client, keys, timeout=30)
        lost = await _lost(client, keys, acked)
        span = [acked.spends[i][1] - crashed_at for i in lost] or [0.0]
        log.warning(
            "everysec %s: %d spends acked, %d lost after the restart, acked %.2f..%.2f s "
            "after the cut",
            "os-crash (last second cut)" if cut_last_second else "sigkill", len(acked.spends),
            len(lost), min(span), max(span),
        )  # fmt: skip
        if cut_last_second:
            assert lost, "cutting the last second of the AOF lost no acked spend"
        # Only what was acked in everysec's window before the crash can be lost.
        assert all(acked.spends[i][1] >= crashed_at - 2.5 for i in lost)

        report = await run_audit(pool, client, keys, catalog)
        drift = await _expected_drift(pool, client, keys)
        # Redis against the ledger: exactly what Redis lost of what PostgreSQL holds.
        found = {m.account: m.found - m.expected for m in report.check(REDIS_CHECK).mismatches}
        assert found == drift.accounts, report.render()
        # Within the ledger: the lost spends whose credit never reached PostgreSQL (the
        # credit's outbox entry went with them), and so the creator's diamonds.
        credits = report.check(CREDIT_CHECK).mismatches
        uncredited = {m.note.split()[1] for m in credits if m.note.startswith("spend ")}
        assert uncredited <= drift.lost_spends, report.render()
        assert all(m.account == f"creator:{CREATOR}:received" for m in credits)
        # A lost credit is the credit check's finding; the credits the ledger holds still
        # add up on the creator's running total.
        assert report.check(DIAMONDS_CHECK).ok, report.render()
        explained = (REDIS_CHECK, CREDIT_CHECK, DIAMONDS_CHECK)
        rest = [c for c in report.checks if c.name not in explained]
        assert all(c.ok for c in rest), report.render()
        assert report.ok == (not drift.accounts and not uncredited), report.render()
        # Every acked spend Redis kept is in PostgreSQL once (the audit proves the once).
        kept = set(acked.spends) - set(lost)
        rows = await pool.fetch(
            "SELECT user_id, payload->>'client_id' AS c FROM ledger_events WHERE type = 'spend'"
        )
        assert kept <= {(r["user_id"], r["c"]) for r in rows}
        await consumer.stop()
    finally:
        await ledger.aclose()
        await rooms.aclose()
        await client.aclose()
        server.stop()
