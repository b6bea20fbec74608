"""Highlighted comments pinned by tier, with a queue, and sender badges, in a real Chromium.

The server runs a catalog whose top highlight tier pins for a few seconds only
(``TIER3_MS``), so a test can watch pins expire and queued ones take their place.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio
from gifting_client import Ack, ViewerClient
from playwright.async_api import expect

from tests.hub.conftest import HubServer
from tests.web.conftest import screenshot, serve_web
from tests.web.test_overlay import open_overlay, viewer
from tests.web.test_overlay_hidden import _hide

TIER3_MS = 5000


@pytest_asyncio.fixture(loop_scope="session")
async def site(
    redis_url: str, database_url: str, key_prefix: str, tmp_path: Path
) -> AsyncIterator[HubServer]:
    """The app with the pages, with short tier-3 pins (overrides the shared ``site``)."""
    catalog = json.loads(resources.files("gifting").joinpath("catalog.json").read_text())
    for tier in catalog["highlights"]:
        tier["pin_ms"] = {"tier1": 120_000, "tier2": 120_000, "tier3": TIER3_MS}[tier["id"]]
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(catalog))
    async with serve_web(redis_url, database_url, key_prefix, GIFTING_CATALOG=str(path)) as s:
        yield s


async def pin_all(client: ViewerClient, tier: str, n: int, label: str) -> list[Ack]:
    return [await client.send_comment(f"{label} {i}", highlight=tier) for i in range(n)]


async def test_a_higher_tier_takes_the_place_of_the_lowest_pin_and_stays_up(
    page: Any, site: HubServer
) -> None:
    stream, key = await site.stream()
    await site.fund("lou", "coins_1400")
    await open_overlay(page, site, stream, key)
    async with viewer(site, stream, "lou", "Lou") as lou:
        low = await pin_all(lou, "tier1", 3, "cheap")
        for ack in low:
            await expect(page.locator(f'.pin[data-event="{ack.event}"]')).to_be_visible()
        top = await lou.send_comment("the paid one", highlight="tier3")
    pin = page.locator(f'.pin[data-event="{top.event}"]')
    await expect(pin).to_be_visible()
    await expect(pin.locator(".text")).to_have_text("the paid one")
    # Three pins at most: the first tier-1 pin (the soonest to expire) waits again.
    await page.wait_for_function("() => window.__overlay.pins.length === 3")
    assert set(await page.evaluate("window.__overlay.pins")) == {
        top.event, low[1].event, low[2].event,
    }  # fmt: skip
    assert await page.evaluate("window.__overlay.pinQueue") == [low[0].event]
    await expect(page.locator(f'.pin[data-event="{low[0].event}"]')).to_have_count(0)
    # More tier-1 comments never take the tier-3 pin down: they queue.
    async with viewer(site, stream, "lou", "Lou") as lou:
        more = await pin_all(lou, "tier1", 2, "later")
    await page.wait_for_function("() => window.__overlay.pinQueue.length === 3")
    await expect(pin).to_be_visible()
    assert top.event in await page.evaluate("window.__overlay.pins")
    queued = await page.evaluate("window.__overlay.pinQueue")
    assert queued == [low[0].event, more[0].event, more[1].event]
    shown = await page.evaluate("window.__overlay.shown")
    assert shown == [a.event for a in low] + [top.event]  # each counted once, queued not yet


async def test_a_lower_tier_waits_under_three_higher_pins_and_shows_when_one_expires(
    page: Any, site: HubServer
) -> None:
    stream, key = await site.stream()
    await site.fund("max", "coins_1400")
    await open_overlay(page, site, stream, key)
    async with viewer(site, stream, "max", "Max") as mx:
        high = await pin_all(mx, "tier3", 3, "big")
        for ack in high:
            await expect(page.locator(f'.pin[data-event="{ack.event}"]')).to_be_visible()
        low = await mx.send_comment("wait for me", highlight="tier1")
    waiting = page.locator(f'.pin[data-event="{low.event}"]')
    await page.wait_for_function(f"() => window.__overlay.pinQueue.includes('{low.event}')")
    await expect(waiting).to_have_count(0)
    for ack in high:
        await expect(page.locator(f'.pin[data-event="{ack.event}"]')).to_be_visible()
    # The tier-3 pins expire after TIER3_MS; the waiting tier-1 comment then shows.
    await expect(waiting).to_be_visible(timeout=TIER3_MS + 10_000)
    await expect(waiting.locator(".text")).to_have_text("wait for me")
    assert await page.evaluate("window.__overlay.pinQueue") == []
    assert (await page.evaluate("window.__overlay.shown"))[-1] == low.event


async def test_the_senders_badge_is_drawn_next_to_their_name(page: Any, site: HubServer) -> None:
    stream, key = await site.stream()
    await site.fund("bo", "coins_3500")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{site.port}") as http:
        for client_id, badge in (("b-1", "vip"), ("b-2", "supporter")):  # the dearer one shows
            r = await http.post(
                "/v1/badges",
                json={"id": client_id, "badge": badge},
                headers={"Authorization": f"Bearer {site.token('bo', 'Bo')}"},
            )
            assert r.status_code == 200, r.text
    await open_overlay(page, site, stream, key, "&widgets=alerts,big,comments,effects,chat")
    async with viewer(site, stream, "bo", "Bo") as bo:
        gift = await bo.send_gift("rose")
        pin = await bo.send_comment("badge me", highlight="tier2")
        await bo.send_comment("free words")
    alert = page.locator(f'.alert[data-event="{gift.event}"]')
    for where in (
        alert,
        page.locator(f'.pin[data-event="{pin.event}"]'),
        page.locator(".chat .line"),
    ):
        badge = where.locator('.badge[data-badge="vip"]')
        await expect(badge).to_have_text("VIP")
        await expect(badge).to_have_class("badge btier-3")
        # next to the name: the name's next sibling
        assert await badge.evaluate("b => b.previousElementSibling.className") == "name"
    await expect(alert.locator(".name")).to_have_text("Bo")
    await screenshot(page, "overlay-badges", backdrop=True)


async def test_a_waiting_highlight_hidden_by_a_moderator_never_shows(
    page: Any, site: HubServer
) -> None:
    stream, key = await site.stream()
    await site.fund("kai", "coins_1400")
    await open_overlay(page, site, stream, key)
    async with viewer(site, stream, "kai", "Kai") as kai:
        high = await pin_all(kai, "tier3", 3, "big")
        rude, fine = await pin_all(kai, "tier1", 2, "small")
    await page.wait_for_function("() => window.__overlay.pinQueue.length === 2")
    await _hide(site, stream, rude.event)
    await page.wait_for_function(f"() => !window.__overlay.pinQueue.includes('{rude.event}')")
    await expect(page.locator(f'.pin[data-event="{fine.event}"]')).to_be_visible(
        timeout=TIER3_MS + 10_000
    )
    await expect(page.locator(f'.pin[data-event="{rude.event}"]')).to_have_count(0)
    assert rude.event not in await page.evaluate("window.__overlay.shown")
    assert high[0].event in await page.evaluate("window.__overlay.shown")
