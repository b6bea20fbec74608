"""``GET /v1/wallet/history`` and ``GET /v1/earnings`` through the app, persister in process."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from redis.asyncio import Redis

from gifting.api import history
from gifting.app import create_app
from gifting.auth import mint_token
from gifting.config import Settings
from gifting.core.pricing import price_gift
from gifting.persister.service import persister_lifespan
from gifting.state import AppState, Extension
from gifting.store.ledger import SpendOrder

from .support import caught_up

SECRET = "history-test-secret-0123456789abcdef0123"


@pytest_asyncio.fixture(loop_scope="session")
async def app_client(
    redis_url: str, db_url: str, key_prefix: str, redis: Redis
) -> AsyncIterator[tuple[httpx.AsyncClient, AppState]]:
    settings = Settings(
        redis_url=redis_url,
        database_url=db_url,
        key_prefix=key_prefix,
        jwt_secret=SECRET,
        webhook_secret=SECRET,
        persister_in_process=True,
        persister_claim_idle_ms=500,
    )
    extension = Extension("persister", routes=history.routes, lifespan=persister_lifespan)
    app = create_app(settings, extensions=[extension])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client, app.state.gifting


def _auth(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(SECRET, user, ttl_s=600)}"}


async def test_history_pages_and_earnings(
    app_client: tuple[httpx.AsyncClient, AppState],
) -> None:
    client, state = app_client
    assert state.pg_pool is not None and state.persister is not None
    ledger = state.ledger
    await ledger.purchase("p1", "alice", "coins_700", 999, "USD")
    stream = await state.streams.create("bob", "Bob", "live")
    for i in range(4):
        await ledger.spend(
            SpendOrder(
                "alice", "Alice", f"m{i}", price_gift(state.catalog, "cap"), stream.stream, "bob"
            ),
            live=True,
        )
    await caught_up(state.redis, state.keys)

    seen: list[dict[str, object]] = []
    cursor: str | None = None
    while True:
        params = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        r = await client.get("/v1/wallet/history", params=params, headers=_auth("alice"))
        assert r.status_code == 200, r.text
        body = r.json()
        seen += body["entries"]
        cursor = body["next"]
        if cursor is None:
            break
    assert [e["type"] for e in seen] == ["spend"] * 4 + ["purchase"]
    assert [e["coins"] for e in seen] == [-99] * 4 + [700]
    assert seen[0]["balance"] == 700 - 4 * 99

    r = await client.get("/v1/earnings", headers=_auth("bob"))
    assert r.status_code == 200
    earnings = r.json()
    assert earnings["totals"]["coins"] == 396
    assert earnings["totals"]["diamonds"] == 198  # the persister credited every gift
    assert earnings["streams"][0]["stream"] == stream.stream

    r = await client.get("/v1/wallet/history", headers=_auth("bob"))
    assert {e["type"] for e in r.json()["entries"]} == {"credit"}


async def test_cashout_history_from_the_ledger(
    app_client: tuple[httpx.AsyncClient, AppState],
) -> None:
    client, state = app_client
    ledger = state.ledger
    await ledger.purchase("p-big", "alice", "coins_7000", 9999, "USD")
    stream = await state.streams.create("bob", "Bob", "live")
    galaxy = price_gift(state.catalog, "galaxy", 4)
    await ledger.spend(SpendOrder("alice", "Alice", "g1", galaxy, stream.stream, "bob"), live=True)
    await caught_up(state.redis, state.keys)  # the persister credits bob's diamonds
    diamonds = galaxy.coins // 2
    held = await ledger.request_cashout("bob", diamonds, "co-1")
    await ledger.settle_cashout(held.cashout, "paid")
    await caught_up(state.redis, state.keys)
    r = await client.get("/v1/wallet/cashouts", headers=_auth("bob"))
    assert r.status_code == 200, r.text
    (row,) = r.json()["cashouts"]
    assert row["cashout"] == held.cashout
    assert row["status"] == "paid"
    assert row["diamonds"] == diamonds
    assert row["amount"] == {"amount": diamonds // 2, "currency": "USD"}
    r = await client.get("/v1/wallet/cashouts", headers=_auth("alice"))
    assert r.json()["cashouts"] == []


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "0"},
        {"limit": "201"},
        {"limit": "x"},
        {"limit": "-1"},
        {"cursor": "???"},
        {"cursor": ""},
        {"cursor": "bm90LWEtY3Vyc29y"},
        {"limit": "9" * 30},
    ],
)
async def test_bad_limit_or_cursor_is_400(
    app_client: tuple[httpx.AsyncClient, AppState], query: dict[str, str]
) -> None:
    client, _ = app_client
    r = await client.get("/v1/wallet/history", params=query, headers=_auth("alice"))
    assert r.status_code == 400
    assert r.json()["code"] == "bad_request"


async def test_history_needs_a_token(app_client: tuple[httpx.AsyncClient, AppState]) -> None:
    client, _ = app_client
    for path in ("/v1/wallet/history", "/v1/earnings"):
        r = await client.get(path)
        assert r.status_code == 401
        assert r.json()["code"] == "unauthorized"
