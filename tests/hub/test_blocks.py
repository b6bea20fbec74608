"""Blocks and hidden events through the hub: WebSocket refusals, room events, resume.

A blocked viewer's gift, effect, highlighted and free comment get
``{"op":"error","code":"blocked"}`` and debit nothing; a hidden comment's
``hidden`` event reaches live overlays and viewers, and an overlay resuming
from a cursor before it, exactly once.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.hub.conftest import HubServer, decode, encode, metric, recv, recv_until

pytestmark = pytest.mark.cluster


async def _reply(ws: Any, msg: dict[str, Any]) -> dict[str, Any]:
    await ws.send(encode(msg))
    return await recv_until(ws, lambda m: m["op"] in ("ack", "error") and m.get("id") == msg["id"])


async def _kinds(ws: Any, kind: str, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while len(out) < n:
            msg = decode(await ws.recv())
            items = msg["events"] if msg["op"] == "batch" else [msg] if msg["op"] == "event" else []
            out += [e for e in items if e["kind"] == kind]
    return out


async def test_a_blocked_viewer_is_refused_blocked_on_every_op(hub: HubServer) -> None:
    stream, _key = await hub.stream("carol")
    await hub.fund("alice")
    base = f"http://127.0.0.1:{hub.port}/v1/streams/{stream}"
    auth = {"Authorization": f"Bearer {hub.token('carol', creator=True)}"}
    async with hub.viewer(stream, "alice") as viewer, httpx.AsyncClient() as client:
        ok = await _reply(viewer, {"op": "gift", "id": "g-0", "gift": "rose", "count": 1})
        assert ok["op"] == "ack"
        r = await client.post(f"{base}/blocks", json={"user": "alice", "scope": "creator"},
                              headers=auth)  # fmt: skip
        assert r.status_code == 200, r.text
        coins = (await hub.state.ledger.wallet("alice")).coins
        refused_before = metric("gifting_spends_total", kind="gift", result="blocked")
        frames = [
            {"op": "gift", "id": "g-1", "gift": "rose", "count": 1},
            {"op": "effect", "id": "fx-1", "effect": "confetti"},
            {"op": "comment", "id": "hl-1", "text": "pin", "highlight": "tier2"},
            {"op": "comment", "id": "cm-1", "text": "free"},
        ]
        for frame in frames:
            err = await _reply(viewer, frame)
            assert (err["op"], err["code"]) == ("error", "blocked"), err
            assert err["message"]
        assert (await hub.state.ledger.wallet("alice")).coins == coins
        assert metric("gifting_spends_total", kind="gift", result="blocked") == refused_before + 1
        # Lifted: alice gifts again.
        r = await client.delete(f"{base}/blocks/alice", headers=auth)
        assert r.status_code == 200
        again = await _reply(viewer, {"op": "gift", "id": "g-2", "gift": "rose", "count": 1})
        assert again["op"] == "ack"


async def test_hidden_reaches_overlays_viewers_and_a_resume_once(hub: HubServer) -> None:
    stream, key = await hub.stream("carol")
    base = f"http://127.0.0.1:{hub.port}/v1/streams/{stream}"
    auth = {"Authorization": f"Bearer {hub.token('carol', creator=True)}"}
    async with (
        hub.overlay(stream, key) as ov,
        hub.viewer(stream, "watcher") as watcher,
        httpx.AsyncClient() as client,
    ):
        snap = await recv(ov)
        assert snap["op"] == "snapshot"
        async with hub.viewer(stream, "bob") as bob:
            ack = await _reply(bob, {"op": "comment", "id": "c1", "text": "rude"})
        target = ack["event"]
        (comment,) = await _kinds(ov, "comment", 1)
        assert comment["event"] == target
        for _ in range(2):  # idempotent: one event however often it is hidden
            r = await client.post(f"{base}/events/{target}/hide", headers=auth)
            assert r.status_code == 200, r.text
        (hidden,) = await _kinds(ov, "hidden", 1)
        assert hidden["target"] == target and hidden["stream"] == stream
        assert hidden["seq"] > comment["seq"] and hidden["cursor"]
        (seen,) = await _kinds(watcher, "hidden", 1)
        assert seen["target"] == target
        # Nothing more arrives for the second hide.
        with pytest.raises(TimeoutError):
            await _kinds(ov, "hidden", 1, timeout=0.5)
    # An overlay resuming from before the comment gets the comment, then hidden, once each.
    async with hub.overlay(stream, key, since=snap["cursor"] or "0-0_0") as again:
        replay: list[dict[str, Any]] = []
        async with asyncio.timeout(5):
            while not any(e["kind"] == "hidden" for e in replay):
                msg = decode(await again.recv())
                if msg["op"] == "event":
                    replay.append(msg)
                elif msg["op"] == "batch":
                    replay += msg["events"]
        kinds = [e["kind"] for e in replay if e["kind"] in ("comment", "hidden")]
        assert kinds == ["comment", "hidden"]
