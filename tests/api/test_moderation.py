"""Moderation over HTTP: moderators, blocks (enforced by spend.lua), hidden events, history.

Marked ``cluster``: blocks are written in the blocked user's wallet slot,
where spend.lua reads them, so they hold on a Redis Cluster as on one Redis.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from api_support import Api, open_api, settings_for
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from gifting.api import history
from gifting.core.errors import Blocked
from gifting.core.events import comment_event, sender_of
from gifting.core.ids import comment_event_id
from gifting.core.pricing import price_gift
from gifting.persister.service import persister_lifespan
from gifting.state import Extension
from gifting.store.ledger import SpendOrder, SpendResult
from gifting.store.wiring import build_roomlog

pytestmark = pytest.mark.cluster


@pytest_asyncio.fixture(loop_scope="session")
async def papi(
    redis_url: str, database_url: str, key_prefix: str, redis: Redis
) -> AsyncIterator[Api]:
    """The HTTP API with its PostgreSQL pool (the moderation history)."""
    persister = Extension("persister", routes=history.routes, lifespan=persister_lifespan)
    settings = settings_for(redis_url, database_url, key_prefix)
    async with open_api(settings, redis, extensions=[persister]) as api:
        yield api


async def _spend(api: Api, stream: str, creator: str, sender: str, cid: str) -> SpendResult:
    order = SpendOrder(
        sender=sender, sender_name=sender, client_id=cid,
        priced=price_gift(api.state.catalog, "rose", 1), stream=stream, creator=creator,
    )  # fmt: skip
    return await api.state.ledger.spend(order, live=True)


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def _block(api: Api, stream: str, actor: str, user: str, scope: str) -> Any:
    return await api.send(
        "POST", f"/v1/streams/{stream}/blocks", {"user": user, "scope": scope}, user=actor
    )


async def test_moderators_are_named_listed_and_removed_by_the_creator(api: Api) -> None:
    r = await api.send("POST", "/v1/moderators", {"user": "mod"}, user="carol", creator=True)
    assert r.status_code == 200, r.text
    assert r.json()["user"] == "mod" and r.json()["added"] is True
    again = await api.send("POST", "/v1/moderators", {"user": "mod"}, user="carol", creator=True)
    assert again.status_code == 200 and again.json()["added"] is False
    r = await api.client.get("/v1/moderators", headers=api.auth("carol", creator=True))
    assert [m["user"] for m in r.json()["moderators"]] == ["mod"]
    # Only creators name moderators, never themselves, only well-formed ids.
    r = await api.send("POST", "/v1/moderators", {"user": "mod"}, user="alice")
    assert r.status_code == 403
    r = await api.send("POST", "/v1/moderators", {"user": "carol"}, user="carol", creator=True)
    assert r.status_code == 400 and r.json()["code"] == "bad_request"
    for bad in [{"user": "a b"}, {"user": 7}, {}, {"user": "x", "more": 1}]:
        r = await api.send("POST", "/v1/moderators", bad, user="carol", creator=True)
        assert r.status_code == 400, (bad, r.text)
    r = await api.send("DELETE", "/v1/moderators/mod", user="carol", creator=True)
    assert r.status_code == 200 and r.json()["removed"] is True
    r = await api.send("DELETE", "/v1/moderators/mod", user="carol", creator=True)
    assert r.status_code == 200 and r.json()["removed"] is False
    r = await api.client.get("/v1/moderators", headers=api.auth("carol", creator=True))
    assert r.json()["moderators"] == []


async def test_a_block_refuses_spends_in_its_scope_with_blocked(api: Api) -> None:
    s1 = (await api.create_stream("carol"))["stream"]
    s2 = (await api.create_stream("carol"))["stream"]
    other = (await api.create_stream("dave"))["stream"]
    for user in ("alice", "bob"):
        await api.buy(user)
    await api.send("POST", "/v1/moderators", {"user": "mod"}, user="carol", creator=True)
    # A moderator blocks alice in s1 only; the creator blocks bob in all their streams.
    r = await _block(api, s1, "mod", "alice", "stream")
    assert r.status_code == 200, r.text
    assert r.json()["scope"] == "stream" and r.json()["by"] == "mod"
    r = await _block(api, s2, "carol", "bob", "creator")
    assert r.status_code == 200, r.text
    for stream, sender in [(s1, "alice"), (s1, "bob"), (s2, "bob")]:
        before = await api.wallet(sender)
        with pytest.raises(Blocked):
            await _spend(api, stream, "carol", sender, f"g-{stream}")
        assert await api.wallet(sender) == before
    # Outside the scope, spends go through.
    assert (await _spend(api, s2, "carol", "alice", "ok-1")).event
    assert (await _spend(api, other, "dave", "bob", "ok-2")).event
    # A retry of the refused id is refused again (the refusal is kept like any other).
    with pytest.raises(Blocked):
        await _spend(api, s1, "carol", "alice", f"g-{s1}")
    # The listing shows what applies in each stream.
    r = await api.get(f"/v1/streams/{s1}/blocks", "mod")
    assert sorted((b["user"], b["scope"]) for b in r.json()["blocks"]) == [
        ("alice", "stream"), ("bob", "creator"),
    ]  # fmt: skip
    r = await api.get(f"/v1/streams/{s2}/blocks", "carol")
    assert [(b["user"], b["scope"]) for b in r.json()["blocks"]] == [("bob", "creator")]
    # Lifting: alice can spend in s1 again; bob's creator-wide block goes with ?scope=creator.
    r = await api.send("DELETE", f"/v1/streams/{s1}/blocks/alice", user="mod")
    assert r.status_code == 200 and [b["scope"] for b in r.json()["lifted"]] == ["stream"]
    assert (await _spend(api, s1, "carol", "alice", "ok-3")).event
    r = await api.send("DELETE", f"/v1/streams/{s1}/blocks/bob?scope=stream", user="carol")
    assert r.status_code == 200 and r.json()["lifted"] == []
    with pytest.raises(Blocked):
        await _spend(api, s1, "carol", "bob", "still")
    r = await api.send("DELETE", f"/v1/streams/{s1}/blocks/bob?scope=creator", user="carol")
    assert r.json()["lifted"][0]["scope"] == "creator"
    assert (await _spend(api, s2, "carol", "bob", "ok-4")).event
    r = await api.send("DELETE", f"/v1/streams/{s1}/blocks/bob", user="carol")  # idempotent
    assert r.status_code == 200 and r.json()["lifted"] == []


async def test_blocking_twice_is_one_block(api: Api) -> None:
    stream = (await api.create_stream("carol"))["stream"]
    counted = _metric("gifting_moderation_actions_total", action="block")
    first = await _block(api, stream, "carol", "alice", "stream")
    before = await api.snapshot()
    again = await _block(api, stream, "carol", "alice", "stream")
    assert again.status_code == 200
    assert {**again.json(), "added": True} == first.json() and again.json()["added"] is False
    assert await api.snapshot() == before
    assert _metric("gifting_moderation_actions_total", action="block") == counted + 1


async def test_bad_blocks_are_refused_and_change_nothing(api: Api) -> None:
    stream = (await api.create_stream("carol"))["stream"]
    await api.send("POST", "/v1/moderators", {"user": "mod"}, user="carol", creator=True)
    await api.send("POST", "/v1/moderators", {"user": "mod2"}, user="carol", creator=True)
    before = await api.snapshot()
    cases: list[tuple[str, str, Any, int, str]] = [
        (stream, "carol", {"user": "carol", "scope": "stream"}, 400, "bad_request"),  # the creator
        (stream, "mod", {"user": "carol", "scope": "creator"}, 400, "bad_request"),
        (stream, "mod", {"user": "mod", "scope": "stream"}, 400, "bad_request"),  # oneself
        (stream, "mod", {"user": "mod2", "scope": "stream"}, 403, "forbidden"),  # a moderator
        (stream, "alice", {"user": "bob", "scope": "stream"}, 403, "forbidden"),  # a viewer
        (stream, "carol", {"user": "bad id", "scope": "stream"}, 400, "bad_request"),
        (stream, "carol", {"user": "x" * 65, "scope": "stream"}, 400, "bad_request"),
        (stream, "carol", {"user": "bob", "scope": "everywhere"}, 400, "bad_request"),
        (stream, "carol", {"user": "bob"}, 400, "bad_request"),
        (stream, "carol", {"user": ["bob"], "scope": "stream"}, 400, "bad_request"),
        ("s-nope", "carol", {"user": "bob", "scope": "stream"}, 404, "not_found"),
    ]
    for s, actor, body, status, code in cases:
        r = await api.send("POST", f"/v1/streams/{s}/blocks", body, user=actor)
        assert (r.status_code, r.json()["code"]) == (status, code), (body, r.text)
        assert r.json()["message"]
    r = await api.send("POST", f"/v1/streams/{stream}/blocks", raw=b"{nope", user="carol")
    assert r.status_code == 400
    r = await api.send("POST", f"/v1/streams/{stream}/blocks", {"user": "bob", "scope": "stream"})
    assert r.status_code == 401
    r = await api.send("DELETE", f"/v1/streams/{stream}/blocks/bob", user="alice")
    assert r.status_code == 403
    r = await api.send("DELETE", f"/v1/streams/{stream}/blocks/bob?scope=x", user="carol")
    assert r.status_code == 400
    r = await api.get(f"/v1/streams/{stream}/blocks", "alice")
    assert r.status_code == 403
    assert await api.snapshot() == before


async def test_no_spend_is_debited_after_a_block_answered(api: Api) -> None:
    """Spends race a block: once the block's 200 is in, no debit of the user lands."""
    stream = (await api.create_stream("carol"))["stream"]
    await api.buy("alice", "coins_17500")
    keys = api.state.keys
    outbox = keys.outbox(keys.shard_of("alice"))

    async def debits() -> int:
        rows = await api.redis.xrange(outbox)
        return sum(1 for _, f in rows if f[b"type"] == b"spend" and f[b"user"] == b"alice")

    stop = asyncio.Event()
    refused = 0

    async def gifter(n: int) -> None:
        nonlocal refused
        i = 0
        while not stop.is_set():
            i += 1
            try:
                await _spend(api, stream, "carol", "alice", f"race-{n}-{i}")
            except Blocked:
                refused += 1

    tasks = [asyncio.create_task(gifter(n)) for n in range(4)]
    await asyncio.sleep(0.2)
    r = await _block(api, stream, "carol", "alice", "stream")
    assert r.status_code == 200
    at_block = await debits()
    await asyncio.sleep(0.3)
    stop.set()
    await asyncio.gather(*tasks)
    assert at_block > 0 and refused > 0
    assert await debits() == at_block


async def test_blocked_users_free_comments_are_refused(api: Api) -> None:
    from gifting.hub.comments import RoomComments

    stream = (await api.create_stream("carol"))["stream"]
    roomlog = build_roomlog(api.state.settings, api.redis, api.state.catalog)
    comments = RoomComments(api.state.streams, roomlog)
    try:
        assert await comments.post(stream, "alice", "Alice", "c1", "hi")
        await _block(api, stream, "carol", "alice", "creator")
        with pytest.raises(Blocked):
            await comments.post(stream, "alice", "Alice", "c2", "hi again")
        assert await comments.post(stream, "bob", "Bob", "c1", "hello")
    finally:
        await roomlog.aclose()


async def test_hide_emits_one_hidden_event_and_moves_no_money(api: Api) -> None:
    stream = (await api.create_stream("carol"))["stream"]
    await api.send("POST", "/v1/moderators", {"user": "mod"}, user="carol", creator=True)
    roomlog = build_roomlog(api.state.settings, api.redis, api.state.catalog)
    try:
        target = comment_event_id("alice", "c1")
        body = comment_event(stream, target, 1, sender_of("alice", "Alice"), "rude")
        await roomlog.emit(stream, body)
        wallets = await api.wallet("alice"), await api.wallet("carol")
        r = await api.send("POST", f"/v1/streams/{stream}/events/{target}/hide", user="mod")
        assert r.status_code == 200, r.text
        again = await api.send("POST", f"/v1/streams/{stream}/events/{target}/hide", user="carol")
        assert again.status_code == 200 and again.json() == r.json()
        hidden = [e for e in await roomlog.since(stream, "0-0_0") if b'"kind":"hidden"' in e.body]
        assert len(hidden) == 1 and f'"target":"{target}"'.encode() in hidden[0].body
        assert (await api.wallet("alice"), await api.wallet("carol")) == wallets
        # Not a moderator; no such event; not a comment; a malformed id: refused, nothing emitted.
        seq = await api.redis.get(api.state.keys.room_seq(stream))
        r = await api.send("POST", f"/v1/streams/{stream}/events/{target}/hide", user="alice")
        assert r.status_code == 403
        r = await api.send("POST", f"/v1/streams/{stream}/events/e-nope/hide", user="carol")
        assert r.status_code == 404 and r.json()["code"] == "not_found"
        hid = r.json()
        assert hid["message"]
        r = await api.send("POST", f"/v1/streams/{stream}/events/a%3Ab/hide", user="carol")
        assert r.status_code == 400
        await roomlog.emit(stream, {"kind": "goal", "stream": stream, "event": "g1", "ts": 1})
        seq = await api.redis.get(api.state.keys.room_seq(stream))
        r = await api.send("POST", f"/v1/streams/{stream}/events/g1/hide", user="carol")
        assert r.status_code == 400
        assert await api.redis.get(api.state.keys.room_seq(stream)) == seq
    finally:
        await roomlog.aclose()


async def test_the_history_records_who_did_what(papi: Api) -> None:
    api = papi
    carol = "carol-" + secrets.token_hex(4)  # the database is the session's: a creator of its own
    stream = (await api.create_stream(carol))["stream"]
    await api.send("POST", "/v1/moderators", {"user": "mod"}, user=carol, creator=True)
    await _block(api, stream, "mod", "alice", "stream")
    await _block(api, stream, "mod", "alice", "stream")  # no change: not a second action
    await _block(api, stream, carol, "bob", "creator")
    await api.send("DELETE", f"/v1/streams/{stream}/blocks/alice", user=carol)
    r = await api.get(f"/v1/streams/{stream}/moderation", "mod")
    assert r.status_code == 200, r.text
    actions = [(a["action"], a["actor"], a["user"], a["scope"]) for a in r.json()["actions"]]
    assert actions == [
        ("unblock", carol, "alice", "stream"),
        ("block", carol, "bob", "creator"),
        ("block", "mod", "alice", "stream"),
        ("moderator_added", carol, "mod", None),
    ]
    page = await api.get(f"/v1/streams/{stream}/moderation?limit=2", carol)
    assert len(page.json()["actions"]) == 2 and page.json()["next"] is not None
    rest = await api.get(
        f"/v1/streams/{stream}/moderation?limit=2&before={page.json()['next']}", carol
    )
    assert [a["action"] for a in rest.json()["actions"]] == ["block", "moderator_added"]
    r = await api.get(f"/v1/streams/{stream}/moderation", "alice")
    assert r.status_code == 403
