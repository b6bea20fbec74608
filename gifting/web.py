"""The pages people open: the broadcaster overlay, the demo page, and their assets.

* ``/overlay/{stream}?key=KEY[&widgets=..&min_coins=..&sound=1]`` — the overlay,
  made to be an OBS browser source (options: docs/overlay.md).
* ``/`` — the demo page in development mode (``GIFTING_DEV=1``), otherwise a
  short notice: the demo needs the dev-only token and purchase routes.
* ``/static/...`` — the pages' HTML, JS, CSS and icon, shipped in the package
  (``gifting/static/``). Nothing is loaded from anywhere else.

The pages are static: everything live comes over the overlay WebSocket and
the HTTP API, so this module needs nothing from the lifespan. Every page is
sent with a Content-Security-Policy that allows only this origin (and no
inline script, so text from users can never run) and ``Referrer-Policy:
no-referrer`` (the overlay key is in the URL and must not leak).
"""

from __future__ import annotations

import os
from importlib import resources
from os import PathLike
from typing import TYPE_CHECKING, Final

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from gifting.config import Settings
from gifting.core.errors import BadRequest
from gifting.core.ids import check_id

if TYPE_CHECKING:
    from gifting.state import Extension

__all__ = ["page_headers", "web_extension", "web_routes"]

_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; media-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'self'"
)
#: The demo page embeds the overlay in an iframe.
_DEMO_CSP: Final = _CSP + "; frame-src 'self'"


def page_headers(csp: str = _CSP) -> dict[str, str]:
    """Headers of every page: same-origin only, no referrer, always revalidated."""
    return {
        "Content-Security-Policy": csp,
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-cache",
    }


def _read_page(name: str) -> str:
    return resources.files("gifting").joinpath("static", name).read_text(encoding="utf-8")


class _Assets(StaticFiles):
    """The package's static files, revalidated on every load (a deploy never serves stale JS)."""

    def file_response(
        self,
        full_path: PathLike[str] | str,
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        """The file (or a 304), with headers that make browsers revalidate it."""
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


class _Pages:
    """The HTML pages, read from the package once."""

    def __init__(self, dev: bool) -> None:
        self.dev = dev
        self.overlay_html = _read_page("overlay.html")
        self.index_html = _read_page("demo.html" if dev else "index.html")

    async def index(self, request: Request) -> Response:
        """``/``: the demo page in dev mode, a short notice in production."""
        csp = _DEMO_CSP if self.dev else _CSP
        return HTMLResponse(self.index_html, headers=page_headers(csp))

    async def overlay(self, request: Request) -> Response:
        """``/overlay/{stream}?key=...``: the overlay page (the key is checked by the WebSocket)."""
        try:
            check_id(request.path_params["stream"], "stream")
        except BadRequest:
            return HTMLResponse("<h1>Not found</h1>", status_code=404, headers=page_headers())
        return HTMLResponse(self.overlay_html, headers=page_headers())


def web_routes(settings: Settings) -> list[BaseRoute]:
    """``/``, ``/overlay/{stream}`` and the ``/static`` mount."""
    pages = _Pages(settings.dev)
    return [
        Route("/", pages.index, methods=["GET", "HEAD"]),
        Route("/overlay/{stream}", pages.overlay, methods=["GET", "HEAD"]),
        Mount("/static", app=_Assets(packages=[("gifting", "static")]), name="static"),
    ]


def web_extension(settings: Settings) -> Extension:
    """The pages as an app extension (routes only: nothing to start or stop)."""
    from gifting.state import Extension

    return Extension(name="web", routes=web_routes(settings))
