"""Ceiling: a bare ``websockets.broadcast`` of room-event frames, the Python fan-out bound.

The server (``websockets.asyncio.server`` on uvloop, in its own process) keeps
every connection in a set and, once told to start, broadcasts frames of the
size and shape of gifting's room events (~300 bytes of JSON, one event per
frame) as fast as it can — with backpressure: it pauses while any
connection's write buffer holds more than 256 KiB — or at a fixed rate.
:func:`broadcast_ceiling` counts the frames at picows clients in >= 2
processes, with the generator of :mod:`loadtest.ceilings.clients` that also
counts gifting's overlays.
"""

from __future__ import annotations

import contextlib
from typing import Any

from loadtest.ceilings.clients import FanoutFigures, FanoutSpec, measure_fanout
from loadtest.ceilings.common import (
    HOST,
    AsyncPipe,
    Child,
    ChildSource,
    Mode,
    Pump,
    pick,
    room_event_frame,
)

__all__ = ["broadcast_ceiling"]

_HIGH_WATER = 256 * 1024


async def _serve_broadcast(pipe: AsyncPipe, _arg: Any) -> None:
    """Child process: accept connections; broadcast on ``start``; count on ``stop``."""
    from websockets.asyncio.server import ServerConnection, broadcast, serve

    conns: set[ServerConnection] = set()
    targets: list[ServerConnection] = []

    async def join(ws: ServerConnection) -> None:
        conns.add(ws)
        try:
            await ws.wait_closed()
        finally:
            conns.discard(ws)

    async def emit(seq: int) -> None:
        broadcast(targets, room_event_frame(seq), text=True)

    def backlogged() -> bool:
        return any(ws.transport.get_write_buffer_size() > _HIGH_WATER for ws in targets)

    pump = Pump(emit, backlogged)
    async with serve(join, HOST, 0) as server:
        pipe.send("ready", next(iter(server.sockets)).getsockname()[1])
        while True:
            kind, payload = await pipe.recv()
            if kind == "start":
                targets[:] = list(conns)
                pump.start(payload)
                pipe.send("start", len(targets))
            elif kind == "stop":
                pipe.send("stop", await pump.stop())
            elif kind == "exit":
                with contextlib.suppress(Exception):
                    await pump.stop()
                return


def broadcast_ceiling(
    *,
    mode: Mode = "full",
    duration_s: float | None = None,
    connections: int = 200,
    processes: int = 2,
    rate: float | None = None,
) -> FanoutFigures:
    """Frames delivered/s at ``connections`` clients of a bare ``websockets.broadcast``.

    ``rate`` (events/s) paces the server; ``None`` is as fast as it can.
    ``duration_s`` defaults to 1 s (quick) or 10 s (full). ``complete`` in
    the figures says every client received every frame broadcast.
    """
    duration = duration_s if duration_s is not None else pick(mode, 1.0, 10.0)
    warmup = pick(mode, 0.3, 1.0)
    server = Child(_serve_broadcast, None, name="broadcast-server")
    try:
        port = server.recv(30.0, expect="ready")
        spec = FanoutSpec(
            urls=(f"ws://{HOST}:{port}/",), connections=connections, processes=processes
        )
        return measure_fanout(
            "websockets.broadcast",
            ChildSource(server),
            spec,
            duration_s=duration,
            warmup_s=warmup,
            rate=rate,
            drain_timeout_s=pick(mode, 5.0, 20.0),
        )
    finally:
        server.close()
