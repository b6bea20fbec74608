"""A lean pipelined Redis connection for the money scripts' hot path.

Profiles of gift storms showed redis-py's pipeline machinery (argument
encoding, per-reply reads under a timeout context) taking over 40% of a hub's
CPU. For the one thing the hot path does — many EVALSHA calls in one round
trip — this module packs RESP by hand and parses the replies with hiredis in
bulk. Everything else still goes through redis-py.

One connection per :class:`WirePipeline`; calls are serialized on it (the
callers already batch). A connection error fails the batch in flight
(``ConnectionError``) and the next batch reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

import hiredis
from redis.asyncio.connection import parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

_CRLF = b"\r\n"


def pack_command(args: Sequence[bytes | str | int]) -> bytes:
    """One command in RESP: ``*n`` then ``$len`` and each argument, as redis-py packs it.

    Strings go as UTF-8 and integers in decimal. Raises ``ValueError`` for an
    empty command (Redis answers ``*0`` with nothing, so the batch would wait out
    its read timeout) and ``TypeError`` for anything else, bools and floats
    included (``b"%d"`` would send ``True`` and ``1.5`` as ``1``).
    """
    if not args:
        raise ValueError("a Redis command needs at least its name")
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, int) and not isinstance(arg, bool):
            data = b"%d" % arg
        else:
            raise TypeError(f"a Redis argument must be bytes, str or int, got {arg!r}")
        parts.append(b"$%d\r\n" % len(data))
        parts.append(data)
        parts.append(_CRLF)
    return b"".join(parts)


class WirePipeline:
    """Send many commands at once on a private connection; replies in order."""

    def __init__(
        self, params: dict[str, Any], connect_timeout_s: float = 5.0, read_timeout_s: float = 30.0
    ) -> None:
        self._params = params
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_url(cls, url: str) -> WirePipeline:
        """A pipeline to the server of a ``redis://`` or ``unix://`` URL."""
        return cls(parse_url(url))

    @classmethod
    def like(cls, redis: Any) -> WirePipeline:
        """A pipeline to the same server and database as a redis-py client."""
        kw = redis.connection_pool.connection_kwargs
        keep = ("host", "port", "db", "password", "username", "path")
        return cls({k: kw[k] for k in keep if kw.get(k) is not None})

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        p = self._params
        if "path" in p:
            opened = asyncio.open_unix_connection(p["path"])
        else:
            opened = asyncio.open_connection(p.get("host", "localhost"), int(p.get("port", 6379)))
        reader, writer = await asyncio.wait_for(opened, self._connect_timeout_s)
        self._reader, self._writer = reader, writer
        hello: list[list[bytes | str | int]] = []
        if p.get("password"):
            user = p.get("username")
            hello.append(["AUTH", user, p["password"]] if user else ["AUTH", p["password"]])
        if int(p.get("db", 0) or 0):
            hello.append(["SELECT", int(p["db"])])
        if hello:
            for reply in await self._exchange(hello):
                if isinstance(reply, Exception):
                    await self.close()
                    raise RedisConnectionError(f"cannot set up the connection: {reply}")
        return reader, writer

    async def execute(self, commands: Sequence[Sequence[bytes | str | int]]) -> list[Any]:
        """Send ``commands`` in one write; return their replies (errors as exceptions, in place)."""
        async with self._lock:
            try:
                if self._writer is None:
                    await self._connect()
                return await self._exchange(commands)
            except (
                OSError,
                TimeoutError,
                asyncio.IncompleteReadError,
                hiredis.ProtocolError,
            ) as exc:
                await self.close()
                raise RedisConnectionError(f"Redis connection lost: {exc}") from exc
            except asyncio.CancelledError:
                # Replies may still be on their way: this connection is out of step now.
                await self.close()
                raise

    async def _exchange(self, commands: Sequence[Sequence[bytes | str | int]]) -> list[Any]:
        assert self._reader is not None
        assert self._writer is not None
        self._writer.write(b"".join(pack_command(c) for c in commands))
        parser = hiredis.Reader(replyError=ResponseError)
        replies: list[Any] = []
        want = len(commands)
        async with asyncio.timeout(self._read_timeout_s):
            while len(replies) < want:
                chunk = await self._reader.read(1 << 16)
                if not chunk:
                    raise asyncio.IncompleteReadError(b"", None)
                parser.feed(chunk)
                while len(replies) < want:
                    reply = parser.gets()
                    if reply is False:
                        break
                    replies.append(reply)
        return replies

    async def close(self) -> None:
        """Close the connection (the next call reconnects)."""
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()
