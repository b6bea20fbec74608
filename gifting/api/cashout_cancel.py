"""``POST /v1/cashouts/{id}/cancel``: a creator takes back a held cash-out.

Allowed while the cash-out is ``held`` (the payout provider has not reported
on it: see :mod:`gifting.store.cashouts` for what "asked" means here); the
diamonds return to the balance and the day's cash-out cap is released, as
for a failed payout. Idempotent: cancelling a cancelled cash-out answers it
again. A paid or failed cash-out is ``409 conflict``; another user's, or an
unknown id, ``404 not_found``; nothing changes then.
"""

from __future__ import annotations

from prometheus_client import Counter
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute

from gifting.api.http import principal, read_body_as
from gifting.api.routing import ApiRoute
from gifting.api.schemas import Cashout, EmptyBody
from gifting.core.errors import Conflict, NotFound
from gifting.core.ids import check_id
from gifting.state import app_state

__all__ = ["cancel_cashout", "routes"]

CANCELS = Counter("gifting_cashout_cancels_total", "Held cash-outs cancelled by their creator")


async def cancel_cashout(request: Request) -> JSONResponse:
    """Cancel one of the caller's held cash-outs → 200 with the cash-out (``cancelled``)."""
    caller = principal(request)
    cashout_id = check_id(request.path_params["cashout"], "cashout")
    await read_body_as(request, EmptyBody, allow_empty=True)
    cashout, cancelled = await app_state(request).ledger.cancel_cashout(caller.user, cashout_id)
    if cancelled:
        CANCELS.inc()
    return JSONResponse(cashout.to_public())


routes: list[BaseRoute] = [
    ApiRoute("/v1/cashouts/{cashout}/cancel", cancel_cashout, "POST", body=EmptyBody,
             body_optional=True, answer=Cashout, auth="bearer", errors=[NotFound, Conflict]),
]  # fmt: skip
