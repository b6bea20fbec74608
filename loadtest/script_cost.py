"""Redis CPU per settled gift through the hub's scripts, split debit / settle.

A private redis-server (:class:`gifting.embedded.EmbeddedRedis`, the
embedded default ``appendfsync always``) gets funded viewers; then batches of
gifts go through the hub's two round trips as :mod:`gifting.hub.spends` sends
them: the debit (:meth:`Ledger.debit_many`, one spend.lua call per gift) and
the settle (:meth:`Ledger.settle_many`: credit.lua + emit.lua per gift). Each
run reads ``INFO cpu`` (``used_cpu_sys`` + ``used_cpu_user``) and ``INFO
commandstats`` before and after (and EVALSHA's time around each debit round
trip), and reports µs of Redis per settled gift: process CPU, time inside
EVALSHA, and the debit's share of it. The median of ``--runs`` runs is
reported (the machine is shared and noisy)::

    python -m loadtest.script_cost --batch 128 --runs 3 --gifts 4000

Commit 41f610d of this file also ran the rejected ``spend_many.lua`` (a wallet
shard's spends in one call) against this path, interleaved: see
docs/architecture.md, "Three scripts per gift".
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from gifting.clock import now_ms
from gifting.core.catalog import load_catalog
from gifting.core.pricing import price_gift
from gifting.embedded import EmbeddedRedis
from gifting.hub.spends import Settled, settled_entry
from gifting.store.keys import Keys
from gifting.store.ledger import Ledger, SpendOrder, SpendResult
from gifting.store.rooms import RoomLog
from gifting.store.scripts import ScriptCall
from gifting.store.streams import Streams


async def _cpu(redis: Redis) -> tuple[float, dict[str, float]]:
    info: dict[str, Any] = await redis.info("cpu")
    stats: dict[str, Any] = await redis.info("commandstats")
    usec = {k.removeprefix("cmdstat_"): float(v["usec"]) for k, v in stats.items()}
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"]), usec


async def _run(
    ledger: Ledger, rooms: RoomLog,
    orders: Sequence[SpendOrder], batch: int, redis: Redis, stream: str,
) -> dict[str, float]:  # fmt: skip
    cpu0, usec0 = await _cpu(redis)
    settled = 0
    debit_us = 0.0
    for at in range(0, len(orders), batch):
        chunk = orders[at : at + batch]
        now = now_ms()
        results: list[Any]
        before = (await _cpu(redis))[1].get("evalsha", 0.0)
        results = await ledger.debit_many(chunk, live={stream: True}, now=now)
        debit_us += (await _cpu(redis))[1].get("evalsha", 0.0) - before
        done = [
            Settled(o, r, now)
            for o, r in zip(chunk, results, strict=True)
            if isinstance(r, SpendResult)
        ]
        entries = [settled_entry(s) for s in done]
        emits = [ScriptCall("emit", *rooms.spend_emit_args(e)) for e in entries]
        failed = await ledger.settle_many(entries, emits)
        if failed:
            raise RuntimeError(f"settle failed: {failed[0]}")
        settled += len(done)
    cpu1, usec1 = await _cpu(redis)
    per = {k: (usec1[k] - usec0.get(k, 0.0)) / settled for k in usec1}
    return {
        "settled": settled,
        "cpu_us_per_gift": (cpu1 - cpu0) * 1e6 / settled,
        "evalsha_us_per_gift": per.get("evalsha", 0.0),
        "debit_evalsha_us_per_gift": debit_us / settled,
    }


async def main(args: argparse.Namespace) -> None:
    """Run the A/B and print one line per run and the medians."""
    catalog = load_catalog()
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(tmp)
        server.start()
        try:
            redis = Redis.from_url(server.url)
            keys = Keys("bench")
            ledger = Ledger(redis, keys, catalog)
            rooms = RoomLog(redis, keys, catalog)
            streams = Streams(redis, keys, catalog)
            stream = await _start_stream(streams, "creator-1")
            viewers = [f"viewer-{i}" for i in range(args.viewers)]
            for i, v in enumerate(viewers):
                await ledger.purchase(f"p-{i}", v, "coins_7000", 9999, "USD")
            price = price_gift(catalog, "rose", 1)
            figures: list[dict[str, float]] = []
            for run in range(args.runs):
                orders = [
                    SpendOrder(viewers[i % len(viewers)], "V", f"g-{run}-{i}", price, stream,
                               "creator-1")
                    for i in range(args.gifts)
                ]  # fmt: skip
                got = await _run(ledger, rooms, orders, args.batch, redis, stream)
                figures.append(got)
                print(f"run {run}: " + ", ".join(f"{k} {v:.1f}" for k, v in got.items()))
            cpu = statistics.median(f["cpu_us_per_gift"] for f in figures)
            ev = statistics.median(f["evalsha_us_per_gift"] for f in figures)
            debit = statistics.median(f["debit_evalsha_us_per_gift"] for f in figures)
            print(
                f"median of {args.runs}, batch {args.batch}: Redis CPU {cpu:.1f} µs/gift, "
                f"EVALSHA {ev:.1f} µs/gift, of which the debit {debit:.1f}"
            )
            await redis.aclose()
        finally:
            server.stop()


async def _start_stream(streams: Streams, creator: str) -> str:
    started = await streams.create(creator, "Creator", "bench")
    return started.stream


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(prog="python -m loadtest.script_cost", description=__doc__)
    p.add_argument("--batch", type=int, default=64, help="gifts per debit round trip")
    p.add_argument("--gifts", type=int, default=6000, help="gifts per run")
    p.add_argument("--runs", type=int, default=3, help="runs (the median is reported)")
    p.add_argument("--viewers", type=int, default=400, help="distinct senders")
    return p.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
