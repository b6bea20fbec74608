"""A storm that mixes the creator tools with the gifts, then exactly once and the audit.

Ten viewers send gifts, effects, free and highlighted comments as fast as their
acks come back; mid-storm three of them buy badges, the creator buys effects
and highlights in her own stream (kept by the platform), blocks two viewers
(one in this stream, one in every stream of hers) and hides comments. At the
end: every acked spend is in the ledger once and on the overlay once, nothing
acked after a block's 200 for the blocked, one ``hidden`` per hidden comment,
wallets = funding - what the ledger says they spent, and ``gifting audit``
passes — on one Redis and on a 3-master cluster.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import asyncpg
import httpx
import pytest

from gifting.persister.audit import run_audit
from gifting.persister.progress import wait_caught_up
from tests.hub.conftest import HubServer, decode, encode, recv_until, serve
from tests.hub.test_badges_on_events import buy_badge

pytestmark = pytest.mark.cluster

VIEWERS = 10
OPS_EACH = 80
BLOCKED = {"v0": "stream", "v1": "creator"}


def _op(user: str, n: int) -> dict[str, Any]:
    cid = f"{user}-{n}"
    if n % 10 == 3:
        return {"op": "comment", "id": cid, "text": f"hello {n}"}
    if n % 15 == 7:
        return {"op": "comment", "id": cid, "text": f"pin {n}", "highlight": "tier1"}
    if n % 20 == 11:
        return {"op": "effect", "id": cid, "effect": "confetti"}
    return {"op": "gift", "id": cid, "gift": "rose", "count": 1 + n % 3}


class Run:
    """What the storm's clients were told."""

    def __init__(self) -> None:
        self.acks: dict[str, dict[str, Any]] = {}  # event -> the op acked
        self.refused: Counter[str] = Counter()
        self.blocked_at: dict[str, float] = {}  # user -> when the block's 200 arrived
        self.acked_after_block: list[str] = []
        self.comments: list[str] = []  # free comments' events, for hiding


async def _viewer(hub: HubServer, stream: str, user: str, run: Run, start: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    async with hub.viewer(stream, user) as ws:
        await start.wait()
        for n in range(OPS_EACH):
            msg = _op(user, n)
            sent = loop.time()
            await ws.send(encode(msg))
            reply = await recv_until(
                ws, lambda m, i=msg["id"]: m["op"] in ("ack", "error") and m.get("id") == i
            )
            if reply["op"] == "error":
                run.refused[reply["code"]] += 1
                continue
            run.acks[reply["event"]] = {**msg, "user": user}
            if user in run.blocked_at and sent > run.blocked_at[user]:
                run.acked_after_block.append(reply["event"])
            if msg["op"] == "comment" and "highlight" not in msg:
                run.comments.append(reply["event"])


async def _creator_tools(hub: HubServer, stream: str, run: Run, start: asyncio.Event) -> set[str]:
    """Self-purchases, badges, blocks and hides, spread over the storm; the hidden events."""
    hidden: set[str] = set()
    auth = {"Authorization": f"Bearer {hub.token('carol', creator=True)}"}
    base = f"http://127.0.0.1:{hub.port}/v1/streams/{stream}"
    async with hub.viewer(stream, "carol") as own, httpx.AsyncClient(timeout=10) as http:
        await start.wait()
        for n in range(4):  # her own effects and highlights: the platform keeps the coins
            for msg in (
                {"op": "effect", "id": f"own-fx-{n}", "effect": "confetti"},
                {"op": "comment", "id": f"own-hl-{n}", "text": "thanks!", "highlight": "tier2"},
            ):
                await own.send(encode(msg))
                reply = await recv_until(own, lambda m, i=msg["id"]: m.get("id") == i)
                assert reply["op"] == "ack", reply
                run.acks[reply["event"]] = {**msg, "user": "carol"}
            if n == 1:
                for user, scope in BLOCKED.items():
                    r = await http.post(
                        f"{base}/blocks", json={"user": user, "scope": scope}, headers=auth
                    )
                    assert r.status_code == 200, r.text
                    run.blocked_at[user] = asyncio.get_running_loop().time()
            for user, badge in (("v5", "vip"), ("v6", "supporter"), ("v7", "vip")):
                if n == 2:
                    body = await buy_badge(hub, user, f"badge-{user}", badge)
                    run.acks[body["event"]] = {"op": "badge", "user": user}
            for event in run.comments[n * 2 : n * 2 + 2]:
                r = await http.post(f"{base}/events/{event}/hide", headers=auth)
                assert r.status_code == 200, r.text
                hidden.add(event)
            await asyncio.sleep(0.15)
    return hidden


async def test_a_storm_with_blocks_hides_badges_and_self_purchases_passes_the_audit(
    redis_url: str, db_url: str, key_prefix: str
) -> None:
    async with serve(
        redis_url, db_url, key_prefix, with_persister=True, GIFTING_PERSISTER_IN_PROCESS=True,
        GIFTING_RATE_PER_S=1000, GIFTING_RATE_BURST=2000,
        GIFTING_MAX_CONNECTIONS_PER_USER=100, GIFTING_MAX_CONNECTIONS_PER_ADDRESS=10_000,
    ) as hub:  # fmt: skip
        stream, key = await hub.stream("carol")
        users = [f"v{i}" for i in range(VIEWERS)]
        for user in [*users, "carol"]:
            await hub.fund(user, "coins_3500")
        run = Run()
        start = asyncio.Event()
        seen: list[dict[str, Any]] = []
        async with hub.overlay(stream, key) as overlay:
            assert decode(await overlay.recv())["op"] == "snapshot"

            async def watch() -> None:
                async for frame in overlay:
                    msg = decode(frame)
                    seen.extend(msg["events"] if msg["op"] == "batch" else [msg])

            watcher = asyncio.create_task(watch())
            clients = [asyncio.create_task(_viewer(hub, stream, u, run, start)) for u in users]
            tools = asyncio.create_task(_creator_tools(hub, stream, run, start))
            start.set()
            await asyncio.gather(*clients)
            hidden = await tools
            state = hub.state
            assert await wait_caught_up(state.redis, state.keys, 30)
            await asyncio.sleep(0.5)  # the last room events reach the overlay
            watcher.cancel()

        # Blocks: refused from their 200 on, nothing acked after it.
        assert run.refused["blocked"] > 0
        assert run.acked_after_block == []
        # The overlay: every acked room event once, one `hidden` per hidden comment.
        events = Counter(e["event"] for e in seen if e.get("op") == "event" and "event" in e)
        room = {e for e, op in run.acks.items() if op["op"] != "badge"}
        assert {e for e in room if events[e] != 1} == set()
        targets = Counter(e["target"] for e in seen if e.get("kind") == "hidden")
        assert dict(targets) == dict.fromkeys(hidden, 1)
        assert len(hidden) >= 4

        pool = await asyncpg.create_pool(db_url, min_size=1, max_size=2)
        assert pool is not None
        try:
            rows = await pool.fetch(
                "SELECT event_id, user_id, (payload->>'coins')::bigint AS coins, "
                "payload->>'creator' AS creator FROM ledger_events "
                "WHERE type = 'spend' AND user_id = ANY($1::text[])",
                [*users, "carol"],
            )
            spends = {r["event_id"]: r for r in rows}
            paid = {e for e, op in run.acks.items() if op["op"] != "comment" or "highlight" in op}
            assert paid == set(spends), "acked spends and the ledger's differ"
            funded = state.catalog.packages["coins_3500"].coins
            for user in [*users, "carol"]:
                spent = sum(r["coins"] for r in rows if r["user_id"] == user)
                assert (await state.ledger.wallet(user)).coins == funded - spent, user
            own = [r for r in rows if r["user_id"] == "carol"]
            assert len(own) == 8 and all(r["creator"] == "" for r in own)  # platform's
            report = await run_audit(pool, state.redis, state.keys, state.catalog)
            assert report.ok, report.render()
            assert report.totals["badges owned"] == 3
        finally:
            await pool.close()
