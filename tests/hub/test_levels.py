"""Gifter levels over real WebSockets: ``sender.level`` on every event, ``level_up`` once.

The default catalog's ladder starts 1 coin -> level 1, 100 -> 2, 500 -> 3.
Each test's users are fresh (their own key prefix): lifetime 0, level 0.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from gifting.core.levels import level_up_event_id
from gifting.core.pricing import price_gift
from gifting.persister.audit import run_audit
from gifting.store.ledger import SpendOrder
from tests.hub.conftest import HubServer, decode, encode, recv, serve
from tests.hub.test_badges_on_events import buy_badge, request

pytestmark = pytest.mark.cluster

SHOWN = {"gift", "effect", "highlight", "comment", "level_up"}


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


async def test_the_level_rides_on_every_event_and_level_up_shows_once(hub: HubServer) -> None:
    stream, key = await hub.stream("carol")
    await hub.fund("lena")
    async with hub.overlay(stream, key) as ov, hub.viewer(stream, "watcher") as watcher:
        assert (await recv(ov))["op"] == "snapshot"
        async with hub.viewer(stream, "lena") as lena:
            gift = await request(lena, {"op": "gift", "id": "g1", "gift": "rose", "count": 1})
            effect = await request(lena, {"op": "effect", "id": "f1", "effect": "confetti"})
            # A retry of the crossing spends' ids: replayed, nothing emitted again.
            again = await request(lena, {"op": "gift", "id": "g1", "gift": "rose", "count": 1})
            assert again["event"] == gift["event"]
            again = await request(lena, {"op": "effect", "id": "f1", "effect": "confetti"})
            assert again["event"] == effect["event"]
            await request(lena, {"op": "comment", "id": "c1", "text": "free"})
            high = await request(
                lena, {"op": "comment", "id": "h1", "text": "pinned", "highlight": "tier1"}
            )
            # The sentinel: a free comment sent after everything else.
            last = await request(lena, {"op": "comment", "id": "c2", "text": "last"})
        assert [a["op"] for a in (gift, effect, high, last)] == ["ack"] * 4
        on_overlay = await events_until(ov, last["event"])
        on_viewer = await events_until(watcher, last["event"])
    for events in (on_overlay, on_viewer):
        seen = [
            (e["kind"], e["level"] if e["kind"] == "level_up" else e["sender"]["level"])
            for e in events
        ]
        # rose (1 coin): level 1; confetti (99): 100 in all, level 2; then no crossing.
        assert seen == [
            ("gift", 1), ("level_up", 1), ("effect", 2), ("level_up", 2), ("comment", 2),
            ("highlight", 2), ("comment", 2),
        ]  # fmt: skip
        ups = [e for e in events if e["kind"] == "level_up"]
        assert [u["event"] for u in ups] == [
            level_up_event_id(gift["event"]), level_up_event_id(effect["event"]),
        ]  # fmt: skip
        assert all(u["user"] == "lena" and u["stream"] == stream for u in ups)
    assert (await hub.state.ledger.sender_marks("lena"))[1] == 1 + 99 + 10


async def test_concurrent_gifts_on_two_connections_cross_a_threshold_once(
    hub: HubServer,
) -> None:
    stream, key = await hub.stream("carol")
    await hub.fund("duo")
    async with hub.overlay(stream, key) as ov:
        assert (await recv(ov))["op"] == "snapshot"
        async with hub.viewer(stream, "duo") as a, hub.viewer(stream, "duo") as b:
            # 90 coins: level 1. Then 2 x 8 gifts of 2 roses at once, 122 in all: one
            # of them moves the total across 100.
            first = await request(a, {"op": "gift", "id": "p0", "gift": "rose", "count": 90})
            assert first["op"] == "ack"

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
            ups = [e for e in events if e["kind"] == "level_up"]
            assert [u["level"] for u in ups] == [1, 2], ups
            crossing = next(
                e for e in events
                if e["kind"] == "gift" and level_up_event_id(e["event"]) == ups[1]["event"]
            )  # fmt: skip
            gifts = [e for e in events if e["kind"] == "gift"]
            at = gifts.index(crossing)
            assert all(g["sender"]["level"] == 1 for g in gifts[:at])
            assert all(g["sender"]["level"] == 2 for g in gifts[at:])
            # A retry of the crossing gift's id, on the other connection: no second level_up.
            tag = next(m["id"] for m in acks if m["event"] == crossing["event"])
            other = b if tag.startswith("a") else a
            retry = await request(other, {"op": "gift", "id": tag, "gift": "rose", "count": 2})
            assert retry["event"] == crossing["event"]
            sentinel = await request(a, {"op": "comment", "id": "end2", "text": "end"})
            after = await events_until(ov, sentinel["event"])
            assert [e["kind"] for e in after] == ["comment"]


async def test_badges_count_toward_the_level(hub: HubServer) -> None:
    """A badge has no room: its coins count, and the next event shows the level."""
    stream, key = await hub.stream("carol")
    await hub.fund("bo")
    await buy_badge(hub, "bo", "b-1", "super_fan")  # 500 coins: level 3
    async with hub.overlay(stream, key) as ov, hub.viewer(stream, "bo") as bo:
        assert (await recv(ov))["op"] == "snapshot"
        gift = await request(bo, {"op": "gift", "id": "g1", "gift": "rose", "count": 1})
        last = await request(bo, {"op": "comment", "id": "c1", "text": "hi"})
        events = await events_until(ov, last["event"])
    assert [(e["kind"], e["sender"]["level"]) for e in events] == [("gift", 3), ("comment", 3)]
    assert events[0]["event"] == gift["event"]


async def test_the_persister_repairs_a_crossing_spend_and_its_level_up_once(
    redis_url: str, db_url: str, key_prefix: str
) -> None:
    async with serve(
        redis_url, db_url, key_prefix, with_persister=True,
        GIFTING_PERSISTER_IN_PROCESS=True, GIFTING_PERSISTER_CLAIM_IDLE_MS=200,
    ) as h:  # fmt: skip
        stream, key = await h.stream("rita")
        await h.fund("sam")
        async with h.overlay(stream, key) as ov:
            assert (await recv(ov))["op"] == "snapshot"
            # The debit alone, as in a hub that crashed before its settle step:
            # 4 doughnuts (120 coins) take sam from 0 across levels 1 and 2.
            priced = price_gift(h.state.catalog, "doughnut", 4)
            order = SpendOrder("sam", "Sam", "lost-1", priced, stream, "rita")
            result = await h.state.ledger.spend(order, live=True)
            seen: list[dict[str, Any]] = []
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(6):
                    while True:
                        msg = decode(await ov.recv())
                        batch = msg["events"] if msg["op"] == "batch" else [msg]
                        seen += [e for e in batch if e.get("kind") in SHOWN]
        # One level_up per threshold crossed, each once (the hub never emitted them).
        assert [(e["kind"], e["event"]) for e in seen] == [
            ("gift", result.event), ("level_up", level_up_event_id(result.event, 1)),
            ("level_up", level_up_event_id(result.event)),
        ]  # fmt: skip
        assert seen[0]["sender"] == {"id": "sam", "name": "Sam", "level": 2}
        assert [(e["level"], e["user"]) for e in seen[1:]] == [(1, "sam"), (2, "sam")]
        # Money conserved as ever: the lifetime total is display state beside it.
        assert h.state.pg_pool is not None
        report = await run_audit(h.state.pg_pool, h.state.redis, h.state.keys, h.state.catalog)
        assert report.ok, report.render()


async def test_a_creators_own_effect_counts_toward_their_level(hub: HubServer) -> None:
    """A self-purchase (the platform keeps its coins) is a spend like any: it counts."""
    stream, key = await hub.stream("cleo")
    await hub.fund("cleo")
    async with hub.overlay(stream, key) as ov, hub.viewer(stream, "cleo") as cleo:
        assert (await recv(ov))["op"] == "snapshot"
        effect = await request(cleo, {"op": "effect", "id": "f1", "effect": "confetti"})
        assert effect["op"] == "ack", effect
        events = await events_until(ov, level_up_event_id(effect["event"]))
    assert [(e["kind"], e.get("level") or e["sender"]["level"]) for e in events] == [
        ("effect", 1), ("level_up", 1),
    ]  # fmt: skip
