"""Helpers of the HTTP API tests: an :class:`Api` client that speaks for users and providers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx
from redis.asyncio import Redis
from starlette.applications import Starlette

from gifting.api.signatures import SIGNATURE_HEADER, sign
from gifting.app import create_app
from gifting.auth import mint_token
from gifting.config import Settings
from gifting.core.pricing import price_gift
from gifting.state import AppState, Extension
from gifting.store.ledger import SpendOrder

JWT_SECRET = "test-jwt-secret-0123456789abcdef0123456789"
WEBHOOK_SECRET = "test-webhook-secret-0123456789abcdef012345"


class Api:
    """An HTTP client of the app plus helpers that speak for users and providers."""

    def __init__(self, app: Starlette, client: httpx.AsyncClient, redis: Redis) -> None:
        self.app = app
        self.client = client
        self.redis = redis
        self._purchases = 0

    async def snapshot(self) -> dict[bytes, object]:
        """Every Redis key of this test and its value."""
        return await snapshot(self.redis, self.state.keys.prefix)

    @property
    def state(self) -> AppState:
        state: AppState = self.app.state.gifting
        return state

    # -- credentials ---------------------------------------------------------------
    def token(self, user: str, *, creator: bool = False, name: str | None = None) -> str:
        return mint_token(JWT_SECRET, user, name, ["creator"] if creator else [], 600)

    def auth(self, user: str, *, creator: bool = False) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user, creator=creator)}"}

    # -- raw calls -----------------------------------------------------------------
    async def get(self, path: str, user: str | None = None, **kw: Any) -> httpx.Response:
        headers = kw.pop("headers", {}) | (self.auth(user) if user else {})
        return await self.client.get(path, headers=headers, **kw)

    async def send(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        user: str | None = None,
        creator: bool = False,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        hdrs = dict(headers or {})
        if user:
            hdrs |= self.auth(user, creator=creator)
        content = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        return await self.client.request(method, path, content=content, headers=hdrs)

    async def webhook(
        self,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        t: int | None = None,
        secret: str = WEBHOOK_SECRET,
        signature: str | None = None,
    ) -> httpx.Response:
        content = raw if raw is not None else json.dumps(body).encode()
        header = signature if signature is not None else sign(secret, content, t)
        return await self.client.post(
            f"/v1/webhooks/{path}", content=content, headers={SIGNATURE_HEADER: header}
        )

    # -- money helpers ----------------------------------------------------------------
    async def buy(self, user: str, package: str = "coins_700") -> dict[str, Any]:
        """Credit a package through the signed purchase webhook."""
        self._purchases += 1
        p = self.state.catalog.packages[package]
        r = await self.webhook(
            "purchases",
            {
                "purchase_id": f"p-{user}-{self._purchases}",
                "user": user,
                "package": package,
                "amount": p.price.amount,
                "currency": p.price.currency,
            },
        )
        assert r.status_code == 200, r.text
        result: dict[str, Any] = r.json()
        return result

    async def wallet(self, user: str) -> dict[str, Any]:
        r = await self.get("/v1/wallet", user)
        assert r.status_code == 200, r.text
        result: dict[str, Any] = r.json()
        return result

    async def create_stream(self, creator: str, title: str = "live!") -> dict[str, Any]:
        r = await self.send("POST", "/v1/streams", {"title": title}, user=creator, creator=True)
        assert r.status_code == 201, r.text
        result: dict[str, Any] = r.json()
        return result

    async def earn_diamonds(self, creator: str, viewer: str, gift: str = "interstellar") -> int:
        """Have ``viewer`` send ``gift`` in a new stream of ``creator``, credited (ledger path)."""
        stream = (await self.create_stream(creator))["stream"]
        await self.buy(viewer, "coins_17500")
        ledger = self.state.ledger
        order = SpendOrder(
            sender=viewer,
            sender_name=viewer,
            client_id=f"g-{stream}",
            priced=price_gift(self.state.catalog, gift, 1),
            stream=stream,
            creator=creator,
        )
        result = await ledger.spend(order, live=True)
        return await ledger.credit_creator(
            spend_event=result.event,
            creator=creator,
            coins=order.priced.coins,
            stream=stream,
            sender=viewer,
        )


def settings_for(redis_url: str, database_url: str, key_prefix: str, **extra: Any) -> Settings:
    """Settings of a test app: the session's servers, the test's key prefix, test secrets."""
    return Settings(
        REDIS_URL=redis_url,
        DATABASE_URL=database_url,
        GIFTING_KEY_PREFIX=key_prefix,
        GIFTING_JWT_SECRET=JWT_SECRET,
        GIFTING_WEBHOOK_SECRET=WEBHOOK_SECRET,
        **extra,
    )


async def snapshot(redis: Redis, prefix: str) -> dict[bytes, object]:
    """Every key of the test's prefix with its value, to assert that nothing changed."""
    state: dict[bytes, object] = {}
    async for key in redis.scan_iter(match=f"{prefix}:*", count=1000):
        kind = (await redis.type(key)).decode()
        value: object
        if kind == "hash":
            value = await redis.hgetall(key)
        elif kind == "string":
            value = await redis.get(key)
        elif kind == "zset":
            value = await redis.zrange(key, 0, -1, withscores=True)
        elif kind == "stream":
            value = await redis.xrange(key)
        elif kind == "set":
            value = await redis.smembers(key)
        else:
            value = await redis.lrange(key, 0, -1)
        state[key] = (kind, value)
    return state


@asynccontextmanager
async def open_api(
    settings: Settings,
    redis: Redis,
    extensions: Sequence[Extension] = (),
    *,
    raise_app_exceptions: bool = True,
) -> AsyncIterator[Api]:
    """Build the app, run its lifespan, and yield an :class:`Api` driving it in process."""
    app = create_app(settings, extensions=extensions)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Api(app, client, redis)
