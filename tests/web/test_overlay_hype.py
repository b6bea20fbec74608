"""The hype widget in a real Chromium: level, progress bar, countdown; the end.

A catalog of its own: 2 gifters and 100 coins within 3 s start a hype; the
levels need 100, 300, 600 coins. Doughnut = 30 coins.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest_asyncio
from playwright.async_api import expect

from tests.hub.conftest import HubServer
from tests.web.conftest import BACKDROP, screenshot, serve_web
from tests.web.test_overlay import DOCS, open_overlay, viewer


@pytest_asyncio.fixture(loop_scope="session")
async def site(
    redis_url: str, database_url: str, key_prefix: str, tmp_path: Path
) -> AsyncIterator[HubServer]:
    """The site with a catalog whose hype starts small and lasts 3 s."""
    data = json.loads(resources.files("gifting").joinpath("catalog.json").read_text())
    data["hype"] = {"gifters": 2, "coins": 100, "window_s": 3, "levels": [100, 300, 600]}
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(data))
    async with serve_web(redis_url, database_url, key_prefix, GIFTING_CATALOG=str(path)) as s:
        yield s


async def test_the_hype_widget_shows_level_progress_and_countdown_then_the_end(
    page: Any, site: HubServer
) -> None:
    stream, key = await site.stream()
    for user in ("ann", "bob"):
        await site.fund(user, "coins_1400")
    await open_overlay(page, site, stream, key, "&widgets=hype,alerts,goal,top")
    await page.evaluate(BACKDROP)
    box = page.locator("#hype")
    await expect(box).to_be_hidden()
    async with viewer(site, stream, "ann", "Ann") as ann, viewer(site, stream, "bob", "Bob") as bob:
        await ann.send_gift("doughnut", count=4)  # 120 coins, one gifter: nothing yet
        await bob.send_gift("doughnut", count=4)  # 240 from two: level 1, then level 2 (140/300)
        await expect(box).to_be_visible()
        await expect(box).to_have_attribute("data-level", "2")
        await expect(box.locator(".lvl")).to_have_text("Lv 2")
        await expect(box.locator(".nums")).to_have_text("140 / 300")
        left = int(await box.get_attribute("data-left") or "-1")
        assert 1 <= left <= 3
        await ann.send_gift("doughnut", count=1)  # 170: the ticker's hype_progress follows
        await expect(box).to_have_attribute("data-progress", "170")
        path = await screenshot(page, "overlay-hype", settle_ms=300)
        if os.environ.get("GIFTING_UPDATE_DOCS") == "1":
            (DOCS / "img").mkdir(exist_ok=True)
            shutil.copy(path, DOCS / "img" / "overlay-hype.png")
    # 3 s after the last spend the deadline runner ends it: shown once, then hidden.
    await expect(box).to_have_class(re.compile(r"\bended\b"), timeout=10_000)
    await expect(box).to_contain_text("Hype ended at Lv 2")
    await expect(box).to_be_hidden(timeout=8_000)
