"""A moderator hides a comment: the overlay in Chromium takes its pin or chat line down."""

from __future__ import annotations

from typing import Any

import httpx
from gifting_client import ViewerClient
from playwright.async_api import expect

from tests.hub.conftest import HubServer
from tests.web.test_overlay import open_overlay


async def _hide(site: HubServer, stream: str, event: str) -> None:
    auth = {"Authorization": f"Bearer {site.token('carol', creator=True)}"}
    url = f"http://127.0.0.1:{site.port}/v1/streams/{stream}/events/{event}/hide"
    async with httpx.AsyncClient() as client:
        r = await client.post(url, headers=auth)
    assert r.status_code == 200, r.text


async def test_hidden_takes_down_the_pin_and_the_chat_line(page: Any, site: HubServer) -> None:
    stream, key = await site.stream("carol")
    await site.fund("mallory")
    await open_overlay(page, site, stream, key, "&widgets=comments,chat")
    async with ViewerClient(site.ws, stream, site.token("mallory", "Mallory")) as mallory:
        pinned = await mallory.send_comment("buy my stuff", highlight="tier2")
        rude = await mallory.send_comment("rude words")
        kept = await mallory.send_comment("nice stream")
    pin = page.locator(f'.pin[data-event="{pinned.event}"]')
    line = page.locator(f'#chat .line[data-event="{rude.event}"]')
    other = page.locator(f'#chat .line[data-event="{kept.event}"]')
    await expect(pin).to_have_count(1)
    await expect(line).to_have_count(1)
    await expect(other).to_have_count(1)
    await _hide(site, stream, pinned.event)
    await _hide(site, stream, rude.event)
    await expect(pin).to_have_count(0)
    await expect(line).to_have_count(0)
    await expect(other).to_have_count(1)  # only what was hidden goes
    # A reload resumes from the saved cursor: nothing hidden comes back.
    await page.reload()
    await page.wait_for_function("() => window.__overlay && window.__overlay.connected")
    await expect(page.locator(f'[data-event="{pinned.event}"]')).to_have_count(0)
    await expect(page.locator(f'[data-event="{rude.event}"]')).to_have_count(0)
