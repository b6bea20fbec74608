"""Stream goals over real WebSockets: progress counted by emit.lua, ``goal_reached`` once.

The default catalog: rose 1 coin, doughnut 30 coins.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx
import pytest

from gifting.core.goals import goal_reached_event, goal_reached_event_id
from gifting.core.pricing import price_gift
from gifting.store.ledger import SpendOrder
from tests.hub.conftest import HubServer, decode, encode, recv, recv_until, serve
from tests.hub.test_badges_on_events import request

pytestmark = pytest.mark.cluster

SHOWN = {"gift", "comment", "goal_reached"}


async def events_until(ws: Any, last_event: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The room events (single or batched) up to and including the one with id ``last_event``."""
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while True:
            msg = decode(await ws.recv())
            batch = msg["events"] if msg["op"] == "batch" else [msg]
            out += [e for e in batch if e.get("kind") in SHOWN]
            if any(e.get("event") == last_event for e in batch):
                return out


async def put_goals(hub: HubServer, stream: str, goals: list[dict[str, Any]]) -> httpx.Response:
    """``PUT /v1/streams/{stream}/goals`` as the stream's creator ("carol")."""
    auth = {"Authorization": f"Bearer {hub.token('carol', creator=True)}"}
    url = f"http://127.0.0.1:{hub.port}/v1/streams/{stream}/goals"
    async with httpx.AsyncClient() as client:
        return await client.put(url, json={"goals": goals}, headers=auth)


def reached(events: list[dict[str, Any]]) -> list[tuple[str, int | None]]:
    """The (goal, step) of each ``goal_reached``, sorted (the target, step null, last)."""
    pairs = [(e["goal"], e["step"]) for e in events if e["kind"] == "goal_reached"]
    return sorted(pairs, key=lambda p: (p[0], 2**63 if p[1] is None else p[1]))


async def test_two_connections_racing_across_steps_reach_each_step_once(hub: HubServer) -> None:
    stream, key = await hub.stream("carol")
    await hub.fund("duo")
    r = await put_goals(hub, stream, [
        {"id": "coins", "title": "Coins", "target": 40, "gift": None, "steps": [10, 25]},
        {"id": "roses", "title": "Roses", "target": 30, "gift": "rose", "steps": [10, 20]},
    ])  # fmt: skip
    assert r.status_code == 200, r.text
    async with hub.overlay(stream, key) as ov:
        assert (await recv(ov))["op"] == "snapshot"
        async with hub.viewer(stream, "duo") as a, hub.viewer(stream, "duo") as b:

            async def burst(ws: Any, tag: str) -> list[dict[str, Any]]:
                for i in range(8):
                    await ws.send(
                        encode({"op": "gift", "id": f"{tag}{i}", "gift": "rose", "count": 2})
                    )
                acks = []
                while len(acks) < 8:
                    msg = decode(await ws.recv())
                    if msg["op"] in ("ack", "error"):
                        acks.append(msg)
                return acks

            acks_a, acks_b = await asyncio.gather(burst(a, "a"), burst(b, "b"))
            acks = acks_a + acks_b
            assert [m["op"] for m in acks] == ["ack"] * 16, acks
            sentinel = await request(a, {"op": "comment", "id": "end1", "text": "end"})
            events = await events_until(ov, sentinel["event"])
            # 32 roses = 32 coins: coins 10 and 25 (not 40); roses 10, 20 and the target.
            assert reached(events) == [
                ("coins", 10), ("coins", 25), ("roses", 10), ("roses", 20), ("roses", None),
            ]  # fmt: skip
            gifts = {e["event"]: e for e in events if e["kind"] == "gift"}
            for e in (e for e in events if e["kind"] == "goal_reached"):
                cause = next(
                    g for g in gifts.values()
                    if goal_reached_event_id(g["event"], e["goal"], e["step"]) == e["event"]
                )  # fmt: skip
                # Built in Lua, the same body gifting/core/goals.py would build.
                rest = {k: v for k, v in e.items() if k not in ("op", "seq", "cursor")}
                assert rest == goal_reached_event(stream, cause["event"], cause["ts"], e["goal"],
                                                  e["step"])  # fmt: skip
                # Right after the spend that crossed it.
                assert events.index(e) > events.index(cause)
            # A retry of a crossing gift's id, on the other connection: nothing again.
            crossing = next(e for e in events if e["kind"] == "goal_reached")
            spend = next(g for g in gifts if crossing["event"].startswith("r" + g[1:] + "."))
            tag = next(m["id"] for m in acks if m["event"] == spend)
            other = b if tag.startswith("a") else a
            retry = await request(other, {"op": "gift", "id": tag, "gift": "rose", "count": 2})
            assert retry["event"] == spend
            sentinel = await request(a, {"op": "comment", "id": "end2", "text": "end"})
            after = await events_until(ov, sentinel["event"])
            assert [e["kind"] for e in after] == ["comment"]
        # The ticker's goal event shows every goal with its steps reached.
        goal = await recv_until(
            ov, lambda m: m.get("kind") == "goal" and m["goals"][0]["progress"] == 32
        )
    assert [(g["id"], g["progress"], g["steps_reached"], g["reached"]) for g in goal["goals"]] == [
        ("coins", 32, [10, 25], False), ("roses", 32, [10, 20], True),
    ]  # fmt: skip
    assert goal["goal"] == {"target": 40, "progress": 32, "gift": None}


async def test_a_gift_goal_counts_gifts_and_replacing_keeps_what_is_unchanged(
    hub: HubServer,
) -> None:
    stream, key = await hub.stream("carol")
    await hub.fund("dan")
    first = [
        {"id": "coins", "title": "", "target": 100, "gift": None, "steps": [50]},
        {"id": "dough", "title": "Doughnuts", "target": 3, "gift": "doughnut", "steps": [1]},
    ]
    assert (await put_goals(hub, stream, first)).status_code == 200
    async with hub.overlay(stream, key) as ov, hub.viewer(stream, "dan") as dan:
        assert (await recv(ov))["op"] == "snapshot"
        await request(dan, {"op": "gift", "id": "g1", "gift": "doughnut", "count": 2})
        last = await request(dan, {"op": "comment", "id": "c1", "text": "x"})
        events = await events_until(ov, last["event"])
        # 2 doughnuts: 60 coins (step 50), a count of 2 (step 1, not the target 3).
        assert reached(events) == [("coins", 50), ("dough", 1)]
        second = [
            # Same id and gift: keeps 60; its step 50 is reached already, 40 too (silently).
            {"id": "coins", "title": "More", "target": 200, "gift": None, "steps": [40, 50, 150]},
            # Same id, another gift: starts again at 0.
            {"id": "dough", "title": "Roses now", "target": 5, "gift": "rose", "steps": []},
            {"id": "new", "title": "New", "target": 1, "gift": "doughnut", "steps": []},
        ]
        r = await put_goals(hub, stream, second)
        assert r.status_code == 200, r.text
        assert [(g["id"], g["progress"], g["steps_reached"]) for g in r.json()["goals"]] == [
            ("coins", 60, [40, 50]), ("dough", 0, []), ("new", 0, []),
        ]  # fmt: skip
        await request(dan, {"op": "gift", "id": "g2", "gift": "doughnut", "count": 4})
        last = await request(dan, {"op": "comment", "id": "c2", "text": "y"})
        events = await events_until(ov, last["event"])
        # 60 + 120 = 180: only 150 is new; the rose goal counts no doughnut.
        assert reached(events) == [("coins", 150), ("new", None)]
    async with httpx.AsyncClient() as client:
        view = (await client.get(f"http://127.0.0.1:{hub.port}/v1/streams/{stream}")).json()
    assert [(g["id"], g["progress"]) for g in view["goals"]] == [
        ("coins", 180), ("dough", 0), ("new", 4),
    ]  # fmt: skip
    assert view["goal"] == {"target": 200, "progress": 180, "gift": None}


async def test_the_older_single_goal_call_is_one_goal_of_the_list(hub: HubServer) -> None:
    stream, key = await hub.stream("carol")
    await put_goals(hub, stream, [{"id": "a", "target": 5}, {"id": "b", "target": 6}])
    auth = {"Authorization": f"Bearer {hub.token('carol', creator=True)}"}
    base = f"http://127.0.0.1:{hub.port}/v1/streams/{stream}"
    async with hub.overlay(stream, key) as ov, httpx.AsyncClient() as client:
        snap = await recv(ov)
        assert [g["id"] for g in snap["goals"]] == ["a", "b"]
        r = await client.put(f"{base}/goal", json={"target": 500, "gift": "rose"}, headers=auth)
        assert r.status_code == 200
        goal = await recv_until(ov, lambda m: m.get("kind") == "goal")
    assert goal["goal"] == {"target": 500, "progress": 0, "gift": "rose"}
    assert [g["id"] for g in goal["goals"]] == ["goal"]


async def test_the_persister_repairs_a_crossing_spend_and_its_goal_reached_once(
    redis_url: str, db_url: str, key_prefix: str
) -> None:
    async with serve(
        redis_url, db_url, key_prefix, with_persister=True,
        GIFTING_PERSISTER_IN_PROCESS=True, GIFTING_PERSISTER_CLAIM_IDLE_MS=200,
    ) as h:  # fmt: skip
        stream, key = await h.stream("carol")
        await h.fund("sam")
        r = await put_goals(h, stream, [{"id": "g", "target": 100, "steps": [50]}])
        assert r.status_code == 200
        async with h.overlay(stream, key) as ov:
            assert (await recv(ov))["op"] == "snapshot"
            # The debit alone, as in a hub that crashed before its settle step:
            # 4 doughnuts (120 coins) cross the step and the target.
            priced = price_gift(h.state.catalog, "doughnut", 4)
            order = SpendOrder("sam", "Sam", "lost-1", priced, stream, "carol")
            result = await h.state.ledger.spend(order, live=True)
            seen: list[dict[str, Any]] = []
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(6):
                    while True:
                        msg = decode(await ov.recv())
                        batch = msg["events"] if msg["op"] == "batch" else [msg]
                        seen += [e for e in batch if e.get("kind") in SHOWN]
        assert [(e["kind"], e["event"]) for e in seen] == [
            ("gift", result.event),
            ("goal_reached", goal_reached_event_id(result.event, "g", 50)),
            ("goal_reached", goal_reached_event_id(result.event, "g", None)),
        ]
        # Counted once, however many emitted it.
        goals = await h.state.streams.goals.read(stream)
        assert [g.progress for g in goals] == [120]
