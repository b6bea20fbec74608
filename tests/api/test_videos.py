"""Gifts on videos over HTTP (DESIGN.md §10): debited and credited exactly like a live gift.

Each test runs on a single Redis and on a Redis Cluster. The ledger tests run
the persister in process on a fresh database and end with the audit.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from api_support import Api, open_api, settings_for
from redis.asyncio import Redis

from gifting.api import history as history_api
from gifting.core.money import diamonds_earned
from gifting.core.pricing import price_gift
from gifting.persister.audit import run_audit
from gifting.persister.progress import wait_caught_up
from gifting.persister.service import persister_lifespan
from gifting.state import Extension
from gifting.store.ledger import SpendOrder, spend_entry
from gifting.store.wiring import build_roomlog

pytestmark = pytest.mark.cluster


async def create_video(api: Api, creator: str, title: str = "my clip") -> str:
    r = await api.send("POST", "/v1/videos", {"title": title}, user=creator, creator=True)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    assert body["creator"] == creator and body["title"] == title
    assert body["totals"] == {"coins": 0, "gifts": 0} and body["top"] == []
    video: str = body["video"]
    return video


async def gift(
    api: Api, user: str, video: str, cid: str, gift_id: str = "rose", count: int = 1
) -> Any:
    return await api.send(
        "POST", f"/v1/videos/{video}/gifts", {"id": cid, "gift": gift_id, "count": count},
        user=user,
    )  # fmt: skip


async def money(api: Api, video: str, *users: str) -> tuple[object, ...]:
    """Every balance of ``users`` and the video's totals and top: what a refusal must not move."""
    wallets = [await api.state.ledger.wallet(u) for u in users]
    r = await api.get(f"/v1/videos/{video}")
    return tuple((w.coins, w.diamonds, w.received, w.budget.spent) for w in wallets), r.json()


def ledger_app(redis_url: str, db_url: str, key_prefix: str, redis: Redis) -> Any:
    settings = settings_for(
        redis_url, db_url, key_prefix, GIFTING_PERSISTER_IN_PROCESS=True,
        GIFTING_PERSISTER_CLAIM_IDLE_MS=200,
    )  # fmt: skip
    persister = Extension("persister", routes=history_api.routes, lifespan=persister_lifespan)
    return open_api(settings, redis, [persister])


async def test_video_gifts_debit_credit_on_the_running_total_and_reach_the_ledger(
    redis_url: str, db_url: str, key_prefix: str, redis: Redis
) -> None:
    async with ledger_app(redis_url, db_url, key_prefix, redis) as api:
        video = await create_video(api, "vera")
        await api.buy("sam", "coins_700")
        await api.buy("tom", "coins_700")
        bps = api.state.catalog.creator_share_bps
        received = 0
        # Three one-coin roses: half a diamond each, never lost (1 diamond after 3).
        sends = [("sam", "rose", 1), ("sam", "rose", 1), ("sam", "rose", 1),
                 ("tom", "doughnut", 3), ("sam", "finger_heart", 1)]  # fmt: skip
        events = []
        for i, (user, gift_id, count) in enumerate(sends):
            before = (await api.wallet(user))["coins"]
            r = await gift(api, user, video, f"g-{i}", gift_id, count)
            assert r.status_code == 200, r.text
            body = r.json()
            coins = price_gift(api.state.catalog, gift_id, count).coins
            assert body["coins"] == coins and body["balance"] == before - coins
            assert body["video"] == video and r.headers["Idempotent-Replayed"] == "false"
            events.append(body["event"])
            received += coins
            vera = await api.state.ledger.wallet("vera")
            assert vera.received == received
            assert vera.diamonds == diamonds_earned(received, bps)  # floor(C x bps / 10,000)
        assert (await api.state.ledger.wallet("vera")).diamonds == (3 + 90 + 5) // 2

        view = (await api.get(f"/v1/videos/{video}")).json()
        assert view["totals"] == {"coins": 98, "gifts": 7}
        assert view["top"] == [
            {"user": "tom", "name": "tom", "coins": 90},
            {"user": "sam", "name": "sam", "coins": 8},
        ]
        listed = (await api.get("/v1/creators/vera/videos")).json()
        assert listed == {"creator": "vera", "videos": [video]}

        assert await wait_caught_up(redis, api.state.keys, 20)
        pool = api.state.pg_pool
        assert pool is not None
        rows = await pool.fetch(
            "SELECT event_id, type, stream_id, video_id FROM ledger_events "
            "WHERE video_id = $1 ORDER BY event_id",
            video,
        )
        credits = ["c" + e[1:] for e in events]
        assert sorted(r["event_id"] for r in rows) == sorted(events + credits)
        assert {(r["type"], r["stream_id"]) for r in rows} == {
            ("spend", f"video:{video}"),
            ("credit", f"video:{video}"),
        }
        totals = await pool.fetchrow(
            "SELECT coins, gifts FROM stream_totals WHERE stream_id = $1", f"video:{video}"
        )
        assert (totals["coins"], totals["gifts"]) == (98, 7)
        assert await pool.fetchval("SELECT creator_id FROM videos WHERE video_id = $1", video) == (
            "vera"
        )
        report = await run_audit(pool, redis, api.state.keys, api.state.catalog)
        assert report.ok, report.render()
        # Each side's history names the video.
        r = await api.get("/v1/wallet/history", "tom")
        assert r.status_code == 200, r.text
        [spent] = [e for e in r.json()["entries"] if e["type"] == "spend"]
        assert (spent["video"], spent["creator"], spent["coins"]) == (video, "vera", -90)
        assert "stream" not in spent
        r = await api.get("/v1/wallet/history", "vera")
        assert {e["video"] for e in r.json()["entries"] if e["type"] == "credit"} == {video}

        # Once durable, the persister retired the video's marker to the recent window.
        marker = api.state.keys.video_emitted(video, events[0])
        record = api.state.keys.spend_result("sam", "g-0")
        for _ in range(100):
            if await redis.ttl(marker) > 0 and await redis.ttl(record) > 0:
                break
            await asyncio.sleep(0.05)
        assert await redis.ttl(marker) > 0

        # Past the Redis record of its id, PostgreSQL's spend_ids answer a retry.
        assert await redis.delete(record) == 1  # as its expiry would
        sam = (await api.wallet("sam"))["coins"]
        again = await gift(api, "sam", video, "g-0", "rose", 1)
        assert again.status_code == 200, again.text
        assert again.json()["event"] == events[0] and again.headers["Idempotent-Replayed"] == "true"
        other = await gift(api, "sam", video, "g-0", "rose", 2)
        assert other.status_code == 409 and other.json()["code"] == "conflict"
        assert (await api.wallet("sam"))["coins"] == sam
        view = (await api.get(f"/v1/videos/{video}")).json()
        assert view["totals"] == {"coins": 98, "gifts": 7}


async def test_a_retried_id_debits_once_and_answers_the_same(api: Api) -> None:
    video = await create_video(api, "vera")
    await api.buy("sam", "coins_700")
    first = await gift(api, "sam", video, "g-1", "doughnut", 2)
    assert first.status_code == 200, first.text
    again = await gift(api, "sam", video, "g-1", "doughnut", 2)
    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    # From two clients at once: one debit, one answer.
    both = await asyncio.gather(*(gift(api, "sam", video, "g-2", "rose", 5) for _ in range(2)))
    assert [r.status_code for r in both] == [200, 200]
    assert both[0].json() == both[1].json()
    assert sorted(r.headers["Idempotent-Replayed"] for r in both) == ["false", "true"]
    assert (await api.wallet("sam"))["coins"] == 700 - 60 - 5
    view = (await api.get(f"/v1/videos/{video}")).json()
    assert view["totals"] == {"coins": 65, "gifts": 7}
    assert (await api.state.ledger.wallet("vera")).received == 65

    before = await money(api, video, "sam", "vera")
    for body in [
        {"id": "g-1", "gift": "doughnut", "count": 3},
        {"id": "g-1", "gift": "rose", "count": 2},
    ]:
        r = await api.send("POST", f"/v1/videos/{video}/gifts", body, user="sam")
        assert r.status_code == 409 and r.json()["code"] == "conflict", r.text
    # The same id on another video is another payload too.
    other = await create_video(api, "vera", "another")
    r = await gift(api, "sam", other, "g-1", "doughnut", 2)
    assert r.status_code == 409 and r.json()["code"] == "conflict"
    assert await money(api, video, "sam", "vera") == before


async def test_refusals_are_clear_and_move_nothing(api: Api) -> None:
    video = await create_video(api, "vera")
    stream = (await api.create_stream("vera"))["stream"]
    await api.buy("sam", "coins_70")
    await api.buy("tom", "coins_700")

    # Refused before the script: nothing at all changes in Redis.
    cases: list[tuple[str, str, Any, int, str]] = [
        ("sam", "/v1/videos/nosuch/gifts", {"id": "x1", "gift": "rose"}, 404, "not_found"),
        ("sam", "/v1/videos/bad:id/gifts", {"id": "x1", "gift": "rose"}, 400, "bad_request"),
        ("sam", f"/v1/videos/{video}/gifts", {"id": "x1", "gift": "nope"}, 404, "unknown_item"),
        ("sam", f"/v1/videos/{video}/gifts", {"id": "x1", "gift": "rose", "count": 0}, 400,
         "bad_request"),
        ("sam", f"/v1/videos/{video}/gifts", {"id": "x1", "gift": "rose", "count": -5}, 400,
         "bad_request"),
        ("sam", f"/v1/videos/{video}/gifts", {"id": "x1", "gift": "rose", "count": 10**12}, 400,
         "bad_request"),
        ("sam", f"/v1/videos/{video}/gifts", {"id": "x y", "gift": "rose"}, 400, "bad_request"),
        ("sam", f"/v1/videos/{video}/gifts", {"gift": "rose"}, 400, "bad_request"),
        ("sam", f"/v1/videos/{video}/gifts", {"id": "x1", "gift": "rose", "to": "z"}, 400,
         "bad_request"),
        ("sam", f"/v1/videos/{video}/gifts", [1, 2], 400, "bad_request"),
        ("vera", f"/v1/videos/{video}/gifts", {"id": "x1", "gift": "rose"}, 403, "forbidden"),
    ]  # fmt: skip
    before = await api.snapshot()
    for user, path, body, status, code in cases:
        r = await api.send("POST", path, body, user=user)
        assert (r.status_code, r.json()["code"]) == (status, code), (path, body, r.text)
        assert r.json()["message"]
    r = await api.send("POST", f"/v1/videos/{video}/gifts", {"id": "x1", "gift": "rose"})
    assert r.status_code == 401
    r = await api.send("POST", "/v1/videos", {"title": "mine"}, user="sam")  # not a creator
    assert r.status_code == 403
    r = await api.send("POST", "/v1/videos", {"title": "a\nb"}, user="vera", creator=True)
    assert r.status_code == 400
    assert await api.snapshot() == before
    assert (await api.get("/v1/videos/nosuch")).status_code == 404

    # Refused by spend.lua: no money moves, and the refused id stays refused.
    before_money = await money(api, video, "sam", "tom", "vera")
    r = await gift(api, "sam", video, "poor", "doughnut", 3)  # 90 coins, 70 held
    assert (r.status_code, r.json()["code"]) == (402, "insufficient_funds")
    r = await api.send("PUT", "/v1/wallet/budget", {"monthly": 10}, user="tom")
    assert r.status_code == 200
    before_money = await money(api, video, "sam", "tom", "vera")
    r = await gift(api, "tom", video, "over", "doughnut", 1)
    assert (r.status_code, r.json()["code"]) == (402, "budget_exceeded")
    # The creator blocks sam in all their streams: their videos too (atomic with the debit).
    r = await api.send(
        "POST", f"/v1/streams/{stream}/blocks", {"user": "sam", "scope": "creator"}, user="vera",
        creator=True,
    )  # fmt: skip
    assert r.status_code == 200, r.text
    r = await gift(api, "sam", video, "blocked-1", "rose", 1)
    assert (r.status_code, r.json()["code"]) == (403, "blocked")
    assert await money(api, video, "sam", "tom", "vera") == before_money

    await api.buy("sam", "coins_700")
    r = await gift(api, "sam", video, "poor", "doughnut", 3)  # now affordable: still refused
    assert (r.status_code, r.json()["code"]) == (402, "insufficient_funds")
    r = await api.send("DELETE", f"/v1/streams/{stream}/blocks/sam", user="vera", creator=True)
    assert r.status_code == 200, r.text
    r = await gift(api, "sam", video, "after-unblock", "rose", 1)
    assert r.status_code == 200, r.text
    assert (await api.get(f"/v1/videos/{video}")).json()["totals"] == {"coins": 1, "gifts": 1}


async def test_the_persister_repairs_the_credit_and_totals_of_a_debit_left_unsettled(
    redis_url: str, db_url: str, key_prefix: str, redis: Redis
) -> None:
    async with ledger_app(redis_url, db_url, key_prefix, redis) as api:
        video = await create_video(api, "vera")
        await api.buy("sam", "coins_700")
        # The debit happened (as in an API process that then died before its settle step).
        priced = price_gift(api.state.catalog, "doughnut", 3)
        order = SpendOrder("sam", "Sam", "lost-1", priced, creator="vera", video=video)
        result = await api.state.ledger.spend(order, live=True)
        assert (await api.state.ledger.wallet("sam")).coins == 700 - 90

        async def settled() -> bool:
            view = (await api.get(f"/v1/videos/{video}")).json()
            assert "totals" in view, view
            return bool(view["totals"]["coins"])

        async with asyncio.timeout(20):
            while not await settled():  # noqa: ASYNC110 - the persister's task
                await asyncio.sleep(0.05)
        assert await wait_caught_up(redis, api.state.keys, 20)
        view = (await api.get(f"/v1/videos/{video}")).json()
        assert view["totals"] == {"coins": 90, "gifts": 3}
        assert view["top"] == [{"user": "sam", "name": "Sam", "coins": 90}]
        vera = await api.state.ledger.wallet("vera")
        assert (vera.received, vera.diamonds) == (90, 45)

        # A retry of the id replays the debit (nothing settled twice), and a repair run
        # again changes nothing.
        r = await gift(api, "sam", video, "lost-1", "doughnut", 3)
        assert r.status_code == 200 and r.json()["event"] == result.event
        assert r.headers["Idempotent-Replayed"] == "true"
        entry = spend_entry(order, result, 0)
        assert await api.state.ledger.repair_credits([entry]) == 0
        roomlog = build_roomlog(api.state.settings, redis, api.state.catalog)
        try:
            await roomlog.emit_spends([entry])
        finally:
            await roomlog.aclose()
        vera = await api.state.ledger.wallet("vera")
        assert (vera.received, vera.diamonds) == (90, 45)
        view = (await api.get(f"/v1/videos/{video}")).json()
        assert view["totals"] == {"coins": 90, "gifts": 3}

        pool = api.state.pg_pool
        assert pool is not None
        n = await pool.fetchval(
            "SELECT count(*) FROM ledger_events WHERE event_id = ANY($1::text[])",
            [result.event, "c" + result.event[1:]],
        )
        assert n == 2
        report = await run_audit(pool, redis, api.state.keys, api.state.catalog)
        assert report.ok, report.render()
