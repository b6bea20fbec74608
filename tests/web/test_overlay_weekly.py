"""The weekly supporters widget in a real Chromium: read over HTTP on load, then live.

The widget (``widgets=...,weekly``) shows the creator's top supporters of the
ISO week in progress: the board credit.lua keeps, first from
``GET /v1/creators/{creator}/leaderboard``, then from the hub's
``weekly_board`` events. With GIFTING_UPDATE_DOCS=1 this also refreshes
docs/img/overlay-weekly.png.
"""

from __future__ import annotations

import os
from typing import Any

from playwright.async_api import expect

from tests.hub.conftest import HubServer
from tests.web.conftest import BACKDROP, screenshot
from tests.web.test_overlay import DOCS, open_overlay, viewer


async def rows(page: Any) -> list[tuple[str, str, str]]:
    """The widget's rows: (rank, user, name)."""
    got: list[tuple[str, str, str]] = await page.eval_on_selector_all(
        "#weekly .row",
        "rs => rs.map(r => [r.dataset.rank, r.dataset.user, r.querySelector('.name').textContent])",
    )
    return [tuple(r) for r in got]  # type: ignore[misc]


async def test_the_weekly_widget_ranks_the_supporters_and_follows_new_gifts(
    page: Any, site: HubServer
) -> None:
    stream, key = await site.stream("carol")
    people = [("ana", "Ana"), ("bo", "Bo ⭐"), ("cy", "Cy"), ("dee", "Dee")]
    for user, _ in people:
        await site.fund(user)
    clients = {u: viewer(site, stream, u, n) for u, n in people}
    for c in clients.values():
        await c.connect()
    # Before the overlay loads: ana 30, bo 50, cy 30 (a tie: ana first, by id).
    await clients["ana"].send_gift("rose", count=30)
    await clients["bo"].send_gift("rose", count=50)
    await clients["cy"].send_gift("rose", count=30)
    await page.set_viewport_size({"width": 1600, "height": 900})
    await open_overlay(page, site, stream, key, "&widgets=top,weekly")
    weekly = page.locator("#weekly")
    await expect(weekly.locator(".row")).to_have_count(3)
    assert await rows(page) == [("1", "bo", "Bo ⭐"), ("2", "ana", "Ana"), ("3", "cy", "Cy")]
    await expect(weekly.locator(".title")).to_have_text("Top supporters this week")
    await expect(weekly.locator('.row[data-user="bo"] .coins')).to_have_text("50")
    # Live: a new gift moves dee to the top (a weekly_board event, within the hub's tick).
    await clients["dee"].send_gift("rose", count=99)
    await expect(weekly.locator(".row").first).to_have_attribute("data-user", "dee", timeout=15_000)
    assert [r[1] for r in await rows(page)] == ["dee", "bo", "ana", "cy"]
    await page.evaluate(BACKDROP)
    await screenshot(page, "overlay-weekly")
    if os.environ.get("GIFTING_UPDATE_DOCS") == "1":
        (DOCS / "img").mkdir(exist_ok=True)
        await page.screenshot(path=str(DOCS / "img" / "overlay-weekly.png"))
    for c in clients.values():
        await c.close()


async def test_the_weekly_widget_is_off_unless_asked(page: Any, site: HubServer) -> None:
    stream, key = await site.stream("carol")
    await site.fund("ana")
    async with viewer(site, stream, "ana", "Ana") as ana:
        await ana.send_gift("rose", count=3)
    await open_overlay(page, site, stream, key)
    await expect(page.locator(".top .row")).to_have_count(1)
    assert await page.locator("#weekly").is_hidden()
