"""Webhook subscriptions of the event feed (creators): create, list, read, delete, deliveries.

``POST /v1/webhook-subscriptions`` ``{"url","kinds":[...],"stream"?}`` → 201
``{"id","secret",...}``: the secret is shown once, at creation; deliveries are
signed with it (``X-Gifting-Signature``, docs/protocol.md "The event feed").
Without ``stream`` the subscription gets the events of every stream of the
creator. ``GET .../{id}/deliveries`` lists the latest delivery attempts and
their answers. A subscription of another creator is 403, an unknown one 404.
The deliveries themselves are made by :mod:`gifting.feed.worker`.
"""

from __future__ import annotations

from typing import Final

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute

from gifting.api.http import principal, read_body_as
from gifting.api.routing import ApiRoute, QueryInt
from gifting.api.tool_schemas import (
    Deliveries,
    Subscription,
    SubscriptionBody,
    SubscriptionCreated,
    SubscriptionDeleted,
    Subscriptions,
)
from gifting.auth import CREATOR
from gifting.clock import now_ms
from gifting.core.errors import Forbidden, NotFound, Unavailable
from gifting.core.feed import check_kinds, check_url
from gifting.core.ids import check_id
from gifting.feed.store import SubscriptionStore
from gifting.state import app_state

__all__ = [
    "create_subscription",
    "delete_subscription",
    "get_subscription",
    "list_deliveries",
    "list_subscriptions",
    "routes",
]

#: Most attempts one deliveries page shows.
MAX_DELIVERIES_PAGE: Final = 500
LIMIT = QueryInt("limit", default=100, minimum=1, maximum=MAX_DELIVERIES_PAGE)


def _store(request: Request) -> SubscriptionStore:
    pool: asyncpg.Pool[asyncpg.Record] | None = app_state(request).pg_pool
    if pool is None:
        raise Unavailable("webhook subscriptions need PostgreSQL, which this server lacks")
    return SubscriptionStore(pool)


def _sub_id(request: Request) -> str:
    return check_id(request.path_params["id"], "id")


async def create_subscription(request: Request) -> JSONResponse:
    """Subscribe a URL to the creator's events of the given kinds; 201 with the secret."""
    caller = principal(request)
    caller.require_role(CREATOR)
    body = await read_body_as(request, SubscriptionBody)
    url = check_url(body.url)
    kinds = check_kinds(body.kinds)
    stream = None
    if body.stream is not None:
        stream = body.stream
        found = await app_state(request).streams.get(stream)  # NotFound: 404
        if found.creator != caller.user:
            raise Forbidden("the stream belongs to another creator")
    sub = await _store(request).create(caller.user, url, kinds, stream, now_ms())
    return JSONResponse({**sub.public(), "secret": sub.secret}, status_code=201)


async def list_subscriptions(request: Request) -> JSONResponse:
    """The caller's active subscriptions (without their secrets)."""
    caller = principal(request)
    subs = await _store(request).list_of(caller.user)
    return JSONResponse({"subscriptions": [s.public() for s in subs]})


async def get_subscription(request: Request) -> JSONResponse:
    """One of the caller's subscriptions (without its secret)."""
    caller = principal(request)
    sub = await _store(request).owned(caller.user, _sub_id(request))
    return JSONResponse(sub.public())


async def delete_subscription(request: Request) -> JSONResponse:
    """Stop a subscription: nothing more is delivered, pending retries are cancelled."""
    caller = principal(request)
    sub_id = _sub_id(request)
    await _store(request).delete(caller.user, sub_id, now_ms())
    return JSONResponse({"id": sub_id, "deleted": True})


async def list_deliveries(request: Request) -> JSONResponse:
    """The subscription's latest delivery attempts, newest first (``?limit=``, 100 by default)."""
    caller = principal(request)
    store = _store(request)
    sub = await store.owned(caller.user, _sub_id(request))
    limit = LIMIT.read(request)
    return JSONResponse({"id": sub.id, "deliveries": await store.attempts(sub.id, limit)})


_OWNED = [NotFound, Forbidden]  # unknown (or deleted); another creator's

routes: list[BaseRoute] = [
    ApiRoute("/v1/webhook-subscriptions", create_subscription, "POST", body=SubscriptionBody,
             answer=SubscriptionCreated, status=201, auth="creator", errors=[NotFound]),
    ApiRoute("/v1/webhook-subscriptions", list_subscriptions, "GET", answer=Subscriptions,
             auth="bearer"),
    ApiRoute("/v1/webhook-subscriptions/{id}", get_subscription, "GET", answer=Subscription,
             auth="bearer", errors=_OWNED),
    ApiRoute("/v1/webhook-subscriptions/{id}", delete_subscription, "DELETE",
             answer=SubscriptionDeleted, auth="bearer", errors=_OWNED),
    ApiRoute("/v1/webhook-subscriptions/{id}/deliveries", list_deliveries, "GET",
             answer=Deliveries, auth="bearer", query=[LIMIT], errors=_OWNED),
]  # fmt: skip
