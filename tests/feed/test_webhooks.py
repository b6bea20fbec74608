"""Webhook subscriptions (DESIGN.md §9): validation, signed at-least-once deliveries with
retries to a real local receiver, the deliveries log, and isolation of a dead receiver."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from gifting.api.signatures import SIGNATURE_HEADER, verify
from tests.feed.conftest import bearer, feed_server, http, receiver
from tests.feed.test_sse import send_gifts
from tests.hub.conftest import HubServer


async def subscribe(
    client: httpx.AsyncClient, h: HubServer, creator: str, url: str, kinds: list[str], **kw: Any
) -> dict[str, Any]:
    r = await client.post(
        "/v1/webhook-subscriptions", json={"url": url, "kinds": kinds, **kw},
        headers=bearer(h, creator, creator=True),
    )  # fmt: skip
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


async def deliveries(client: httpx.AsyncClient, h: HubServer, creator: str, sub: str) -> Any:
    r = await client.get(
        f"/v1/webhook-subscriptions/{sub}/deliveries?limit=500", headers=bearer(h, creator, True)
    )
    assert r.status_code == 200, r.text
    return r.json()["deliveries"]


async def wait_for(check: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():  # noqa: ASYNC110 - polls another task's state
            await asyncio.sleep(0.05)


async def test_validation_and_ownership(feed: HubServer) -> None:
    stream, _ = await feed.stream("carol")
    other, _ = await feed.stream("mallory")
    carol, mallory = bearer(feed, "carol", True), bearer(feed, "mallory", True)
    path = "/v1/webhook-subscriptions"
    ok = "http://127.0.0.1:9/hook"
    async with http(feed) as client:
        bad = [
            ({"url": "ftp://example.com/x", "kinds": ["gift"]}, "http"),
            ({"url": "not a url", "kinds": ["gift"]}, "url"),
            ({"url": "http:///nohost", "kinds": ["gift"]}, "host"),
            ({"url": ok, "kinds": ["gift", "nope"]}, "unknown event kind"),
            ({"url": ok, "kinds": []}, "at least one"),
            ({"url": ok, "kinds": "gift"}, "kinds"),
            ({"url": ok, "kinds": ["gift"], "extra": 1}, "extra"),
            ({"kinds": ["gift"]}, "url"),
        ]
        for body, words in bad:
            r = await client.post(path, json=body, headers=carol)
            assert r.status_code == 400, (body, r.text)
            assert r.json()["code"] == "bad_request" and words in r.json()["message"], r.text
        r = await client.post(path, json={"url": ok, "kinds": ["gift"]}, headers=bearer(feed, "v"))
        assert r.status_code == 403  # not a creator
        r = await client.post(path, json={"url": ok, "kinds": ["gift"], "stream": other},
                              headers=carol)  # fmt: skip
        assert r.status_code == 403
        r = await client.post(path, json={"url": ok, "kinds": ["gift"], "stream": "nosuch"},
                              headers=carol)  # fmt: skip
        assert r.status_code == 404
        assert (await client.get(path, headers=carol)).json()["subscriptions"] == []  # no change
        sub = await subscribe(client, feed, "carol", ok, ["gift", "gift", "comment"], stream=stream)
        assert sub["secret"].startswith("whsec_") and sub["kinds"] == ["gift", "comment"]
        listed = (await client.get(path, headers=carol)).json()["subscriptions"]
        assert [s["id"] for s in listed] == [sub["id"]] and "secret" not in listed[0]
        for method, suffix in [("GET", ""), ("DELETE", ""), ("GET", "/deliveries")]:
            r = await client.request(method, f"{path}/{sub['id']}{suffix}", headers=mallory)
            assert r.status_code == 403, (method, suffix)
            r = await client.request(method, f"{path}/wh_nosuch{suffix}", headers=carol)
            assert r.status_code == 404, (method, suffix)
        assert (await client.get(f"{path}/{sub['id']}", headers=carol)).json()["url"] == ok
        r = await client.delete(f"{path}/{sub['id']}", headers=carol)
        assert r.status_code == 200
        assert (await client.get(f"{path}/{sub['id']}", headers=carol)).status_code == 404


async def test_fail_stall_recover_every_event_delivered_signed(feed: HubServer) -> None:
    stream, _ = await feed.stream("carol")
    async with receiver("fail") as rx, http(feed) as client:
        sub = await subscribe(client, feed, "carol", rx.url, ["gift"])
        acked = await send_gifts(feed, stream, "alice", 5)

        async def answered(what: str) -> bool:
            log = await deliveries(client, feed, "carol", sub["id"])
            return any(what in str(a["error"]) for a in log)

        await wait_for(lambda: answered("HTTP 500"))
        rx.mode = "stall"
        await wait_for(lambda: answered("timeout"))
        rx.mode = "ok"

        async def all_in() -> bool:
            return set(rx.events()) >= set(acked)

        await wait_for(all_in, 20)
        for headers, body in rx.received:
            verify(sub["secret"], headers[SIGNATURE_HEADER.lower()], body)  # raises if wrong
            event = httpx.Response(200, content=body).json()
            assert headers["x-gifting-event"] == event["event"]
            assert event["kind"] == "gift" and event["stream"] == stream

        async def all_logged() -> bool:  # the answer is recorded just after it arrives
            log = await deliveries(client, feed, "carol", sub["id"])
            return {a["event"] for a in log if a["status"] == 200} >= set(acked)

        await wait_for(all_logged)
        log = await deliveries(client, feed, "carol", sub["id"])
        statuses = {a["status"] for a in log}
        assert {500, 200} <= statuses and None in statuses  # failed, timed out, then answered
        for event in acked:  # each: tries 1..k, the last one answered 200
            tries = sorted((a for a in log if a["event"] == event), key=lambda a: a["attempt"])
            assert [a["attempt"] for a in tries] == list(range(1, len(tries) + 1))
            assert tries[-1]["status"] == 200 and tries[-1]["delivery"] == "delivered"
        assert len(log) > len(acked)  # retried
        assert all(a["next_retry"] is not None for a in log if a["status"] != 200)
        assert all(isinstance(a["latency_ms"], int) for a in log)


async def test_dead_receiver_does_not_delay_another_or_the_room(
    redis_url: str, db_url: str, key_prefix: str
) -> None:
    # A 5 s timeout: had the healthy receiver or the room to wait for the dead one's
    # requests, its events would come 5 s late at least.
    async with (
        feed_server(redis_url, db_url, key_prefix, GIFTING_WEBHOOK_TIMEOUT_S=5) as h,
        receiver("stall") as dead,
        receiver("ok") as healthy,
        http(h) as client,
    ):
        stream, _ = await h.stream("carol")
        stalled = await subscribe(client, h, "carol", dead.url, ["gift"])
        await subscribe(client, h, "carol", healthy.url, ["gift"])
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        acked = await send_gifts(h, stream, "bob", 10)
        room_s = loop.time() - t0

        async def healthy_has_all() -> bool:
            return set(healthy.events()) >= set(acked)

        await wait_for(healthy_has_all, 10)
        delivered_s = loop.time() - t0
        assert dead.hits >= 1 and dead.received == []  # its requests hang
        # ...and none of them has timed out yet, yet the healthy one has every event.
        assert await deliveries(client, h, "carol", stalled["id"]) == []
        assert delivered_s < 4.5, delivered_s
        assert room_s < 4.5, room_s


async def test_deleted_subscription_gets_nothing_more(feed: HubServer) -> None:
    stream, _ = await feed.stream("carol")
    async with receiver("ok") as rx, http(feed) as client:
        sub = await subscribe(client, feed, "carol", rx.url, ["gift"], stream=stream)
        first = await send_gifts(feed, stream, "dave", 1)

        async def got_first() -> bool:
            return set(rx.events()) >= set(first)

        await wait_for(got_first)
        r = await client.delete(f"/v1/webhook-subscriptions/{sub['id']}",
                                headers=bearer(feed, "carol", True))  # fmt: skip
        assert r.status_code == 200
        await send_gifts(feed, stream, "dave2", 2)
        await asyncio.sleep(0.6)
        assert set(rx.events()) == set(first)


async def test_deliveries_survive_a_restart(redis_url: str, db_url: str, key_prefix: str) -> None:
    from tests.hub.conftest import serve

    async with receiver("ok") as rx:
        async with feed_server(redis_url, db_url, key_prefix) as h, http(h) as client:
            stream, _ = await h.stream("carol")
            sub = await subscribe(client, h, "carol", rx.url, ["gift"])
            before = await send_gifts(h, stream, "erin", 2)

            async def got_before() -> bool:
                return set(rx.events()) >= set(before)

            await wait_for(got_before)
        # No webhook worker runs now (a hub alone): the gifts go on, nothing is delivered.
        async with serve(redis_url, db_url, key_prefix, GIFTING_RATE_PER_S=1000) as bare:
            during = await send_gifts(bare, stream, "frank", 3)
        await asyncio.sleep(0.3)
        assert not set(during) & set(rx.events())
        async with feed_server(redis_url, db_url, key_prefix) as h, http(h) as client:

            async def got_during() -> bool:
                return set(rx.events()) >= set(during)

            await wait_for(got_during)
            log = await deliveries(client, h, "carol", sub["id"])
            assert {a["event"] for a in log} == set(before) | set(during)
            assert len(log) == 5  # one attempt each: the position was durable
