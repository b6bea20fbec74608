"""Ceiling: a minimal ``websockets`` echo server, the Python WebSocket request/response bound.

The server (``websockets.asyncio.server`` on uvloop, in a process of its own)
sends every message back. :func:`echo_ceiling` drives it with the closed-loop
picows generator of :mod:`loadtest.ceilings.clients` (the one that drives
gifting's viewers), so gifts/s end to end can be read as a fraction of it.
"""

from __future__ import annotations

import contextlib
from typing import Any

from loadtest.ceilings.clients import EchoFigures, EchoSpec, measure_echo
from loadtest.ceilings.common import HOST, AsyncPipe, Child, Mode, ProcessCpu, pick

__all__ = ["echo_ceiling"]


async def _serve_echo(pipe: AsyncPipe, _arg: Any) -> None:
    """Child process: echo every message; report the port; run until told to exit."""
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.exceptions import ConnectionClosed

    async def echo(ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                await ws.send(message)

    async with serve(echo, HOST, 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        pipe.send("ready", port)
        while (await pipe.recv())[0] != "exit":
            pass


def echo_ceiling(
    *,
    mode: Mode = "full",
    duration_s: float | None = None,
    connections: int = 100,
    processes: int = 2,
    message: str = '{"op":"gift","id":"c-{n}","gift":"rose","count":1}',
) -> EchoFigures:
    """Messages/s and round trips of the bare ``websockets`` echo server.

    ``connections`` clients over ``processes`` generator processes, one
    message in flight each. ``duration_s`` defaults to 1 s (quick) or 10 s
    (full); the whole call takes about that plus 2-3 s of set-up.
    """
    duration = duration_s if duration_s is not None else pick(mode, 1.0, 10.0)
    warmup = pick(mode, 0.3, 1.0)
    server = Child(_serve_echo, None, name="echo-server")
    try:
        port = server.recv(30.0, expect="ready")
        cpu = ProcessCpu(server.pid)
        spec = EchoSpec(
            urls=(f"ws://{HOST}:{port}/",),
            connections=connections,
            processes=processes,
            message=message,
        )
        return measure_echo(
            "websockets echo", spec, duration_s=duration, warmup_s=warmup, server_cpu=cpu.seconds
        )
    finally:
        server.close()
