"""Stream goals on the overlay, in a real Chromium: up to three bars, step marks, a celebration.

The default catalog: rose 1 coin, doughnut 30 coins.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

from playwright.async_api import expect

from gifting.core.goals import goal_reached_event_id
from tests.hub.conftest import HubServer
from tests.web.conftest import BACKDROP, screenshot
from tests.web.test_overlay import DOCS, open_overlay, viewer

GOALS = [
    {"id": "coins", "title": "New camera", "target": 1000, "gift": None, "steps": [100, 500]},
    {"id": "roses", "title": "Rose garden", "target": 50, "gift": "rose", "steps": [10, 25]},
    {"id": "dough", "title": "Doughnut party", "target": 10, "gift": "doughnut", "steps": []},
]


async def test_three_goal_bars_with_step_marks_and_a_celebration(
    page: Any, site: HubServer
) -> None:
    stream, key = await site.stream()
    await site.fund("ivy", "coins_1400")
    await site.state.streams.set_goals(stream, "carol", GOALS)
    await page.set_viewport_size({"width": 1280, "height": 720})
    await open_overlay(page, site, stream, key, "&widgets=goal,alerts")
    await page.evaluate(BACKDROP)
    items = page.locator("#goal .item")
    await expect(items).to_have_count(3)
    await expect(items.nth(0).locator(".title")).to_have_text("New camera")
    await expect(items.nth(0).locator(".mark")).to_have_count(2)
    async with viewer(site, stream, "ivy", "Ivy") as ivy:
        roses = await ivy.send_gift("rose", count=12)  # roses 12 (step 10), coins 12
        cheer = page.locator(
            f'.cheer[data-event="{goal_reached_event_id(roses.event, "roses", 10)}"]'
        )
        await expect(cheer).to_contain_text("Step 10 reached!")
        await expect(items.nth(1).locator('.mark[data-step="10"]')).to_have_class("mark hit")
        await expect(items.nth(1).locator('.mark[data-step="25"]')).to_have_class("mark")
        dough = await ivy.send_gift("doughnut", count=10)  # 300 coins: coins step 100; dough 10
        done = page.locator(
            f'.cheer[data-event="{goal_reached_event_id(dough.event, "dough", None)}"]'
        )
        await expect(done).to_contain_text("Goal reached!")
        await expect(items.nth(2)).to_have_class("item reached celebrate")
    # The ticker's goal event then brings every bar's progress.
    await expect(items.nth(0)).to_have_attribute("data-progress", "312")
    await expect(items.nth(1)).to_have_attribute("data-progress", "12")
    await expect(items.nth(2)).to_have_attribute("data-progress", "10")
    await expect(items.nth(0).locator('.mark[data-step="100"]')).to_have_class("mark hit")
    await expect(items.nth(2).locator(".title")).to_have_text("Goal reached!")
    path = await screenshot(page, "overlay-goals", settle_ms=300)
    if os.environ.get("GIFTING_UPDATE_DOCS") == "1":
        (DOCS / "img").mkdir(exist_ok=True)
        shutil.copy(path, DOCS / "img" / "overlay-goals.png")


async def test_goals_cleared_hide_the_widget(page: Any, site: HubServer) -> None:
    stream, key = await site.stream()
    await site.state.streams.set_goals(stream, "carol", GOALS[:1])
    await open_overlay(page, site, stream, key)
    await expect(page.locator("#goal .item")).to_have_count(1)
    await site.state.streams.set_goals(stream, "carol", [])
    assert site.state.room_events is not None
    await site.state.room_events.goal_changed(await site.state.streams.get(stream))
    await expect(page.locator("#goal")).to_be_hidden()
