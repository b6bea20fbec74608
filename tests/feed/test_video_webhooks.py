"""``video_gift`` events reach the creator's webhook subscriptions (DESIGN.md §10), once each."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import msgspec

from gifting.api.signatures import SIGNATURE_HEADER, verify
from tests.feed.conftest import bearer, feed_server, http, receiver
from tests.feed.test_webhooks import deliveries, subscribe, wait_for
from tests.hub.conftest import HubServer


async def test_each_video_gift_is_delivered_once_to_the_creators_subscriptions(
    feed: HubServer,
) -> None:
    stream, _ = await feed.stream("carol")
    await feed.fund("alice")
    await feed.fund("bob")
    async with receiver("ok") as rx, receiver("ok") as other, http(feed) as client:
        sub = await subscribe(client, feed, "carol", rx.url, ["video_gift", "gift"])
        # Neither of these wants a video's gifts: another kind, or one stream only.
        await subscribe(client, feed, "carol", other.url, ["gift"])
        await subscribe(client, feed, "carol", other.url, ["video_gift"], stream=stream)
        r = await client.post(
            "/v1/videos", json={"title": "clip"}, headers=bearer(feed, "carol", creator=True)
        )
        assert r.status_code == 201, r.text
        video = r.json()["video"]
        # Another creator's video: carol's subscription never sees its gifts.
        r = await client.post(
            "/v1/videos", json={"title": "x"}, headers=bearer(feed, "dora", creator=True)
        )
        foreign = r.json()["video"]

        async def send(user: str, on: str, cid: str) -> str:
            r = await client.post(
                f"/v1/videos/{on}/gifts", json={"id": cid, "gift": "rose", "count": 2},
                headers=bearer(feed, user),
            )  # fmt: skip
            assert r.status_code == 200, r.text
            event: str = r.json()["event"]
            return event

        acked = [await send("alice", video, f"a-{i}") for i in range(3)]
        acked += list(await asyncio.gather(*(send("bob", video, f"b-{i}") for i in range(3))))
        await send("alice", video, "a-0")  # a retry: no new event
        await send("alice", foreign, "f-1")

        async def all_in() -> bool:
            return set(rx.events()) >= set(acked)

        await wait_for(all_in, 20)
        await asyncio.sleep(0.5)  # a few more rounds of the worker: nothing more comes
        counts = Counter(msgspec.json.decode(body)["event"] for _, body in rx.received)
        assert counts == dict.fromkeys(acked, 1)
        for headers, body in rx.received:
            verify(sub["secret"], headers[SIGNATURE_HEADER.lower()], body)  # raises if wrong
            event = msgspec.json.decode(body)
            assert headers["x-gifting-event"] == event["event"]
            assert event["kind"] == "video_gift" and event["video"] == video
            assert event["creator"] == "carol" and event["count"] == 2 and event["coins"] == 2
            assert event["gift"]["id"] == "rose" and event["sender"]["id"] in {"alice", "bob"}
            assert isinstance(event["seq"], int) and event["cursor"]
        assert other.received == []
        log = await deliveries(client, feed, "carol", sub["id"])
        assert {a["event"] for a in log if a["status"] == 200} >= set(acked)


async def test_a_restarted_worker_reads_on_from_each_videos_durable_position(
    redis_url: str, db_url: str, key_prefix: str
) -> None:
    async with receiver("ok") as rx:

        async def send(h: HubServer, client: httpx.AsyncClient, video: str, cid: str) -> str:
            r = await client.post(
                f"/v1/videos/{video}/gifts", json={"id": cid, "gift": "rose"},
                headers=bearer(h, "alice"),
            )  # fmt: skip
            assert r.status_code == 200, r.text
            event: str = r.json()["event"]
            return event

        async with feed_server(redis_url, db_url, key_prefix) as h, http(h) as client:
            await h.fund("alice")
            await subscribe(client, h, "carol", rx.url, ["video_gift"])
            r = await client.post(
                "/v1/videos", json={"title": "clip"}, headers=bearer(h, "carol", creator=True)
            )
            video = r.json()["video"]
            first = [await send(h, client, video, f"a-{i}") for i in range(3)]

            async def first_in() -> bool:
                return set(rx.events()) >= set(first)

            await wait_for(first_in, 20)
        # The worker's process is gone; gifts go on, and another process takes over.
        async with feed_server(redis_url, db_url, key_prefix) as h, http(h) as client:
            second = [await send(h, client, video, f"b-{i}") for i in range(3)]

            async def second_in() -> bool:
                return set(rx.events()) >= set(second)

            await wait_for(second_in, 20)
            await asyncio.sleep(0.5)
            pool = h.state.pg_pool
            assert pool is not None
            cursor = await pool.fetchval(
                "SELECT cursor FROM webhook_feed_positions WHERE stream_id = $1", f"video:{video}"
            )
            assert str(cursor).endswith("_6")  # the video's sixth event, read once
    counts = Counter(msgspec.json.decode(body)["event"] for _, body in rx.received)
    assert counts == dict.fromkeys(first + second, 1)
