"""``python -m loadtest bench [--quick]``: the figures of docs/contract.md §6, in one run.

Everything is measured in this run on this machine, and every figure is
printed beside its ceiling (what a bare tool does here) and the peer a user
would pick instead, as ratios; absolute numbers are context only (the same
bare broadcast has measured 45k and 185k frames/s on two days here).

1. Ceilings: a minimal websockets echo server; a bare ``websockets.broadcast``;
   redis-benchmark running the project's own spend.lua; a bare batched insert
   into the same PostgreSQL.
2. Peers: python-socketio (Redis manager) and Node socket.io (Redis adapter)
   for the same fan-out; a PostgreSQL row-locking debit for the same spends.
3. gifting: settled gifts/s end to end (a gift storm, as fast as it goes);
   p50/p99 gift->ack and gift->overlay at 50% and 90% of that peak; room
   deliveries/s to overlays and to viewers (the ceilings' own clients);
   persister events/s draining a filled outbox; memory per idle connection
   with 10,000 connections on one hub.

The report goes to stdout, ``--report DIR`` (JSON + markdown) and, with
``--write-doc``, to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from loadtest.goals import as_json, evaluate
from loadtest.goals import render as render_goals

if TYPE_CHECKING:
    from gifting.core.catalog import Catalog
    from gifting.store.ledger import Ledger

Mode = Literal["quick", "full"]
DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
FANOUT_CONNECTIONS = 200


@dataclass
class Bench:
    """Every measurement of one run, by name (JSON-friendly once converted)."""

    mode: Mode
    started_at: str
    command: str
    machine: dict[str, Any]
    figures: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return _plain(asdict(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _machine() -> dict[str, Any]:
    import os

    import psutil

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }  # fmt: skip


async def _step(bench: Bench, name: str, run: Callable[[], Awaitable[Any]]) -> Any:
    print(f"== {name} ...", flush=True)
    t0 = time.monotonic()
    try:
        value = await run()
    except Exception as exc:
        bench.errors[name] = f"{type(exc).__name__}: {exc}"
        print(f"   FAILED: {bench.errors[name]}", flush=True)
        return None
    finally:
        bench.seconds[name] = round(time.monotonic() - t0, 1)
    bench.figures[name] = _plain(value)
    summary = getattr(value, "summary", None) or getattr(value, "summary_line", None)
    print(f"   {summary() if summary else value}  [{bench.seconds[name]} s]", flush=True)
    return value


def _sync(fn: Callable[..., Any], **kw: Any) -> Callable[[], Awaitable[Any]]:
    return lambda: asyncio.to_thread(fn, **kw)


# --------------------------------------------------------------------------- persister


@dataclass(frozen=True)
class PersisterFigures:
    """The persister draining a filled outbox into PostgreSQL (one consumer)."""

    spends: int
    events_persisted: int
    seconds: float

    @property
    def events_per_s(self) -> float:
        """Ledger events written per second (spends plus the credits it repaired)."""
        return self.events_persisted / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        """One line."""
        return (
            f"persister: {self.events_per_s:,.0f} events/s ({self.events_persisted:,} events "
            f"from {self.spends:,} spends in {self.seconds:.1f} s, one consumer)"
        )


async def fill_outboxes(ledger: Ledger, catalog: Catalog, spends: int) -> int:
    """Debit ``spends`` Rose gifts from 200 funded senders to 50 creators; return how many.

    What the persister then drains: every spend's creator credit and room
    emission are left for its repair, as after hubs that only debited.
    """
    from gifting.core.pricing import price_gift
    from gifting.store.ledger import SpendOrder

    senders = [f"v{i}" for i in range(200)]
    per = -(-spends // len(senders))
    for u in senders:
        await ledger.purchase(f"p-{u}", u, "coins_17500", 24999, "USD")
    rose = price_gift(catalog, "rose")
    now = int(time.time() * 1000)
    orders = [
        SpendOrder(u, u, f"m{n}", rose, "s-bench", f"c{n % 50}")
        for n in range(per) for u in senders
    ][:spends]  # fmt: skip
    for i in range(0, len(orders), 1000):
        await ledger.debit_many(orders[i : i + 1000], live={"s-bench": True}, now=now)
    return len(orders)


async def persister_rate(spends: int) -> PersisterFigures:
    """Fill the outboxes with ``spends`` gifts (creator credits left to repair), then drain."""
    import asyncpg
    from redis.asyncio import Redis

    from gifting.config import Settings
    from gifting.core.catalog import load_catalog
    from gifting.embedded import EmbeddedServers
    from gifting.persister.progress import wait_caught_up
    from gifting.persister.schema import apply_migrations
    from gifting.persister.service import make_consumer
    from gifting.store.keys import Keys
    from gifting.store.ledger import Ledger

    with tempfile.TemporaryDirectory(prefix="gifting-bench-") as tmp:
        servers = EmbeddedServers(Path(tmp), appendfsync="everysec")
        await asyncio.to_thread(servers.start)
        redis = Redis.from_url(servers.redis_url)
        pool = await asyncpg.create_pool(servers.database_url, min_size=1, max_size=4)
        assert pool is not None
        try:
            await apply_migrations(pool)
            catalog, keys = load_catalog(), Keys("b")
            ledger = Ledger(redis, keys, catalog)
            filled = await fill_outboxes(ledger, catalog, spends)
            settings = Settings(REDIS_URL=servers.redis_url, DATABASE_URL=servers.database_url,
                                GIFTING_KEY_PREFIX="b")  # fmt: skip
            consumer = make_consumer(settings, redis, pool, ledger)
            t0 = time.monotonic()
            consumer.start()
            await wait_caught_up(redis, keys, 600)
            # The credits the consumer repaired were appended to the outboxes: drain those too.
            await wait_caught_up(redis, keys, 600)
            seconds = time.monotonic() - t0
            await consumer.stop()
            persisted = await pool.fetchval("SELECT count(*) FROM ledger_events")
            return PersisterFigures(filled, int(persisted), seconds)
        finally:
            await ledger.aclose()
            await pool.close()
            await redis.aclose()
            await asyncio.to_thread(servers.stop)


@dataclass(frozen=True)
class LedgerSpendFigures:
    """gifting's money path alone: spend.lua debits by concurrent clients, one call each."""

    spends: int
    seconds: float
    clients: int

    @property
    def spends_per_s(self) -> float:
        """Debits per second."""
        return self.spends / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        """One line."""
        return (
            f"ledger spends: {self.spends_per_s:,.0f} spends/s ({self.spends:,} in "
            f"{self.seconds:.1f} s, {self.clients} concurrent clients, one round trip each, "
            "appendfsync always)"
        )


async def ledger_spend_rate(seconds: float, clients: int = 32) -> LedgerSpendFigures:
    """The peer's workload on gifting's ledger: ``clients`` tasks, one debit per round trip.

    Like the PostgreSQL row-locking debit (one transaction per spend over 32
    connections, 10,000 wallets), each spend is one spend.lua call that
    debits, records the result under its id and appends the ledger event.
    """
    from redis.asyncio import Redis

    from gifting.core.catalog import load_catalog
    from gifting.core.pricing import price_gift
    from gifting.embedded import EmbeddedRedis
    from gifting.store.keys import Keys
    from gifting.store.ledger import Ledger, SpendOrder

    with tempfile.TemporaryDirectory(prefix="gifting-bench-") as tmp:
        server = EmbeddedRedis(Path(tmp), appendfsync="always")
        await asyncio.to_thread(server.start)
        redis = Redis.from_url(server.url, max_connections=clients + 4)
        try:
            catalog = load_catalog()
            keys = Keys("b")
            ledger = Ledger(redis, keys, catalog)
            users = [f"w{i}" for i in range(10_000)]
            for i in range(0, len(users), 500):
                pipe = redis.pipeline(transaction=False)
                for u in users[i : i + 500]:
                    pipe.hset(keys.wallet(u), "coins", 1_000_000)
                await pipe.execute()
            rose = price_gift(catalog, "rose")
            done = 0
            stop = time.monotonic() + seconds

            async def client(k: int) -> None:
                nonlocal done
                n = 0
                while time.monotonic() < stop:
                    u = users[(k * 7919 + n * 31) % len(users)]
                    await ledger.spend(SpendOrder(u, u, f"m{k}-{n}", rose), live=True)
                    n += 1
                    done += 1

            t0 = time.monotonic()
            await asyncio.gather(*(client(k) for k in range(clients)))
            return LedgerSpendFigures(done, time.monotonic() - t0, clients)
        finally:
            await redis.aclose()
            await asyncio.to_thread(server.stop)


# --------------------------------------------------------------------------- the run


async def run_bench(mode: Mode, command: str) -> Bench:
    """Every measurement, in order; a failing one is recorded and the rest go on."""
    from loadtest.ceilings.broadcast import broadcast_ceiling
    from loadtest.ceilings.echo import echo_ceiling
    from loadtest.ceilings.pg_insert import pg_insert_ceiling
    from loadtest.ceilings.redis_spend import redis_spend_ceiling
    from loadtest.config import Mix, ServerOptions, StormConfig
    from loadtest.fanout import gifting_fanout, idle_memory
    from loadtest.peers.pg_debit import pg_debit_peer
    from loadtest.peers.socketio_node import socketio_node_fanout
    from loadtest.peers.socketio_py import socketio_py_fanout
    from loadtest.storm import run_storm

    quick = mode == "quick"
    bench = Bench(mode, datetime.now(UTC).isoformat(timespec="seconds"), command, _machine())
    fan = {"duration_s": 3.0 if quick else 10.0, "connections": FANOUT_CONNECTIONS}
    storm_s = 6.0 if quick else 20.0

    await _step(bench, "echo_ceiling", _sync(echo_ceiling, mode=mode))
    await _step(bench, "broadcast_ceiling", _sync(broadcast_ceiling, mode=mode, **fan))
    await _step(bench, "redis_spend_ceiling", _sync(redis_spend_ceiling, mode=mode))
    await _step(bench, "pg_insert_ceiling", _sync(pg_insert_ceiling, mode=mode))
    await _step(bench, "socketio_py", _sync(socketio_py_fanout, mode=mode, **fan))
    await _step(bench, "socketio_node", _sync(socketio_node_fanout, mode=mode, **fan))
    await _step(bench, "pg_debit", _sync(pg_debit_peer, mode=mode))
    await _step(bench, "ledger_spends", lambda: ledger_spend_rate(2.0 if quick else 10.0))

    for kind in ("overlay", "viewer"):
        await _step(
            bench, f"gifting_{kind}s",
            lambda k=kind: gifting_fanout(k, warmup_s=1.0, **fan),  # type: ignore[misc]
        )  # fmt: skip

    storm = {"rooms": 4, "viewers": 50, "overlays": 2, "duration_s": storm_s, "setup": "store",
             "mix": Mix(retry_share=0.0, broke_share=0.0, bad_share=0.0),
             "server": ServerOptions(persister="separate")}  # fmt: skip
    profiled = {**storm, "server": ServerOptions(persister="separate", profile=True)}
    reports = Path(tempfile.mkdtemp(prefix="gifting-bench-storm-"))
    peak = await _step(
        bench, "storm_peak",
        lambda: run_storm(
            StormConfig(rate=None, label="peak", report_dir=reports / "peak", **profiled)
        ),
    )  # fmt: skip
    # The same storm on a private 3-master Redis Cluster: goal 1 is per process on both.
    cluster = {**storm, "server": ServerOptions(persister="separate", cluster=True)}
    await _step(
        bench, "storm_cluster_peak",
        lambda: run_storm(
            StormConfig(rate=None, label="cluster peak", report_dir=reports / "cluster", **cluster)
        ),
    )  # fmt: skip
    if peak is not None and peak.settled_gifts_per_s > 0:
        for share in (0.5, 0.9):
            rate = share * peak.settled_gifts_per_s
            await _step(
                bench, f"storm_{int(share * 100)}",
                lambda r=rate, s=share: run_storm(  # type: ignore[misc]
                    StormConfig(rate=r, label=f"{int(s * 100)}% of peak", **storm)
                ),
            )  # fmt: skip
    await _step(bench, "persister", lambda: persister_rate(20_000 if quick else 100_000))
    await _step(bench, "idle_connections", lambda: idle_memory(2_000 if quick else 10_000))
    return bench


# --------------------------------------------------------------------------- the report


def _get(d: dict[str, Any], *path: str) -> float | None:
    cur: Any = d
    for p in path:
        if not isinstance(cur, dict) or p not in cur:
            return None
        cur = cur[p]
    return float(cur) if isinstance(cur, int | float) else None


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a is not None and b else "n/a"


def _n(x: float | None, unit: str = "") -> str:
    return "n/a" if x is None else f"{x:,.0f}{unit}"


def render(bench: Bench) -> str:
    """The markdown report: figures with their ratios, goals met or not, and the command."""
    f = bench.figures
    echo = _get(f, "echo_ceiling", "messages_per_s")
    bcast = _get(f, "broadcast_ceiling", "deliveries_per_s")
    rbench = _get(f, "redis_spend_ceiling", "pipelined", "spends_per_s")
    rbench1 = _get(f, "redis_spend_ceiling", "unpipelined", "spends_per_s")
    pgins = _get(f, "pg_insert_ceiling", "events_per_s")
    sio_py = _get(f, "socketio_py", "deliveries_per_s")
    sio_node = _get(f, "socketio_node", "deliveries_per_s")
    debit = _get(f, "pg_debit", "spends_per_s")
    ledger = f.get("ledger_spends") or {}
    spends = ledger["spends"] / ledger["seconds"] if ledger.get("seconds") else None
    overlays = _get(f, "gifting_overlays", "deliveries_per_s")
    viewers = _get(f, "gifting_viewers", "deliveries_per_s")
    settled = _get(f, "storm_peak", "settled_gifts_per_s")
    lag_peak = _get(f, "storm_peak", "persister", "lag_max_ms")
    p_half = _get(f, "storm_50", "overlay", "p99_ms")
    persister = f.get("persister") or {}
    pers_rate = (
        persister["events_persisted"] / persister["seconds"] if persister.get("seconds") else None
    )
    idle = f.get("idle_connections") or {}
    idle_kib = (
        (idle["rss_after_mib"] - idle["rss_before_mib"]) * 1024 / idle["connections"]
        if idle.get("connections") else None
    )  # fmt: skip

    def met(ok: bool | None) -> str:
        return "n/a" if ok is None else ("met" if ok else "**not met**")

    def ge(a: float | None, b: float | None, k: float = 1.0) -> bool | None:
        return None if a is None or b is None else a >= k * b

    lines = [
        "# Benchmarks",
        "",
        "Measured by `python -m loadtest bench"
        + (" --quick" if bench.mode == "quick" else "")
        + "` (the command that reproduces every figure below) on "
        + f"{bench.started_at}, on this project's 2-core machine with the load generators on it: "
        + f"{bench.machine.get('cpu_model', '')}, {bench.machine.get('cpus')} CPUs, "
        + f"{bench.machine.get('memory_gib')} GiB, Python {bench.machine.get('python')}. "
        + "Only ratios within one run count (contract §6, §8); absolute figures are context.",
        "",
        "## Goals (issue 18): the gift path at a fraction of today's CPU",
        "",
        "Each goal is a ratio to a figure measured in this same run (`bench.json` holds them "
        "under `goals`). CPU per settled gift sums every process of the system (hubs, Redis, "
        "persisters, PostgreSQL); the load generators, on the same cores, are reported apart.",
        "",
        *render_goals(evaluate(f)),
        "",
        "## Earlier goals (issue 6)",
        "",
        "| goal | measured | verdict |",
        "| --- | --- | --- |",
        f"| settled gifts/s >= 0.5 x websockets echo | {_n(settled)} vs {_n(echo)} msg/s = "
        f"{_ratio(settled, echo)} | {met(ge(settled, echo, 0.5))} |",
        f"| room events delivered/s to viewers >= Node socket.io | {_n(viewers)} vs {_n(sio_node)}"
        f" = {_ratio(viewers, sio_node)} | {met(ge(viewers, sio_node))} |",
        f"| overlay deliveries/s >= 0.7 x bare broadcast | {_n(overlays)} vs {_n(bcast)} = "
        f"{_ratio(overlays, bcast)} | {met(ge(overlays, bcast, 0.7))} |",
        f"| p99 gift->overlay <= 50 ms at 50% of peak | {_n(p_half, ' ms')} | "
        f"{met(None if p_half is None else p_half <= 50)} |",
        f"| persister keeps up at peak (bounded lag) | max lag {_n(lag_peak, ' ms')} during the "
        f"peak storm | {met(None if lag_peak is None else lag_peak <= 5000)} |",
        f"| ahead of python-socketio on fan-out | viewers {_ratio(viewers, sio_py)}, overlays "
        f"{_ratio(overlays, sio_py)} | {met(ge(min(viewers or 0, overlays or 0), sio_py))} |",
        f"| ahead of Node socket.io on fan-out | viewers {_ratio(viewers, sio_node)}, overlays "
        f"{_ratio(overlays, sio_node)} | {met(ge(min(viewers or 0, overlays or 0), sio_node))} |",
        f"| ahead of the PostgreSQL row-locking debit on spends (same workload: 32 clients, one "
        f"debit per round trip) | {_n(spends)} vs {_n(debit)} = {_ratio(spends, debit)} | "
        f"{met(ge(spends, debit))} |",
        f"| 10,000 concurrent connections on one hub process | {_n(idle.get('connections'))} held"
        f"{'' if idle.get('held', False) else ' (not all)'} | "
        f"{met(None if not idle else bool(idle.get('held')) and idle['connections'] >= 10_000)} |",
        "",
        "## Figures",
        "",
        "| figure | gifting | ceiling (ratio) | peer (ratio) |",
        "| --- | --- | --- | --- |",
        f"| settled gifts/s end to end (storm, 4 rooms x 50 viewers) | {_n(settled)} | "
        f"echo {_n(echo)} ({_ratio(settled, echo)}); redis-benchmark spend.lua {_n(rbench)} "
        f"pipelined ({_ratio(settled, rbench)}), {_n(rbench1)} unpipelined | PostgreSQL debit "
        f"{_n(debit)} ({_ratio(settled, debit)}) |",
        f"| ledger spends/s (32 clients, one spend.lua per round trip) | {_n(spends)} | "
        f"redis-benchmark spend.lua {_n(rbench1)} unpipelined ({_ratio(spends, rbench1)}) | "
        f"PostgreSQL debit {_n(debit)} ({_ratio(spends, debit)}) |",
        f"| overlay deliveries/s ({FANOUT_CONNECTIONS} conns, one frame per event) | "
        f"{_n(overlays)} | broadcast {_n(bcast)} ({_ratio(overlays, bcast)}) | python-socketio "
        f"{_n(sio_py)} ({_ratio(overlays, sio_py)}); Node socket.io {_n(sio_node)} "
        f"({_ratio(overlays, sio_node)}) |",
        f"| viewer event deliveries/s ({FANOUT_CONNECTIONS} conns, batched) | "
        f"{_n(viewers)} | broadcast {_n(bcast)} ({_ratio(viewers, bcast)}) | python-socketio "
        f"{_n(sio_py)} ({_ratio(viewers, sio_py)}); Node socket.io {_n(sio_node)} "
        f"({_ratio(viewers, sio_node)}) |",
        f"| persister events/s | {_n(pers_rate)} | batched insert {_n(pgins)} "
        f"({_ratio(pers_rate, pgins)}) | |",
        f"| memory per idle connection | {idle_kib:.1f} KiB"
        if idle_kib is not None
        else "| memory per idle connection | n/a",
    ]
    lines[-1] += f" ({_n(idle.get('connections'))} connections) | | |"
    lines += ["", "## Latency at 50% and 90% of peak", "",
              "| load | settled gifts/s | gift->ack p50 / p99 | gift->overlay p50 / p99 |",
              "| --- | --- | --- | --- |"]  # fmt: skip
    for key, label in (
        ("storm_peak", "peak"),
        ("storm_50", "50%"),
        ("storm_90", "90%"),
        ("storm_cluster_peak", "peak, cluster"),
    ):
        s = f.get(key)
        if not s:
            continue
        lines.append(
            f"| {label} | {_n(s.get('settled_gifts_per_s'))} | "
            f"{s['ack']['p50_ms']:.1f} / {s['ack']['p99_ms']:.1f} ms | "
            f"{s['overlay']['p50_ms']:.1f} / {s['overlay']['p99_ms']:.1f} ms |"
        )
    peak = f.get("storm_peak") or {}
    for key, title in (("storm_peak", "peak"), ("storm_cluster_peak", "peak, 3-master cluster")):
        storm = f.get(key) or {}
        rate = _get(storm, "settled_gifts_per_s")
        if not rate or not storm.get("server_cpu"):
            continue
        roles = dict(storm["server_cpu"])
        roles["load generator"] = (storm.get("generator_cpu") or {}).get("total_cores", 0.0)
        busy = (storm.get("machine_cpu") or {}).get("busy_cores")
        lines += [
            "", f"## CPU per settled gift ({title}: {rate:,.0f} gifts/s)", "",
            "Every part of the system shares the machine's 2 cores in this storm "
            f"(busy: {busy} of 2 cores). Microseconds of CPU per settled gift, by process:", "",
            "| process | cores | µs per gift |", "| --- | --- | --- |",
        ]  # fmt: skip
        system = 0.0
        for role, cores in roles.items():
            if role != "load generator":
                system += cores
            lines.append(f"| {role} | {cores:.2f} | {cores * 1e6 / rate:,.0f} |")
        lines.append(f"| the system (all but the generator) | {system:.2f} | "
                     f"{system * 1e6 / rate:,.0f} |")  # fmt: skip
    profile = peak.get("profile") or {}
    if profile.get("samples"):
        lines += [
            "", "## Where the hub's time goes at peak (py-spy, peak storm)", "",
            f"The hub process was busy {profile.get('busy_pct')}% of the send phase. By area "
            "(the package of the frame running):", "",
            ", ".join(f"{k} {v}%" for k, v in profile.get("by_area_pct", [])), "",
            "Inclusive (a function and what it calls), top entries:", "",
        ]  # fmt: skip
        lines += [f"- {v}% `{k}`" for k, v in profile.get("inclusive_pct", [])[:15]]
    lines += ["", "## CPU beside every figure", ""]
    for name, value in f.items():
        if not isinstance(value, dict):
            continue
        cpu = {k: v for k, v in value.items() if "cpu" in k or k == "machine_busy"}
        if cpu:
            lines.append(f"- `{name}`: " + ", ".join(f"{k} {v}" for k, v in cpu.items()))
    if bench.errors:
        lines += ["", "## Measurements that failed in this run", ""]
        lines += [f"- `{k}`: {v}" for k, v in bench.errors.items()]
    lines += ["", "Seconds per measurement: " + ", ".join(
        f"{k} {v}" for k, v in bench.seconds.items())]  # fmt: skip
    return "\n".join(lines) + "\n"


#: docs/benchmarks.md keeps what follows this line when the bench rewrites it.
ANALYSIS_MARKER = "<!-- analysis: written by hand, kept by `bench --write-doc` -->"


def kept_analysis(doc: Path) -> str:
    """The hand-written analysis of ``doc`` (from :data:`ANALYSIS_MARKER` on), or ""."""
    if not doc.exists():
        return ""
    text = doc.read_text()
    at = text.find(ANALYSIS_MARKER)
    return "" if at < 0 else "\n" + text[at:]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the report; write it where asked."""
    parser = argparse.ArgumentParser(prog="python -m loadtest bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short windows (< 5 minutes)")
    parser.add_argument("--report", type=Path, help="write bench.json and bench.md here")
    parser.add_argument("--write-doc", action="store_true", help=f"also write {DOC}")
    parser.add_argument(
        "--from-json", type=Path, help="render a saved bench.json again instead of measuring"
    )
    args = parser.parse_args(argv)
    mode: Mode = "quick" if args.quick else "full"
    command = "python -m loadtest bench" + (" --quick" if args.quick else "")
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        saved.pop("goals", None)  # derived: evaluated again from the figures
        bench = Bench(**saved)
    else:
        bench = asyncio.run(run_bench(mode, command))
    text = render(bench)
    print(text)
    if args.report:
        args.report.mkdir(parents=True, exist_ok=True)
        data = {**_plain(asdict(bench)), "goals": as_json(evaluate(bench.figures))}
        (args.report / "bench.json").write_text(json.dumps(data, indent=2))
        (args.report / "bench.md").write_text(text)
    if args.write_doc:
        DOC.write_text(text + _NOTES + kept_analysis(DOC))
    return 1 if bench.errors else 0


_NOTES = """
## How to read it

- Fan-out figures count events reaching clients, not frames: viewers get the
  events of one loop tick in one `batch` frame, overlays get one frame per
  event. The same picows clients (2 processes) count the bare broadcast, both
  socket.io servers and gifting; the same ~300-byte gift event is sent.
- gifting's events take the real path: `emit.lua` (seq, history, PUBLISH) by
  a publisher process, Redis pub/sub to the hub, fan-out. The socket.io peers
  deliver locally and publish to Redis for other hosts.
- Settled gifts/s is a storm of 200 viewers in 4 rooms, each keeping one gift
  in flight (as fast as it goes), with 2 overlays per room, the persister in
  its own process, Redis with `appendfsync always`; every run ends with the
  money checks (acked = debited = shown on every overlay = persisted, audit).
- The peak storm, the hub, Redis, PostgreSQL, the persister and the load
  generators share the machine's 2 cores: the hub is one process (one core)
  and the rest of the machine is busy with the clients.
"""


if __name__ == "__main__":
    sys.exit(main())
