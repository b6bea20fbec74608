"""Fixtures of the browser tests: the app with its pages on uvicorn, and Debian's Chromium.

Chromium is driven by Playwright for Python with ``executable_path`` (no
browser download; ``make browser`` installs the Debian package). Tests are
skipped when it is missing. Every page a test opens records any request that
leaves the server (the overlay must load nothing from the internet) and
every uncaught script error; the ``page`` fixture fails the test on either.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from gifting.hub.extension import hub_extension
from gifting.web import web_extension
from tests.hub.conftest import HubServer, serve

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HAVE_CHROMIUM = Path(CHROMIUM).exists()
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@contextlib.asynccontextmanager
async def serve_web(
    redis_url: str, database_url: str, key_prefix: str, *, dev: bool = True, **overrides: Any
) -> AsyncIterator[HubServer]:
    """The hub and the pages (no persister) on a free port."""
    overrides = {"GIFTING_RATE_PER_S": 1000, "GIFTING_RATE_BURST": 2000} | overrides
    async with serve(
        redis_url, database_url, key_prefix, GIFTING_DEV=dev,
        extensions=lambda s: [hub_extension(s), web_extension(s)], **overrides,
    ) as server:  # fmt: skip
        yield server


@pytest_asyncio.fixture(loop_scope="session")
async def site(redis_url: str, database_url: str, key_prefix: str) -> AsyncIterator[HubServer]:
    """The app with the hub and the pages, in development mode."""
    async with serve_web(redis_url, database_url, key_prefix) as s:
        yield s


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Any]:
    """One headless Chromium for the session."""
    if not HAVE_CHROMIUM:
        pytest.skip("chromium is not installed (make browser)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page(browser: Any, site: HubServer, request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """A fresh 1280×720 page (own storage); fails the test on a script error or outside request."""
    context = await browser.new_context(viewport={"width": 1280, "height": 720})
    pg = await context.new_page()
    origin = f"http://127.0.0.1:{site.port}"
    outside: list[str] = []
    errors: list[str] = []
    pg.on(
        "request",
        lambda r: None if r.url.startswith((origin, "ws://127.0.0.1")) else outside.append(r.url),
    )
    pg.on("pageerror", lambda e: errors.append(str(e)))
    try:
        yield pg
    finally:
        await context.close()
    assert not outside, f"requests left the server: {outside}"
    assert not errors, f"script errors: {errors}"


#: A sunset "game scene" behind the (transparent) overlay, for screenshots only.
BACKDROP = (
    "document.documentElement.style.background = "
    "'radial-gradient(circle at 50% 42%, #ffd9a0 0 7%, transparent 24%),"
    " linear-gradient(180deg, #2b1a5a 0%, #6d2c78 45%, #e0805a 76%, #f4c06a 100%)'"
)


async def screenshot(
    page: Any, name: str, *, backdrop: bool = False, full_page: bool = False, settle_ms: int = 500
) -> Path:
    """Save a PNG of the page under test-artifacts/ (after entrance animations settle).

    ``backdrop`` paints a scene behind a transparent overlay, as OBS would.
    """
    if backdrop:
        await page.evaluate(BACKDROP)
    await page.wait_for_timeout(settle_ms)
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=full_page)
    return path
