"""Redis CPU per settled gift, by how the hub batches its scripts (A/B, interleaved).

A private redis-server (:class:`gifting.embedded.EmbeddedRedis`, the
embedded default ``appendfsync always``) gets funded viewers; then batches of
gifts go through the hub's two round trips, debit then settle (credit +
emission, :meth:`Ledger.settle_many`), in one of two ways:

* ``single``: one spend.lua call per gift (the hub before spend_many.lua);
* ``many``: :meth:`Ledger.debit_many`, one spend_many.lua call per wallet shard.

The settle round trip is the same in both. Each run reads ``INFO cpu``
(``used_cpu_sys`` + ``used_cpu_user``) and ``INFO commandstats`` before and
after, and reports µs of Redis CPU per settled gift, total and per script
step. Modes alternate run by run (the machine is shared and noisy) and the
median of the runs is reported::

    python -m loadtest.script_cost --batch 64 --runs 3 --gifts 6000
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
from gifting.store.scripts import ScriptCall, Scripts
from gifting.store.spends import Spends, spend_outcome
from gifting.store.streams import Streams

MODES = ("single", "many")


async def _cpu(redis: Redis) -> tuple[float, dict[str, float]]:
    info: dict[str, Any] = await redis.info("cpu")
    stats: dict[str, Any] = await redis.info("commandstats")
    usec = {k.removeprefix("cmdstat_"): float(v["usec"]) for k, v in stats.items()}
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"]), usec


async def _run(
    mode: str, ledger: Ledger, spends: Spends, scripts: Scripts, rooms: RoomLog,
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
        if mode == "many":
            results = await ledger.debit_many(chunk, live={stream: True}, now=now)
        else:
            calls = [spends.call(o, live=True, now=now) for o in chunk]
            replies = await scripts.run_many(calls, lane="debit")
            results = [r if isinstance(r, Exception) else spend_outcome(r) for r in replies]
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
            scripts = Scripts(redis)
            spends = Spends(keys, scripts)
            rooms = RoomLog(redis, keys, catalog)
            streams = Streams(redis, keys, catalog)
            stream = await _start_stream(streams, "creator-1")
            viewers = [f"viewer-{i}" for i in range(args.viewers)]
            for i, v in enumerate(viewers):
                await ledger.purchase(f"p-{i}", v, "coins_7000", 9999, "USD")
            price = price_gift(catalog, "rose", 1)
            figures: dict[str, list[dict[str, float]]] = {m: [] for m in MODES}
            for run in range(args.runs):
                for mode in MODES if run % 2 == 0 else MODES[::-1]:
                    orders = [
                        SpendOrder(viewers[i % len(viewers)], "V", f"{mode}-{run}-{i}", price,
                                   stream, "creator-1")
                        for i in range(args.gifts)
                    ]  # fmt: skip
                    got = await _run(
                        mode, ledger, spends, scripts, rooms, orders, args.batch, redis, stream
                    )
                    figures[mode].append(got)
                    print(
                        f"run {run} {mode:6}: " + ", ".join(f"{k} {v:.1f}" for k, v in got.items())
                    )
            for mode in MODES:
                cpu = statistics.median(f["cpu_us_per_gift"] for f in figures[mode])
                ev = statistics.median(f["evalsha_us_per_gift"] for f in figures[mode])
                debit = statistics.median(f["debit_evalsha_us_per_gift"] for f in figures[mode])
                print(
                    f"median {mode:6} batch {args.batch}: Redis CPU {cpu:.1f} µs/gift, "
                    f"EVALSHA {ev:.1f} µs/gift, of which the debit {debit:.1f}"
                )
            await scripts.close()
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
    p.add_argument("--runs", type=int, default=3, help="runs of each mode (alternating)")
    p.add_argument("--viewers", type=int, default=400, help="distinct senders")
    return p.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
