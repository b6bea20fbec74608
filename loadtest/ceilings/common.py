"""What every ceiling and peer shares: modes, figures, CPU meters, child processes.

Kept light on purpose (stdlib + psutil): generator and server processes are
spawned and import this module.

Child processes. :class:`Child` spawns ``entry(pipe, arg)`` in a fresh
interpreter (``spawn``: safe to call from a process that runs an event loop or
threads) and talks to it over a :mod:`multiprocessing` pipe with tuples
``(kind, payload)``. The child side runs an asyncio loop (uvloop when
installed) and reads the pipe with :class:`AsyncPipe`. A child that raises
sends ``("error", traceback)``, which :meth:`Child.recv` raises as
:class:`ChildError` in the parent.

Time. Windows are given as ``time.monotonic()`` instants: CLOCK_MONOTONIC is
system-wide on Linux, so a parent and its children agree on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Literal, TypeVar

import psutil  # type: ignore[import-untyped,unused-ignore]

Mode = Literal["quick", "full"]
"""``quick``: a second or so per measurement (tests); ``full``: long enough to trust."""

T = TypeVar("T")
HOST = "127.0.0.1"
_CTX = multiprocessing.get_context("spawn")


def pick(mode: Mode, quick: T, full: T) -> T:
    """``quick`` or ``full`` by mode (raises on an unknown mode)."""
    if mode == "quick":
        return quick
    if mode == "full":
        return full
    raise ValueError(f"mode must be 'quick' or 'full', not {mode!r}")


def cache_dir() -> Path:
    """Where the benchmark keeps what it installs (``$GIFTING_BENCH_CACHE`` or ~/.cache)."""
    env = os.environ.get("GIFTING_BENCH_CACHE")
    base = Path(env) if env else Path.home() / ".cache" / "gifting-bench"
    base.mkdir(parents=True, exist_ok=True)
    return base


# --------------------------------------------------------------------------- figures


@dataclass(frozen=True, slots=True)
class Latency:
    """Percentiles of a latency sample, in milliseconds (zeros when there is no sample)."""

    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    samples: int

    @classmethod
    def of_seconds(cls, values: Sequence[float]) -> Latency:
        """Nearest-rank percentiles of ``values`` given in seconds."""
        if not values:
            return cls(0.0, 0.0, 0.0, 0.0, 0)
        ordered = sorted(values)
        n = len(ordered)

        def rank(q: float) -> float:
            return ordered[min(n - 1, max(0, int(q * n + 0.5) - 1))] * 1000.0

        return cls(rank(0.50), rank(0.90), rank(0.99), ordered[-1] * 1000.0, n)

    def __str__(self) -> str:
        return f"p50 {self.p50_ms:.2f} ms, p99 {self.p99_ms:.2f} ms (n={self.samples})"


# --------------------------------------------------------------------------- CPU


class ProcessCpu:
    """Cumulative CPU seconds (user + system) of a process, optionally with its descendants.

    With ``tree=True`` (PostgreSQL: one backend process per connection) the
    CPU of every descendant seen at any reading is added; a descendant that
    exits between two readings loses what it used since the last one, so
    read around a window in which the processes live.
    """

    def __init__(self, pid: int, *, tree: bool = False) -> None:
        self.pid = pid
        self.tree = tree
        self._proc = psutil.Process(pid)
        self._known: dict[int, psutil.Process] = {pid: self._proc}
        self._last: dict[int, float] = {}

    @staticmethod
    def _cpu(proc: psutil.Process) -> float | None:
        try:
            t = proc.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return None
        return float(t.user + t.system)

    def seconds(self) -> float:
        """CPU seconds used so far (by the tree: the sum of the last readings of each process)."""
        if self.tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                for child in self._proc.children(recursive=True):
                    self._known.setdefault(child.pid, child)
        for pid, proc in list(self._known.items()):
            used = self._cpu(proc)
            if used is not None:
                self._last[pid] = used
        return sum(self._last.values())


class RedisCpu:
    """CPU seconds of a Redis server from ``INFO cpu`` (works for any Redis we can reach)."""

    def __init__(self, url: str) -> None:
        import redis  # local import: generator processes never need it

        self._client = redis.Redis.from_url(url)

    def seconds(self) -> float:
        """``used_cpu_user + used_cpu_sys`` of the server (main thread and I/O threads)."""
        info = self._client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    def close(self) -> None:
        """Close the INFO connection."""
        self._client.close()


def machine_times() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, all cores (softirq counts as busy)."""
    t = psutil.cpu_times()
    total = float(sum(t))
    idle = float(t.idle + getattr(t, "iowait", 0.0))
    return total - idle, total


def machine_busy(before: tuple[float, float], after: tuple[float, float]) -> float:
    """Fraction (0..1) of all the machine's cores that were busy between two ``machine_times``."""
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total > 0 else 0.0


def sleep_until(instant: float) -> None:
    """Block until ``time.monotonic()`` reaches ``instant``."""
    delay = instant - time.monotonic()
    if delay > 0:
        time.sleep(delay)


async def asleep_until(instant: float) -> None:
    """Await until ``time.monotonic()`` reaches ``instant``."""
    delay = instant - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


def run_coroutine(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, even if this thread runs a loop.

    With no loop running here it is ``asyncio.run``; otherwise a short-lived
    thread runs it, so a synchronous measurement is callable from async code.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(factory())
        except BaseException as exc:  # re-raised in the caller
            box["error"] = exc

    thread = threading.Thread(target=target, name="loadtest-coroutine")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- room event frames


def room_event_body(seq: int, *, stream: str = "s-bench") -> dict[str, Any]:
    """A gift room event as gifting puts it on the wire (protocol.md), ~300 bytes of JSON."""
    ts = 1_764_000_000_000 + seq
    return {
        "op": "event",
        "kind": "gift",
        "stream": stream,
        "seq": seq,
        "cursor": f"{ts}-0.{seq}",
        "event": f"e{ts:011x}5f3a9c0d2e1b",
        "ts": ts,
        "sender": {"id": "viewer-00042", "name": "Viewer Forty-Two"},
        "coins": 1,
        "gift": {"id": "rose", "name": "Rose", "coins": 1, "tier": 1, "streakable": True},
        "count": 1,
        "combo": seq % 50 + 1,
    }


def room_event_frame(seq: int, *, stream: str = "s-bench") -> bytes:
    """:func:`room_event_body` as compact JSON bytes (one text frame)."""
    import json

    return json.dumps(room_event_body(seq, stream=stream), separators=(",", ":")).encode()


# --------------------------------------------------------------------------- child processes


class ChildError(RuntimeError):
    """A child process failed (its traceback is the message) or stopped answering."""


Entry = Callable[["AsyncPipe", Any], Awaitable[None]]


def _child_main(conn: Connection, entry: Entry, arg: Any) -> None:
    """The spawned process: run ``entry(pipe, arg)`` on a fresh loop; report a failure."""
    try:
        import uvloop

        runner: Callable[[Coroutine[Any, Any, None]], None] = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency of gifting
        runner = asyncio.run

    async def main() -> None:
        pipe = AsyncPipe(conn)
        try:
            await entry(pipe, arg)
        finally:
            pipe.close()

    try:
        runner(main())
    except BaseException:
        with contextlib.suppress(OSError, ValueError):
            conn.send(("error", traceback.format_exc()))
        raise
    finally:
        conn.close()


class AsyncPipe:
    """The child's end of the pipe, read from the event loop."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(conn.fileno(), self._readable)
        # add_reader made the pipe non-blocking; a large send (latency samples) to a parent
        # busy reading another child would then fail with EAGAIN instead of waiting.
        os.set_blocking(conn.fileno(), True)
        self._open = True

    def _readable(self) -> None:
        try:
            while self._conn.poll():
                self._queue.put_nowait(self._conn.recv())
        except (EOFError, OSError):
            self._queue.put_nowait(("exit", None))
            self._loop.remove_reader(self._conn.fileno())
            self._open = False

    async def recv(self) -> tuple[str, Any]:
        """The next ``(kind, payload)`` from the parent (``("exit", None)`` once it is gone)."""
        return await self._queue.get()

    def send(self, kind: str, payload: Any = None) -> None:
        """Send ``(kind, payload)`` to the parent."""
        self._conn.send((kind, payload))

    def close(self) -> None:
        """Stop reading the pipe."""
        if self._open:
            self._loop.remove_reader(self._conn.fileno())
            self._open = False


class Child:
    """A spawned child process running ``entry(pipe, arg)``; the parent's handle."""

    def __init__(self, entry: Entry, arg: Any, *, name: str = "loadtest") -> None:
        parent, child = _CTX.Pipe()
        self._conn = parent
        self.name = name
        self.process = _CTX.Process(
            target=_child_main, args=(child, entry, arg), name=name, daemon=True
        )
        self.process.start()
        child.close()

    @property
    def pid(self) -> int:
        """The child's pid."""
        pid = self.process.pid
        assert pid is not None
        return pid

    def send(self, kind: str, payload: Any = None) -> None:
        """Send ``(kind, payload)`` to the child."""
        self._conn.send((kind, payload))

    def recv(self, timeout: float, expect: str | None = None) -> Any:
        """The payload of the next message (of kind ``expect`` if given) within ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self._conn.poll(left):
                alive = "alive" if self.process.is_alive() else "dead"
                raise ChildError(f"{self.name} ({alive}) sent nothing within {timeout:.1f} s")
            try:
                kind, payload = self._conn.recv()
            except EOFError:
                raise ChildError(f"{self.name} exited (code {self.process.exitcode})") from None
            if kind == "error":
                raise ChildError(f"{self.name} failed:\n{payload}")
            if expect is None or kind == expect:
                return payload

    def call(self, kind: str, payload: Any = None, *, timeout: float = 30.0) -> Any:
        """Send a command and return the payload of the child's reply of the same kind."""
        self.send(kind, payload)
        return self.recv(timeout, expect=kind)

    def close(self, timeout: float = 10.0) -> None:
        """Ask the child to exit; terminate it if it does not, then kill it."""
        if self.process.is_alive():
            with contextlib.suppress(OSError, ValueError):
                self.send("exit")
            self.process.join(timeout)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5.0)
        if self.process.is_alive():  # pragma: no cover - a wedged child
            self.process.kill()
            self.process.join(5.0)
        self._conn.close()


def close_all(children: Sequence[Child], timeout: float = 10.0) -> None:
    """Close every child (asks all first, so they exit in parallel)."""
    for c in children:
        if c.process.is_alive():
            with contextlib.suppress(OSError, ValueError):
                c.send("exit")
    deadline = time.monotonic() + timeout
    for c in children:
        c.close(max(0.1, deadline - time.monotonic()))


class ChildSource:
    """A fan-out source that is a spawned server process obeying ``start`` / ``stop``.

    The child answers ``("start", rate)`` once it emits and ``("stop", None)``
    with the number of events it emitted. Server CPU is the child's (and, with
    ``tree=True``, its descendants'); ``aux`` (e.g. a :class:`RedisCpu`) adds
    the CPU of a helper.
    """

    def __init__(self, child: Child, *, aux: RedisCpu | None = None, tree: bool = False) -> None:
        self.child = child
        self._cpu = ProcessCpu(child.pid, tree=tree)
        self._aux = aux

    def start(self, rate: float | None) -> None:
        """Start emitting (``rate`` events/s, or as fast as the server can)."""
        self.child.call("start", rate)

    def stop(self) -> int | None:
        """Stop emitting; the number of events emitted."""
        return int(self.child.call("stop"))

    def server_cpu_s(self) -> float:
        """Cumulative CPU seconds of the server process."""
        return self._cpu.seconds()

    def aux_cpu_s(self) -> float:
        """Cumulative CPU seconds of the helper, 0.0 without one."""
        return self._aux.seconds() if self._aux is not None else 0.0


class Pump:
    """Emits numbered events in a server process: as fast as it can, or at a fixed rate.

    As fast as it can means with backpressure: every ``check_every`` events
    ``backlogged()`` is asked whether the connections' buffers are too full,
    and the pump waits (1 ms steps) until they are not, so a run never piles
    up an unbounded backlog that would then take long to drain. The loop
    yields to the event loop after every event so I/O keeps flowing.
    """

    def __init__(
        self,
        emit: Callable[[int], Awaitable[None]],
        backlogged: Callable[[], bool],
        *,
        check_every: int = 8,
    ) -> None:
        self._emit = emit
        self._backlogged = backlogged
        self._every = check_every
        self._task: asyncio.Task[None] | None = None
        self._running = False
        self.sent = 0

    def start(self, rate: float | None) -> None:
        """Start emitting from the running loop."""
        self._running = True
        self._task = asyncio.get_running_loop().create_task(self._run(rate))

    async def stop(self) -> int:
        """Stop, wait for the event in progress; return how many were emitted."""
        self._running = False
        if self._task is not None:
            await self._task
            self._task = None
        return self.sent

    async def _run(self, rate: float | None) -> None:
        if rate is None:
            while self._running:
                await self._emit(self.sent)
                self.sent += 1
                if self.sent % self._every == 0 and self._backlogged():
                    # a socket buffer draining sets no event: poll it
                    while self._running and self._backlogged():  # noqa: ASYNC110
                        await asyncio.sleep(0.001)
                else:
                    await asyncio.sleep(0)
            return
        began = time.monotonic()
        while self._running:
            due = min(int((time.monotonic() - began) * rate) - self.sent, 1000)
            for _ in range(due):
                await self._emit(self.sent)
                self.sent += 1
            await asyncio.sleep(0.001)
