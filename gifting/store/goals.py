"""A room's goals in Redis: set them at once (goals_set.lua), read them with their progress.

The goals hash (``Keys.stream_goals``, in the room's slot ``{r:<stream>}``)
holds ``defs`` (the goals as JSON, for readers), ``n``, and for each goal
``i`` = 1..n the fields emit.lua reads and counts: ``id:<i>``, ``gift:<i>``
(empty: coins), ``marks:<i>`` (the steps then the target) and ``p:<i>`` (its
progress). emit.lua adds each spend to the goals on the spend's first
emission and appends the ``goal_reached`` events it causes, in the same
script (gifting/core/goals.py states the rules).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from redis.asyncio import Redis

from gifting.core.goals import GoalSpec, GoalState
from gifting.store.keys import Keys
from gifting.store.scripts import Scripts

_json = msgspec.json.Encoder()
_decode = msgspec.json.Decoder()


def _spec_json(spec: GoalSpec) -> dict[str, Any]:
    return {
        "id": spec.id,
        "title": spec.title,
        "target": spec.target,
        "gift": spec.gift,
        "steps": list(spec.steps),
    }


def goals_from_hash(fields: Mapping[str, str]) -> list[GoalState]:
    """The goals and their progress from the goals hash's fields (empty: none)."""
    defs = fields.get("defs")
    if not defs:
        return []
    out: list[GoalState] = []
    for i, d in enumerate(_decode.decode(defs), start=1):
        spec = GoalSpec(d["id"], d["title"], d["target"], d["gift"], tuple(d["steps"]))
        out.append(GoalState(spec, int(fields.get(f"p:{i}", "0"))))
    return out


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class Goals:
    """Set and read the goals of rooms."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self.scripts = Scripts(redis)

    async def replace(self, stream: str, specs: Sequence[GoalSpec]) -> list[GoalState]:
        """Replace the room's goals (checked already); a goal with the same id and gift keeps
        its progress. Returns the goals with their progress."""
        args: list[str | int] = [
            _json.encode([_spec_json(s) for s in specs]).decode(),
            len(specs),
        ]
        for spec in specs:
            args += [spec.id, spec.gift or "", ",".join(str(m) for m in spec.marks)]
        progress = await self.scripts.run("goals_set", [self.keys.stream_goals(stream)], args)
        return [GoalState(s, int(p)) for s, p in zip(specs, progress, strict=True)]

    async def read(self, stream: str) -> list[GoalState]:
        """The room's goals with their progress (empty when none is set)."""
        raw = await self.redis.hgetall(self.keys.stream_goals(stream))
        return goals_from_hash({_text(k): _text(v) for k, v in raw.items()})
