"""Signed provider webhooks: purchases, refunds and payouts (docs/contract.md §4).

Each handler reads the raw body (64 KiB at most), checks its
``X-Gifting-Signature`` against exactly those bytes, and only then decodes
it. The ledger makes each call idempotent by the provider's id: a replay
returns the first result (``Idempotent-Replayed: true``), the same id with
another body is 409 ``conflict``, and nothing changes on any error.
"""

from __future__ import annotations

import logging
from typing import TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute

from gifting.api.http import decode_body, read_body
from gifting.api.routing import ApiRoute
from gifting.api.schemas import (
    Body,
    Credited,
    PayoutWebhook,
    PurchaseWebhook,
    RefundWebhook,
    Settled,
)
from gifting.api.signatures import SIGNATURE_HEADER, verify
from gifting.core.errors import Conflict, NotFound, UnknownItem, Unprocessable
from gifting.state import app_state
from gifting.store.ledger import PurchaseResult

_B = TypeVar("_B", bound=Body)

__all__ = ["payout_webhook", "purchase_webhook", "refund_webhook", "routes"]

log = logging.getLogger("gifting.webhooks")

REPLAYED_HEADER = "Idempotent-Replayed"


async def _signed_body(request: Request, kind: type[_B]) -> _B:
    """The decoded body of a webhook whose signature matches its raw bytes."""
    settings = app_state(request).settings
    raw = await read_body(request)
    verify(
        settings.webhook_secret,
        request.headers.get(SIGNATURE_HEADER),
        raw,
        tolerance_s=settings.webhook_tolerance_s,
    )
    return decode_body(raw, kind)


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
    body = await _signed_body(request, PurchaseWebhook)
    result = await app_state(request).ledger.purchase(
        body.purchase_id, body.user, body.package, body.amount, body.currency
    )
    return _purchase_answer("purchase", result)


async def refund_webhook(request: Request) -> JSONResponse:
    """Claw back a purchase's coins once: ``{"purchase_id"}`` (the balance may go negative)."""
    body = await _signed_body(request, RefundWebhook)
    result = await app_state(request).ledger.refund(body.purchase_id)
    return _purchase_answer("refund", result, refunded=True)


async def payout_webhook(request: Request) -> JSONResponse:
    """Settle a cash-out: ``{"cashout","status":"paid"|"failed"}`` (failed returns diamonds)."""
    body = await _signed_body(request, PayoutWebhook)
    cashout = await app_state(request).ledger.settle_cashout(body.cashout, body.status)
    log.info("payout %s: %s", body.cashout, cashout.status)
    return JSONResponse({**cashout.to_public(), "user": cashout.user})


_REPLAYED = {REPLAYED_HEADER: "true when this answers a retry of an earlier call"}

routes: list[BaseRoute] = [
    ApiRoute("/v1/webhooks/purchases", purchase_webhook, "POST", body=PurchaseWebhook,
             answer=Credited, auth="signed", errors=[UnknownItem, Unprocessable, Conflict],
             answer_headers=_REPLAYED),
    ApiRoute("/v1/webhooks/refunds", refund_webhook, "POST", body=RefundWebhook,
             answer=Credited, auth="signed", errors=[NotFound], answer_headers=_REPLAYED),
    ApiRoute("/v1/webhooks/payouts", payout_webhook, "POST", body=PayoutWebhook,
             answer=Settled, auth="signed", errors=[NotFound, Conflict]),
]  # fmt: skip
