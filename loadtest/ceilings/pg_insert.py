"""Ceiling: a bare batched insert of ledger rows, the persister's PostgreSQL bound.

A fresh database on the same kind of PostgreSQL as gifting's (the embedded
one, ``fsync=on``) gets the project's own migrations, so the tables, keys and
indexes are the persister's. Each writer then inserts batches of 500 spend
events in one transaction each: 500 ``ledger_events`` rows and their 1,000
``postings`` (debit the viewer's coins, credit the creator's received coins),
by ``COPY`` (default, the fastest bulk path) or ``INSERT ... SELECT unnest``.
No conflict check, no Redis, no aggregates: what the persister does beyond
this is its own cost.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import asyncpg

from loadtest.ceilings.common import Latency, Mode, pick, run_coroutine
from loadtest.ceilings.pg import Op, PgTarget, run_jobs

__all__ = ["PgInsertFigures", "pg_insert_ceiling"]

Method = Literal["copy", "unnest"]

_EVENT_COLUMNS = [
    "event_id", "type", "user_id", "ts", "stream_id", "outbox_id", "outbox_ms", "outbox_seq",
    "payload",
]  # fmt: skip
_POSTING_COLUMNS = ["event_id", "account", "currency", "amount"]

_INSERT_EVENTS = """
INSERT INTO ledger_events (event_id, type, user_id, ts, stream_id, outbox_id, outbox_ms,
                           outbox_seq, payload)
SELECT e, t, u, ts, s, o, om, os, p::jsonb
FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[],
            $7::bigint[], $8::bigint[], $9::text[]) AS x(e, t, u, ts, s, o, om, os, p)
"""
_INSERT_POSTINGS = """
INSERT INTO postings (event_id, account, currency, amount)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])
"""
_PAYLOAD = (
    '{"type":"spend","user":"%s","name":"Viewer","client_id":"c-%d","kind":"gift",'
    '"item":"rose","count":"1","unit":"1","coins":"1","stream":"s-bench",'
    '"creator":"bench-creator","event":"%s","ts":"%d","balance":"%d","combo":"1"}'
)


@dataclass(frozen=True, slots=True)
class PgInsertFigures:
    """Batched ledger inserts: events/s and rows/s (events + postings)."""

    name: str
    events_per_s: float
    rows_per_s: float
    batches: int
    batch_size: int
    batch_latency: Latency
    method: str
    writers: int
    processes: int
    duration_s: float
    server_cpu_s: float
    generator_cpu_s: float
    machine_busy: float

    def summary(self) -> str:
        """One line for a report."""
        return (
            f"{self.name}: {self.events_per_s:,.0f} events/s ({self.rows_per_s:,.0f} rows/s), "
            f"{self.batches} batches of {self.batch_size} by {self.method}, {self.writers} "
            f"writers, batch {self.batch_latency}; cpu postgres {self.server_cpu_s:.2f} s, "
            f"generator {self.generator_cpu_s:.2f} s in {self.duration_s:.1f} s, "
            f"machine {self.machine_busy:.0%} busy"
        )


def _batch(
    worker: int, k: int, size: int
) -> tuple[list[tuple[Any, ...]], list[tuple[str, str, str, int]]]:
    """Batch ``k`` of writer ``worker``: event rows and their postings (ids never repeat)."""
    base_ms = 1_764_000_000_000 + k
    events: list[tuple[Any, ...]] = []
    postings: list[tuple[str, str, str, int]] = []
    for i in range(size):
        event_id = f"e{base_ms:011x}{worker:04x}{k:06x}{i:03x}"
        user = f"viewer-{(k * size + i) % 1000:04d}"
        seq = k * size + i
        events.append(
            (
                event_id, "spend", user, base_ms, "s-bench", f"{base_ms}-{seq}", base_ms, seq,
                _PAYLOAD % (user, seq, event_id, base_ms, 10**6 - seq),
            )
        )  # fmt: skip
        postings.append((event_id, f"user:{user}:coins", "coins", -1))
        postings.append((event_id, "creator:bench-creator:received", "coins", 1))
    return events, postings


async def _insert_job(conn: asyncpg.Connection, params: tuple[Method, int], worker: int) -> Op:
    method, size = params
    counter = itertools.count()

    async def op() -> int:
        events, postings = _batch(worker, next(counter), size)
        async with conn.transaction():
            if method == "copy":
                await conn.copy_records_to_table(
                    "ledger_events", records=events, columns=_EVENT_COLUMNS
                )
                await conn.copy_records_to_table(
                    "postings", records=postings, columns=_POSTING_COLUMNS
                )
            else:
                await conn.execute(_INSERT_EVENTS, *map(list, zip(*events, strict=True)))
                await conn.execute(_INSERT_POSTINGS, *map(list, zip(*postings, strict=True)))
        return size

    return op


async def _migrate(url: str) -> None:
    from gifting.persister.schema import apply_migrations

    conn = await asyncpg.connect(url)
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()


def pg_insert_ceiling(
    *,
    mode: Mode = "full",
    duration_s: float | None = None,
    batch_size: int = 500,
    writers: int = 2,
    processes: int = 2,
    method: Method = "copy",
    database_url: str | None = None,
    data_dir: Path | str | None = None,
) -> PgInsertFigures:
    """Events/s and rows/s of batched inserts into the persister's tables.

    ``writers`` connections (over ``processes`` processes), each inserting one
    batch of ``batch_size`` events (+ 2 postings each) per transaction in a
    closed loop. A fresh database is made on ``database_url``'s server, or on
    a private PostgreSQL. ``duration_s``: 1 s quick, 10 s full.
    """
    if method not in ("copy", "unnest"):
        raise ValueError("method must be 'copy' or 'unnest'")
    duration = duration_s if duration_s is not None else pick(mode, 1.0, 10.0)
    with PgTarget(database_url, data_dir=data_dir) as target:
        run_coroutine(lambda: _migrate(target.url))
        jobs = run_jobs(
            target.url, _insert_job, (method, batch_size),
            connections=writers, processes=min(processes, writers),
            duration_s=duration, warmup_s=pick(mode, 0.3, 1.0),
            server_cpu=target.server_cpu_s,
        )  # fmt: skip
    return PgInsertFigures(
        name=f"postgres batched insert ({method})",
        events_per_s=jobs.units_per_s,
        rows_per_s=jobs.units_per_s * 3,
        batches=jobs.ops,
        batch_size=batch_size,
        batch_latency=jobs.latency,
        method=method,
        writers=writers,
        processes=jobs.processes,
        duration_s=jobs.duration_s,
        server_cpu_s=jobs.server_cpu_s,
        generator_cpu_s=jobs.generator_cpu_s,
        machine_busy=jobs.machine_busy,
    )
