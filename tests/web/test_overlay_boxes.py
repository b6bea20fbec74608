"""Treasure boxes on the overlay, in a real Chromium: the card's countdown, claims and summary.

The box is opened by its deadline handler right away (its ``opens_at`` moved
in Redis first: waiting the minimum 10 s is not this test's point), and
closed by the close handler once its window is moved to the past.
"""

from __future__ import annotations

import time
from typing import Any

from playwright.async_api import expect

from tests.hub.conftest import HubServer
from tests.web.conftest import screenshot
from tests.web.test_overlay import open_overlay, viewer


async def test_a_box_card_counts_down_shows_claims_and_closes(page: Any, site: HubServer) -> None:
    stream, key = await site.stream()
    await site.fund("mia")
    await open_overlay(page, site, stream, key)
    hub = site.state.hub
    assert hub is not None
    k, redis = site.state.keys, site.state.redis
    async with (
        viewer(site, stream, "mia", "Mia") as mia,
        viewer(site, stream, "noa", "Noa") as noa,
        viewer(site, stream, "eli", "Eli") as eli,
    ):
        ack = await mia.drop_box(250, 4, 30)
        assert ack.box is not None
        card = page.locator(f'.boxcard[data-box="{ack.box}"]')
        await expect(card).to_have_attribute("data-state", "waiting")
        await expect(card.locator(".who b")).to_have_text("Mia")
        await expect(card.locator(".who")).to_contain_text("dropped a treasure box")
        await expect(card.locator(".coins")).to_have_text("250")
        await expect(card.locator(".boxstate")).to_contain_text("Opens in")
        count = int((await card.locator(".boxcount").inner_text()).rstrip("s"))
        assert 25 <= count <= 30

        await redis.hset(k.box(stream, ack.box), "opens_at", int(time.time() * 1000))
        await hub.boxes.open(f"{stream}|{ack.box}")
        await expect(card).to_have_attribute("data-state", "open")
        assert (await noa.claim(ack.box)).share == 63
        assert (await eli.claim(ack.box)).share == 63
        await expect(card).to_have_attribute("data-claims", "2")
        await expect(card.locator(".boxstate")).to_contain_text("2/4 claimed")
        await expect(card.locator('.claim[data-user="noa"] .share')).to_have_text("+63")
        await screenshot(page, "overlay-box", backdrop=True)

        await redis.hset(k.box(stream, ack.box), "closes_at", int(time.time() * 1000) - 1)
        await hub.boxes.close(f"{stream}|{ack.box}")
        await expect(card).to_have_attribute("data-state", "closed")
        await expect(card.locator(".boxstate")).to_have_text("126 claimed by 2 · 124 back to Mia")
    await screenshot(page, "overlay-box-closed", backdrop=True)


async def test_a_box_card_survives_a_reload(page: Any, site: HubServer) -> None:
    stream, key = await site.stream()
    await site.fund("ola")
    await open_overlay(page, site, stream, key)
    hub = site.state.hub
    assert hub is not None
    async with viewer(site, stream, "ola", "Ola") as ola:
        ack = await ola.drop_box(100, 2, 20)
        card = page.locator(f'.boxcard[data-box="{ack.box}"]')
        await expect(card).to_have_attribute("data-state", "waiting")
        await page.wait_for_timeout(400)  # the page saves its state within 250 ms
        await page.reload()
        await page.wait_for_function("() => window.__overlay && window.__overlay.connected")
        await expect(card).to_have_attribute("data-state", "waiting")
        k, redis = site.state.keys, site.state.redis
        now = int(time.time() * 1000)
        await redis.hset(k.box(stream, ack.box), mapping={"opens_at": now, "closes_at": now})
        await hub.boxes.close(f"{stream}|{ack.box}")  # nobody claimed: all back
        await expect(card).to_have_attribute("data-state", "closed")
        await expect(card.locator(".boxstate")).to_have_text("0 claimed by 0 · 100 back to Ola")
