"""Running a storm: the server, the rooms, the generator processes, the figures, the checks.

:func:`run_storm` is the one entry point (the CLI's ``storm`` and ``replay``
and the bench call it)::

    result = await run_storm(StormConfig(rooms=4, viewers=25, rate=2000))
    result.settled_gifts_per_s, result.ack.p99_ms, result.ok

It starts (or targets) the server, creates the rooms, spreads viewers and
overlays over ``processes`` spawned generator processes (:mod:`loadtest.worker`),
starts them at one common instant, samples CPU (every process by role) and
the persister's lag while they send, merges their histograms and counters,
then runs the checks (:mod:`loadtest.checks`) and writes the trace and the
report if asked. A failed check makes ``result.ok`` False with the reasons in
``result.failures``; it never raises for that.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import multiprocessing
import os
import platform
import random
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Final

import psutil
from redis.asyncio import Redis

from gifting.persister.progress import id_ms, outbox_progress
from gifting.store.cluster import connect
from gifting.store.keys import Keys
from loadtest import checks, profile
from loadtest.config import StormConfig
from loadtest.engagement import Engagement
from loadtest.plan import RoomInfo, Shot, ViewerSpec, WorkerPlan, WorkerResult, assign_worker
from loadtest.server import Target, target
from loadtest.setup import Catalog, create_rooms, fetch_catalog
from loadtest.stats import MACHINE, OTHER, CpuMeter, LatencySummary, merge, percentile_curve, tree
from loadtest.trace import Trace, TraceEvent, TraceWriter, read_trace
from loadtest.worker import worker_main

__all__ = ["StormError", "StormResult", "run_storm"]

#: Workers start this long after the parent says so (they all get the same instant).
START_DELAY_NS: Final = 300_000_000
READY_TIMEOUT_S: Final = 300.0


class StormError(RuntimeError):
    """The storm could not run (a generator process failed, the server did not start)."""


@dataclass
class StormResult:
    """Every figure of a run, the checks, and what it ran on (JSON-friendly)."""

    ok: bool
    failures: list[str]
    label: str
    started_at: str
    config: dict[str, Any]
    machine: dict[str, Any]
    server: str
    #: The send phase (s) and the span from the first send to the last first ack.
    duration_s: float
    active_s: float
    #: The pattern's peak (gift frames/s); None: as fast as possible, or a trace.
    target_rate: float | None
    settled_gifts_per_s: float
    peak_gifts_per_s: float
    deliveries_per_s: dict[str, float]
    ack: LatencySummary
    overlay: LatencySummary
    counts: dict[str, Any]
    generator_cpu: dict[str, Any]
    server_cpu: dict[str, float]
    #: The whole machine over the send phase: busy cores, and those used by
    #: processes outside this run (a shared machine's noise).
    machine_cpu: dict[str, Any]
    persister: dict[str, Any]
    schedule_lag_ms_max: float
    setup_s: float
    checks: dict[str, Any]
    series: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)
    report_dir: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The result as plain data."""
        return dataclasses.asdict(self)

    def summary_line(self) -> str:
        """One line: throughput, latency and CPU."""
        return (
            f"{self.settled_gifts_per_s:,.0f} settled gifts/s, "
            f"{self.deliveries_per_s.get('overlay_events', 0):,.0f} overlay + "
            f"{self.deliveries_per_s.get('viewer_events', 0):,.0f} viewer deliveries/s; "
            f"ack p50/p99 {self.ack.p50_ms:.1f}/{self.ack.p99_ms:.1f} ms, "
            f"overlay p50/p99 {self.overlay.p50_ms:.1f}/{self.overlay.p99_ms:.1f} ms; "
            f"generator {self.generator_cpu.get('total_cores', 0):.2f} cores, "
            f"server {sum(self.server_cpu.values()):.2f} cores"
        )


# --------------------------------------------------------------------------- layout


@dataclass
class _Layout:
    """Rooms, viewers and overlays, and which process owns each."""

    rooms: list[RoomInfo]
    viewers: list[list[ViewerSpec]]  # per process
    overlays: list[list[tuple[int, int]]]  # per process
    shots: list[list[Shot]]  # per process (trace replay only)
    total_viewers: int


def _storm_people(cfg: StormConfig, run: str) -> tuple[list[tuple[str, str]], list[ViewerSpec]]:
    rng = random.Random(cfg.seed)
    creators = [(f"{run}c{r + 1}", f"r{r + 1}") for r in range(cfg.rooms)]
    viewers = [
        ViewerSpec(
            f"{run}r{r + 1}v{j + 1}",
            f"u{r * cfg.viewers + j + 1}",
            r,
            broke=rng.random() < cfg.mix.broke_share,
        )
        for r in range(cfg.rooms)
        for j in range(cfg.viewers)
    ]
    return creators, viewers


def _trace_people(trace: Trace, run: str) -> tuple[list[tuple[str, str]], list[ViewerSpec]]:
    funds = trace.funds
    creators = [(f"{run}c{i + 1}", name) for i, name in enumerate(trace.rooms)]
    viewers = [
        ViewerSpec(f"{run}r{i + 1}{sender}", sender, i, coins=funds.get(sender))
        for i, (_, senders) in enumerate(trace.senders_by_room().items())
        for sender in senders
    ]
    return creators, viewers


def _layout(
    cfg: StormConfig, rooms: list[RoomInfo], viewers: list[ViewerSpec], trace: Trace | None
) -> _Layout:
    n_rooms = len(rooms)
    procs = max(1, min(cfg.processes, len(viewers)))
    per_viewers: list[list[ViewerSpec]] = [[] for _ in range(procs)]
    where: dict[tuple[int, str], tuple[int, int]] = {}
    seen_in_room: dict[int, int] = {}
    for spec in viewers:
        j = seen_in_room.get(spec.room, 0)
        seen_in_room[spec.room] = j + 1
        w = assign_worker(n_rooms, procs, spec.room, j)
        where[(spec.room, spec.symbol)] = (w, len(per_viewers[w]))
        per_viewers[w].append(spec)
    per_overlays: list[list[tuple[int, int]]] = [[] for _ in range(procs)]
    for room in range(n_rooms):
        for k in range(cfg.overlays):
            per_overlays[assign_worker(n_rooms, procs, room, k)].append((room, k))
    per_shots: list[list[Shot]] = [[] for _ in range(procs)]
    if trace is not None:
        index = {name: i for i, name in enumerate(trace.rooms)}
        for e in trace.events:
            w, local = where[(index[e.room], e.sender)]
            per_shots[w].append(Shot(e.t_ms / cfg.speed, local, e.gift, e.count, e.id))
    return _Layout(rooms, per_viewers, per_overlays, per_shots, len(viewers))


def _plans(
    cfg: StormConfig, layout: _Layout, tgt: Target, catalog: Catalog, run: str, duration: float
) -> list[WorkerPlan]:
    plans: list[WorkerPlan] = []
    timed = not cfg.as_fast_as_possible
    for w, specs in enumerate(layout.viewers):
        if not specs and not layout.overlays[w]:
            continue
        plans.append(
            WorkerPlan(
                index=len(plans), run_id=run, base_url=tgt.hub_url(len(plans)),
                ws_url="ws" + tgt.hub_url(len(plans)).removeprefix("http"),
                rooms=layout.rooms, viewers=specs, overlays=layout.overlays[w],
                mode="timed" if timed else "window", shots=layout.shots[w],
                pattern=None if cfg.trace else cfg.pattern,
                rate_share=len(specs) / max(1, layout.total_viewers), rate=cfg.rate,
                burst_factor=cfg.burst_factor, duration_s=duration, window=cfg.window,
                mix=cfg.mix, seed=cfg.seed, prices=catalog.prices, packages=catalog.packages,
                jwt_secret=tgt.jwt_secret, webhook_secret=tgt.webhook_secret,
                redis_url=tgt.redis_url, key_prefix=tgt.key_prefix, setup=cfg.setup,
                coins_per_viewer=cfg.coins_per_viewer, bucket_s=cfg.bucket_s,
                drain_timeout_s=cfg.drain_timeout_s, record=cfg.record is not None,
            )
        )  # fmt: skip
    return plans


# --------------------------------------------------------------------------- processes


class _Workers:
    """The spawned generator processes and their pipes."""

    def __init__(self, plans: list[WorkerPlan]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.procs: list[multiprocessing.process.BaseProcess] = []
        self.pipes: list[Connection] = []
        for plan in plans:
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=worker_main, args=(plan, child), name=f"storm-gen-{plan.index}", daemon=True
            )
            proc.start()
            child.close()
            self.procs.append(proc)
            self.pipes.append(parent)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None]

    async def gather(self, expected: str, timeout: float) -> list[Any]:  # noqa: ASYNC109
        """The next message of every process, which must be ``expected``."""

        def read(pipe: Connection) -> Any:
            if not pipe.poll(timeout):
                raise StormError(f"a generator process sent no {expected!r} in {timeout:.0f}s")
            kind, value = pipe.recv()
            if kind == "error":
                raise StormError(f"a generator process failed:\n{value}")
            if kind != expected:
                raise StormError(f"a generator process sent {kind!r}, expected {expected!r}")
            return value

        return list(await asyncio.gather(*(asyncio.to_thread(read, p) for p in self.pipes)))

    def send(self, kind: str, value: Any) -> None:
        for pipe in self.pipes:
            pipe.send((kind, value))

    def stop(self) -> None:
        for proc in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
        for pipe in self.pipes:
            pipe.close()


# --------------------------------------------------------------------------- sampling


@dataclass
class _Sampler:
    """Samples CPU of every process group and the persister's lag, every ``every`` s."""

    cpu: CpuMeter
    redis: Redis
    keys: Keys
    every: float
    lag: list[tuple[float, int, float]] = field(default_factory=list)  # (t, entries, age ms)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.cpu.read()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.cpu.read()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            self.cpu.read()
            try:
                progress = await outbox_progress(self.redis, self.keys)
            except Exception:  # the lag is a figure, not a check: keep sampling
                continue
            now_ms = time.time() * 1000
            entries = sum(p.pending + p.undelivered for p in progress)
            oldest = [id_ms(p.oldest_unacked) for p in progress if p.oldest_unacked]
            age = max(0.0, now_ms - min(oldest)) if oldest else 0.0
            self.lag.append((time.monotonic(), entries, age))


# --------------------------------------------------------------------------- the run


def _machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for mod in ("picows", "websockets", "uvicorn", "redis", "asyncpg", "msgspec"):
        try:
            versions[mod] = __import__(mod).__version__
        except (ImportError, AttributeError):
            continue
    return {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_avg": os.getloadavg(),
        "versions": versions,
    }


def _series(
    results: list[WorkerResult], bucket_s: float, sampler: _Sampler, t0_mono: float
) -> dict[str, Any]:
    n = max((len(s) for r in results for s in r.series.values()), default=0)
    out: dict[str, Any] = {"t": [round((i + 1) * bucket_s, 3) for i in range(n)]}
    for name in results[0].series if results else []:
        total = [0] * n
        for r in results:
            for i, v in enumerate(r.series[name]):
                total[i] += v
        out[f"{name}_per_s"] = [round(v / bucket_s, 1) for v in total]
    for kind in ("ack", "overlay"):
        per: list[list[bytes]] = [r.histograms.get(f"{kind}_by_bucket", []) for r in results]  # type: ignore[misc]
        p50, p99 = [], []
        for i in range(n):
            h = merge(b[i] for b in per if i < len(b))
            s = LatencySummary.of(h)
            p50.append(s.p50_ms if s.count else None)
            p99.append(s.p99_ms if s.count else None)
        out[f"{kind}_p50_ms"] = p50
        out[f"{kind}_p99_ms"] = p99
    out["cpu"] = sampler.cpu.series(t0_mono)
    out["persister_lag"] = [(round(t - t0_mono, 3), e, round(a, 1)) for t, e, a in sampler.lag]
    return out


async def _create(cfg: StormConfig, tgt: Target, creators: list[tuple[str, str]]) -> list[RoomInfo]:
    redis = connect(tgt.redis_url) if cfg.setup == "store" else None
    try:
        return await create_rooms(
            how=cfg.setup, base_url=tgt.base_url, jwt_secret=tgt.jwt_secret,
            creators=creators, redis=redis, key_prefix=tgt.key_prefix,
        )  # fmt: skip
    finally:
        if redis is not None:
            await redis.aclose()


def _write_trace(
    path: Path, results: list[WorkerResult], layout: _Layout, cfg: StormConfig
) -> None:
    events = sorted(
        (TraceEvent(t, room, sender, gift, count, cid)
         for r in results for (t, room, sender, gift, count, cid) in (r.trace or [])),
        key=lambda e: e.t_ms,
    )  # fmt: skip
    funds = {s.symbol: 70 for specs in layout.viewers for s in specs if s.broke}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        TraceWriter(
            f,
            description=f"recorded from a storm ({cfg.pattern}, rate {cfg.rate or 'max'}/s)",
            duration_ms=round(cfg.duration_s * 1000),
            rooms=[r.name for r in layout.rooms],
            funds=funds,
        ).write_all(events)


async def run_storm(
    config: StormConfig, *, progress: Callable[[str], None] | None = None
) -> StormResult:
    """Run one storm (or replay) end to end; see the module docstring."""
    say = progress or (lambda _msg: None)
    cfg = config
    trace = read_trace(cfg.trace) if cfg.trace is not None else None
    duration = cfg.duration_s
    if trace is not None and not cfg.as_fast_as_possible:
        duration = trace.duration_ms / 1000 / cfg.speed + 0.05
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    run = f"lt{secrets.token_hex(3)}"
    async with target(cfg.server) as tgt:
        say(f"server: {tgt.description} at {tgt.base_url}")
        catalog = await fetch_catalog(tgt.base_url)
        if trace is not None:
            creators, people = _trace_people(trace, run)
            unknown = {e.gift for e in trace.events} - set(catalog.prices)
            if unknown:
                raise StormError(f"the trace sends gifts the catalog lacks: {sorted(unknown)}")
        else:
            creators, people = _storm_people(cfg, run)
        rooms = await _create(cfg, tgt, creators)
        layout = _layout(cfg, rooms, people, trace)
        plans = _plans(cfg, layout, tgt, catalog, run, duration)
        say(f"{len(rooms)} rooms, {len(people)} viewers, {cfg.overlays} overlays/room, "
            f"{len(plans)} generator processes")  # fmt: skip
        redis = connect(tgt.redis_url)
        engagement: Engagement | None = None
        if cfg.mix.engagement and trace is None:
            engagement = Engagement(
                rooms, base_url=tgt.base_url, jwt_secret=tgt.jwt_secret,
                webhook_secret=tgt.webhook_secret, catalog=catalog, run=run,
                duration_s=duration,
            )  # fmt: skip
        workers = _Workers(plans)
        parent = psutil.Process()
        groups: dict[str, Callable[[], list[psutil.Process]]] = {
            f"generator-{i}": partial(tree, pid) for i, pid in enumerate(workers.pids)
        }
        groups["storm-parent"] = lambda: [parent]
        groups.update(tgt.processes)
        sampler = _Sampler(CpuMeter(groups), redis, Keys(tgt.key_prefix), cfg.bucket_s)
        spies: list[subprocess.Popen[bytes]] = []
        try:
            if engagement is not None:
                await engagement.setup()
                say(f"engagement in {len(engagement.rooms)} rooms: guests, videos, goals, boxes")
            setup = await workers.gather("ready", READY_TIMEOUT_S)
            sampler.start()
            t0 = time.monotonic_ns() + START_DELAY_NS
            t0_mono = t0 / 1e9
            if cfg.server.profile and cfg.report_dir is not None:
                spies = profile.start(tgt.app_pids, cfg.report_dir / "profile", duration)
            workers.send("start", t0)
            engaged: asyncio.Task[None] | None = None
            if engagement is not None:
                engaged = asyncio.create_task(engagement.send(duration, start=t0_mono))
            say(
                f"sending for {duration:.1f}s ..."
                if not cfg.as_fast_as_possible
                else f"sending as fast as possible (at most {duration:.0f}s) ..."
            )
            per_room = await workers.gather("sent", duration + cfg.drain_timeout_s + 60)
            profiled_s = min(duration, time.monotonic() - t0_mono)
            await asyncio.to_thread(profile.stop, spies)
            totals: dict[int, int] = {}
            for counts in per_room:
                for room, n in counts.items():
                    totals[room] = totals.get(room, 0) + n
            extra_gifts: dict[int, dict[str, int]] = {}
            extra_spends: dict[int, dict[str, int]] = {}
            if engagement is not None and engaged is not None:
                await engaged  # its gifts are in the rooms too: the overlays wait for them
                for room, acks in engagement.room_acks().items():
                    extra_gifts[room], extra_spends[room] = acks.gifts, acks.drops
                    totals[room] = totals.get(room, 0) + len(acks.gifts)
            workers.send("expect", totals)
            results: list[WorkerResult] = await workers.gather("result", cfg.drain_timeout_s + 60)
            say("checking ...")
            verification = await checks.verify(
                results, rooms, redis_url=tgt.redis_url, database_url=tgt.database_url,
                key_prefix=tgt.key_prefix, catch_up_timeout_s=max(60.0, cfg.drain_timeout_s),
                extra_gifts=extra_gifts, extra_spends=extra_spends,
            )  # fmt: skip
            if engagement is not None:
                say("waiting for the treasure boxes to close ...")
                await engagement.finish()
                coins = {i: t.coins for i, t in checks.room_totals(results).items()}
                report = await engagement.verify_at(
                    tgt.redis_url, tgt.database_url, tgt.key_prefix, coins
                )
                verification.checks += [checks.Check(c.name, c.ok, c.detail) for c in report.checks]
                verification.engagement = report.summary()
            await sampler.stop()
        finally:
            if engagement is not None:
                await engagement.aclose()
            workers.stop()
            await sampler.stop()
            await asyncio.to_thread(profile.stop, spies)
            await redis.aclose()
        result = _result(cfg, tgt, results, verification, sampler, t0_mono, setup, started_at)
        if spies and cfg.report_dir is not None:
            result.profile = profile.summarize(cfg.report_dir / "profile", profiled_s)
    if cfg.record is not None:
        _write_trace(cfg.record, results, layout, cfg)
    if cfg.report_dir is not None:
        from loadtest.report import write_report

        write_report(result, cfg.report_dir)
        result.report_dir = str(cfg.report_dir)
    return result


def _result(
    cfg: StormConfig,
    tgt: Target,
    results: list[WorkerResult],
    v: checks.Verification,
    sampler: _Sampler,
    t0_mono: float,
    setup: list[float],
    started_at: str,
) -> StormResult:
    duration = max((r.send_s for r in results), default=cfg.duration_s)
    acked = sum(r.new_acks for r in results)
    active = max((r.last_ack_s for r in results), default=0.0) or duration
    series = _series(results, cfg.bucket_s, sampler, t0_mono)
    acked_series = series.get("acked_per_s", [])
    peak = max(acked_series) if acked_series else 0.0
    cpu_window = sampler.cpu.between(t0_mono, t0_mono + active)
    gen = {k: v_ for k, v_ in cpu_window.items() if k.startswith("generator-")}
    gen_total = sum(gen.values())
    frames_in = sum(
        sum(r.series.get(s, [])) for r in results
        for s in ("overlay_events", "viewer_frames", "acked", "refused")
    )  # fmt: skip
    frames_out = sum(r.frames_sent for r in results)
    generator_cpu = {
        "per_process_cores": gen,
        "total_cores": round(gen_total, 3),
        "parent_cores": cpu_window.get("storm-parent", 0.0),
        "cpu_us_per_settled_gift": round(gen_total * active * 1e6 / acked, 1) if acked else None,
        "cpu_us_per_frame": (
            round(gen_total * active * 1e6 / (frames_in + frames_out), 2)
            if frames_in + frames_out else None
        ),
        "self_reported_cpu_s": [r.cpu_s for r in results],
    }  # fmt: skip
    server_cpu = {
        k: v_
        for k, v_ in cpu_window.items()
        if not k.startswith("generator-") and k not in ("storm-parent", MACHINE, OTHER)
    }
    machine_cpu = {
        "cores": os.cpu_count(),
        "busy_cores": cpu_window.get(MACHINE, 0.0),
        "other_processes_cores": cpu_window.get(OTHER, 0.0),
    }
    ack = LatencySummary.of(merge(r.histograms["ack"] for r in results))  # type: ignore[misc]
    overlay = LatencySummary.of(merge(r.histograms["overlay"] for r in results))  # type: ignore[misc]
    series["ack_curve"] = percentile_curve(merge(r.histograms["ack"] for r in results))  # type: ignore[misc]
    series["overlay_curve"] = percentile_curve(merge(r.histograms["overlay"] for r in results))  # type: ignore[misc]

    def total(name: str) -> int:
        return sum(sum(r.series.get(name, [])) for r in results)

    deliveries = {
        name: round(total(name) / active, 1)
        for name in ("overlay_events", "overlay_gifts", "viewer_events", "viewer_frames")
    }
    errors: dict[str, int] = {}
    closes: dict[str, int] = {}
    for r in results:
        for code, n in r.errors_by_code.items():
            errors[code] = errors.get(code, 0) + n
        for close, n in r.closes_by_code.items():
            closes[str(close)] = closes.get(str(close), 0) + n
    counts = {
        "frames_sent": frames_out,
        "gifts_sent": sum(r.gifts_sent for r in results),
        "retries_sent": sum(r.retries_sent for r in results),
        "bad_frames_sent": sum(r.bad_sent for r in results),
        "settled_gifts": acked,
        "replays": sum(r.replays for r in results),
        "refused_insufficient_funds": sum(r.refused_funds for r in results),
        "refused_bad_frames": sum(r.refused_bad for r in results),
        "retryable_errors": sum(r.retryable for r in results),
        "errors_by_code": errors,
        "viewer_reconnects": sum(r.viewer_reconnects for r in results),
        "overlay_reconnects": sum(o.reconnects for r in results for o in r.overlays),
        "server_closes_by_code": closes,
        "viewers": sum(r.viewers for r in results),
        "overlays": sum(len(r.overlays) for r in results),
    }
    lag_entries = max((e for _, e, _ in sampler.lag), default=0)
    lag_age = max((a for _, _, a in sampler.lag), default=0.0)
    failures = [f"{c.name}: {c.detail}" if c.detail else c.name for c in v.checks if not c.ok]
    lag = max((r.schedule_lag_ms_max for r in results), default=0.0)
    return StormResult(
        ok=v.ok,
        failures=failures,
        label=cfg.label
        or ("replay" if cfg.trace else "storm-max" if cfg.rate is None else f"storm-{cfg.pattern}"),
        started_at=started_at,
        config=_config_json(cfg),
        machine=_machine(),
        server=tgt.description,
        duration_s=round(duration, 3),
        active_s=round(active, 3),
        target_rate=None if cfg.trace else cfg.rate,
        settled_gifts_per_s=round(acked / active, 1) if active else 0.0,
        peak_gifts_per_s=round(peak, 1),
        deliveries_per_s=deliveries,
        ack=ack,
        overlay=overlay,
        counts=counts,
        generator_cpu=generator_cpu,
        server_cpu=server_cpu,
        machine_cpu=machine_cpu,
        persister={
            "lag_max_entries": lag_entries,
            "lag_max_ms": round(lag_age, 1),
            "catch_up_after_sends_s": v.persister_catch_up_s,
        },
        schedule_lag_ms_max=lag,
        setup_s=round(max(setup, default=0.0), 3),
        checks=checks.summary(v) | {"audit": v.audit, "engagement": v.engagement},
        series=series,
    )


def _config_json(cfg: StormConfig) -> dict[str, Any]:
    data = dataclasses.asdict(cfg)
    server = data["server"]
    for secret in ("jwt_secret", "webhook_secret"):
        if server.get(secret):
            server[secret] = "***"
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in data.items()}
