"""The demo page's treasure box, in Chromium: drop one, see it in the feed and on the overlay.

The viewer claims from the feed line's button once the box is opened (by its
handler, its ``opens_at`` moved in Redis: waiting 10 s is not this test's point).
"""

from __future__ import annotations

import time
from typing import Any

from playwright.async_api import expect

from tests.hub.conftest import HubServer
from tests.web.test_demo_tools import _quick_start, site

__all__ = ["site"]


async def test_drop_a_box_and_claim_it_from_the_feed(page: Any, site: HubServer) -> None:
    await _quick_start(page, site)
    await page.locator("#drop-box").click()
    await expect(page.locator("#balance")).to_have_text("6,500")
    line = page.locator("#feed li.kind-box_dropped").first
    await expect(line).to_contain_text("dropped a treasure box: 🪙 500 for 5")
    box = await line.locator("button.claim").get_attribute("data-box")
    assert box
    frame = page.frame_locator("#overlay-frame")
    await expect(frame.locator(f'.boxcard[data-box="{box}"]')).to_have_attribute(
        "data-state", "waiting"
    )
    hub = site.state.hub
    assert hub is not None
    stream = (await page.locator("#stream-id").inner_text()).strip()
    now = int(time.time() * 1000)
    await site.state.redis.hset(site.state.keys.box(stream, box), "opens_at", now)
    await hub.boxes.open(f"{stream}|{box}")
    await line.locator("button.claim").click()
    await expect(page.locator("#feed li.kind-box_claimed").first).to_contain_text("won 100")
    await expect(page.locator("#balance")).to_have_text("6,600")
