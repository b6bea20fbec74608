"""Development-only helpers, mounted only when ``GIFTING_DEV=1``.

The demo page needs a user and coins without a payment provider: these
routes mint a token and credit a package as the provider's purchase webhook
would (the same ledger call). They never exist in a production app.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute

from gifting.api.http import principal, read_body_as
from gifting.api.routing import ApiRoute
from gifting.api.schemas import Credited, DevPurchaseBody, DevTokenBody, Token
from gifting.auth import CREATOR, mint_token
from gifting.clock import now_ms
from gifting.core.errors import UnknownItem
from gifting.core.ids import new_id
from gifting.state import app_state

__all__ = ["dev_purchase", "dev_token", "routes"]

DEV_TOKEN_TTL_S = 24 * 3600


async def dev_token(request: Request) -> JSONResponse:
    """Mint a token: ``{"user", "name"?, "creator"?: bool}`` → ``{"token"}``."""
    body = await read_body_as(request, DevTokenBody)
    user, name = body.user, body.name
    roles = [CREATOR] if body.creator else []
    secret = app_state(request).settings.jwt_secret
    token = mint_token(secret, user, name, roles, DEV_TOKEN_TTL_S)
    return JSONResponse({"token": token, "user": user, "roles": roles})


async def dev_purchase(request: Request) -> JSONResponse:
    """Buy a package for the caller as the provider would: ``{"package"}``.

    Calls the same ledger operation as the signed purchase webhook, with the
    package's own price and a fresh purchase id.
    """
    caller = principal(request)
    body = await read_body_as(request, DevPurchaseBody)
    state = app_state(request)
    package = state.catalog.package_by_id(body.package)
    result = await state.ledger.purchase(
        new_id("dev", now_ms()),
        caller.user,
        package.id,
        package.price.amount,
        package.price.currency,
    )
    return JSONResponse(
        {
            "purchase_id": result.purchase_id,
            "user": result.user,
            "coins": result.coins,
            "balance": result.balance,
        }
    )


routes: list[BaseRoute] = [
    ApiRoute("/v1/dev/token", dev_token, "POST", body=DevTokenBody, answer=Token),
    ApiRoute("/v1/dev/purchase", dev_purchase, "POST", body=DevPurchaseBody, answer=Credited,
             auth="bearer", errors=[UnknownItem]),
]  # fmt: skip
