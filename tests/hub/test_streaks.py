"""Streak ends decided in Redis: once per streak, across hubs and through a hub's restart.

spend.lua schedules each streak's end with the debit; any hub's (or the
persister's) deadline runner emits ``streak_end`` when the combo window has
passed since the streak's last gift (gifting/store/streaks.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import pytest

from gifting.core.streaks import streak_end_event_id
from tests.hub.conftest import HubServer, decode, encode, recv, recv_until, serve

pytestmark = pytest.mark.cluster

WINDOW_MS = 600
FAST = {
    "GIFTING_COMBO_WINDOW_MS": WINDOW_MS,
    "GIFTING_DUE_INTERVAL_MS": 50,
    "GIFTING_RATE_PER_S": 1000,
    "GIFTING_RATE_BURST": 2000,
}


async def room_events(
    ov: Any, kinds: set[str], quiet_s: float, stop: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    """The overlay's events of ``kinds``, read until ``stop`` holds and the room stays quiet."""
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(20):
        while not stop(seen):
            msg = decode(await ov.recv())
            if msg.get("kind") in kinds:
                seen.append(msg)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(quiet_s):
            while True:
                msg = decode(await ov.recv())
                if msg.get("kind") in kinds:
                    seen.append(msg)
    return seen


async def gift(ws: Any, msg_id: str, gift_id: str = "rose", count: int = 1) -> dict[str, Any]:
    await ws.send(encode({"op": "gift", "id": msg_id, "gift": gift_id, "count": count}))
    return await recv_until(ws, lambda m: m["op"] in ("ack", "error") and m.get("id") == msg_id)


async def test_a_streak_continued_on_another_hub_ends_once_with_its_whole_combo(
    redis_url: str, database_url: str, key_prefix: str
) -> None:
    async with (
        serve(redis_url, database_url, key_prefix, **FAST) as a,
        serve(redis_url, database_url, key_prefix, **FAST) as b,
    ):
        stream, key = await a.stream()
        await a.fund("ivy")
        async with (
            a.overlay(stream, key) as ov,
            a.viewer(stream, "ivy") as on_a,
            b.viewer(stream, "ivy") as on_b,
        ):
            assert (await recv(ov))["op"] == "snapshot"
            combos = []
            for i in range(6):  # alternate hubs, each gift well within the window
                acked = await gift(on_a if i % 2 else on_b, f"g{i}", count=2)
                combos.append(acked["combo"])
            assert combos == [2, 4, 6, 8, 10, 12]
            last = acked["event"]
            ends = await room_events(ov, {"streak_end"}, quiet_s=3 * WINDOW_MS / 1000, stop=bool)
    assert len(ends) == 1, ends
    (end,) = ends
    assert end["combo"] == 12
    assert end["event"] == streak_end_event_id(last)
    assert end["sender"]["id"] == "ivy" and end["gift"]["id"] == "rose"


async def test_a_streak_whose_hub_stops_is_ended_by_another(
    redis_url: str, database_url: str, key_prefix: str
) -> None:
    async with serve(redis_url, database_url, key_prefix, **FAST) as b:
        stream, key = await b.stream()
        await b.fund("max")
        async with b.overlay(stream, key) as ov:
            assert (await recv(ov))["op"] == "snapshot"
            async with (
                serve(redis_url, database_url, key_prefix, **FAST) as a,
                a.viewer(stream, "max") as viewer,
            ):
                for i in range(3):
                    assert (await gift(viewer, f"m{i}", "doughnut"))["combo"] == i + 1
            # Hub a is gone, within the window: b's runner ends the streak.
            ends = await room_events(ov, {"streak_end"}, quiet_s=2 * WINDOW_MS / 1000, stop=bool)
    assert [(e["gift"]["id"], e["combo"]) for e in ends] == [("doughnut", 3)]


async def test_switching_gifts_ends_each_streak_after_its_own_last_gift(hub: HubServer) -> None:
    stream, key = await hub.stream()
    await hub.fund("zoe")
    async with hub.overlay(stream, key) as ov, hub.viewer(stream, "zoe") as viewer:
        assert (await recv(ov))["op"] == "snapshot"
        for i in range(3):
            await gift(viewer, f"r{i}")
        assert (await gift(viewer, "t0", "tiktok"))["combo"] == 1
        assert (await gift(viewer, "r9"))["combo"] == 1  # rose again: a new streak
        ends = await room_events(
            ov, {"streak_end"}, quiet_s=0.5, stop=lambda seen: len(seen) >= 3
        )  # fmt: skip
    # The default window is 3 s: every end comes after it, each with its own count.
    assert [(e["gift"]["id"], e["combo"]) for e in ends] == [
        ("rose", 3), ("tiktok", 1), ("rose", 1),
    ]  # fmt: skip
    assert len({e["event"] for e in ends}) == 3


async def test_a_refused_gift_neither_continues_nor_ends_a_streak(hub: HubServer) -> None:
    stream, key = await hub.stream()
    await hub.fund("ned", package="coins_70")
    async with hub.overlay(stream, key) as ov, hub.viewer(stream, "ned") as viewer:
        assert (await recv(ov))["op"] == "snapshot"
        assert (await gift(viewer, "a", "doughnut", 2))["combo"] == 2
        refused = await gift(viewer, "b", "doughnut", 5)  # 150 coins: short
        assert refused["code"] == "insufficient_funds"
        ends = await room_events(ov, {"streak_end"}, quiet_s=0.5, stop=bool)
    assert [(e["gift"]["id"], e["combo"]) for e in ends] == [("doughnut", 2)]
