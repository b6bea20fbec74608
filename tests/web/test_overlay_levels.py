"""Gifter levels on the overlay, in a real Chromium: the level pill and the ``level_up`` alert.

The default catalog's ladder: 1 coin -> level 1, 100 -> level 2.
"""

from __future__ import annotations

from typing import Any

from playwright.async_api import expect

from gifting.core.levels import level_up_event_id
from tests.hub.conftest import HubServer
from tests.web.conftest import screenshot
from tests.web.test_overlay import open_overlay, viewer


async def test_the_level_pill_and_the_level_up_alert_show(page: Any, site: HubServer) -> None:
    stream, key = await site.stream()
    await site.fund("lia")
    await open_overlay(page, site, stream, key, "&widgets=alerts,big,comments,effects,chat")
    async with viewer(site, stream, "lia", "Lia") as lia:
        first = await lia.send_gift("rose")  # 1 coin: level 1
        up = page.locator(f'.levelup[data-event="{level_up_event_id(first.event)}"]')
        await expect(up).to_be_visible()
        await expect(up).to_have_attribute("data-level", "1")
        await expect(up).to_contain_text("Lia reached Lv 1")
        alert = page.locator('.alert[data-sender="lia"]')
        await expect(alert).to_have_attribute("data-event", first.event)
        pill = alert.locator('.lvl[data-level="1"]')
        await expect(pill).to_have_text("Lv 1")
        # After the name (no badge here).
        assert await pill.evaluate("p => p.previousElementSibling.className") == "name"
        second = await lia.send_gift("rose", count=99)  # 100 in all: level 2
        await expect(
            page.locator(f'.levelup[data-event="{level_up_event_id(second.event)}"]')
        ).to_contain_text("Lia reached Lv 2")
        # The streak's alert now shows the new level.
        await expect(alert.locator(".lvl")).to_have_text("Lv 2")
        await lia.send_comment("hello")
    await expect(page.locator(".chat .line .lvl")).to_have_text("Lv 2")
    await screenshot(page, "overlay-levels", backdrop=True)
    # Each level_up shows once, then goes (a short alert).
    await expect(page.locator(".levelup")).to_have_count(0, timeout=10_000)
