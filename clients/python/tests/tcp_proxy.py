"""A TCP proxy for network faults: cut every connection, or lose the server's replies.

Clients connect to :attr:`TcpProxy.port`; each connection is piped to
``127.0.0.1:upstream``. :attr:`swallow` drops what the server sends (an ack
lost on the way), :meth:`cut` aborts every connection (a dropped network),
and :attr:`upstream` can be changed to point at a restarted server.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType


class TcpProxy:
    """Pipes ``127.0.0.1:port`` to ``127.0.0.1:upstream``, with faults on demand."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.port = 0
        #: Drop bytes coming from the server (the client never sees them).
        self.swallow = False
        self.swallowed = 0
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def ws(self) -> str:
        """The base URL clients use."""
        return f"ws://127.0.0.1:{self.port}"

    def cut(self) -> None:
        """Abort every open connection, both ways (the client sees a dropped network)."""
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            writer.transport.abort()  # the server is down: the client's connect fails
            return
        self._writers.update((writer, up_writer))
        loop = asyncio.get_running_loop()
        for task in (
            loop.create_task(self._pipe(reader, up_writer, from_server=False)),
            loop.create_task(self._pipe(up_reader, writer, from_server=True)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, *, from_server: bool
    ) -> None:
        try:
            while data := await src.read(65536):
                if from_server and self.swallow:
                    self.swallowed += len(data)
                    continue
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(dst)
            with contextlib.suppress(Exception):
                dst.close()
