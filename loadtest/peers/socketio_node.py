"""Peer: Node's socket.io 4 with @socket.io/redis-adapter doing gifting's room fan-out.

On first use the npm packages (``socket.io@4``, ``@socket.io/redis-adapter``,
``redis``) are installed with ``npm ci`` from the committed
``node/package-lock.json`` into ``~/.cache/gifting-bench/node`` (or
``$GIFTING_BENCH_CACHE/node``), next to a copy of ``socketio_server.js``
(this folder), which ``node`` then runs against a private Redis. The server
and its clients do exactly what :mod:`loadtest.peers.socketio_py` does: every
client joins one room, the server emits the same room events to it, the raw
Engine.IO picows clients count them.

When Node, npm or the registry is missing, the figures come back with
``available=False`` and the reason; never a made-up number.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

from loadtest.ceilings.clients import FanoutFigures, FanoutSpec, measure_fanout
from loadtest.ceilings.common import HOST, Mode, ProcessCpu, RedisCpu, cache_dir, pick

__all__ = ["NODE_PACKAGES", "ensure_node_server", "socketio_node_fanout"]

_NODE_DIR = Path(__file__).with_name("node")
#: The committed manifest and lock: ``npm ci`` installs exactly what they pin.
_MANIFESTS = ("package.json", "package-lock.json")
NODE_PACKAGES: dict[str, str] = json.loads((_NODE_DIR / "package.json").read_text())["dependencies"]
_SCRIPT = Path(__file__).with_name("socketio_server.js")
NAME = "node socket.io + redis-adapter"


class NodeUnavailable(RuntimeError):
    """Node or its packages cannot be had on this machine (the message says why)."""


def ensure_node_server(*, timeout_s: float = 300.0) -> Path:
    """The runnable server script, installing the npm packages on first use.

    The packages come from ``loadtest/peers/node/package-lock.json`` (``npm
    ci``: the versions and integrity hashes it pins, nothing newer). Raises
    :class:`NodeUnavailable` with the reason when ``node`` / ``npm`` are
    missing or the install fails.
    """
    if shutil.which("node") is None:
        raise NodeUnavailable("node is not on PATH")
    folder = cache_dir() / "node"
    folder.mkdir(parents=True, exist_ok=True)
    changed = any(
        not (folder / name).exists()
        or (folder / name).read_bytes() != (_NODE_DIR / name).read_bytes()
        for name in _MANIFESTS
    )
    installed = all(
        (folder / "node_modules" / name / "package.json").exists() for name in NODE_PACKAGES
    )
    if changed or not installed:
        npm = shutil.which("npm")
        if npm is None:
            raise NodeUnavailable("npm is not on PATH")
        for name in _MANIFESTS:
            shutil.copyfile(_NODE_DIR / name, folder / name)
        try:
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=folder, capture_output=True, text=True, timeout=timeout_s, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise NodeUnavailable(f"npm ci took more than {timeout_s:.0f} s") from None
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            raise NodeUnavailable("npm ci failed: " + " | ".join(tail))
    script = folder / _SCRIPT.name
    source = _SCRIPT.read_text()
    if not script.exists() or script.read_text() != source:
        script.write_text(source)
    return script


class NodeServer:
    """``node socketio_server.js`` as a :class:`~loadtest.ceilings.clients.FanoutSource`."""

    def __init__(self, script: Path, redis_url: str, *, start_timeout_s: float = 30.0) -> None:
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        self.proc = subprocess.Popen(
            [shutil.which("node") or "node", str(script)],
            cwd=script.parent,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env={**os.environ, "REDIS_URL": redis_url, "NODE_ENV": "production"},
            text=True,
            bufsize=1,
        )
        self._lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        assert self.proc.stdout is not None
        threading.Thread(
            target=self._read, args=(self.proc.stdout,), name="node-stdout", daemon=True
        ).start()
        self.port = int(self._expect("ready", start_timeout_s))
        self._cpu = ProcessCpu(self.proc.pid)
        self._redis = RedisCpu(redis_url)

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with contextlib.suppress(ValueError):
                self._lines.put(json.loads(line))
        self._lines.put(None)

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-2000:]

    def _expect(self, key: str, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                msg = self._lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(
                    f"node sent no {key!r} within {timeout:.0f} s: {self._stderr_tail()}"
                ) from None
            if msg is None:
                raise RuntimeError(f"node exited: {self._stderr_tail()}")
            if key in msg:
                return msg[key]

    def _command(self, cmd: str, **fields: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, **fields}) + "\n")
        self.proc.stdin.flush()

    def start(self, rate: float | None) -> None:
        """Start emitting to the room."""
        self._command("start", rate=rate)
        self._expect("start", 30.0)

    def stop(self) -> int | None:
        """Stop emitting; the number of events emitted."""
        self._command("stop")
        return int(self._expect("stop", 30.0))

    def server_cpu_s(self) -> float:
        """Cumulative CPU seconds of the node process."""
        return self._cpu.seconds()

    def aux_cpu_s(self) -> float:
        """Cumulative CPU seconds of the adapter's Redis."""
        return self._redis.seconds()

    def close(self) -> None:
        """Ask node to exit; kill it after 5 s."""
        with contextlib.suppress(OSError, ValueError):
            self._command("exit")
        try:
            self.proc.wait(5.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5.0)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._redis.close()
        self._stderr.close()


def socketio_node_fanout(
    *,
    mode: Mode = "full",
    duration_s: float | None = None,
    connections: int = 200,
    processes: int = 2,
    rate: float | None = None,
    redis_url: str | None = None,
    install_timeout_s: float = 300.0,
) -> FanoutFigures:
    """Deliveries/s at ``connections`` clients of one Node socket.io room (Redis adapter).

    Installs the npm packages on first use (bounded by ``install_timeout_s``);
    returns ``available=False`` figures with the reason if that is impossible.
    Starts a private Redis for the adapter unless ``redis_url`` is given (its
    CPU is ``aux_cpu_s``). ``duration_s``: 1 s quick, 10 s full.
    """
    from gifting.embedded import EmbeddedRedis

    try:
        script = ensure_node_server(timeout_s=install_timeout_s)
    except NodeUnavailable as exc:
        return FanoutFigures.unavailable(NAME, str(exc), connections)
    duration = duration_s if duration_s is not None else pick(mode, 1.0, 10.0)
    tmp = tempfile.mkdtemp(prefix="peer-node-") if redis_url is None else None
    redis_server = None
    node: NodeServer | None = None
    try:
        if tmp is not None:
            redis_server = EmbeddedRedis(Path(tmp), appendfsync="everysec")
            redis_server.start()
            redis_url = redis_server.url
        assert redis_url is not None
        node = NodeServer(script, redis_url)
        spec = FanoutSpec(
            urls=(f"ws://{HOST}:{node.port}/socket.io/?EIO=4&transport=websocket",),
            connections=connections,
            processes=processes,
            protocol="engineio",
        )
        return measure_fanout(
            NAME,
            node,
            spec,
            duration_s=duration,
            warmup_s=pick(mode, 0.3, 1.0),
            rate=rate,
            drain_timeout_s=pick(mode, 5.0, 20.0),
        )
    finally:
        if node is not None:
            node.close()
        if redis_server is not None:
            redis_server.stop()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
