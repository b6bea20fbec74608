"""Micro-benchmark: spends/s of ``Ledger.debit_many`` on one Redis vs a Redis Cluster.

``python -m loadtest.cluster_bench [--seconds 5] [--batch 256] [--loops 2]
[--appendfsync always|everysec] [--replicas 0|1] [--wait-replicas 0|1]``

Starts a private single Redis and a private 3-master cluster (same machine,
same AOF settings), funds ``--users`` wallets spread over the 16 shards,
then runs ``--loops`` concurrent debit loops for ``--seconds`` each: every
loop sends one batch of ``--batch`` one-coin gifts with ``debit_many`` and
waits for it, as a hub's spend pipeline does (one batch in flight per
loop). Prints spends/s, the median batch time and the client's CPU per
spend (the process's CPU time over the run: what routing by slot costs a
hub, whatever else the machine is doing) for each; every spend
must succeed (fresh client ids, wallets that cannot run dry).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

from gifting.core.catalog import load_catalog
from gifting.core.pricing import price_gift
from gifting.embedded import EmbeddedRedis
from gifting.embedded.redis_cluster import EmbeddedRedisCluster
from gifting.store.cluster import connect
from gifting.store.keys import Keys
from gifting.store.ledger import Ledger, SpendOrder
from gifting.store.scripts import ReplicaWait

__all__ = ["main"]


async def _bench(url: str, args: argparse.Namespace) -> dict[str, float]:
    redis: Any = connect(url, max_connections=64)
    await redis.initialize()
    catalog = load_catalog()
    ledger = Ledger(
        redis, Keys("bench"), catalog, replica_wait=ReplicaWait(args.wait_replicas, 200)
    )
    users = [f"u{i}" for i in range(args.users)]
    package = catalog.packages["coins_7000"]
    sem = asyncio.Semaphore(32)

    async def fund(user: str, n: int) -> None:
        async with sem:
            await ledger.purchase(
                f"fund-{user}-{n}", user, package.id, package.price.amount, package.price.currency
            )

    await asyncio.gather(*(fund(u, n) for u in users for n in range(args.funds)))
    priced = price_gift(catalog, "rose", 1)
    ids = itertools.count()
    spent = 0
    batch_ms: list[float] = []

    async def loop(deadline: float) -> None:
        nonlocal spent
        while time.perf_counter() < deadline:
            orders = [
                SpendOrder(users[i % len(users)], "Bench", f"m{i}", priced)
                for i in (next(ids) for _ in range(args.batch))
            ]
            started = time.perf_counter()
            results = await ledger.debit_many(orders, live={}, now=int(time.time() * 1000))
            batch_ms.append((time.perf_counter() - started) * 1000)
            bad = [r for r in results if isinstance(r, Exception)]
            if bad:
                raise RuntimeError(f"{len(bad)} spends failed, e.g. {bad[0]!r}")
            spent += len(results)

    await loop(time.perf_counter() + 1.0)  # warm up (connections, script cache)
    spent, batch_ms = 0, []
    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(loop(started + args.seconds) for _ in range(args.loops)))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    await ledger.aclose()
    await redis.aclose()
    return {
        "spends_per_s": spent / elapsed,
        "batch_p50_ms": statistics.median(batch_ms),
        "client_us_per_spend": cpu / max(1, spent) * 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark on both kinds of Redis and print the figures."""
    p = argparse.ArgumentParser(prog="python -m loadtest.cluster_bench", description=__doc__)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--loops", type=int, default=2)
    p.add_argument("--users", type=int, default=2000)
    p.add_argument("--funds", type=int, default=1, help="7,000 coins each")
    p.add_argument("--appendfsync", choices=("always", "everysec"), default="always")
    p.add_argument("--replicas", type=int, default=0, help="replicas per master (cluster)")
    p.add_argument("--wait-replicas", type=int, default=0, help="WAIT after each batch")
    p.add_argument("--only", choices=("single", "cluster"))
    args = p.parse_args(argv)
    fsync: Literal["always", "everysec"] = args.appendfsync
    with tempfile.TemporaryDirectory(prefix="gifting-cluster-bench-") as tmp:
        if args.only != "cluster":
            single = EmbeddedRedis(Path(tmp) / "single", appendfsync=fsync)
            single.start()
            try:
                figures = asyncio.run(_bench(single.url, args))
            finally:
                single.stop()
            print(_line("single Redis", figures, args))
        if args.only != "single":
            cluster = EmbeddedRedisCluster(
                Path(tmp) / "cluster", masters=3, replicas=args.replicas, appendfsync=fsync
            )
            cluster.start()
            try:
                figures = asyncio.run(_bench(cluster.url, args))
            finally:
                cluster.stop()
            print(_line(f"cluster 3 masters x{1 + args.replicas}", figures, args))
    return 0


def _line(name: str, f: dict[str, float], args: argparse.Namespace) -> str:
    return (
        f"{name:<22} {f['spends_per_s']:>9,.0f} spends/s  batch p50 {f['batch_p50_ms']:6.2f} ms"
        f"  client CPU {f['client_us_per_spend']:5.1f} us/spend"
        f"  (batch {args.batch}, loops {args.loops}, appendfsync {args.appendfsync},"
        f" WAIT {args.wait_replicas})"
    )


if __name__ == "__main__":
    raise SystemExit(main())
