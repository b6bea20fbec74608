"""Stream goals (up to three): what they count, their steps, and the events they cause.

Pure. A goal counts the coins the stream receives (``gift`` null) or the
count of one gift (``gift`` set), from the moment it is set, toward
``target``; its ``steps`` are intermediate marks (strictly increasing, each
below the target). emit.lua adds a spend to every goal on the spend's first
emission and appends ``goal_reached`` ``{"goal","step"}`` for each step (and,
with ``step`` null, for the target) the spend's progress crossed, with the id
:func:`goal_reached_event_id` gives; this module holds the same rules for the
Python side (validation, views, the event bodies emit.lua must match).

A mark is *reached* when the goal's progress is at or above it: progress only
grows, and replacing the goals keeps a goal's progress when its id and gift
are unchanged, so a mark reached once is never announced again (a new mark at
or below the kept progress counts as reached, silently).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gifting.core.catalog_model import Catalog
from gifting.core.errors import BadRequest, UnknownItem
from gifting.core.ids import check_id

MAX_GOALS = 3
MAX_GOAL = 10**12
MAX_STEPS = 10
MAX_GOAL_TITLE = 80


@dataclass(frozen=True, slots=True)
class GoalSpec:
    """One goal as the creator set it."""

    id: str
    title: str
    target: int
    gift: str | None
    steps: tuple[int, ...]

    @property
    def marks(self) -> tuple[int, ...]:
        """The steps and then the target: every mark a ``goal_reached`` announces."""
        return (*self.steps, self.target)


@dataclass(frozen=True, slots=True)
class GoalState:
    """A goal and how far it is."""

    spec: GoalSpec
    progress: int

    def view(self) -> dict[str, Any]:
        """The goal on the wire (``goal`` events, snapshots, ``GET /v1/streams/{id}``)."""
        s = self.spec
        return {
            "id": s.id,
            "title": s.title,
            "progress": self.progress,
            "target": s.target,
            "gift": s.gift,
            "steps": list(s.steps),
            "steps_reached": [step for step in s.steps if step <= self.progress],
            "reached": self.progress >= s.target,
        }

    def legacy_view(self) -> dict[str, Any]:
        """The single-goal form older overlays read (``goal``: target, progress, gift)."""
        return {"target": self.spec.target, "progress": self.progress, "gift": self.spec.gift}


def _int(value: object, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{field} must be an integer")
    if not low <= value <= high:
        raise BadRequest(f"{field} must be between {low} and {high}")
    return value


def check_goal(raw: Mapping[str, Any], catalog: Catalog, where: str = "goal") -> GoalSpec:
    """One goal from a request body, checked; raise BadRequest / UnknownItem."""
    goal_id = check_id(raw.get("id"), f"{where}.id")
    title = raw.get("title", "")
    if not isinstance(title, str):
        raise BadRequest(f"{where}.title must be a string")
    if len(title) > MAX_GOAL_TITLE or any(ord(c) < 32 for c in title):
        raise BadRequest(
            f"{where}.title must be at most {MAX_GOAL_TITLE} characters, no control characters"
        )
    target = _int(raw.get("target"), f"{where}.target", 1, MAX_GOAL)
    gift = raw.get("gift")
    if gift is not None:
        if not isinstance(gift, str):
            raise BadRequest(f"{where}.gift must be a string or null")
        if gift not in catalog.gifts:
            raise UnknownItem(f"unknown gift {gift[:64]!r}")
    steps = raw.get("steps", [])
    if not isinstance(steps, list) or len(steps) > MAX_STEPS:
        raise BadRequest(f"{where}.steps must be a list of at most {MAX_STEPS} integers")
    checked = [_int(s, f"{where}.steps[]", 1, target - 1) for s in steps]
    if any(b <= a for a, b in itertools.pairwise(checked)):
        raise BadRequest(f"{where}.steps must be strictly increasing")
    return GoalSpec(goal_id, title, target, gift, tuple(checked))


def check_goals(raw: object, catalog: Catalog) -> list[GoalSpec]:
    """A stream's goals from a request body (a list), checked; raise BadRequest / UnknownItem."""
    if not isinstance(raw, list):
        raise BadRequest("goals must be a list")
    if len(raw) > MAX_GOALS:
        raise BadRequest(f"at most {MAX_GOALS} goals")
    specs: list[GoalSpec] = []
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise BadRequest(f"goals[{i}] must be an object")
        specs.append(check_goal(item, catalog, f"goals[{i}]"))
    ids = [s.id for s in specs]
    if len(set(ids)) != len(ids):
        raise BadRequest("goal ids must be unique")
    return specs


def goal_reached_event_id(spend_event: str, goal: str, step: int | None) -> str:
    """The id of the ``goal_reached`` a spend caused (emit.lua builds the same).

    ``e<rest>`` -> ``r<rest>.<step or "t">.<goal>``: one spend reaches a given
    mark of a given goal at most once, and another spend has another id.
    """
    return f"r{spend_event[1:]}.{'t' if step is None else step}.{goal}"


def goal_reached_event(
    stream: str, spend_event: str, ts: int, goal: str, step: int | None
) -> dict[str, Any]:
    """The ``goal_reached`` spend ``spend_event`` caused: its ``step`` (null: the target)."""
    return {
        "kind": "goal_reached",
        "stream": stream,
        "event": goal_reached_event_id(spend_event, goal, step),
        "ts": ts,
        "goal": goal,
        "step": step,
    }


def goals_event(stream: str, event: str, ts: int, goals: Sequence[GoalState]) -> dict[str, Any]:
    """The stream's goals and their progress (``goal``: the first, for older overlays)."""
    return {
        "kind": "goal",
        "stream": stream,
        "event": event,
        "ts": ts,
        "goals": [g.view() for g in goals],
        "goal": goals[0].legacy_view() if goals else None,
    }
