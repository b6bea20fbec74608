"""Redis Cluster, chosen by URL: the cluster client, and the lean pipeline routed by slot.

A deployment on Redis Cluster sets ``REDIS_URL`` to
``redis+cluster://[user:password@]host:port[,host:port...]`` (``rediss+cluster://``
for TLS; the query takes redis-py's ``ssl_*`` settings): any of the nodes
will do, the client learns the others and the slot map from them. Every other
URL is a single Redis, as before.

Nothing above the store changes: every money script touches one hash slot
(a wallet shard ``{wNN}`` or a room ``{r:ID}``), so each runs whole on the
node that owns its slot. What differs:

* :func:`connect` builds a ``redis.asyncio.cluster.RedisCluster`` (redis-py
  routes each command by its key, follows MOVED/ASK, refreshes its slot map);
* :class:`ClusterWire` is the lean pipeline of the gift path (see wire.py)
  on a cluster: it computes the slot of each call's first key (CRC16, as
  Redis), groups a batch by the master of each slot, sends each group on
  that node's private connection (one per node and lane), all groups at
  once, and puts the replies back in the batch's order. ``MOVED`` refreshes
  the slot map and resends to the new owner; ``ASK`` resends once to the
  named node after ``ASKING``; ``TRYAGAIN`` (a slot half-migrated) waits a
  moment and resends; a lost connection refreshes the map for the next batch
  and fails only that node's calls (their outcome is unknown; each script is
  idempotent by its id, so the caller may retry them);
* room events go over sharded pub/sub (``SPUBLISH`` from emit.lua,
  ``SSUBSCRIBE`` in the hub: :mod:`gifting.hub.sharded_broker`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qsl, unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from gifting.store.wire import Command, WirePipeline

__all__ = [
    "CLUSTER_SCHEMES",
    "ClusterAddress",
    "ClusterWire",
    "command_slot",
    "is_cluster",
    "is_cluster_url",
    "parse_cluster_url",
    "wire_for",
]

CLUSTER_SCHEMES: Final = ("redis+cluster", "rediss+cluster")
#: Redirections (MOVED, ASK, TRYAGAIN) followed for one call before its error is kept.
MAX_REDIRECTS: Final = 5
#: Slot map refreshes are at most this frequent (a failover makes every batch ask).
REFRESH_MIN_INTERVAL_S: Final = 0.1
_TRYAGAIN_PAUSE_S: Final = 0.02
#: Commands whose keys start after ``numkeys`` (EVALSHA sha numkeys key...).
_SCRIPT_COMMANDS: Final = frozenset({b"EVALSHA", b"EVAL", b"FCALL", b"EVALSHA_RO", b"FCALL_RO"})


def is_cluster_url(url: str) -> bool:
    """Whether ``url`` names a Redis Cluster (``redis+cluster://`` or ``rediss+cluster://``)."""
    return urlsplit(url).scheme.lower() in CLUSTER_SCHEMES


def is_cluster(redis: Any) -> bool:
    """Whether ``redis`` is a cluster client (built by :func:`connect` from a cluster URL)."""
    return isinstance(redis, RedisCluster)


@dataclass(frozen=True, slots=True)
class ClusterAddress:
    """What a cluster URL says: the seed nodes, the credentials, TLS and redis-py options."""

    nodes: list[tuple[str, int]]
    username: str | None = None
    password: str | None = None
    tls: bool = False
    options: dict[str, str] = field(default_factory=dict)


def parse_cluster_url(url: str) -> ClusterAddress:
    """Read ``redis+cluster://[user:password@]host:port[,host:port...][?ssl_...=...]``.

    Raises ``ValueError`` for another scheme, no node, a bad port or a path
    (a cluster has database 0 only).
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in CLUSTER_SCHEMES:
        raise ValueError(f"not a cluster URL (want {' or '.join(CLUSTER_SCHEMES)}://)")
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    username: str | None = None
    password: str | None = None
    if userinfo:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    nodes: list[tuple[str, int]] = []
    for item in hostlist.split(","):
        if not item:
            continue
        host, colon, port = item.rpartition(":")
        if not colon:
            host, port = item, "6379"
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"bad cluster node {item!r} (want host:port)")
        nodes.append((host, int(port)))
    if not nodes:
        raise ValueError("a cluster URL names at least one node (host:port)")
    if parts.path not in ("", "/", "/0"):
        raise ValueError("a Redis Cluster has one database (0): drop the URL's path")
    options = dict(parse_qsl(parts.query))
    return ClusterAddress(nodes, username, password, scheme == "rediss+cluster", options)


def cluster_client(url: str, **kwargs: Any) -> RedisCluster:
    """A ``RedisCluster`` (bytes replies) seeded with every node of a cluster URL.

    ``kwargs`` are redis-py's (``max_connections`` is per node). The client
    connects on first use.
    """
    address = parse_cluster_url(url)
    options: dict[str, Any] = dict(address.options)
    if address.tls:
        options["ssl"] = True
    for flag in ("ssl_check_hostname",):
        if flag in options:
            options[flag] = options[flag].lower() in ("1", "true", "yes")
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in address.nodes],
        username=address.username,
        password=address.password,
        **options,
        **kwargs,
    )


def command_slot(command: Command) -> int | None:
    """The hash slot of a command's first key (None for a command without keys).

    ``EVALSHA sha numkeys key...`` routes by its first key; any other command
    the pipelines send (``EXISTS key``, ``HGET key ...``) by its first argument.
    """
    name = command[0]
    name_b = name.encode() if isinstance(name, str) else name
    if isinstance(name_b, bytes) and name_b.upper() in _SCRIPT_COMMANDS:
        if len(command) < 4 or int(command[2]) < 1:
            return None
        key = command[3]
    elif len(command) > 1:
        key = command[1]
    else:
        return None
    if isinstance(key, int):
        key = str(key)
    slot: int = key_slot(key.encode() if isinstance(key, str) else key)
    return slot


def _redirect(error: ResponseError) -> tuple[str, str] | None:
    """``("MOVED"|"ASK", "host:port")`` for a redirection, ``("TRYAGAIN", "")``, else None."""
    text = str(error)
    kind = text.split(" ", 1)[0]
    if kind in ("MOVED", "ASK"):
        parts = text.split()
        if len(parts) >= 3:
            return kind, parts[2]
    if kind == "TRYAGAIN":
        return kind, ""
    return None


@dataclass(slots=True)
class _Round:
    """What one round of a batch left to do."""

    again: list[int] = field(default_factory=list)
    refresh: bool = False
    pause: bool = False


class ClusterWire:
    """The lean pipeline on a cluster: one private connection per master, batches split by slot.

    ``execute`` keeps :class:`WirePipeline`'s contract — replies in the
    order of the commands, a Redis error in place of its reply — with one
    difference: a lost connection fails only the calls sent to that node
    (a ``ConnectionError`` in their places), since the others' outcomes are
    known.
    """

    def __init__(self, cluster: RedisCluster, *, max_redirects: int = MAX_REDIRECTS) -> None:
        self._cluster = cluster
        self._max_redirects = max_redirects
        self._pipes: dict[str, WirePipeline] = {}
        self._refreshing = asyncio.Lock()
        self._refreshed_at = 0.0
        #: Slots a MOVED reply placed elsewhere since the last refresh of the map.
        self._moved: dict[int, str] = {}

    async def execute(
        self,
        commands: Sequence[Command],
        *,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 0,
    ) -> list[Any]:
        """Send ``commands`` (each to its slot's master, all nodes at once); replies in order.

        ``wait_replicas`` > 0: each node's group ends with ``WAIT`` (see
        :meth:`WirePipeline.execute`).
        """
        if not commands:
            return []
        await self._cluster.initialize()  # a no-op once the slot map is known
        results: list[Any] = [None] * len(commands)
        todo = list(range(len(commands)))
        asking: dict[int, str] = {}
        for _attempt in range(self._max_redirects + 1):
            groups: dict[tuple[str, bool], list[int]] = {}
            for i in todo:
                target = asking.pop(i, None)
                node = target if target is not None else self._master_of(commands[i])
                groups.setdefault((node, target is not None), []).append(i)
            sent = list(groups.items())
            replies = await asyncio.gather(
                *(
                    self._send(node, [commands[i] for i in idx], ask, wait_replicas,
                               wait_timeout_ms)
                    for (node, ask), idx in sent
                ),
                return_exceptions=True,
            )  # fmt: skip
            outcome = _Round()
            for (_, idx), reply in zip(sent, replies, strict=True):
                self._sort(commands, idx, reply, results, asking, outcome)
            if outcome.refresh:
                await self.refresh()
            todo = outcome.again
            if not todo:
                break
            if outcome.pause:
                await asyncio.sleep(_TRYAGAIN_PAUSE_S)
        return results

    def _sort(
        self,
        commands: Sequence[Command],
        idx: list[int],
        reply: list[Any] | BaseException,
        results: list[Any],
        asking: dict[int, str],
        outcome: _Round,
    ) -> None:
        """Place one node's replies; note the calls to send again and why."""
        if isinstance(reply, RedisConnectionError | OSError):
            outcome.refresh = True
            for i in idx:
                results[i] = reply
            return
        if isinstance(reply, BaseException):
            raise reply
        for i, r in zip(idx, reply, strict=True):
            results[i] = r  # a redirection stays the reply if the hops run out
            if not isinstance(r, ResponseError):
                continue
            hop = _redirect(r)
            if hop is None:
                outcome.refresh |= str(r).startswith("CLUSTERDOWN")
                continue
            kind, where = hop
            outcome.again.append(i)
            if kind == "MOVED":
                outcome.refresh = True
                slot = command_slot(commands[i])
                if slot is not None:
                    self._moved[slot] = where
            elif kind == "ASK":
                asking[i] = where
            else:
                outcome.pause = True

    def _master_of(self, command: Command) -> str:
        slot = command_slot(command)
        manager = self._cluster.nodes_manager
        if slot is None:
            return str(manager.default_node.name)
        moved = self._moved.get(slot)
        if moved is not None:
            return moved
        return str(manager.get_node_from_slot(slot).name)

    async def _send(
        self, name: str, commands: list[Command], ask: bool, wait_replicas: int, wait_ms: int
    ) -> list[Any]:
        pipe = self._pipe(name)
        if not ask:
            return await pipe.execute(
                commands, wait_replicas=wait_replicas, wait_timeout_ms=wait_ms
            )
        # ASKING holds for the next command only: one before each.
        paired: list[Command] = []
        for c in commands:
            paired += [["ASKING"], c]
        replies = await pipe.execute(paired, wait_replicas=wait_replicas, wait_timeout_ms=wait_ms)
        return replies[1::2]

    def _pipe(self, name: str) -> WirePipeline:
        pipe = self._pipes.get(name)
        if pipe is None:
            host, _, port = name.rpartition(":")
            known = self._cluster.nodes_manager.nodes_cache.get(name)
            model = known or self._cluster.nodes_manager.default_node
            kwargs = {**model.connection_kwargs, "host": host, "port": int(port)}
            pipe = self._pipes[name] = WirePipeline.for_connection(model.connection_class, kwargs)
        return pipe

    async def refresh(self) -> None:
        """Read the slot map again (at most every ``REFRESH_MIN_INTERVAL_S``; one at a time)."""
        async with self._refreshing:
            if time.monotonic() - self._refreshed_at < REFRESH_MIN_INTERVAL_S:
                return
            try:
                await self._cluster.nodes_manager.initialize()
            except (RedisError, OSError):
                return  # every seed unreachable: the next batch fails and asks again
            finally:
                self._refreshed_at = time.monotonic()
            self._moved.clear()
            current = self._cluster.nodes_manager.nodes_cache
            for name in [n for n in self._pipes if n not in current]:
                with contextlib.suppress(Exception):
                    await self._pipes.pop(name).close()

    async def close(self) -> None:
        """Close every node's connection (the next call reconnects)."""
        pipes, self._pipes = list(self._pipes.values()), {}
        for pipe in pipes:
            await pipe.close()


def wire_for(redis: Any) -> WirePipeline | ClusterWire:
    """The lean pipeline for a client: :class:`ClusterWire` on a cluster, else a
    :class:`WirePipeline` to the client's server."""
    if is_cluster(redis):
        return ClusterWire(redis)
    return WirePipeline.like(redis)


def connect(url: str, **kwargs: Any) -> Redis | RedisCluster:
    """A client of ``url``: a cluster client for a cluster URL, else ``Redis.from_url``.

    Await ``client.initialize()`` before using a cluster client from many
    tasks at once: redis-py 8.1's lazy first connection races (a command can
    go out on a connection another task's slot-map setup just closed).
    """
    if is_cluster_url(url):
        return cluster_client(url, **kwargs)
    return Redis.from_url(url, **kwargs)


async def ping_every_node(redis: Any) -> None:
    """PING every node of a cluster (each master and replica), or the one Redis.

    ``/readyz`` runs it: a hub whose cluster has a node that does not answer
    is not ready, so the proxy sends its clients elsewhere. Raises the first
    failure (a timeout or a connection error).
    """
    if is_cluster(redis):
        await redis.ping(target_nodes=RedisCluster.ALL_NODES)
    else:
        await redis.ping()
