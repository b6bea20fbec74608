"""Setting a run up: the catalog, the rooms (live streams) and the viewers' coins.

Two ways, chosen by ``StormConfig.setup``:

* ``api`` (default): streams through ``POST /v1/streams`` with a creator's
  token, coins through the signed purchase webhook, as a deployment's users
  and payment provider would;
* ``store``: ``Streams.create`` and ``Ledger.purchase`` straight on Redis
  (faster for thousands of viewers).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

import httpx
from redis.asyncio import Redis

from gifting.api.signatures import SIGNATURE_HEADER, sign
from gifting.auth import mint_token
from gifting.core.catalog import load_catalog
from gifting.store.keys import Keys
from gifting.store.ledger import Ledger
from gifting.store.streams import Streams
from loadtest.plan import RoomInfo

__all__ = ["Catalog", "create_rooms", "fetch_catalog", "fund", "packages_for"]

#: (package id, coins, price amount, currency)
Package = tuple[str, int, int, str]
#: At most this many setup calls in flight at once.
CONCURRENCY = 32


class Catalog:
    """What the generator needs of the server's catalog: prices and packages."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.prices: dict[str, int] = {g["id"]: int(g["coins"]) for g in body["gifts"]}
        #: The creators' share of coins in basis points (diamonds on a running total).
        self.creator_share_bps = int(body.get("creator_share_bps", 0))
        self.packages: list[Package] = sorted(
            (
                (p["id"], int(p["coins"]), int(p["price"]["amount"]), str(p["price"]["currency"]))
                for p in body["packages"]
            ),
            key=lambda p: p[1],
        )


async def fetch_catalog(base_url: str) -> Catalog:
    """``GET /v1/catalog`` of the server."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as client:
        response = await client.get("/v1/catalog")
        response.raise_for_status()
        return Catalog(response.json())


def packages_for(coins: int, packages: Sequence[Package]) -> list[Package]:
    """Few packages worth at least ``coins``: the smallest that covers what is left,
    else the largest, until covered."""
    out: list[Package] = []
    left = coins
    while left > 0:
        cover = [p for p in packages if p[1] >= left]
        pick = cover[0] if cover else packages[-1]
        out.append(pick)
        left -= pick[1]
    return out


async def _bounded(calls: Sequence[Callable[[], Awaitable[Any]]]) -> list[Any]:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def run(call: Callable[[], Awaitable[Any]]) -> Any:
        async with gate:
            return await call()

    return list(await asyncio.gather(*(run(c) for c in calls)))


async def create_rooms(
    *,
    how: str,
    base_url: str,
    jwt_secret: str,
    creators: Sequence[tuple[str, str]],
    redis: Redis | None = None,
    key_prefix: str = "g",
) -> list[RoomInfo]:
    """Start one live stream per (creator id, room name); return the rooms in order."""
    if how == "store":
        assert redis is not None
        streams = Streams(redis, Keys(key_prefix), load_catalog(None))
        made = [await streams.create(c, c, f"storm {name}") for c, name in creators]
        return [
            RoomInfo(i, name, s.stream, s.overlay_key, c)
            for i, ((c, name), s) in enumerate(zip(creators, made, strict=True))
        ]
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:

        def call(creator: str, name: str) -> Callable[[], Awaitable[dict[str, Any]]]:
            async def post() -> dict[str, Any]:
                token = mint_token(jwt_secret, creator, None, ["creator"], 3600)
                r = await client.post(
                    "/v1/streams",
                    json={"title": f"storm {name}"},
                    headers={"Authorization": f"Bearer {token}"},
                )
                if r.status_code != 201:
                    raise RuntimeError(f"POST /v1/streams: {r.status_code} {r.text}")
                body: dict[str, Any] = r.json()
                return body

            return post

        bodies = await _bounded([call(c, n) for c, n in creators])
    return [
        RoomInfo(i, name, b["stream"], b["overlay_key"], c)
        for i, ((c, name), b) in enumerate(zip(creators, bodies, strict=True))
    ]


async def fund(
    *,
    how: str,
    base_url: str,
    webhook_secret: str,
    wants: Sequence[tuple[str, int]],
    packages: Sequence[Package],
    run_id: str,
    redis: Redis | None = None,
    key_prefix: str = "g",
) -> dict[str, int]:
    """Buy packages for each (user, coins wanted); return each user's balance after."""
    balances: dict[str, int] = {}

    async def buy_store(ledger: Ledger, user: str, coins: int) -> None:
        for i, (pid, _, amount, currency) in enumerate(packages_for(coins, packages)):
            result = await ledger.purchase(f"{run_id}-{user}-{i}", user, pid, amount, currency)
            balances[user] = result.balance

    async def buy_api(client: httpx.AsyncClient, user: str, coins: int) -> None:
        for i, (pid, _, amount, currency) in enumerate(packages_for(coins, packages)):
            body = json.dumps(
                {"purchase_id": f"{run_id}-{user}-{i}", "user": user, "package": pid,
                 "amount": amount, "currency": currency}
            ).encode()  # fmt: skip
            r = await client.post(
                "/v1/webhooks/purchases",
                content=body,
                headers={"Content-Type": "application/json",
                         SIGNATURE_HEADER: sign(webhook_secret, body)},
            )  # fmt: skip
            if r.status_code != 200:
                raise RuntimeError(f"purchase webhook: {r.status_code} {r.text}")
            balances[user] = int(r.json()["balance"])

    if how == "store":
        assert redis is not None
        ledger = Ledger(redis, Keys(key_prefix), load_catalog(None))
        await _bounded([partial(buy_store, ledger, u, c) for u, c in wants if c > 0])
    else:
        limits = httpx.Limits(max_connections=CONCURRENCY)
        async with httpx.AsyncClient(base_url=base_url, timeout=30.0, limits=limits) as client:
            await _bounded([partial(buy_api, client, u, c) for u, c in wants if c > 0])
    for user, _ in wants:
        balances.setdefault(user, 0)
    return balances
