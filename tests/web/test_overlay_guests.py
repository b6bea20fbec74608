"""Gifts to guests on the overlay, in a real Chromium: "Alice → Bobby · Rose x3".

The viewer is the Python client (``send_gift(..., to=...)``); the guest list is set over
HTTP by the stream's creator, as a broadcaster's tool would.
"""

from __future__ import annotations

from typing import Any

import httpx
from gifting_client.errors import UnknownReceiver
from playwright.async_api import expect

from tests.hub.conftest import HubServer
from tests.web.conftest import screenshot
from tests.web.test_overlay import open_overlay, viewer


async def test_a_gift_to_a_guest_shows_whom_it_was_for(page: Any, site: HubServer) -> None:
    stream, key = await site.stream()  # carol's
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{site.port}") as client:
        r = await client.put(
            f"/v1/streams/{stream}/guests",
            json={"guests": [{"user": "bob", "name": "Bobby"}]},
            headers={"Authorization": f"Bearer {site.token('carol')}"},
        )
        assert r.status_code == 200, r.text
    await site.fund("alice", "coins_1400")
    await open_overlay(page, site, stream, key)
    async with viewer(site, stream, "alice", "Alice") as alice:
        to_bob = await alice.send_gift("rose", count=3, to="bob")
        alert = page.locator(f'.alert[data-event="{to_bob.event}"]')
        await expect(alert.locator(".name")).to_have_text("Alice")
        await expect(alert.locator('.to[data-receiver="bob"]')).to_have_text("→ Bobby")
        await expect(alert.locator(".what")).to_have_text("sent Rose")
        await expect(alert.locator(".combo")).to_have_text("x3")
        await screenshot(page, "overlay-guest-gift", backdrop=True)
        # A gift to the host names nobody else.
        to_host = await alice.send_gift("finger_heart")
        host_alert = page.locator(f'.alert[data-event="{to_host.event}"]')
        await expect(host_alert.locator(".name")).to_have_text("Alice")
        assert await host_alert.locator(".to").count() == 0
        # A big gift to the guest: the show's banner names the guest too.
        big = await alice.send_gift("galaxy", to="bob")
        show = page.locator(f'.show[data-event="{big.event}"]')
        await expect(show.locator(".to")).to_have_text("→ Bobby")
        # Somebody who is not a guest: refused, typed, nothing shown.
        try:
            await alice.send_gift("rose", to="zed")
        except UnknownReceiver:
            pass
        else:
            raise AssertionError("a gift to a non-guest was acked")
    assert await page.locator('.to[data-receiver="zed"]').count() == 0
