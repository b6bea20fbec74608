"""Leaderboards over HTTP: the current period from Redis, past ones from PostgreSQL.

The app here runs no persister: the tests give it a pool on a fresh migrated
database where they need the durable record, and fill it through the
persister's own writer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from api_support import Api

from gifting.clock import now_ms
from gifting.core.periods import month_of, week_of
from gifting.persister.postings import parse_entry
from gifting.persister.writer import write_batch

pytestmark = pytest.mark.cluster
PAST = 1_791_892_800_000  # 2026-10-13T12:00:00Z: ISO week 2026-W42, month 2026-10


@pytest_asyncio.fixture(loop_scope="session")
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(db_url, min_size=1, max_size=2)
    assert p is not None
    try:
        yield p
    finally:
        await p.close()


async def credit(api: Api, creator: str, sender: str, coins: int, ts: int, n: int) -> None:
    """A credit through the ledger (credit.lua) for a spend at ``ts``."""
    await api.state.ledger.credit_creator(
        spend_event=f"e{ts:011x}{n:012x}", creator=creator, coins=coins, stream="s1",
        sender=sender, sender_name=sender.title(), spend_ts=ts,
    )  # fmt: skip


async def persist(
    pool: asyncpg.Pool, creator: str, sender: str, coins: int, ts: int, n: int
) -> None:
    """A credit as the persister writes it, for a spend at ``ts``."""
    event = f"e{ts:011x}{n:012x}"
    fields = {
        "type": "credit", "user": creator, "spend_event": event, "coins": str(coins),
        "stream": "s1", "sender": sender, "sender_name": sender.title(), "spend_ts": str(ts),
        "diamonds": "0", "event": "c" + event[1:], "ts": str(ts),
    }  # fmt: skip
    async with pool.acquire() as conn:
        await write_batch(conn, [parse_entry(f"1-{n}", fields)])


def places(answer: dict[str, Any]) -> list[tuple[int, str, int]]:
    return [(e["rank"], e["user"], e["coins"]) for e in answer["entries"]]


async def test_the_current_week_and_month_are_live_from_redis(api: Api) -> None:
    now = now_ms()
    for n, (sender, coins) in enumerate([("sam", 30), ("ann", 50), ("bo", 30), ("sam", 5)]):
        await credit(api, "rita", sender, coins, now, n)
    await credit(api, "otto", "sam", 100, now, 9)
    r = await api.get("/v1/creators/rita/leaderboard")
    assert r.status_code == 200, r.text
    week = r.json()
    assert (week["period"], week["at"]) == ("week", week_of(now).label)
    assert places(week) == [(1, "ann", 50), (2, "sam", 35), (3, "bo", 30)]
    assert week["entries"][1]["name"] == "Sam"
    r = await api.get("/v1/creators/rita/leaderboard", params={"period": "month", "limit": "2"})
    assert r.json()["at"] == month_of(now).label
    assert places(r.json()) == [(1, "ann", 50), (2, "sam", 35)]
    r = await api.get("/v1/leaderboards/creators", params={"at": week_of(now).label})
    assert places(r.json()) == [(1, "rita", 115), (2, "otto", 100)]
    r = await api.get("/v1/leaderboards/creators", params={"period": "month", "limit": "1"})
    assert places(r.json()) == [(1, "rita", 115)]


async def test_a_past_period_is_read_from_postgres(api: Api, pool: asyncpg.Pool) -> None:
    await credit(api, "rita", "sam", 7, PAST, 1)  # Redis drops a past period's keys at once
    path = "/v1/creators/rita/leaderboard"
    r = await api.get(path, params={"at": "2026-W42"})
    assert r.status_code == 503, r.text  # no durable record in this app yet
    api.state.pg_pool = pool
    await persist(pool, "rita", "sam", 7, PAST, 1)
    await persist(pool, "rita", "ann", 7, PAST, 2)
    await persist(pool, "rita", "cy", 9, PAST, 3)
    r = await api.get(path, params={"at": "2026-W42"})
    assert r.status_code == 200, r.text
    assert r.json()["period"] == "week" and r.json()["at"] == "2026-W42"
    assert places(r.json()) == [(1, "cy", 9), (2, "ann", 7), (3, "sam", 7)]
    r = await api.get(path, params={"period": "month", "at": "2026-10", "limit": "2"})
    assert places(r.json()) == [(1, "cy", 9), (2, "ann", 7)]
    r = await api.get("/v1/leaderboards/creators", params={"at": "2026-W42"})
    assert places(r.json()) == [(1, "rita", 23)]
    r = await api.get(path, params={"at": "2026-W41"})
    assert r.json()["entries"] == []


async def test_the_current_period_falls_back_to_postgres_when_redis_has_nothing(
    api: Api, pool: asyncpg.Pool
) -> None:
    api.state.pg_pool = pool
    now = now_ms()
    await persist(pool, "rita", "sam", 4, now, 1)  # persisted; Redis's keys lost
    r = await api.get("/v1/creators/rita/leaderboard")
    assert places(r.json()) == [(1, "sam", 4)]
    await credit(api, "rita", "ann", 6, now, 2)  # Redis has the period again: it answers
    r = await api.get("/v1/creators/rita/leaderboard")
    assert places(r.json()) == [(1, "ann", 6)]


async def test_a_streams_top_gifters(api: Api) -> None:
    stream = (await api.create_stream("rita"))["stream"]
    for sender, coins in [("sam", 5), ("ann", 5), ("bo", 9), ("cy", 1)]:
        await api.state.streams.record_spend(
            stream, sender, sender.title(), "gift", "rose", coins, coins
        )
    r = await api.get(f"/v1/streams/{stream}/leaderboard", params={"limit": "3"})
    assert r.status_code == 200, r.text
    assert (r.json()["period"], r.json()["at"]) == ("stream", stream)
    assert places(r.json()) == [(1, "bo", 9), (2, "ann", 5), (3, "sam", 5)]
    r = await api.get("/v1/streams/no-such-stream/leaderboard")
    assert r.status_code == 404 and r.json()["code"] == "not_found"


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/creators/rita/leaderboard", {"limit": "0"}),
        ("/v1/creators/rita/leaderboard", {"limit": "101"}),
        ("/v1/creators/rita/leaderboard", {"limit": "ten"}),
        ("/v1/creators/rita/leaderboard", {"period": "day"}),
        ("/v1/creators/rita/leaderboard", {"period": "week", "at": "2026-12"}),
        ("/v1/creators/rita/leaderboard", {"period": "month", "at": "2026-13"}),
        ("/v1/creators/rita/leaderboard", {"at": "2025-W53"}),
        ("/v1/creators/rita/leaderboard", {"at": "x" * 300}),
        ("/v1/creators/%20bad%20/leaderboard", {}),
        ("/v1/leaderboards/creators", {"period": "year"}),
        ("/v1/leaderboards/creators", {"at": "2026-W99"}),
        ("/v1/leaderboards/creators", {"limit": "-1"}),
        ("/v1/streams/s1/leaderboard", {"limit": "1000"}),
    ],
)
async def test_bad_input_is_a_bad_request_and_changes_nothing(
    api: Api, path: str, params: dict[str, str]
) -> None:
    await credit(api, "rita", "sam", 3, now_ms(), 1)
    before = await api.snapshot()
    r = await api.get(path, params=params)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "bad_request"
    assert await api.snapshot() == before
