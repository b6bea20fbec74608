"""The broadcaster overlay in a real Chromium, fed by the Python client through a real server."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from gifting_client import Ack, ViewerClient
from playwright.async_api import expect

from tests.hub.conftest import HubServer
from tests.web.conftest import BACKDROP, screenshot

DOCS = Path(__file__).resolve().parents[2] / "docs"


async def open_overlay(page: Any, site: HubServer, stream: str, key: str, query: str = "") -> None:
    """Load the overlay and wait until it is connected."""
    await page.goto(f"http://127.0.0.1:{site.port}/overlay/{stream}?key={key}{query}")
    await page.wait_for_function("() => window.__overlay && window.__overlay.connected")


def viewer(site: HubServer, stream: str, user: str, name: str) -> ViewerClient:
    """A viewer client of ``user`` shown as ``name``."""
    return ViewerClient(site.ws, stream, site.token(user, name))


async def test_a_gift_shows_its_sender_gift_and_growing_combo(page: Any, site: HubServer) -> None:
    stream, key = await site.stream()
    await site.fund("alice")
    await open_overlay(page, site, stream, key)
    async with viewer(site, stream, "alice", "Alice") as alice:
        acks = [await alice.send_gift("rose") for _ in range(3)]
        alert = page.locator('.alert[data-sender="alice"][data-gift="rose"]')
        await expect(alert).to_have_attribute("data-combo", "3")
        acks += [await alice.send_gift("rose", count=9)]
        await expect(alert).to_have_attribute("data-combo", "12")
    assert acks[-1].combo == 12
    await expect(alert).to_have_attribute("data-event", acks[-1].event)
    await expect(alert.locator(".name")).to_have_text("Alice")
    await expect(alert.locator(".what")).to_have_text("sent Rose")
    await expect(alert.locator(".combo")).to_have_text("x12")
    assert await page.locator(".alert").count() == 1  # the same alert grew
    await screenshot(page, "overlay-combo", backdrop=True)
    shown = await page.evaluate("window.__overlay.shown")
    assert shown == [a.event for a in acks]


async def test_big_gifts_play_one_at_a_time_from_a_queue(page: Any, site: HubServer) -> None:
    stream, key = await site.stream()
    await site.fund("bob", "coins_1400", n=2)
    await open_overlay(page, site, stream, key, "&big_ms=1200")
    async with viewer(site, stream, "bob", "Bob") as bob:
        first = await bob.send_gift("galaxy")
        second = await bob.send_gift("fireworks")
    await page.wait_for_function(
        "() => window.__overlay.big.length === 1 && window.__overlay.queue === 1"
    )
    assert await page.locator(".show").count() == 1  # the second waits its turn
    await expect(page.locator(f'.show[data-event="{first.event}"] .banner')).to_contain_text("Bob")
    await screenshot(page, "overlay-big-gift", backdrop=True)
    await page.wait_for_function(
        "() => window.__overlay.big.length === 2 && window.__overlay.big[1].end !== null",
        timeout=8000,
    )
    timeline = await page.evaluate("window.__overlay.big")
    assert [t["event"] for t in timeline] == [first.event, second.event]
    assert timeline[1]["start"] >= timeline[0]["end"]  # never overlapping
    assert timeline[0]["end"] - timeline[0]["start"] >= 1150


async def test_a_reload_in_a_storm_shows_every_gift_once(page: Any, site: HubServer) -> None:
    stream, key = await site.stream()
    # Each shown gift is appended to sessionStorage in the page's own task, so
    # the record survives the reload exactly (a call out of the page might not).
    await page.add_init_script(
        "window.addEventListener('gifting:shown', (e) => {"
        " const a = JSON.parse(sessionStorage.getItem('test.shown') || '[]');"
        " a.push(e.detail.event); sessionStorage.setItem('test.shown', JSON.stringify(a)); })"
    )
    senders = [("ann", "Ann"), ("ben", "Ben"), ("cat", "Cat"), ("dev", "Dev")]
    for user, _ in senders:
        await site.fund(user)
    await open_overlay(page, site, stream, key)
    acked: list[Ack] = []
    a_third_acked = asyncio.Event()
    gifts = ["rose", "finger_heart", "rose", "perfume", "hand_hearts", "rose"]

    async def storm(user: str, name: str) -> None:
        async with viewer(site, stream, user, name) as client:
            for i in range(25):
                acked.append(await client.send_gift(gifts[i % len(gifts)]))
                if len(acked) >= 30:
                    a_third_acked.set()
                await asyncio.sleep(0.01)

    senders_done = asyncio.gather(*(storm(u, n) for u, n in senders))
    await a_third_acked.wait()
    await page.reload()  # mid-storm: the page resumes with its stored cursor
    await senders_done
    await page.wait_for_function("() => window.__overlay && window.__overlay.connected")
    shown: list[str] = []
    async with asyncio.timeout(15):
        while len(shown) < len(acked):
            await asyncio.sleep(0.05)
            shown = await page.evaluate("JSON.parse(sessionStorage.getItem('test.shown') || '[]')")
    await asyncio.sleep(0.3)  # anything late would be a duplicate
    shown = await page.evaluate("JSON.parse(sessionStorage.getItem('test.shown') || '[]')")
    await screenshot(page, "overlay-after-reload", backdrop=True)
    assert len(shown) == len(set(shown)), "a gift was shown twice"
    assert set(shown) == {a.event for a in acked}
    after_reload = await page.evaluate("window.__overlay.shown")
    assert 0 < len(after_reload) < len(acked)  # the reload really was in the middle


async def test_a_highlighted_comment_is_pinned_as_text_and_never_runs(
    page: Any, site: HubServer
) -> None:
    stream, key = await site.stream()
    await site.fund("mallory")
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    await open_overlay(page, site, stream, key)
    text = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2"> hi & bye'
    name = "<b>Mallory</b>"
    async with ViewerClient(site.ws, stream, site.token("mallory", name)) as mallory:
        ack = await mallory.send_comment(text, highlight="tier2")
    pin = page.locator(f'.pin[data-event="{ack.event}"]')
    await expect(pin.locator(".text")).to_have_text(text)
    await expect(pin.locator(".name")).to_have_text(name)
    assert await page.locator("#pins script, #pins img, #pins b").count() == 0
    assert await page.evaluate("window.__pwned") is None
    assert await page.evaluate("window.__overlay.shown") == [ack.event]
    assert not [u for u in requests if u.endswith("/x")]
    await screenshot(page, "overlay-highlight-escaped", backdrop=True)


async def test_the_demo_page_runs_a_stream_end_to_end(page: Any, site: HubServer) -> None:
    await page.set_viewport_size({"width": 1440, "height": 900})
    await page.goto(f"http://127.0.0.1:{site.port}/")
    await page.get_by_role("button", name="⚡ Quick start").click()
    await expect(page.locator("#conn")).to_have_text("online", timeout=8000)
    await expect(page.locator("#balance")).to_have_text("7,000")
    frame = page.frame_locator("#overlay-frame")
    for _ in range(3):
        await page.locator('.gift[data-gift="rose"]').click()
    await expect(page.locator("#balance")).to_have_text("6,997")
    await expect(frame.locator('.alert[data-gift="rose"]')).to_have_attribute("data-combo", "3")
    await page.locator("#comment").fill("What a stream!")
    await page.locator("#highlight").select_option("tier1")
    await page.get_by_role("button", name="Send", exact=True).click()
    await expect(frame.locator(".pin .text")).to_have_text("What a stream!")
    await expect(page.locator("#feed li").first).to_contain_text("What a stream!")
    await page.locator('.gift[data-gift="galaxy"]').click()
    await expect(frame.locator(".show")).to_have_count(1)
    await page.evaluate("window.scrollTo(0, 0)")
    await screenshot(page, "demo-page", full_page=True)


async def test_overlay_showcase(page: Any, site: HubServer) -> None:
    """Several widgets at once; with GIFTING_UPDATE_DOCS=1 this also refreshes docs/overlay.png."""
    stream, key = await site.stream()
    people = [("luna", "Luna"), ("kai", "Kai"), ("maya", "Maya ✨"), ("theo", "Theo")]
    for user, _ in people:
        await site.fund(user, "coins_17500")
    await site.state.streams.set_goal(stream, "carol", 30_000, None)
    await page.set_viewport_size({"width": 1600, "height": 900})
    await open_overlay(page, site, stream, key, "&big_ms=6000")
    await page.evaluate(BACKDROP)
    assert site.state.room_events is not None
    await site.state.room_events.goal_changed(await site.state.streams.get(stream))
    clients = [viewer(site, stream, u, n) for u, n in people]
    for c in clients:
        await c.connect()
    luna, kai, maya, theo = clients
    await maya.send_gift("sports_car")
    await theo.send_gift("money_gun")
    await kai.send_gift("corgi")
    for _ in range(4):
        await luna.send_gift("rose", count=6)
    await kai.send_gift("finger_heart", count=7)
    await theo.send_comment("Best stream this week, GG! 🔥", highlight="tier2")
    await page.wait_for_function(
        "() => document.querySelectorAll('.top .row').length === 3"
        " && document.querySelector('.goal').dataset.progress > 0"
    )
    await expect(page.locator(".show")).to_have_count(1)
    await screenshot(page, "overlay-showcase", settle_ms=1200)  # the big gift's entrance
    if os.environ.get("GIFTING_UPDATE_DOCS") == "1":
        await page.screenshot(path=str(DOCS / "overlay.png"))
    for c in clients:
        await c.close()


#: Display names a token may carry (printable, at most 64 characters) that are markup.
HOSTILE_NAMES = {
    "mallory": '<img src=x onerror="window.__pwned=1">',
    "eve": "<script>window.__pwned=2</script>",
    "trudy": '&lt;b&gt;Trudy&amp; &#x3C;i&#x3E;"><svg onload=window.__pwned=3>',
}
#: Comment texts: markup, entities, an RTL override, zero-width characters, a javascript: URL.
HOSTILE_TEXTS = [
    '<script>window.__pwned=4</script><img src=x onerror="window.__pwned=5">',
    "&lt;script&gt;&amp;&quot;&#60;b&#62; not bold",
    "order: abc\u202edcba\u202c done",
    "zero\u200bwidth\u200c\u200djoiner\ufeff and \u2066isolate\u2069",
    'javascript:window.__pwned=6 "><iframe src=javascript:window.__pwned=7>',
]
#: Elements no part of the overlay makes: if any shows up, user text became markup.
INJECTED = "script, img, svg, iframe, object, embed, a, link, style, form, input"


async def test_markup_in_names_and_comments_is_shown_as_text_and_never_runs(
    page: Any, site: HubServer
) -> None:
    """Every widget that shows user text — alerts, the big-gift banner, effects, pinned and
    free comments, top gifters — shows names and comments literally, as the server stored
    and sent them (character for character); nothing runs, no element is injected, no
    request is made."""
    stream, key = await site.stream()
    for user in HOSTILE_NAMES:
        await site.fund(user, "coins_17500")
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    widgets = "alerts,big,goal,top,comments,effects,chat"
    await open_overlay(page, site, stream, key, f"&widgets={widgets}&big_ms=1500")
    clients = {u: ViewerClient(site.ws, stream, site.token(u, n)) for u, n in HOSTILE_NAMES.items()}
    for c in clients.values():
        await c.connect()
    mallory, eve, trudy = clients.values()
    try:
        gift = await mallory.send_gift("rose", count=3)
        await eve.send_gift("doughnut")
        await trudy.send_gift("galaxy")
        effect = await eve.send_effect("confetti")
        pinned = await trudy.send_comment(HOSTILE_TEXTS[0][:80], highlight="tier1")
        free = [await mallory.send_comment(text) for text in HOSTILE_TEXTS]
    finally:
        for c in clients.values():
            await c.close()

    alert = page.locator(f'.alert[data-event="{gift.event}"]')
    await expect(alert.locator(".name")).to_have_text(HOSTILE_NAMES["mallory"])
    await expect(page.locator(".show .banner")).to_contain_text(HOSTILE_NAMES["trudy"])
    await expect(page.locator(".fx-label b").first).to_have_text(HOSTILE_NAMES["eve"])
    pin = page.locator(f'.pin[data-event="{pinned.event}"]')
    await expect(pin.locator(".text")).to_have_text(HOSTILE_TEXTS[0][:80])
    await expect(pin.locator(".name")).to_have_text(HOSTILE_NAMES["trudy"])
    for ack, text in zip(free, HOSTILE_TEXTS, strict=True):
        line = page.locator(f'#chat .line[data-event="{ack.event}"]')
        await expect(line.locator("span").last).to_have_text(text, use_inner_text=False)
        await expect(line.locator(".name")).to_have_text(HOSTILE_NAMES["mallory"])
    top = page.locator("#top .row .name")
    await expect(top).to_have_count(3)
    assert set(await top.all_text_contents()) == set(HOSTILE_NAMES.values())
    assert effect.event
    # Exactly what was sent, character for character (RTL overrides and zero-width kept).
    texts = await page.locator("#chat .line > span:last-child").all_text_contents()
    assert texts == HOSTILE_TEXTS
    assert await page.locator(f"#stage :is({INJECTED})").count() == 0
    assert await page.evaluate("window.__pwned") is None
    outside = [u for u in requests if not u.startswith(f"http://127.0.0.1:{site.port}/static/")
               and not u.startswith(f"http://127.0.0.1:{site.port}/overlay/")]  # fmt: skip
    assert not outside, outside
    await screenshot(page, "overlay-hostile-text", backdrop=True)
