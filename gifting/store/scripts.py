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

from gifting.store.wire import WirePipeline

SCRIPT_NAMES = (
    "spend",
    "purchase",
    "refund",
    "credit",
    "cashout_hold",
    "cashout_settle",
    "emit",
    "snapshot",
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

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._lanes: dict[str, WirePipeline] = {}
        self._scripts: dict[str, AsyncScript] = {
            name: redis.register_script(script_source(name)) for name in SCRIPT_NAMES
        }

    async def run(
        self, name: str, keys: Sequence[str], args: Sequence[str | int], client: Any = None
    ) -> list[str]:
        """Run script ``name``; the reply is a list of strings (every script returns strings)."""
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
        wire = self._lanes.get(lane)
        if wire is None:
            wire = self._lanes[lane] = WirePipeline.like(self._redis)
        raw = await wire.execute(
            [["EVALSHA", self._scripts[c.name].sha, len(c.keys), *c.keys, *c.args] for c in calls]
        )
        return [_reply(r) for r in raw]

    async def exists_many(self, keys: Sequence[str], lane: str = "default") -> list[bool]:
        """Whether each key exists, in one round trip (cheap checks before idempotent repairs)."""
        if not keys:
            return []
        wire = self._lanes.get(lane)
        if wire is None:
            wire = self._lanes[lane] = WirePipeline.like(self._redis)
        replies = await wire.execute([["EXISTS", k] for k in keys])
        for r in replies:
            if isinstance(r, Exception):
                raise r
        return [bool(r) for r in replies]

    async def close(self) -> None:
        """Close the lanes' connections."""
        for wire in self._lanes.values():
            await wire.close()
        self._lanes.clear()

    def sha(self, name: str) -> str:
        """The SHA1 of script ``name`` (for redis-benchmark and diagnostics)."""
        return str(self._scripts[name].sha)
