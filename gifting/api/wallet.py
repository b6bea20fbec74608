"""The caller's own money: wallet, monthly budget, profile badges and cash-outs.

Every route here needs a bearer token and acts only on the token's own user
(docs/contract.md §3.7). Spends and cash-outs are idempotent by the client's id: a
retry returns the first result, failures included; the same id with another
payload is 409 ``conflict``. A badge's id is looked up in PostgreSQL's
``spend_ids`` first, as the hub does for gifts: once the persister retired its
Redis record, only PostgreSQL still knows it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute

from gifting.api.http import principal, read_body_as
from gifting.api.routing import ApiRoute, QueryInt
from gifting.api.schemas import (
    BadgeBody,
    BadgeBought,
    BudgetBody,
    CashoutBody,
    Cashouts,
    Wallet,
)
from gifting.api.schemas import Cashout as CashoutAnswer
from gifting.clock import now_ms
from gifting.core.badges import owned_views
from gifting.core.errors import (
    BadRequest,
    BudgetExceeded,
    Conflict,
    GiftingError,
    InsufficientFunds,
    NotFound,
    UnknownItem,
)
from gifting.core.ids import check_id, new_id
from gifting.core.pricing import price_badge
from gifting.records import kept_spends
from gifting.state import AppState, app_state
from gifting.store.ledger import (
    Budget,
    Cashout,
    Ledger,
    SpendOrder,
    SpendResult,
    kept_outcome,
)

__all__ = [
    "buy_badge",
    "get_cashout",
    "get_wallet",
    "kept_result",
    "list_cashouts",
    "put_budget",
    "request_cashout",
    "routes",
]

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_CASHOUTS_LISTED = 100
CASHOUTS_LIMIT = QueryInt("limit", default=50, minimum=1, maximum=MAX_CASHOUTS_LISTED)
#: How long a badge waits for PostgreSQL's kept ids before going on with Redis alone.
KEPT_LOOKUP_TIMEOUT_S: Final = 0.5

log = logging.getLogger(__name__)


def budget_to_public(budget: Budget) -> dict[str, Any]:
    """The wire form of a budget, with what is left of it this month."""
    remaining = None if budget.monthly is None else max(budget.monthly - budget.spent, 0)
    return {
        "monthly": budget.monthly,
        "spent": budget.spent,
        "remaining": remaining,
        "period": budget.period,
    }


async def _wallet_body(ledger: Ledger, user: str) -> dict[str, Any]:
    wallet = await ledger.wallet(user)
    owned = owned_views(ledger.catalog, await ledger.badges_owned(user))
    return {
        "user": wallet.user,
        "coins": wallet.coins,
        "diamonds": wallet.diamonds,
        "diamonds_held": wallet.held,
        "diamonds_paid": wallet.paid,
        "diamonds_earned": wallet.earned,
        # The badge shown on the user's events, and every one owned (the shown first).
        "badge": owned[0]["id"] if owned else None,
        "badges": owned,
        "budget": budget_to_public(wallet.budget),
    }


async def get_wallet(request: Request) -> JSONResponse:
    """The caller's balances, badge and monthly budget."""
    caller = principal(request)
    return JSONResponse(await _wallet_body(app_state(request).ledger, caller.user))


async def put_budget(request: Request) -> JSONResponse:
    """Set (``{"monthly": coins}``) or clear (``{"monthly": null}``) the monthly budget."""
    caller = principal(request)
    body = await read_body_as(request, BudgetBody)
    ledger = app_state(request).ledger
    await ledger.set_budget(caller.user, body.monthly)
    return JSONResponse(await _wallet_body(ledger, caller.user))


async def buy_badge(request: Request) -> JSONResponse:
    """Buy a profile badge: ``{"id", "badge"}`` → ``{"event", "balance", "badge"}``."""
    caller = principal(request)
    body = await read_body_as(request, BadgeBody)
    client_id = body.id
    state = app_state(request)
    priced = price_badge(state.catalog, body.badge)
    order = SpendOrder(
        sender=caller.user, sender_name=caller.name, client_id=client_id, priced=priced
    )
    result = await kept_result(state, order) or await state.ledger.spend(order, live=True)
    # Owned once debited; a replay restores a grant lost to a crash here (idempotent).
    shown = await state.ledger.grant_badge(caller.user, priced.item)
    return JSONResponse(
        {
            "id": client_id,
            "event": result.event,
            "balance": result.balance,
            "badge": priced.item,
            "coins": priced.coins,
            "shown": shown or None,
        },
        headers={"Idempotent-Replayed": "true" if result.replayed else "false"},
    )


async def kept_result(state: AppState, order: SpendOrder) -> SpendResult | None:
    """The original result PostgreSQL keeps for the order's id, or ``None`` (unknown there).

    Raises ``conflict`` for the id reused with another payload. Without a pool,
    or when the lookup fails, ``None``: Redis alone answers (logged).
    """
    if state.pg_pool is None:
        return None
    spend_id = (order.sender, order.client_id)
    try:
        async with asyncio.timeout(KEPT_LOOKUP_TIMEOUT_S):
            kept = (await kept_spends(state.pg_pool, [spend_id])).get(spend_id)
    except Exception as exc:
        log.warning("PostgreSQL's spend ids unavailable (%s: %s)", type(exc).__name__, exc)
        return None
    if kept is None:
        return None
    outcome = kept_outcome(order, kept)
    if isinstance(outcome, GiftingError):
        raise outcome
    return outcome


def _cashout_body(cashout: Cashout, request_id: str | None = None) -> dict[str, Any]:
    body = cashout.to_public()
    if request_id is not None:
        body["id"] = request_id
    return body


def _request_id(request: Request, body: CashoutBody) -> str:
    """The cash-out's idempotency id: body ``id``, else the header, else a fresh one."""
    from_body = body.id
    header = request.headers.get(IDEMPOTENCY_HEADER)
    from_header = None if header is None else check_id(header, IDEMPOTENCY_HEADER)
    if from_body is not None and from_header is not None and from_body != from_header:
        raise BadRequest(f"field 'id' and the {IDEMPOTENCY_HEADER} header differ")
    return from_body or from_header or new_id("r", now_ms())


async def request_cashout(request: Request) -> JSONResponse:
    """Hold diamonds for a cash-out: ``{"diamonds", "id"?}`` → 201 with the cash-out."""
    caller = principal(request)
    body = await read_body_as(request, CashoutBody)
    request_id = _request_id(request, body)
    ledger = app_state(request).ledger
    cashout = await ledger.request_cashout(caller.user, body.diamonds, request_id)
    return JSONResponse(_cashout_body(cashout, request_id), status_code=201)


async def list_cashouts(request: Request) -> JSONResponse:
    """The caller's cash-outs, newest first (``?limit=``, 1..100, default 50)."""
    caller = principal(request)
    limit = CASHOUTS_LIMIT.read(request)
    cashouts = await app_state(request).ledger.cashouts(caller.user, limit)
    return JSONResponse({"cashouts": [_cashout_body(c) for c in cashouts]})


async def get_cashout(request: Request) -> JSONResponse:
    """One of the caller's cash-outs (someone else's is 404, not 403: ids do not leak)."""
    caller = principal(request)
    cashout_id = check_id(request.path_params["cashout"], "cashout")
    cashout = await app_state(request).ledger.cashout(cashout_id)
    if cashout is None or cashout.user != caller.user:
        raise NotFound("no such cash-out")
    return JSONResponse(_cashout_body(cashout))


_REPLAYED = {"Idempotent-Replayed": "true when this answers a retry of an earlier call"}
_IDEMPOTENCY = {IDEMPOTENCY_HEADER: "the cash-out's id (or the body's id): a retry is idempotent"}

routes: list[BaseRoute] = [
    ApiRoute("/v1/wallet", get_wallet, "GET", answer=Wallet, auth="bearer"),
    ApiRoute("/v1/wallet/budget", put_budget, "PUT", body=BudgetBody, answer=Wallet,
             auth="bearer"),
    ApiRoute("/v1/badges", buy_badge, "POST", body=BadgeBody, answer=BadgeBought,
             auth="bearer", errors=[UnknownItem, InsufficientFunds, BudgetExceeded, Conflict],
             answer_headers=_REPLAYED),
    ApiRoute("/v1/cashouts", request_cashout, "POST", body=CashoutBody, answer=CashoutAnswer,
             status=201, auth="bearer", errors=[InsufficientFunds, BudgetExceeded, Conflict],
             request_headers=_IDEMPOTENCY),
    ApiRoute("/v1/cashouts", list_cashouts, "GET", answer=Cashouts, auth="bearer",
             query=[CASHOUTS_LIMIT]),
    ApiRoute("/v1/cashouts/{cashout}", get_cashout, "GET", answer=CashoutAnswer,
             auth="bearer", errors=[BadRequest, NotFound]),
]  # fmt: skip
