"""gifting's own fan-out and idle connections, measured with the ceilings' generator.

:func:`gifting_fanout` drives a room of a real ``gifting serve`` with the very
clients that count the bare ``websockets.broadcast`` ceiling and the
socket.io peers (:func:`loadtest.ceilings.clients.measure_fanout`): the same
~300-byte gift events, the same number of connections and processes. Events
take gifting's real path: a publisher process runs ``emit.lua`` (seq,
history, PUBLISH) in pipelines, the hub receives them over Redis pub/sub and
fans them out — one frame per event to overlays, one ``batch`` frame per
tick to viewers. With no rate, the publisher keeps at most ``WINDOW`` events
ahead of a probe overlay of its own (backpressure, as the broadcast ceiling's
pump waits on its write buffers), so the run measures what the hub sustains.

:func:`idle_memory` opens many idle connections to one hub and reads the
hub's resident memory before and after.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Literal

from loadtest.ceilings.clients import FanoutClients, FanoutFigures, FanoutSpec, measure_fanout
from loadtest.ceilings.common import AsyncPipe, Child, ProcessCpu, RedisCpu, room_event_body

__all__ = ["IdleFigures", "gifting_fanout", "idle_memory"]

Kind = Literal["overlay", "viewer"]
WINDOW = 512
CHUNK = 64
_MARKER = b'"kind":"gift"'


async def _publish(pipe: AsyncPipe, arg: tuple[str, str, str, str]) -> None:
    """Child process: emit gift events into one room through emit.lua; count on ``stop``."""
    import websockets
    from redis.asyncio import Redis

    from gifting.core.catalog import load_catalog
    from gifting.store.keys import Keys
    from gifting.store.rooms import RoomLog
    from gifting.store.scripts import ScriptCall

    redis_url, prefix, stream, probe_url = arg
    redis = Redis.from_url(redis_url)
    rooms = RoomLog(redis, Keys(prefix), load_catalog())
    probe = await websockets.connect(probe_url, max_queue=None)
    seen = 0
    sent = 0
    running = False

    async def read_probe() -> None:
        nonlocal seen
        async for frame in probe:
            if isinstance(frame, str) and '"kind":"gift"' in frame:
                seen += 1

    def body(seq: int) -> dict[str, Any]:
        b = room_event_body(seq, stream=stream)
        for k in ("op", "seq", "cursor"):
            b.pop(k)
        return b

    async def run(rate: float | None) -> None:
        nonlocal sent
        began = time.monotonic()
        while running:
            if rate is None:
                if sent - seen > WINDOW:
                    await asyncio.sleep(0.0005)
                    continue
                n = CHUNK
            else:
                n = min(int((time.monotonic() - began) * rate) - sent, 256)
                if n <= 0:
                    await asyncio.sleep(0.001)
                    continue
            calls = [
                ScriptCall("emit", *rooms.emit_args(stream, body(s), once=False))
                for s in range(sent, sent + n)
            ]
            for reply in await rooms.scripts.run_many(calls):
                if isinstance(reply, Exception):
                    raise reply
            sent += n

    reader = asyncio.get_running_loop().create_task(read_probe())
    task: asyncio.Task[None] | None = None
    pipe.send("ready", None)
    try:
        while True:
            kind, payload = await pipe.recv()
            if kind == "start":
                running = True
                task = asyncio.get_running_loop().create_task(run(payload))
                pipe.send("start", None)
            elif kind == "stop":
                running = False
                if task is not None:
                    await task
                pipe.send("stop", sent)
            elif kind == "exit":
                return
    finally:
        reader.cancel()
        await probe.close()
        await rooms.scripts.close()
        await redis.aclose()


class _RoomSource:
    """The fan-out source: the publisher child; server CPU is the hub's, aux Redis + publisher."""

    def __init__(self, publisher: Child, hub_pids: list[int], redis_url: str) -> None:
        self.publisher = publisher
        self._hub = [ProcessCpu(pid) for pid in hub_pids]
        self._pub = ProcessCpu(publisher.pid)
        self._redis = RedisCpu(redis_url)

    def start(self, rate: float | None) -> None:
        """Start publishing."""
        self.publisher.call("start", rate)

    def stop(self) -> int | None:
        """Stop; the number of events published."""
        return int(self.publisher.call("stop", timeout=60.0))

    def server_cpu_s(self) -> float:
        """CPU seconds of the hub process(es)."""
        return sum(c.seconds() for c in self._hub)

    def aux_cpu_s(self) -> float:
        """CPU seconds of Redis and the publisher."""
        return self._redis.seconds() + self._pub.seconds()


async def _room(tgt: Any) -> tuple[str, str, str]:
    from redis.asyncio import Redis

    from gifting.auth import mint_token
    from gifting.core.catalog import load_catalog
    from gifting.store.keys import Keys
    from gifting.store.streams import Streams

    redis = Redis.from_url(tgt.redis_url)
    try:
        s = await Streams(redis, Keys(tgt.key_prefix), load_catalog()).create(
            "bench-creator", "Bench", "fan-out bench"
        )
    finally:
        await redis.aclose()
    return s.stream, s.overlay_key, mint_token(tgt.jwt_secret, "bench-viewer", None, [], 3600)


async def gifting_fanout(
    kind: Kind,
    *,
    duration_s: float,
    warmup_s: float,
    connections: int = 200,
    processes: int = 2,
    rate: float | None = None,
    workers: int = 1,
) -> FanoutFigures:
    """Room events delivered/s to ``connections`` overlays or viewers of one gifting hub."""
    from loadtest.config import ServerOptions
    from loadtest.server import target

    opts = ServerOptions(workers=workers, env={"GIFTING_SEND_QUEUE_BYTES": str(16 * 1024 * 1024)})
    async with target(opts) as tgt:
        stream, key, token = await _room(tgt)
        ws = tgt.ws_url
        overlay = f"{ws}/v1/ws/overlay?stream={stream}&key={key}"
        url = overlay if kind == "overlay" else f"{ws}/v1/ws/viewer?stream={stream}&token={token}"
        spec = FanoutSpec(
            urls=(url,), connections=connections, processes=processes, count_marker=_MARKER
        )
        publisher = Child(
            _publish, (tgt.redis_url, tgt.key_prefix, stream, overlay), name="room-publisher"
        )
        try:
            await asyncio.to_thread(publisher.recv, 30.0, "ready")
            source = _RoomSource(publisher, tgt.app_pids, tgt.redis_url)
            return await asyncio.to_thread(
                measure_fanout, f"gifting {kind}s", source, spec,
                duration_s=duration_s, warmup_s=warmup_s, rate=rate, drain_timeout_s=30.0,
            )  # fmt: skip
        finally:
            await asyncio.to_thread(publisher.close)


@dataclass(frozen=True, slots=True)
class IdleFigures:
    """Resident memory of a hub before and after ``connections`` idle connections."""

    connections: int
    rss_before_mib: float
    rss_after_mib: float
    held: bool

    @property
    def kib_per_connection(self) -> float:
        """Memory each idle connection costs the hub."""
        return (self.rss_after_mib - self.rss_before_mib) * 1024 / max(self.connections, 1)

    def summary(self) -> str:
        """One line for a report."""
        return (
            f"{self.connections:,} idle connections on one hub: "
            f"{self.kib_per_connection:.1f} KiB each "
            f"(RSS {self.rss_before_mib:.0f} -> {self.rss_after_mib:.0f} MiB)"
            f"{'' if self.held else ' - NOT all held'}"
        )


async def idle_memory(connections: int = 10_000, processes: int = 2) -> IdleFigures:
    """Open ``connections`` idle overlay connections to one hub; its RSS before and after."""
    import psutil

    from loadtest.config import ServerOptions
    from loadtest.server import target

    async with target(ServerOptions(workers=1)) as tgt:
        stream, key, _ = await _room(tgt)
        url = f"{tgt.ws_url}/v1/ws/overlay?stream={stream}&key={key}"
        hub = psutil.Process(tgt.app_pids[0])
        await asyncio.sleep(1.0)
        before = hub.memory_info().rss / 2**20
        clients = FanoutClients(
            FanoutSpec(urls=(url,), connections=connections, processes=processes,
                       count_marker=_MARKER, connect_timeout_s=120.0)
        )  # fmt: skip
        try:
            await asyncio.to_thread(clients.connect)
            await asyncio.sleep(2.0)
            after = hub.memory_info().rss / 2**20
            held = len(hub.net_connections(kind="tcp")) >= connections
        finally:
            await asyncio.to_thread(clients.close)
        return IdleFigures(connections, before, after, held)
