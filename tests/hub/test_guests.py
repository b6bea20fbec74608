"""Gifts to a stream's guests over real WebSockets, Redis and PostgreSQL.

A gift may carry ``"to": user``, a current guest: the guest is credited on
their own running total (DESIGN §2: floor((C + N) x bps / 10,000) -
floor(C x bps / 10,000)), the host gets nothing for it, the room counts it,
and every gift event names its ``receiver`` - on the hub's fast path and on
the persister's repair path alike. A receiver who is not a current guest is
refused ``unknown_receiver`` and nothing moves.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from gifting.core.pricing import price_gift
from gifting.persister.audit import run_audit
from gifting.store.ledger import SpendOrder
from tests.hub.conftest import HubServer, decode, recv, serve
from tests.hub.test_badges_on_events import request

pytestmark = pytest.mark.cluster

BPS = 5000  # the default catalog's creator share


def earned(coins: int) -> int:
    """Diamonds held after receiving ``coins`` in all (DESIGN §2)."""
    return coins * BPS // 10_000


@contextlib.asynccontextmanager
async def http(h: HubServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{h.port}") as client:
        yield client


async def put_guests(h: HubServer, stream: str, guests: list[Any], user: str = "carol") -> Any:
    async with http(h) as client:
        return await client.put(
            f"/v1/streams/{stream}/guests",
            json={"guests": guests},
            headers={"Authorization": f"Bearer {h.token(user)}"},
        )


async def events_of(ws: Any, kinds: set[str], n: int, timeout: float = 10.0) -> list[Any]:
    """The next ``n`` room events of ``kinds`` (single or batched)."""
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while len(out) < n:
            msg = decode(await ws.recv())
            batch = msg["events"] if msg["op"] == "batch" else [msg]
            out += [e for e in batch if e.get("kind") in kinds]
    return out


async def persisted(pool: asyncpg.Pool[asyncpg.Record], events: list[str]) -> None:
    """Wait until PostgreSQL holds every one of ``events``."""
    async with asyncio.timeout(20):
        while True:
            n = await pool.fetchval(
                "SELECT count(*) FROM ledger_events WHERE event_id = ANY($1::text[])", events
            )
            if n == len(events):
                return
            await asyncio.sleep(0.1)


async def test_gifts_to_guests_credit_each_guest_on_their_own_running_total(
    redis_url: str, db_url: str, key_prefix: str
) -> None:
    async with serve(
        redis_url, db_url, key_prefix, with_persister=True, GIFTING_PERSISTER_IN_PROCESS=True
    ) as h:
        stream, key = await h.stream("carol")
        await h.fund("alice")
        async with h.overlay(stream, key) as ov:
            snap = await recv(ov)
            assert snap["op"] == "snapshot" and snap["guests"] == []
            r = await put_guests(h, stream, ["bob", {"user": "dan", "name": "Dan D."}])
            assert r.status_code == 200, r.text
            (shown,) = await events_of(ov, {"guests"}, 1)
            assert shown["guests"] == [
                {"user": "bob", "name": "bob"}, {"user": "dan", "name": "Dan D."},
            ]  # fmt: skip
            # (receiver, gift, count): uneven amounts on each running total.
            sends = [
                ("bob", "rose", 3), ("bob", "rose", 1), ("bob", "rose", 1),
                ("dan", "doughnut", 1), ("dan", "finger_heart", 1),
                (None, "rose", 1), ("carol", "rose", 1),
            ]  # fmt: skip
            acks = []
            async with h.viewer(stream, "alice") as alice:
                for i, (to, gift, count) in enumerate(sends):
                    msg: dict[str, Any] = {"op": "gift", "id": f"g{i}", "gift": gift}
                    msg |= {"count": count} | ({"to": to} if to else {})
                    ack = await request(alice, msg)
                    assert ack["op"] == "ack", ack
                    acks.append(ack)
            gifts = await events_of(ov, {"gift"}, len(sends))
        assert [g["event"] for g in gifts] == [a["event"] for a in acks]
        assert [g["receiver"] for g in gifts] == [
            {"id": "bob", "name": "bob", "guest": True},
            {"id": "bob", "name": "bob", "guest": True},
            {"id": "bob", "name": "bob", "guest": True},
            {"id": "dan", "name": "Dan D.", "guest": True},
            {"id": "dan", "name": "Dan D.", "guest": True},
            {"id": "carol", "name": "Carol", "guest": False},
            {"id": "carol", "name": "Carol", "guest": False},
        ]
        # Each receiver's running total: bob 3+1+1 = 5 coins -> 2 diamonds (a floor per
        # gift would pay 1 + 0 + 0); dan 30 + 5 -> 17 (15 + 2); carol 1 + 1 -> 1 (0 + 1).
        ledger = h.state.ledger
        bob, dan, carol = [await ledger.wallet(u) for u in ("bob", "dan", "carol")]
        assert (bob.received, bob.diamonds) == (5, earned(5)) == (5, 2)
        assert (dan.received, dan.diamonds) == (35, earned(35)) == (35, 17)
        assert (carol.received, carol.diamonds) == (2, 1)
        assert (await ledger.wallet("alice")).coins == 700 - 42
        # The room counts every gift, whoever received it.
        async with http(h) as client:
            view = (await client.get(f"/v1/streams/{stream}")).json()
        assert view["totals"] == {"coins": 42, "gifts": 9}
        assert view["top"] == [{"user": "alice", "name": "alice", "coins": 42}]
        assert [g["user"] for g in view["guests"]] == ["bob", "dan"]
        # PostgreSQL: each spend and each credit, the guests credited per gift.
        pool = h.state.pg_pool
        assert pool is not None
        spends = [a["event"] for a in acks]
        await persisted(pool, spends + ["c" + e[1:] for e in spends])
        rows = await pool.fetch(
            "SELECT user_id, (payload->>'diamonds')::int AS d, (payload->>'coins')::int AS c "
            "FROM ledger_events WHERE type = 'credit' AND stream_id = $1 ORDER BY event_id",
            stream,
        )
        assert [(r["user_id"], r["c"], r["d"]) for r in rows] == [
            ("bob", 3, 1), ("bob", 1, 1), ("bob", 1, 0), ("dan", 30, 15), ("dan", 5, 2),
            ("carol", 1, 0), ("carol", 1, 1),
        ]  # fmt: skip
        payloads = await pool.fetch(
            "SELECT payload->>'creator' AS creator, payload->>'host' AS host FROM ledger_events "
            "WHERE type = 'spend' AND stream_id = $1 ORDER BY event_id",
            stream,
        )
        assert [(p["creator"], p["host"]) for p in payloads][:4] == [("bob", "carol")] * 3 + [
            ("dan", "carol")
        ]
        # The stream stays its host's; each guest's earnings are theirs.
        assert await pool.fetchval(
            "SELECT creator_id FROM stream_totals WHERE stream_id = $1", stream
        ) == "carol"  # fmt: skip
        earnings = await pool.fetch(
            "SELECT creator_id, coins, diamonds FROM creator_earnings WHERE stream_id = $1 "
            "ORDER BY creator_id",
            stream,
        )
        assert [tuple(e) for e in earnings] == [("bob", 5, 2), ("carol", 2, 1), ("dan", 35, 17)]
        report = await run_audit(pool, h.state.redis, h.state.keys, h.state.catalog)
        assert report.ok, report.render()


async def test_a_receiver_who_is_not_a_current_guest_is_refused_and_nothing_moves(
    redis_url: str, db_url: str, key_prefix: str
) -> None:
    async with serve(
        redis_url, db_url, key_prefix, with_persister=True, GIFTING_PERSISTER_IN_PROCESS=True
    ) as h:
        stream, _key = await h.stream("carol")
        await h.fund("alice")
        assert (await put_guests(h, stream, ["bob"])).status_code == 200
        pool = h.state.pg_pool
        assert pool is not None
        async with h.viewer(stream, "alice") as alice:
            kept = await request(alice, {"op": "gift", "id": "k1", "gift": "rose", "to": "bob"})
            assert kept["op"] == "ack"
            await persisted(pool, [kept["event"], "c" + kept["event"][1:]])
            # Bob leaves the stage: a gift to him now is refused; so is one to a stranger.
            assert (await put_guests(h, stream, [])).status_code == 200
            balance = (await h.state.ledger.wallet("alice")).coins
            before = await pool.fetchval("SELECT count(*) FROM ledger_events")
            for i, to in enumerate(["bob", "zed"]):
                refused = await request(
                    alice, {"op": "gift", "id": f"u{i}", "gift": "rose", "to": to}
                )
                assert (refused["op"], refused["code"]) == ("error", "unknown_receiver")
            # A gift to oneself is forbidden, as ever (alice is no guest either).
            own = await request(alice, {"op": "gift", "id": "s1", "gift": "rose", "to": "alice"})
            assert (own["op"], own["code"]) == ("error", "forbidden")
            # The retry of the gift debited while bob was a guest: its original ack.
            again = await request(alice, {"op": "gift", "id": "k1", "gift": "rose", "to": "bob"})
            assert (again["op"], again["event"]) == ("ack", kept["event"])
            # The same id for another receiver is another payload.
            other = await request(alice, {"op": "gift", "id": "k1", "gift": "rose"})
            assert (other["op"], other["code"]) == ("error", "conflict")
            # A sentinel gift to the host, after which nothing else may appear.
            last = await request(alice, {"op": "gift", "id": "z1", "gift": "rose"})
            assert last["op"] == "ack"
            await persisted(pool, [last["event"], "c" + last["event"][1:]])
        assert (await h.state.ledger.wallet("alice")).coins == balance - 1
        bob = await h.state.ledger.wallet("bob")
        assert (bob.received, bob.diamonds) == (1, 0)
        assert await pool.fetchval("SELECT count(*) FROM ledger_events") == before + 2
        report = await run_audit(pool, h.state.redis, h.state.keys, h.state.catalog)
        assert report.ok, report.render()


async def test_the_repair_path_shows_the_same_receiver_as_the_hub(
    redis_url: str, db_url: str, key_prefix: str
) -> None:
    """A hub that died after the debit of a gift to a guest: the persister credits the guest
    and emits the event with the receiver the hub would have shown."""
    async with serve(
        redis_url, db_url, key_prefix, with_persister=True,
        GIFTING_PERSISTER_IN_PROCESS=True, GIFTING_PERSISTER_CLAIM_IDLE_MS=200,
    ) as h:  # fmt: skip
        stream, key = await h.stream("rita")
        await h.fund("sam")
        assert (await put_guests(h, stream, [{"user": "gus", "name": "Gus G."}], "rita")).is_success
        async with h.overlay(stream, key) as ov:
            assert (await recv(ov))["guests"] == [{"user": "gus", "name": "Gus G."}]
            # The fast path: a gift to gus through the hub.
            async with h.viewer(stream, "sam") as sam:
                fast = await request(
                    sam, {"op": "gift", "id": "f1", "gift": "doughnut", "count": 2, "to": "gus"}
                )
            assert fast["op"] == "ack"
            # The debit alone, as in a hub that crashed before its settle step.
            priced = price_gift(h.state.catalog, "doughnut", 2)
            order = SpendOrder(
                "sam", "sam", "lost-1", priced, stream, "rita", to="gus", to_name="Gus G.",
                creator_name="Rita",
            )  # fmt: skip
            lost = await h.state.ledger.spend(order, live=True)
            by_event = {e["event"]: e for e in await events_of(ov, {"gift"}, 2, timeout=15)}
        hub_event, repaired = by_event[fast["event"]], by_event[lost.event]
        assert repaired["receiver"] == hub_event["receiver"]
        assert hub_event["receiver"] == {"id": "gus", "name": "Gus G.", "guest": True}

        def shape(e: dict[str, Any]) -> dict[str, Any]:
            """What two gifts of the same kind share (not ids, times, combo, level)."""
            same = ("kind", "stream", "gift", "count", "coins", "receiver")
            return {k: e[k] for k in same} | {"sender": (e["sender"]["id"], e["sender"]["name"])}

        assert shape(repaired) == shape(hub_event)
        gus = await h.state.ledger.wallet("gus")
        assert (gus.received, gus.diamonds) == (120, 60)
        assert (await h.state.ledger.wallet("rita")).received == 0
        pool = h.state.pg_pool
        assert pool is not None
        await persisted(pool, [lost.event, "c" + lost.event[1:]])
        report = await run_audit(pool, h.state.redis, h.state.keys, h.state.catalog)
        assert report.ok, report.render()
