"""Treasure boxes over the viewer socket: drop, claim, events, errors (real uvicorn and Redis).

The box is made open at once by moving its ``opens_at`` in Redis (the
script reads the time from Redis; waiting the minimum 10 s is the deadline
test's job), and the close is the same handler the deadline runner calls.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from gifting.core.boxes import box_id_of
from tests.hub.conftest import HubServer, decode, encode, recv, recv_until

pytestmark = pytest.mark.cluster


async def _reply(ws: Any) -> dict[str, Any]:
    return await recv_until(ws, lambda m: m["op"] in ("ack", "error"))


async def _event(ws: Any, kind: str) -> dict[str, Any]:
    while True:
        msg = await recv(ws)
        items = msg["events"] if msg["op"] == "batch" else [msg] if msg["op"] == "event" else []
        for e in items:
            if e["kind"] == kind:
                return e


async def _coins(hub: HubServer, user: str) -> int:
    return (await hub.state.ledger.wallet(user)).coins


async def test_drop_claim_and_close_over_the_socket(hub: HubServer) -> None:
    stream, key = await hub.stream()
    await hub.fund("alice")
    boxes = hub.state.hub.boxes if hub.state.hub else None
    assert boxes is not None
    async with (
        hub.overlay(stream, key) as overlay,
        hub.viewer(stream, "alice") as alice,
        hub.viewer(stream, "bob") as bob,
        hub.viewer(stream, "dan") as dan,
    ):
        assert (await recv(overlay))["op"] == "snapshot"
        # Bad drops: a clear error each, nothing debited.
        for bad in [
            {"coins": 99, "winners": 2, "opens_in_s": 10},
            {"coins": 100, "winners": 0, "opens_in_s": 10},
            {"coins": 100, "winners": 101, "opens_in_s": 10},
            {"coins": 100, "winners": 2, "opens_in_s": 301},
            {"coins": 100, "winners": True, "opens_in_s": 10},
            {"coins": "100", "winners": 2, "opens_in_s": 10},
            {"coins": 100, "winners": 2},
            {"coins": 100, "winners": 2, "opens_in_s": 10, "extra": 1},
        ]:
            await alice.send(encode({"op": "box", "id": "bad", **bad}))
            reply = await _reply(alice)
            assert (reply["op"], reply["code"]) == ("error", "bad_request"), bad
        await alice.send(encode({"op": "box", "id": "rich", "coins": 10**6, "winners": 2,
                                 "opens_in_s": 10}))  # fmt: skip
        assert (await _reply(alice))["code"] == "insufficient_funds"
        assert await _coins(hub, "alice") == 700

        await alice.send(
            encode({"op": "box", "id": "b1", "coins": 101, "winners": 2, "opens_in_s": 10})
        )
        ack = await _reply(alice)
        assert ack["op"] == "ack" and ack["balance"] == 599
        box = ack["box"]
        assert box == box_id_of(ack["event"])
        dropped = await _event(overlay, "box_dropped")
        assert (dropped["box"], dropped["coins"], dropped["winners"]) == (box, 101, 2)
        assert dropped["opens_at"] - dropped["ts"] == 10_000
        assert dropped["closes_at"] - dropped["opens_at"] == 30_000

        k = hub.state.keys
        # The box exists by now, but a script Redis had to load first (NOSCRIPT: the
        # pipeline retries it) can run after the emission: wait for it, as a claim at
        # opens_at would.
        for _ in range(500):
            if await hub.state.redis.exists(k.box(stream, box)):
                break
            await asyncio.sleep(0.01)
        await bob.send(encode({"op": "claim", "id": "c0", "box": box}))
        assert (await _reply(bob))["code"] == "box_not_open"
        await bob.send(encode({"op": "claim", "id": "c0", "box": "qnosuchbox"}))
        assert (await _reply(bob))["code"] == "unknown_box"
        await bob.send(encode({"op": "claim", "id": "c0", "box": "no box"}))
        assert (await _reply(bob))["code"] == "bad_request"

        # Open it now (Redis's clock decides).
        await hub.state.redis.hset(k.box(stream, box), "opens_at", int(time.time() * 1000) - 1)
        await bob.send(encode({"op": "claim", "id": "c1", "box": box}))
        first = await _reply(bob)
        assert (first["op"], first["box"], first["share"], first["balance"]) == (
            "ack", box, 51, 51,
        )  # fmt: skip
        await bob.send(encode({"op": "claim", "id": "c1", "box": box}))  # a retry
        assert await _reply(bob) == first
        await bob.send(encode({"op": "claim", "id": "c2", "box": box}))
        assert (await _reply(bob))["code"] == "already_claimed"
        await dan.send(encode({"op": "claim", "id": "c1", "box": box}))
        assert (await _reply(dan))["share"] == 50
        await alice.send(encode({"op": "claim", "id": "c1", "box": box}))
        assert (await _reply(alice))["code"] == "box_closed"  # K claims taken
        claimed = [await _event(overlay, "box_claimed") for _ in range(2)]
        assert [(c["user"], c["share"]) for c in claimed] == [("bob", 51), ("dan", 50)]

        await hub.state.redis.hset(k.box(stream, box), "closes_at", int(time.time() * 1000) - 1)
        await boxes.close(f"{stream}|{box}")
        closed = await _event(overlay, "box_closed")
        assert (closed["claimed"], closed["returned"], closed["claims"]) == (101, 0, 2)
    assert (await _coins(hub, "bob"), await _coins(hub, "dan")) == (51, 50)
    assert await _coins(hub, "alice") == 599


async def test_overlays_may_not_drop_or_claim(hub: HubServer) -> None:
    stream, key = await hub.stream()
    async with hub.overlay(stream, key) as overlay:
        assert (await recv(overlay))["op"] == "snapshot"
        await overlay.send(encode({"op": "claim", "id": "c1", "box": "q1"}))
        reply = decode(await overlay.recv())
        assert (reply["op"], reply["code"]) == ("error", "bad_request")


async def test_the_hubs_deadline_runner_opens_and_closes_the_box(hub: HubServer) -> None:
    """No hand-run handler: the settle step schedules, the hub's runner opens (after 10 s)."""
    from gifting.store.deadlines import Deadlines

    stream, key = await hub.stream()
    await hub.fund("ivy")
    async with (
        hub.overlay(stream, key) as overlay,
        hub.viewer(stream, "ivy") as ivy,
        hub.viewer(stream, "jon") as jon,
    ):
        assert (await recv(overlay))["op"] == "snapshot"
        await ivy.send(
            encode({"op": "box", "id": "b1", "coins": 100, "winners": 3, "opens_in_s": 10})
        )
        box = (await _reply(ivy))["box"]
        dropped = await _event(overlay, "box_dropped")
        opened = await recv_until(
            overlay,
            lambda m: any(
                e.get("kind") == "box_opened" for e in (m["events"] if m["op"] == "batch" else [m])
            ),
            timeout=15,
        )
        assert opened is not None and time.time() * 1000 >= dropped["opens_at"] - 50
        await jon.send(encode({"op": "claim", "id": "c1", "box": box}))
        assert (await _reply(jon))["share"] == 34
        # The window is over: move it and its deadline to now; the runner closes it.
        k = hub.state.keys
        now = int(time.time() * 1000)
        await hub.state.redis.hset(k.box(stream, box), "closes_at", now - 1)
        deadlines = Deadlines(hub.state.redis, k)
        await deadlines.schedule(f"box_close|{stream}|{box}", now - 1)
        await deadlines.aclose()
        closed = await _event(overlay, "box_closed")
        assert (closed["claimed"], closed["returned"]) == (34, 66)
    assert await _coins(hub, "ivy") == 700 - 100 + 66


async def test_claims_racing_from_many_sockets_pay_k_winners_every_coin_once(
    hub: HubServer,
) -> None:
    stream, _ = await hub.stream()
    await hub.fund("kim")
    fans = [f"fan{i}" for i in range(20)]
    async with hub.viewer(stream, "kim") as kim:
        await kim.send(
            encode({"op": "box", "id": "b1", "coins": 103, "winners": 5, "opens_in_s": 10})
        )
        box = (await _reply(kim))["box"]
    k, redis = hub.state.keys, hub.state.redis
    for _ in range(500):
        if await redis.exists(k.box(stream, box)):
            break
        await asyncio.sleep(0.01)
    await redis.hset(k.box(stream, box), "opens_at", int(time.time() * 1000) - 1)

    async def claim(user: str) -> dict[str, Any]:
        async with hub.viewer(stream, user) as ws:
            await ws.send(encode({"op": "claim", "id": "c1", "box": box}))
            return await _reply(ws)

    replies = await asyncio.gather(*(claim(u) for u in fans))
    won = sorted(r["share"] for r in replies if r["op"] == "ack")
    assert won == [20, 20, 21, 21, 21]  # 103 = 5 x 20 + 3: the first three claims get 21
    assert sorted(r["code"] for r in replies if r["op"] == "error") == ["box_closed"] * 15
    await redis.hset(k.box(stream, box), "closes_at", int(time.time() * 1000) - 1)
    boxes = hub.state.hub.boxes if hub.state.hub else None
    assert boxes is not None
    await boxes.close(f"{stream}|{box}")
    coins = [await _coins(hub, u) for u in fans]
    assert sorted(c for c in coins if c) == won and sum(coins) == 103
    assert await _coins(hub, "kim") == 700 - 103
