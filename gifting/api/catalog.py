"""``GET /v1/catalog``: what can be bought and sold, at what price (public)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute

from gifting.api.routing import ApiRoute
from gifting.api.schemas import Catalog
from gifting.state import app_state

__all__ = ["get_catalog", "routes"]

#: The catalog changes only on a redeploy; let clients and CDNs keep it a minute.
_CACHE_CONTROL = "public, max-age=60"


async def get_catalog(request: Request) -> JSONResponse:
    """The public catalog (docs/contract.md §4): gifts, packages, effects, highlights, badges."""
    catalog = app_state(request).catalog
    return JSONResponse(catalog.to_public(), headers={"Cache-Control": _CACHE_CONTROL})


routes: list[BaseRoute] = [ApiRoute("/v1/catalog", get_catalog, "GET", answer=Catalog)]
