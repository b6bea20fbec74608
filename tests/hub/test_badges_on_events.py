"""A user's best badge rides on every room event they cause, over real WebSockets.

Bought through ``POST /v1/badges`` on the running server; seen by an overlay
and by a viewer of the room, on gifts, effects, highlighted and free comments.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.hub.conftest import HubServer, decode, encode, recv, recv_until

VIP = {"id": "vip", "name": "VIP", "tier": 3}
SUPPORTER = {"id": "supporter", "name": "Supporter", "tier": 1}


async def buy_badge(hub: HubServer, user: str, client_id: str, badge: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{hub.port}") as http:
        r = await http.post(
            "/v1/badges",
            json={"id": client_id, "badge": badge},
            headers={"Authorization": f"Bearer {hub.token(user)}"},
        )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def request(ws: Any, msg: dict[str, Any]) -> dict[str, Any]:
    await ws.send(encode(msg))
    return await recv_until(ws, lambda m: m["op"] in ("ack", "error") and m.get("id") == msg["id"])


async def room_events(ws: Any, kinds: set[str], n: int) -> list[dict[str, Any]]:
    """The next ``n`` events of ``kinds`` (single or batched)."""
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(10):
        while len(out) < n:
            msg = decode(await ws.recv())
            batch = msg["events"] if msg["op"] == "batch" else [msg]
            out += [e for e in batch if e.get("kind") in kinds]
    return out


SPENDS = [
    {"op": "gift", "id": "g1", "gift": "rose", "count": 1},
    {"op": "effect", "id": "f1", "effect": "confetti"},
    {"op": "comment", "id": "h1", "text": "pinned!", "highlight": "tier1"},
    {"op": "comment", "id": "c1", "text": "free"},
]
KINDS = {"gift", "effect", "highlight", "comment"}


async def test_the_dearest_badge_rides_on_every_event_for_overlay_and_viewer(
    hub: HubServer,
) -> None:
    stream, key = await hub.stream("carol")
    await hub.fund("bea", "coins_3500")
    assert (await buy_badge(hub, "bea", "b-1", "vip"))["shown"] == "vip"
    # A cheaper badge bought later is owned, but the dearer one stays shown.
    assert (await buy_badge(hub, "bea", "b-2", "supporter"))["shown"] == "vip"
    async with hub.overlay(stream, key) as ov, hub.viewer(stream, "watcher") as watcher:
        assert (await recv(ov))["op"] == "snapshot"
        async with hub.viewer(stream, "bea") as bea:
            acks = [await request(bea, m) for m in SPENDS]
        assert [a["op"] for a in acks] == ["ack"] * 4, acks
        on_overlay = await room_events(ov, KINDS, 4)
        on_viewer = await room_events(watcher, KINDS, 4)
    for events in (on_overlay, on_viewer):
        assert sorted(e["kind"] for e in events) == sorted(KINDS)
        for e in events:
            # 2100 coins on badges, then these spends: level 4 (1000..2499), gifter levels.
            assert e["sender"] == {"id": "bea", "name": "bea", "badge": VIP, "level": 4}, e


async def test_no_badge_no_field_and_a_first_badge_shows_at_once(hub: HubServer) -> None:
    stream, key = await hub.stream("carol")
    await hub.fund("nia")
    async with hub.overlay(stream, key) as ov, hub.viewer(stream, "nia") as nia:
        assert (await recv(ov))["op"] == "snapshot"
        assert (await request(nia, SPENDS[0]))["op"] == "ack"
        (before,) = await room_events(ov, {"gift"}, 1)
        assert before["sender"] == {"id": "nia", "name": "nia", "level": 1}
        await buy_badge(hub, "nia", "b-1", "supporter")
        assert (await request(nia, {**SPENDS[0], "id": "g2"}))["op"] == "ack"
        assert (await request(nia, SPENDS[3]))["op"] == "ack"
        after = await room_events(ov, {"gift", "comment"}, 2)
    assert [e["sender"].get("badge") for e in after] == [SUPPORTER, SUPPORTER]
