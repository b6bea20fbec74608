"""``PUT /v1/streams/{id}/goals``: the creator's goals, checked; bad bodies change nothing."""

from __future__ import annotations

from typing import Any

import pytest
from api_support import Api

from gifting.core.goals import MAX_GOAL

GOOD = {"id": "g1", "title": "Roses", "target": 100, "gift": "rose", "steps": [10, 50]}


def goal(**kw: Any) -> dict[str, Any]:
    return {**GOOD, **kw}


async def test_the_creator_sets_goals_and_reads_them_back(api: Api) -> None:
    stream = (await api.create_stream("carol"))["stream"]
    body = {"goals": [goal(), {"id": "coins", "target": 5000}]}
    r = await api.send("PUT", f"/v1/streams/{stream}/goals", body, user="carol")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "stream": stream,
        "goals": [
            {"id": "g1", "title": "Roses", "progress": 0, "target": 100, "gift": "rose",
             "steps": [10, 50], "steps_reached": [], "reached": False},
            {"id": "coins", "title": "", "progress": 0, "target": 5000, "gift": None,
             "steps": [], "steps_reached": [], "reached": False},
        ],
    }  # fmt: skip
    view = (await api.get(f"/v1/streams/{stream}")).json()
    assert view["goals"] == r.json()["goals"]
    assert view["goal"] == {"target": 100, "progress": 0, "gift": "rose"}
    r = await api.send("PUT", f"/v1/streams/{stream}/goals", {"goals": []}, user="carol")
    assert r.status_code == 200 and r.json()["goals"] == []
    assert (await api.get(f"/v1/streams/{stream}")).json()["goal"] is None


BAD: list[tuple[str, object, int]] = [
    ("four goals", [goal(id=f"g{i}") for i in range(4)], 400),
    ("ids repeat", [goal(), goal(title="again")], 400),
    ("target 0", [goal(target=0, steps=[])], 400),
    ("target too big", [goal(target=MAX_GOAL + 1)], 400),
    ("target a string", [goal(target="100")], 400),
    ("target a float", [goal(target=100.5)], 400),
    ("steps not increasing", [goal(steps=[50, 10])], 400),
    ("steps repeat", [goal(steps=[10, 10])], 400),
    ("a step at the target", [goal(steps=[10, 100])], 400),
    ("a step above the target", [goal(steps=[200])], 400),
    ("a step 0", [goal(steps=[0, 10])], 400),
    ("a negative step", [goal(steps=[-5])], 400),
    ("steps not a list", [goal(steps=10)], 400),
    ("eleven steps", [goal(target=10**6, steps=list(range(1, 12)))], 400),
    ("a bad id", [goal(id="a b")], 400),
    ("no id", [{"target": 5}], 400),
    ("a title with a newline", [goal(title="a\nb")], 400),
    ("a title too long", [goal(title="x" * 81)], 400),
    ("an unknown field", [goal(color="red")], 400),
    ("a goal not an object", ["g1"], 400),
    ("goals not a list", {"id": "g1"}, 400),
    ("an unknown gift", [goal(gift="dragon")], 404),
]


@pytest.mark.parametrize(("case", "goals", "status"), BAD, ids=[b[0] for b in BAD])
async def test_bad_goals_are_refused_and_change_nothing(
    api: Api, case: str, goals: object, status: int
) -> None:
    stream = (await api.create_stream("carol"))["stream"]
    ok = await api.send("PUT", f"/v1/streams/{stream}/goals", {"goals": [goal()]}, user="carol")
    assert ok.status_code == 200
    before = await api.snapshot()
    r = await api.send("PUT", f"/v1/streams/{stream}/goals", {"goals": goals}, user="carol")
    assert r.status_code == status, (case, r.text)
    assert r.json()["code"] in ("bad_request", "unknown_item")
    assert await api.snapshot() == before


async def test_only_the_creator_sets_goals(api: Api) -> None:
    stream = (await api.create_stream("carol"))["stream"]
    before = await api.snapshot()
    r = await api.send("PUT", f"/v1/streams/{stream}/goals", {"goals": [goal()]}, user="mallory")
    assert r.status_code == 403
    r = await api.send("PUT", "/v1/streams/s-none/goals", {"goals": [goal()]}, user="carol")
    assert r.status_code == 404
    assert await api.snapshot() == before
