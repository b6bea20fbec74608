"""Peer: the PostgreSQL row-locking debit, what a money path without Redis looks like.

Each spend is what such services usually write, in one transaction::

    UPDATE wallets SET coins = coins - $price
     WHERE user_id = $user AND coins >= $price RETURNING coins;
    INSERT INTO spend_ledger (event_id, ...) VALUES (...);   -- event_id unique

(``style="cte"``: the same as one statement, one round trip.) Many asyncpg
connections (32 over 2 processes by default) run it in a closed loop on
random wallets of ``users`` funded users, on the same kind of PostgreSQL as
gifting's (``fsync=on``, ``synchronous_commit=on``), so each spend is durable
when it returns — compare with gifting's acked gifts/s. After the run the
ledger is checked against the wallets (every debited coin has its row).
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import asyncpg

from loadtest.ceilings.common import Latency, Mode, pick, run_coroutine
from loadtest.ceilings.pg import Op, PgTarget, run_jobs

__all__ = ["PgDebitFigures", "pg_debit_peer"]

Style = Literal["transaction", "cte"]

_FUNDS = 10**12
_SCHEMA = """
CREATE TABLE wallets (
    user_id text PRIMARY KEY,
    coins   bigint NOT NULL CHECK (coins >= 0)
);
CREATE TABLE spend_ledger (
    event_id  text PRIMARY KEY,
    user_id   text NOT NULL,
    stream_id text NOT NULL,
    item      text NOT NULL,
    coins     bigint NOT NULL,
    balance   bigint NOT NULL,
    ts        bigint NOT NULL
);
"""
_DEBIT = """
UPDATE wallets SET coins = coins - $2 WHERE user_id = $1 AND coins >= $2 RETURNING coins
"""
_RECORD = """
INSERT INTO spend_ledger (event_id, user_id, stream_id, item, coins, balance, ts)
VALUES ($1, $2, 's-bench', 'rose', $3, $4, $5)
"""
_DEBIT_AND_RECORD = """
WITH d AS (
    UPDATE wallets SET coins = coins - $2 WHERE user_id = $1 AND coins >= $2 RETURNING coins
)
INSERT INTO spend_ledger (event_id, user_id, stream_id, item, coins, balance, ts)
SELECT $3, $1, 's-bench', 'rose', $2, d.coins, $4 FROM d
RETURNING balance
"""


@dataclass(frozen=True, slots=True)
class PgDebitFigures:
    """Durable debits per second by PostgreSQL row locks, and their latency."""

    name: str
    spends_per_s: float
    latency: Latency
    spends: int
    refused: int
    consistent: bool
    connections: int
    processes: int
    users: int
    style: str
    duration_s: float
    server_cpu_s: float
    generator_cpu_s: float
    machine_busy: float

    def summary(self) -> str:
        """One line for a report."""
        return (
            f"{self.name}: {self.spends_per_s:,.0f} spends/s, {self.latency}, "
            f"{self.connections} conns on {self.users} wallets, "
            f"ledger {'consistent' if self.consistent else 'INCONSISTENT'}; cpu postgres "
            f"{self.server_cpu_s:.2f} s, generator {self.generator_cpu_s:.2f} s "
            f"in {self.duration_s:.1f} s, machine {self.machine_busy:.0%} busy"
        )


async def _debit_job(conn: asyncpg.Connection, params: tuple[int, int, Style], worker: int) -> Op:
    users, price, style = params
    rng = random.Random(worker)
    counter = itertools.count()
    ts = 1_764_000_000_000

    async def in_transaction() -> int:
        user = f"u{rng.randrange(users):06d}"
        event = f"d{worker:04x}{next(counter):010x}"
        async with conn.transaction():
            balance = await conn.fetchval(_DEBIT, user, price)
            if balance is None:
                return 0
            await conn.execute(_RECORD, event, user, price, balance, ts)
        return 1

    async def one_statement() -> int:
        user = f"u{rng.randrange(users):06d}"
        event = f"d{worker:04x}{next(counter):010x}"
        balance = await conn.fetchval(_DEBIT_AND_RECORD, user, price, event, ts)
        return 0 if balance is None else 1

    return in_transaction if style == "transaction" else one_statement


async def _prepare(url: str, users: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(_SCHEMA)
        await conn.execute(
            "INSERT INTO wallets SELECT 'u' || lpad(g::text, 6, '0'), $1 "
            "FROM generate_series(0, $2 - 1) AS g",
            _FUNDS,
            users,
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def _consistent(url: str, users: int) -> bool:
    """Every coin that left the wallets is in the ledger, and nothing else is."""
    conn = await asyncpg.connect(url)
    try:
        left = await conn.fetchval(
            "SELECT $1::numeric * $2 - sum(coins) FROM wallets", _FUNDS, users
        )
        recorded = await conn.fetchval("SELECT coalesce(sum(coins), 0) FROM spend_ledger")
        negative = await conn.fetchval("SELECT count(*) FROM wallets WHERE coins < 0")
    finally:
        await conn.close()
    return bool(left == recorded and negative == 0 and recorded > 0)


def pg_debit_peer(
    *,
    mode: Mode = "full",
    duration_s: float | None = None,
    connections: int = 32,
    processes: int = 2,
    users: int = 10_000,
    price: int = 1,
    style: Style = "transaction",
    database_url: str | None = None,
    data_dir: Path | str | None = None,
) -> PgDebitFigures:
    """Spends/s of the row-locking debit + ledger insert, one transaction per spend.

    ``connections`` asyncpg connections over ``processes`` processes, each a
    closed loop of spends on random wallets among ``users``. A fresh database
    on ``database_url``'s server, or a private PostgreSQL. ``duration_s``:
    1 s quick, 10 s full.
    """
    if style not in ("transaction", "cte"):
        raise ValueError("style must be 'transaction' or 'cte'")
    duration = duration_s if duration_s is not None else pick(mode, 1.0, 10.0)
    with PgTarget(database_url, data_dir=data_dir) as target:
        run_coroutine(lambda: _prepare(target.url, users))
        jobs = run_jobs(
            target.url, _debit_job, (users, price, style),
            connections=connections, processes=processes,
            duration_s=duration, warmup_s=pick(mode, 0.3, 1.0),
            server_cpu=target.server_cpu_s,
        )  # fmt: skip
        consistent = run_coroutine(lambda: _consistent(target.url, users))
    return PgDebitFigures(
        name=f"postgres row-lock debit ({style})",
        spends_per_s=jobs.units_per_s,
        latency=jobs.latency,
        spends=jobs.units,
        refused=jobs.refused,
        consistent=consistent,
        connections=connections,
        processes=processes,
        users=users,
        style=style,
        duration_s=jobs.duration_s,
        server_cpu_s=jobs.server_cpu_s,
        generator_cpu_s=jobs.generator_cpu_s,
        machine_busy=jobs.machine_busy,
    )
