"""Peer: python-socketio with its Redis manager doing gifting's room fan-out.

The server (``socketio.AsyncServer`` with ``AsyncRedisManager`` on a private
Redis, served by aiohttp — or, ``server="uvicorn"``, as an ASGI app under
uvicorn with ``websockets-sansio`` like gifting — in a process of its own)
puts every client in one room on connect and, once told to start, emits
the same room events as the bare broadcast (``sio.emit("gift", event,
room=...)``: delivered to the local room and published on Redis for other
hosts) as fast as it can with backpressure (it pauses while any client's
Engine.IO queue holds more than 512 packets) or at a fixed rate.

The clients speak raw Engine.IO v4 over picows (``/socket.io/?EIO=4&
transport=websocket``: ``0{...}`` open, ``40`` connect, ``42[...]`` events),
the cheapest correct socket.io client there is, in >= 2 processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

from loadtest.ceilings.clients import FanoutFigures, FanoutSpec, measure_fanout
from loadtest.ceilings.common import (
    HOST,
    AsyncPipe,
    Child,
    ChildSource,
    Mode,
    Pump,
    RedisCpu,
    pick,
    room_event_body,
)

__all__ = ["socketio_py_fanout"]

Server = Literal["aiohttp", "uvicorn"]
ROOM = "s-bench"
_QUEUE_HIGH = 512


async def _serve_socketio(pipe: AsyncPipe, arg: tuple[str, Server]) -> None:
    """Child process: the python-socketio server; emits on ``start``, counts on ``stop``."""
    import socketio  # type: ignore[import-untyped,unused-ignore]

    redis_url, server_kind = arg
    manager = socketio.AsyncRedisManager(redis_url)
    sio = socketio.AsyncServer(
        async_mode="aiohttp" if server_kind == "aiohttp" else "asgi",
        client_manager=manager,
        transports=["websocket"],
        logger=False,
        engineio_logger=False,
    )

    @sio.event  # type: ignore[untyped-decorator,unused-ignore]
    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        await sio.enter_room(sid, ROOM)

    async def emit(seq: int) -> None:
        await sio.emit("gift", room_event_body(seq, stream=ROOM), room=ROOM)

    def backlogged() -> bool:
        return any(s.queue.qsize() > _QUEUE_HIGH for s in sio.eio.sockets.values())

    pump = Pump(emit, backlogged)
    stop_server = await _start_http(sio, server_kind, pipe)
    try:
        while True:
            kind, payload = await pipe.recv()
            if kind == "start":
                pump.start(payload)
                pipe.send("start", len(sio.eio.sockets))
            elif kind == "stop":
                pipe.send("stop", await pump.stop())
            elif kind == "exit":
                with contextlib.suppress(Exception):
                    await pump.stop()
                return
    finally:
        await stop_server()


async def _start_http(sio: Any, server_kind: Server, pipe: AsyncPipe) -> Any:
    """Serve ``sio`` on a free port; send ``("ready", port)``; return an async stopper."""
    if server_kind == "aiohttp":
        from aiohttp import web

        app = web.Application()
        sio.attach(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, HOST, 0)
        await site.start()
        pipe.send("ready", runner.addresses[0][1])
        return runner.cleanup

    import socketio  # type: ignore[import-untyped,unused-ignore]
    import uvicorn

    from gifting.embedded import free_port

    port = free_port()
    config = uvicorn.Config(
        socketio.ASGIApp(sio), host=HOST, port=port, ws="websockets-sansio", http="httptools",
        lifespan="off", log_level="warning", access_log=False,
    )  # fmt: skip
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    pipe.send("ready", port)

    async def stop() -> None:
        server.should_exit = True
        await task

    return stop


def socketio_py_fanout(
    *,
    mode: Mode = "full",
    duration_s: float | None = None,
    connections: int = 200,
    processes: int = 2,
    rate: float | None = None,
    server: Server = "aiohttp",
    redis_url: str | None = None,
) -> FanoutFigures:
    """Deliveries/s at ``connections`` socket.io clients of one python-socketio room.

    Starts a private Redis for the manager unless ``redis_url`` is given (its
    CPU is reported as ``aux_cpu_s``). ``rate`` (events/s) paces the emitter;
    ``None`` is as fast as it can. ``duration_s``: 1 s quick, 10 s full.
    """
    from gifting.embedded import EmbeddedRedis

    duration = duration_s if duration_s is not None else pick(mode, 1.0, 10.0)
    tmp = tempfile.mkdtemp(prefix="peer-sio-") if redis_url is None else None
    redis_server = None
    child: Child | None = None
    redis_cpu: RedisCpu | None = None
    try:
        if tmp is not None:
            redis_server = EmbeddedRedis(Path(tmp), appendfsync="everysec")
            redis_server.start()
            redis_url = redis_server.url
        assert redis_url is not None
        redis_cpu = RedisCpu(redis_url)
        child = Child(_serve_socketio, (redis_url, server), name="socketio-py-server")
        port = child.recv(60.0, expect="ready")
        spec = FanoutSpec(
            urls=(f"ws://{HOST}:{port}/socket.io/?EIO=4&transport=websocket",),
            connections=connections,
            processes=processes,
            protocol="engineio",
        )
        return measure_fanout(
            f"python-socketio ({server}) + AsyncRedisManager",
            ChildSource(child, aux=redis_cpu),
            spec,
            duration_s=duration,
            warmup_s=pick(mode, 0.3, 1.0),
            rate=rate,
            drain_timeout_s=pick(mode, 5.0, 20.0),
        )
    finally:
        if child is not None:
            child.close()
        if redis_cpu is not None:
            redis_cpu.close()
        if redis_server is not None:
            redis_server.stop()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
