"""The persister against its ceiling, in one run: ``python -m loadtest.persister_ab``.

The bench's persister piece (fill the outboxes with ``--spends`` gifts whose
creator credits are left to repair, then one consumer drains them) with the
CPU it took (the process running the consumer, PostgreSQL's server tree,
Redis), then the bench's bare batched COPY ceiling into a fresh database on
the same kind of PostgreSQL (``pg_insert_ceiling``), and the ratio. One JSON
line on stdout, for A/B runs of two checkouts (``PYTHONPATH=<checkout>``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["main", "persister_drain"]


async def persister_drain(
    spends: int, batch: int | None = None, *, settled: bool = False
) -> dict[str, Any]:
    """Fill, then drain with one consumer; events/s and CPU µs per event of each process.

    ``settled``: the creators are credited and the room events emitted before
    the drain (what a live hub does at peak), so the persister's repairs find
    everything done (one EXISTS each); else it runs every credit and emission
    itself (the bench's case: a hub that died before any).
    """
    import asyncpg
    import psutil  # type: ignore[import-untyped,unused-ignore]
    from redis.asyncio import Redis

    from gifting.config import Settings
    from gifting.core.catalog import load_catalog
    from gifting.embedded import EmbeddedServers
    from gifting.persister.progress import wait_caught_up
    from gifting.persister.schema import apply_migrations
    from gifting.persister.service import make_consumer
    from gifting.store.keys import Keys
    from gifting.store.ledger import Ledger
    from loadtest.bench import fill_outboxes
    from loadtest.ceilings.common import ProcessCpu

    with tempfile.TemporaryDirectory(prefix="gifting-ab-") as tmp:
        servers = EmbeddedServers(Path(tmp), appendfsync="everysec")
        await asyncio.to_thread(servers.start)
        redis = Redis.from_url(servers.redis_url)
        pool = await asyncpg.create_pool(servers.database_url, min_size=1, max_size=4)
        assert pool is not None
        try:
            await apply_migrations(pool)
            async with pool.acquire() as conn:
                backend = int(await conn.fetchval("SELECT pg_backend_pid()"))
            pg_cpu = ProcessCpu(psutil.Process(backend).parent().pid, tree=True)
            redis_pid = int((await redis.info("server"))["process_id"])
            redis_cpu = ProcessCpu(redis_pid)
            catalog, keys = load_catalog(), Keys("b")
            ledger = Ledger(redis, keys, catalog)
            filled = await fill_outboxes(ledger, catalog, spends)
            extra: dict[str, Any] = {} if batch is None else {"GIFTING_PERSISTER_BATCH": batch}
            if settled:
                await _settle_all(redis, keys, servers.redis_url, ledger)
            settings = Settings(REDIS_URL=servers.redis_url, DATABASE_URL=servers.database_url,
                                GIFTING_KEY_PREFIX="b", **extra)  # fmt: skip
            consumer = make_consumer(settings, redis, pool, ledger)
            pg0, redis0, me0 = pg_cpu.seconds(), redis_cpu.seconds(), time.process_time()
            t0 = time.monotonic()
            consumer.start()
            await wait_caught_up(redis, keys, 600)
            await wait_caught_up(redis, keys, 600)  # the credits it repaired, appended
            seconds = time.monotonic() - t0
            me, pg, rd = (
                time.process_time() - me0, pg_cpu.seconds() - pg0, redis_cpu.seconds() - redis0
            )  # fmt: skip
            await consumer.stop()
            persisted = int(await pool.fetchval("SELECT count(*) FROM ledger_events"))
            us = 1e6 / persisted if persisted else 0.0
            return {
                "settled": settled,
                "spends": filled,
                "events": persisted,
                "seconds": round(seconds, 3),
                "events_per_s": round(persisted / seconds),
                "cpu_us_per_event": {
                    "persister": round(me * us, 1),
                    "postgres": round(pg * us, 1),
                    "redis": round(rd * us, 1),
                },
            }
        finally:
            await ledger.aclose()
            await pool.close()
            await redis.aclose()
            await asyncio.to_thread(servers.stop)


async def _settle_all(redis: Any, keys: Any, redis_url: str, ledger: Any) -> None:
    """Credit and emit every spend in the outboxes, as the hub that debited them would."""
    from gifting.config import Settings
    from gifting.core.entries import SpendEntry
    from gifting.persister.postings import parse_entry
    from gifting.store.wiring import build_roomlog

    rooms = build_roomlog(Settings(REDIS_URL=redis_url, GIFTING_KEY_PREFIX="b"), redis,
                          ledger.catalog)  # fmt: skip
    for stream in keys.outboxes():
        entries = await redis.xrange(stream)
        spends = [
            e.entry
            for i, f in entries
            if isinstance((e := parse_entry(i.decode(), f)).entry, SpendEntry)
        ]
        for k in range(0, len(spends), 1000):
            await ledger.repair_credits(spends[k : k + 1000])
            await rooms.emit_spends(spends[k : k + 1000])
    await rooms.aclose()


def main() -> None:
    """Parse the options, measure, print one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m loadtest.persister_ab")
    parser.add_argument("--spends", type=int, default=20_000)
    parser.add_argument("--ceiling-s", type=float, default=3.0, help="COPY ceiling window")
    parser.add_argument("--batch", type=int, default=None, help="PERSISTER_BATCH override")
    parser.add_argument("--label", default="")
    parser.add_argument("--settled", action="store_true", help="credits and emissions done")
    args = parser.parse_args()
    from loadtest.ceilings.pg_insert import pg_insert_ceiling

    drain = asyncio.run(persister_drain(args.spends, args.batch, settled=args.settled))
    ceiling = pg_insert_ceiling(mode="quick", duration_s=args.ceiling_s)
    out = {
        "label": args.label,
        "persister": drain,
        "copy_ceiling_events_per_s": round(ceiling.events_per_s),
        "ratio": round(drain["events_per_s"] / ceiling.events_per_s, 3),
    }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
