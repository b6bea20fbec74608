"""PostgreSQL plumbing shared by the PostgreSQL ceiling and peer.

:class:`PgTarget` gives a measurement a fresh database on a private
PostgreSQL (:class:`gifting.embedded.EmbeddedPostgres`: ``fsync=on``,
``synchronous_commit=on``, like gifting's) or on a server the caller names,
and meters the CPU of the whole server (postmaster, backends, WAL writer).

:func:`run_jobs` is the load generator: ``connections`` asyncpg connections
spread over ``processes`` spawned processes, each running a *job* in a closed
loop (one operation in flight per connection) for a window, counting
operations, units (events, rows, debits) and per-operation latency.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import tempfile
import time
from array import array
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from loadtest.ceilings.common import (
    AsyncPipe,
    Child,
    Latency,
    ProcessCpu,
    asleep_until,
    close_all,
    machine_busy,
    machine_times,
    run_coroutine,
    sleep_until,
)

Op = Callable[[], Awaitable[int]]
"""One operation: returns the units it did (0: refused, e.g. insufficient funds)."""

Job = Callable[[asyncpg.Connection, Any, int], Awaitable[Op]]
"""``job(conn, params, worker_id)`` prepares a connection and returns its operation."""


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


class PgTarget:
    """A fresh database for one measurement; a context manager.

    With ``database_url`` the database is created on that server (which must
    run on this machine for its CPU to be read); otherwise a private
    PostgreSQL starts under ``data_dir`` (or a temporary folder) and stops on
    exit. The database is dropped on exit either way.
    """

    def __init__(
        self, database_url: str | None = None, *, data_dir: Path | str | None = None
    ) -> None:
        self._given = database_url
        self._data_dir = data_dir
        self._tmp: str | None = None
        self._server: Any = None
        self._admin_url = ""
        self.database = f"bench_{secrets.token_hex(4)}"
        self.url = ""
        self.cpu: ProcessCpu | None = None

    def __enter__(self) -> Self:
        from gifting.embedded import EmbeddedPostgres

        try:
            if self._given is None:
                if self._data_dir is None:
                    self._tmp = tempfile.mkdtemp(prefix="ceiling-pg-")
                self._server = EmbeddedPostgres(self._data_dir or self._tmp or ".")
                self._server.start()
                self._admin_url = self._server.url
            else:
                self._admin_url = self._given
            postmaster = run_coroutine(self._create)
            self.url = _with_database(self._admin_url, self.database)
            self.cpu = ProcessCpu(postmaster, tree=True)
        except BaseException:
            self._cleanup()
            raise
        return self

    async def _create(self) -> int:
        """Create the database; return the postmaster's pid (our backend's parent)."""
        import psutil  # type: ignore[import-untyped,unused-ignore]

        conn = await asyncpg.connect(self._admin_url)
        try:
            await conn.execute(f'CREATE DATABASE "{self.database}"')
            backend = int(await conn.fetchval("SELECT pg_backend_pid()"))
            parent = psutil.Process(backend).parent()  # while our backend lives
        finally:
            await conn.close()
        assert parent is not None
        return int(parent.pid)

    async def _drop(self) -> None:
        conn = await asyncpg.connect(self._admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        finally:
            await conn.close()

    def server_cpu_s(self) -> float:
        """Cumulative CPU seconds of the PostgreSQL server tree."""
        assert self.cpu is not None
        return self.cpu.seconds()

    def _cleanup(self) -> None:
        try:
            if self.url:
                run_coroutine(self._drop)
        finally:
            if self._server is not None:
                self._server.stop()
                self._server = None
            if self._tmp is not None:
                shutil.rmtree(self._tmp, ignore_errors=True)
                self._tmp = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._cleanup()


@dataclass(frozen=True, slots=True)
class JobFigures:
    """What :func:`run_jobs` measured in its window."""

    ops_per_s: float
    units_per_s: float
    latency: Latency
    ops: int
    units: int
    refused: int
    connections: int
    processes: int
    duration_s: float
    server_cpu_s: float
    generator_cpu_s: float
    machine_busy: float


class _Window:
    def __init__(self) -> None:
        self.recording = False
        self.running = True
        self.ops = 0
        self.units = 0
        self.refused = 0
        self.lat = array("d")


async def _job_worker(pipe: AsyncPipe, arg: tuple[str, Job, Any, int, int]) -> None:
    url, job, params, tasks, first_id = arg
    conns = list(await asyncio.gather(*(asyncpg.connect(url) for _ in range(tasks))))
    try:
        ops = [await job(c, params, first_id + i) for i, c in enumerate(conns)]
        pipe.send("ready", len(ops))
        kind, window = await pipe.recv()
        if kind != "window":
            return
        t_start, t0, t1 = window
        w = _Window()
        marks: dict[str, float] = {}

        async def clock() -> None:
            await asleep_until(t0)
            w.recording = True
            marks["w0"], marks["c0"] = time.monotonic(), time.process_time()
            await asleep_until(t1)
            w.recording = False
            w.running = False
            marks["w1"], marks["c1"] = time.monotonic(), time.process_time()

        async def loop(op: Op) -> None:
            while w.running:
                began = time.perf_counter()
                units = await op()
                took = time.perf_counter() - began
                if w.recording:
                    w.ops += 1
                    w.units += units
                    w.refused += units == 0
                    w.lat.append(took)

        await asleep_until(t_start)
        await asyncio.gather(clock(), *(loop(op) for op in ops))
        pipe.send(
            "result",
            {
                "ops": w.ops,
                "units": w.units,
                "refused": w.refused,
                "lat": w.lat.tobytes(),
                "window_s": marks["w1"] - marks["w0"],
                "cpu_s": marks["c1"] - marks["c0"],
            },
        )
        await pipe.recv()
    finally:
        await asyncio.gather(*(c.close(timeout=5) for c in conns), return_exceptions=True)


def run_jobs(
    url: str,
    job: Job,
    params: Any,
    *,
    connections: int,
    processes: int,
    duration_s: float,
    warmup_s: float,
    server_cpu: Callable[[], float],
) -> JobFigures:
    """Run ``job`` on ``connections`` connections over ``processes`` processes; measure a window.

    ``job`` must be a module-level function (it is sent to spawned processes).
    """
    if processes < 1 or connections < processes:
        raise ValueError("need at least one process and one connection per process")
    shares = [len(range(i, connections, processes)) for i in range(processes)]
    firsts = [sum(shares[:i]) for i in range(processes)]
    workers = [
        Child(_job_worker, (url, job, params, shares[i], firsts[i]), name=f"pg-gen-{i}")
        for i in range(processes)
    ]
    try:
        for w in workers:
            w.recv(60.0, expect="ready")
        t_start = time.monotonic() + 0.05
        t0 = t_start + warmup_s
        t1 = t0 + duration_s
        for w in workers:
            w.send("window", (t_start, t0, t1))
        sleep_until(t0)
        s0, m0 = server_cpu(), machine_times()
        sleep_until(t1)
        s1, m1 = server_cpu(), machine_times()
        results = [w.recv(duration_s + 60.0, expect="result") for w in workers]
    finally:
        close_all(workers)
    lat: list[float] = []
    for r in results:
        lat.extend(array("d", r["lat"]))
    return JobFigures(
        ops_per_s=sum(r["ops"] / r["window_s"] for r in results),
        units_per_s=sum(r["units"] / r["window_s"] for r in results),
        latency=Latency.of_seconds(lat),
        ops=sum(r["ops"] for r in results),
        units=sum(r["units"] for r in results),
        refused=sum(r["refused"] for r in results),
        connections=connections,
        processes=processes,
        duration_s=max(r["window_s"] for r in results),
        server_cpu_s=s1 - s0,
        generator_cpu_s=sum(r["cpu_s"] for r in results),
        machine_busy=machine_busy(m0, m1),
    )
