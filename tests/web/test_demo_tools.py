"""The demo page's creator tools, in Chromium: block a gifter, hide a comment, moderators, the feed.

The demo signs in one creator and one viewer in the same page (dev mode), so
the creator's buttons sit on the room feed the viewer's connection shows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from playwright.async_api import expect

from tests.feed.conftest import receiver
from tests.hub.conftest import HubServer, serve
from tests.web.conftest import screenshot


@pytest_asyncio.fixture(loop_scope="session")
async def site(redis_url: str, db_url: str, key_prefix: str) -> AsyncIterator[HubServer]:
    """The whole app in development mode: PostgreSQL for subscriptions and moderation history."""
    async with serve(
        redis_url, db_url, key_prefix, with_persister=True, GIFTING_DEV=True,
        GIFTING_RATE_PER_S=1000, GIFTING_RATE_BURST=2000, GIFTING_WEBHOOK_POLL_MS=50,
    ) as s:  # fmt: skip
        yield s


async def _quick_start(page: Any, site: HubServer) -> None:
    await page.set_viewport_size({"width": 1440, "height": 1000})
    await page.goto(f"http://127.0.0.1:{site.port}/")
    await page.get_by_role("button", name="⚡ Quick start").click()
    await expect(page.locator("#conn")).to_have_text("online", timeout=8000)
    await expect(page.locator("#balance")).to_have_text("7,000")
    await expect(page.locator("#tools-card")).to_be_visible()


async def test_the_creator_hides_a_comment_and_blocks_then_unblocks_a_gifter(
    page: Any, site: HubServer
) -> None:
    await _quick_start(page, site)
    frame = page.frame_locator("#overlay-frame")
    await page.locator("#comment").fill("buy my crypto")
    await page.locator("#highlight").select_option("tier1")
    await page.get_by_role("button", name="Send", exact=True).click()
    line = page.locator("#feed li.kind-highlight").first
    await expect(line).to_contain_text("buy my crypto")
    await expect(frame.locator(".pin .text")).to_have_text("buy my crypto")

    await line.get_by_role("button", name="hide").click()
    await expect(page.locator("#feed li.hidden-line")).to_have_count(1)
    await expect(page.locator("#feed")).not_to_contain_text("buy my crypto")
    await expect(frame.locator(".pin")).to_have_count(0)  # taken down on the overlay too

    await page.locator('.gift[data-gift="rose"]').click()
    await expect(page.locator("#balance")).to_have_text("6,989")
    gift = page.locator("#feed li.kind-gift").first
    await gift.get_by_role("button", name="block").click()
    await expect(page.locator('#blocks li[data-user="alice"]')).to_contain_text("this stream")
    await page.locator('.gift[data-gift="rose"]').click()
    await expect(page.locator(".toast.error")).to_contain_text("blocked")
    await expect(page.locator("#balance")).to_have_text("6,989")  # nothing debited
    await screenshot(page, "demo-creator-tools", full_page=True)

    blocked = page.locator('#blocks li[data-user="alice"]')
    await blocked.get_by_role("button", name="unblock").click()
    await expect(page.locator("#blocks")).to_contain_text("nobody")
    await page.locator('.gift[data-gift="rose"]').click()
    await expect(page.locator("#balance")).to_have_text("6,988")


async def test_the_creator_names_a_moderator_and_watches_the_feed(
    page: Any, site: HubServer
) -> None:
    await _quick_start(page, site)
    await page.locator("#mod-user").fill("bob")
    await page.get_by_role("button", name="Add moderator").click()
    await expect(page.locator('#mods li[data-user="bob"]')).to_be_visible()
    await page.get_by_role("button", name="Watch the feed").click()
    await page.locator('.gift[data-gift="rose"]').click()
    await expect(page.locator('#sse li[data-kind="gift"]').first).to_contain_text("Alice")
    await page.locator('#mods li[data-user="bob"]').get_by_role("button", name="remove").click()
    await expect(page.locator('#mods li[data-user="bob"]')).to_have_count(0)


async def test_the_creator_subscribes_a_webhook_and_sees_its_deliveries(
    page: Any, site: HubServer
) -> None:
    async with receiver() as hook:
        await _quick_start(page, site)
        await page.locator("#hook-url").fill(hook.url)
        await page.get_by_role("button", name="Subscribe").click()
        await expect(page.locator("#hook code").first).to_be_visible()
        await page.locator('.gift[data-gift="rose"]').click()
        await expect(page.locator("#balance")).to_have_text("6,999")
        for _ in range(100):
            if hook.received:
                break
            await page.wait_for_timeout(100)
        assert [e["kind"] for e in hook.events().values()] == ["gift"]
        await page.locator("#hook").get_by_role("button", name="deliveries").click()
        delivered = page.locator('#deliveries li[data-kind="gift"]')
        await expect(delivered).to_have_attribute("data-status", "200")
