"""Signed provider webhooks: purchases, refunds and payouts (docs/contract.md §4).

Each handler reads the raw body (64 KiB at most), checks its
``X-Gifting-Signature`` against exactly those bytes, and only then decodes
it. The ledger makes each call idempotent by the provider's id: a replay
returns the first result (``Idempotent-Replayed: true``), the same id with
another body is 409 ``conflict``, and nothing changes on any error.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from gifting.api.http import MAX_SAFE_INTEGER, JsonObject, decode_json_object, read_body
from gifting.api.signatures import SIGNATURE_HEADER, verify
from gifting.state import app_state
from gifting.store.ledger import PurchaseResult

__all__ = ["payout_webhook", "purchase_webhook", "refund_webhook", "routes"]

log = logging.getLogger("gifting.webhooks")

REPLAYED_HEADER = "Idempotent-Replayed"


async def _signed_body(request: Request) -> dict[str, object]:
    """The decoded body of a webhook whose signature matches its raw bytes."""
    settings = app_state(request).settings
    raw = await read_body(request)
    verify(
        settings.webhook_secret,
        request.headers.get(SIGNATURE_HEADER),
        raw,
        tolerance_s=settings.webhook_tolerance_s,
    )
    return decode_json_object(raw)


def _replayed(flag: bool) -> dict[str, str]:
    return {REPLAYED_HEADER: "true" if flag else "false"}


def _purchase_answer(what: str, result: PurchaseResult, **extra: object) -> JSONResponse:
    """The answer (and log line) of a purchase or a refund; a replay repeats the first."""
    log.info(
        "%s %s: %d coins, %s%s", what, result.purchase_id, result.coins, result.user,
        " (replay)" if result.replayed else "",
    )  # fmt: skip
    body = {
        "purchase_id": result.purchase_id, "user": result.user, "coins": result.coins,
        "balance": result.balance, **extra,
    }  # fmt: skip
    return JSONResponse(body, headers=_replayed(result.replayed))


async def purchase_webhook(request: Request) -> JSONResponse:
    """Credit a completed purchase: ``{"purchase_id","user","package","amount","currency"}``."""
    body = JsonObject(
        await _signed_body(request),
        required=("purchase_id", "user", "package", "amount", "currency"),
    )
    purchase_id = body.ident("purchase_id")
    user = body.ident("user")
    package = body.string("package", max_length=64, min_length=1)
    amount = body.integer("amount", minimum=1, maximum=MAX_SAFE_INTEGER)
    currency = body.string("currency", max_length=8, min_length=1)
    result = await app_state(request).ledger.purchase(purchase_id, user, package, amount, currency)
    return _purchase_answer("purchase", result)


async def refund_webhook(request: Request) -> JSONResponse:
    """Claw back a purchase's coins once: ``{"purchase_id"}`` (the balance may go negative)."""
    body = JsonObject(await _signed_body(request), required=("purchase_id",))
    purchase_id = body.ident("purchase_id")
    result = await app_state(request).ledger.refund(purchase_id)
    return _purchase_answer("refund", result, refunded=True)


async def payout_webhook(request: Request) -> JSONResponse:
    """Settle a cash-out: ``{"cashout","status":"paid"|"failed"}`` (failed returns diamonds)."""
    body = JsonObject(await _signed_body(request), required=("cashout", "status"))
    cashout_id = body.ident("cashout")
    status = body.choice("status", ("paid", "failed"))
    cashout = await app_state(request).ledger.settle_cashout(cashout_id, status)
    log.info("payout %s: %s", cashout_id, cashout.status)
    return JSONResponse({**cashout.to_public(), "user": cashout.user})


routes: list[BaseRoute] = [
    Route("/v1/webhooks/purchases", purchase_webhook, methods=["POST"]),
    Route("/v1/webhooks/refunds", refund_webhook, methods=["POST"]),
    Route("/v1/webhooks/payouts", payout_webhook, methods=["POST"]),
]
