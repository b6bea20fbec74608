"""A lean pipelined Redis connection for the money scripts' hot path.

Profiles of gift storms showed redis-py's pipeline machinery (argument
encoding, per-reply reads under a timeout context) taking over 40% of a hub's
CPU. For the one thing the hot path does — many EVALSHA calls in one round
trip — this module packs RESP by hand and parses the replies with hiredis in
bulk. Everything else still goes through redis-py.

One connection per :class:`WirePipeline`; calls are serialized on it (the
callers already batch). A connection error, or no complete answer within the
read timeout (a paused Redis answers nothing), fails the batch in flight
(``ConnectionError``) and the next batch reconnects. :meth:`WirePipeline.like`
takes its timeouts from the redis-py client's ``socket_timeout`` and
``socket_connect_timeout``, so one setting bounds every Redis call.

The connection is made like the redis-py client's (:meth:`WirePipeline.like`):
plain TCP, a unix socket, or TLS with the very ``SSLContext`` redis-py would
build (its defaults and every ``ssl_*`` setting). Any other kind of connection
(Sentinel, a custom class) is refused when the pipeline is made, rather than
reached some other way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from ssl import SSLContext
from typing import Any, Final

import hiredis
from redis.asyncio.connection import (
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
    parse_url,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

_CRLF = b"\r\n"
_PLAIN: Final = frozenset({bytes, str, int})  # exactly these: not bool, not subclasses
_hiredis_pack = hiredis.pack_command
#: One command: its name and arguments.
Command = Sequence[bytes | str | int]
#: What the pipeline takes from redis-py's connection settings (TLS aside).
_ADDRESS_KEYS: Final = ("host", "port", "db", "password", "username", "path")
#: Seconds to connect and to get a batch's answer, unless the imitated client says.
_DEFAULT_TIMEOUT_S: Final = 5.0


def pack_command(args: Sequence[bytes | str | int]) -> bytes:
    """One command in RESP: ``*n`` then ``$len`` and each argument, as redis-py packs it.

    Strings go as UTF-8 and integers in decimal. Raises ``ValueError`` for an
    empty command (Redis answers ``*0`` with nothing, so the batch would wait out
    its read timeout) and ``TypeError`` for anything else, bools and floats
    included (``b"%d"`` would send ``True`` and ``1.5`` as ``1``).
    """
    if not args:
        raise ValueError("a Redis command needs at least its name")
    if all(type(a) in _PLAIN for a in args):
        packed: bytes = _hiredis_pack(tuple(args))  # type: ignore[arg-type]  # the stub's tuple
        return packed  # the same bytes as below, in C (4x faster)
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


class NotReplicated(RedisConnectionError):  # type: ignore[misc]  # redis is untyped here
    """The master ran the call but too few replicas acknowledged it (``WAIT``).

    A connection error to its callers (503 over HTTP, "retry" on the socket):
    the outcome is only as safe as the master; a retry replays the call by its id.
    """


class WirePipeline:
    """Send many commands at once on a private connection; replies in order."""

    def __init__(
        self,
        params: dict[str, Any],
        connect_timeout_s: float = _DEFAULT_TIMEOUT_S,
        read_timeout_s: float = _DEFAULT_TIMEOUT_S,
        *,
        ssl_context: SSLContext | None = None,
    ) -> None:
        self._params = params
        self._ssl_context = ssl_context
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_url(cls, url: str) -> WirePipeline:
        """A pipeline to the server of a ``redis://``, ``rediss://`` (TLS) or ``unix://`` URL.

        The URL is read by redis-py (``ssl_*`` settings in its query included),
        so the pipeline connects as ``Redis.from_url(url)`` would.
        """
        kwargs: dict[str, Any] = dict(parse_url(url))
        connection_class = kwargs.pop("connection_class", Connection)
        return cls._like_connection(connection_class, kwargs)

    @classmethod
    def like(cls, redis: Any) -> WirePipeline:
        """A pipeline to the same server and database as a redis-py client, the same way.

        TLS when the client's connections are TLS, with the same settings.
        Raises ``ValueError`` for a client whose connections are neither plain
        TCP, TLS nor a unix socket (Sentinel, a custom class).
        """
        pool = redis.connection_pool
        return cls._like_connection(pool.connection_class, pool.connection_kwargs)

    @classmethod
    def for_connection(cls, connection_class: type[Any], kwargs: Mapping[str, Any]) -> WirePipeline:
        """A pipeline that connects as redis-py's ``connection_class(**kwargs)`` would
        (the cluster's pipeline makes one per node this way; see cluster.py)."""
        return cls._like_connection(connection_class, kwargs)

    @classmethod
    def _like_connection(
        cls, connection_class: type[Any], kwargs: Mapping[str, Any]
    ) -> WirePipeline:
        params = {k: kwargs[k] for k in _ADDRESS_KEYS if kwargs.get(k) is not None}
        # The client's timeouts; where it has none (redis-py: "wait for ever"), ours.
        connect = float(kwargs.get("socket_connect_timeout") or _DEFAULT_TIMEOUT_S)
        read = float(kwargs.get("socket_timeout") or _DEFAULT_TIMEOUT_S)
        # Exact classes only: a subclass may connect its own way (a Sentinel one
        # asks the sentinels for the master), which a copy of host/port would miss.
        if connection_class is SSLConnection:
            # redis-py's connection builds the context (not connecting): its own
            # defaults (certificate required, hostname checked) and every ssl_*
            # setting, as the client's pool would, whatever the redis-py version.
            context = SSLConnection(**kwargs).ssl_context.get()
            return cls(params, connect, read, ssl_context=context)
        if connection_class in (Connection, UnixDomainSocketConnection):
            return cls(params, connect, read)
        name = f"{connection_class.__module__}.{connection_class.__qualname__}"
        raise ValueError(
            f"WirePipeline cannot connect like {name}: it knows redis-py's asyncio "
            "Connection, SSLConnection and UnixDomainSocketConnection"
        )

    @property
    def params(self) -> dict[str, Any]:
        """Where and as whom it connects: ``host``/``port`` or ``path``, ``db``, credentials."""
        return dict(self._params)

    @property
    def timeouts(self) -> tuple[float, float]:
        """Seconds it waits to connect, and for a batch's complete answer."""
        return self._connect_timeout_s, self._read_timeout_s

    @property
    def ssl_context(self) -> SSLContext | None:
        """The TLS settings of the connection; ``None`` for plain TCP or a unix socket."""
        return self._ssl_context

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        p = self._params
        if "path" in p:
            opened = asyncio.open_unix_connection(p["path"])
        else:
            # With ssl, the host is also the name checked against the certificate (as redis-py).
            opened = asyncio.open_connection(
                p.get("host", "localhost"), int(p.get("port", 6379)), ssl=self._ssl_context
            )
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

    async def execute(
        self,
        commands: Sequence[Command],
        *,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 0,
    ) -> list[Any]:
        """Send ``commands`` in one write; return their replies (errors as exceptions, in place).

        ``wait_replicas`` > 0 ends the batch with ``WAIT wait_replicas
        wait_timeout_ms`` on the same connection: when fewer replicas than
        that acknowledged the batch's writes in time, every reply that is not
        an error becomes :class:`NotReplicated` (the write happened on the
        master and may be lost with it; the caller treats it as unavailable).
        """
        if wait_replicas > 0:
            replies = await self.execute([*commands, ["WAIT", wait_replicas, wait_timeout_ms]])
            acked = replies.pop()
            if isinstance(acked, int) and acked >= wait_replicas:
                return replies
            lost = NotReplicated(
                f"{acked} of {wait_replicas} replicas acknowledged within {wait_timeout_ms} ms"
            )
            return [r if isinstance(r, Exception) else lost for r in replies]
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

    async def _exchange(self, commands: Sequence[Command]) -> list[Any]:
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
