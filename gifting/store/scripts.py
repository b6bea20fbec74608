"""The Lua money scripts: read once from ``lua/*.lua``, called by SHA.

redis-py's ``AsyncScript`` does EVALSHA and, on NOSCRIPT (a restarted or new
Redis), loads the script and retries, so a restart costs one extra round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, ResponseError

from gifting.store.cluster import ClusterWire, wire_for
from gifting.store.wire import WirePipeline

SCRIPT_NAMES = (
    "spend",
    "purchase",
    "refund",
    "credit",
    "cashout_hold",
    "cashout_settle",
    "cashout_cancel",
    "emit",
    "retire",
    "snapshot",
    "badge",
    "due_take",
    "due_done",
    "box_create",
    "box_claim",
    "box_seal",
    "box_settle",
    "box_credit",
    "box_return",
    "goals_set",
)


def script_source(name: str) -> str:
    """The text of ``lua/<name>.lua`` shipped in the package."""
    return (resources.files("gifting.store") / "lua" / f"{name}.lua").read_text()


@dataclass(frozen=True, slots=True)
class ScriptCall:
    """One script invocation, ready to run alone or in a pipeline."""

    name: str
    keys: list[str]
    args: list[str | int]


@dataclass(frozen=True, slots=True)
class ReplicaWait:
    """Acknowledge a money call only once ``replicas`` replicas have it (``WAIT``).

    0 replicas: no wait (the default). See docs/operations.md, "What a
    failover can lose".
    """

    replicas: int = 0
    timeout_ms: int = 100


def _strings(reply: Any) -> list[str]:
    return [x.decode() if isinstance(x, bytes) else str(x) for x in reply]


def _reply(raw: Any) -> list[str] | Exception:
    if isinstance(raw, ResponseError) and str(raw).startswith("NOSCRIPT"):
        lost: Exception = NoScriptError(str(raw))
        return lost
    if isinstance(raw, Exception):
        error: Exception = raw
        return error
    strings: list[str] = _strings(raw)
    return strings


class Scripts:
    """The money scripts registered on one Redis client."""

    def __init__(self, redis: Redis, *, wait: ReplicaWait | None = None) -> None:
        self._redis = redis
        self._wait = wait or ReplicaWait()
        self._lanes: dict[str, WirePipeline | ClusterWire] = {}
        self._scripts: dict[str, AsyncScript] = {
            name: redis.register_script(script_source(name)) for name in SCRIPT_NAMES
        }

    async def run(
        self, name: str, keys: Sequence[str], args: Sequence[str | int], client: Any = None
    ) -> list[str]:
        """Run script ``name``; the reply is a list of strings (every script returns strings).

        With a :class:`ReplicaWait`, the call goes through the lean pipeline
        (``WAIT`` must follow the write on its own connection) and a call too
        few replicas acknowledged raises :class:`~gifting.store.wire.NotReplicated`.
        """
        if self._wait.replicas and client is None:
            (only,) = await self.run_many([ScriptCall(name, list(keys), list(args))])
            if isinstance(only, Exception):
                raise only
            return only
        reply = await self._scripts[name](keys=list(keys), args=list(args), client=client)
        return _strings(reply)

    async def run_raw(self, name: str, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        """Run script ``name`` and return its reply as redis-py parsed it (nested lists)."""
        return await self._scripts[name](keys=list(keys), args=list(args))

    async def run_many(
        self, calls: Sequence[ScriptCall], lane: str = "default"
    ) -> list[list[str] | Exception]:
        """Run ``calls`` in one pipeline (one round trip), in order; errors stay in place.

        EVALSHA in a pipeline on the ``lane``'s own connection (a lean RESP
        writer, see wire.py; lanes let independent loops pipeline at once);
        when Redis has lost its script cache (NOSCRIPT, after a restart) the
        scripts are loaded and the failed calls retried.
        """
        if not calls:
            return []
        results = await self._pipeline(calls, lane)
        if any(isinstance(r, NoScriptError) for r in results):
            for name in {c.name for c in calls}:
                await self._redis.script_load(self._scripts[name].script)
            retry = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
            again = await self._pipeline([calls[i] for i in retry], lane)
            for i, r in zip(retry, again, strict=True):
                results[i] = r
        return results

    async def _pipeline(
        self, calls: Sequence[ScriptCall], lane: str
    ) -> list[list[str] | Exception]:
        raw = await self._lane(lane).execute(
            [["EVALSHA", self._scripts[c.name].sha, len(c.keys), *c.keys, *c.args] for c in calls],
            wait_replicas=self._wait.replicas,
            wait_timeout_ms=self._wait.timeout_ms,
        )
        return [_reply(r) for r in raw]

    async def fence(self, keys: Sequence[str]) -> None:
        """Return once the replicas have every write made so far in the slots of ``keys``.

        A no-op without a :class:`ReplicaWait`. Otherwise one small write per
        key (``<key>:fence``, same slot) followed by ``WAIT`` on the same
        connection: replication is ordered, so a replica that acknowledged it
        holds everything written in that slot before. Raises
        :class:`~gifting.store.wire.NotReplicated` (or a connection error)
        when too few replicas did in time.
        """
        if not self._wait.replicas or not keys:
            return
        replies = await self._lane("fence").execute(
            [["SET", f"{k}:fence", "1", "PX", 60_000] for k in keys],
            wait_replicas=self._wait.replicas,
            wait_timeout_ms=self._wait.timeout_ms,
        )
        for r in replies:
            if isinstance(r, Exception):
                raise r

    async def exists_many(self, keys: Sequence[str], lane: str = "default") -> list[bool]:
        """Whether each key exists, in one round trip (cheap checks before idempotent repairs)."""
        if not keys:
            return []
        replies = await self._lane(lane).execute([["EXISTS", k] for k in keys])
        for r in replies:
            if isinstance(r, Exception):
                raise r
        return [bool(r) for r in replies]

    def _lane(self, lane: str) -> WirePipeline | ClusterWire:
        wire = self._lanes.get(lane)
        if wire is None:
            wire = self._lanes[lane] = wire_for(self._redis)
        return wire

    async def close(self) -> None:
        """Close the lanes' connections."""
        for wire in self._lanes.values():
            await wire.close()
        self._lanes.clear()

    def sha(self, name: str) -> str:
        """The SHA1 of script ``name`` (for redis-benchmark and diagnostics)."""
        return str(self._scripts[name].sha)
