"""Free comments: one event per (sender, id), whoever the sender; the same id is one comment."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.hub.conftest import HubServer, decode, encode, recv, recv_until


async def comment(ws: Any, client_id: str, text: str) -> dict[str, Any]:
    await ws.send(encode({"op": "comment", "id": client_id, "text": text}))
    return await recv_until(ws, lambda m: m["op"] in ("ack", "error") and m.get("id") == client_id)


async def comments(ov: Any, n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(10):
        while len(out) < n:
            msg = decode(await ov.recv())
            if msg.get("kind") == "comment":
                out.append(msg)
    return out


async def test_one_user_cannot_suppress_anothers_comment(hub: HubServer) -> None:
    stream, key = await hub.stream()
    long_id = "x" * 64
    pairs = [  # (user, client id): each pair used to give its partner's event id
        ("b", "c1.a"), ("a.b", "c1"),
        ("u" * 60 + "A", long_id), ("u" * 60 + "B", long_id),
    ]  # fmt: skip
    async with hub.overlay(stream, key) as ov:
        assert (await recv(ov))["op"] == "snapshot"
        acks = []
        for user, client_id in pairs:
            async with hub.viewer(stream, user) as viewer:
                acks.append(await comment(viewer, client_id, f"from {user[-3:]}"))
        assert [a["op"] for a in acks] == ["ack"] * 4, acks
        assert len({a["event"] for a in acks}) == 4
        shown = await comments(ov, 4)
    assert [c["text"] for c in shown] == [f"from {user[-3:]}" for user, _ in pairs]
    assert [c["event"] for c in shown] == [a["event"] for a in acks]


async def test_the_same_comment_id_is_one_comment_and_other_text_is_a_conflict(
    hub: HubServer,
) -> None:
    stream, key = await hub.stream()
    async with hub.overlay(stream, key) as ov, hub.viewer(stream, "dee") as viewer:
        assert (await recv(ov))["op"] == "snapshot"
        first = await comment(viewer, "m-1", "hello")
        again = await comment(viewer, "m-1", "hello")  # a retry: the same comment
        other = await comment(viewer, "m-1", "something else")
        assert first["op"] == again["op"] == "ack" and again["event"] == first["event"]
        assert other["op"] == "error" and other["code"] == "conflict", other
        await comment(viewer, "m-2", "after")
        shown = await comments(ov, 2)
    assert [c["text"] for c in shown] == ["hello", "after"]


async def test_a_comment_sent_after_a_gifts_ack_follows_the_gift_in_the_room(
    hub: HubServer,
) -> None:
    """The gift's room event is emitted behind its ack; the sender's next comment waits for it."""
    stream, key = await hub.stream("carol")
    await hub.fund("gia", "coins_3500")
    pairs: list[tuple[str, str]] = []
    async with hub.overlay(stream, key) as overlay, hub.viewer(stream, "gia") as ws:
        assert (await recv(overlay))["op"] == "snapshot"
        for n in range(20):
            gift = {"op": "gift", "id": f"g{n}", "gift": "rose", "count": 1}
            await ws.send(encode(gift))
            ack = await recv_until(ws, lambda m, i=gift["id"]: m.get("id") == i)
            comment = {"op": "comment", "id": f"c{n}", "text": f"that was gift {n}"}
            await ws.send(encode(comment))
            said = await recv_until(ws, lambda m, i=comment["id"]: m.get("id") == i)
            assert ack["op"] == said["op"] == "ack", (ack, said)
            pairs.append((ack["event"], said["event"]))
        seq: dict[str, int] = {}
        async with asyncio.timeout(10):
            while len(seq) < 2 * len(pairs):
                msg = decode(await overlay.recv())
                for e in msg["events"] if msg["op"] == "batch" else [msg]:
                    if e.get("kind") in ("gift", "comment"):
                        seq[e["event"]] = e["seq"]
    late = [(g, c) for g, c in pairs if seq[g] > seq[c]]
    assert late == [], f"{len(late)} of {len(pairs)} comments overtook their gift"
    # Nothing is left counted: refused and replayed spends are let go too.
    async with hub.viewer(stream, "gia") as ws:
        for msg in (
            {"op": "gift", "id": "g0", "gift": "rose", "count": 1},  # a replay
            {"op": "gift", "id": "big", "gift": "universe", "count": 1},  # insufficient funds
        ):
            await ws.send(encode(msg))
            await recv_until(ws, lambda m, i=msg["id"]: m.get("id") == i)
    pipeline = hub.state.hub.pipeline
    assert pipeline.unshown("gia") == 0
