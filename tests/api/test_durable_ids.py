"""A badge bought over HTTP keeps its id past its Redis record, like a gift (contract §3.1).

``POST /v1/badges`` debits through spend.lua directly, not through the hub's
batches; once the persister retired the id's Redis record, the route must
answer a retry from PostgreSQL's ``spend_ids`` too.
"""

from __future__ import annotations

import asyncio

from api_support import open_api, settings_for
from redis.asyncio import Redis

from gifting.persister.progress import wait_caught_up
from gifting.persister.service import persister_lifespan
from gifting.state import Extension


async def test_a_badge_retried_after_its_redis_record_is_gone_replays(
    redis_url: str, db_url: str, key_prefix: str, redis: Redis
) -> None:
    settings = settings_for(
        redis_url, db_url, key_prefix, GIFTING_PERSISTER_IN_PROCESS=True,
        GIFTING_IDEMPOTENCY_RECENT_S=60,
    )  # fmt: skip
    persister = Extension("persister", lifespan=persister_lifespan)
    async with open_api(settings, redis, [persister]) as api:
        await api.buy("alice", "coins_700")
        body = {"id": "b-late", "badge": "super_fan"}
        first = await api.send("POST", "/v1/badges", body, user="alice")
        assert first.status_code == 200, first.text
        assert await wait_caught_up(redis, api.state.keys, 20)
        record = api.state.keys.spend_result("alice", "b-late")
        for _ in range(100):  # retired right after the persister's XACK
            if await redis.ttl(record) > 0:
                break
            await asyncio.sleep(0.05)
        assert await redis.delete(record) == 1  # as its expiry would

        again = await api.send("POST", "/v1/badges", body, user="alice")
        assert again.status_code == 200, again.text
        assert again.json() == first.json()
        assert again.headers["Idempotent-Replayed"] == "true"
        other = await api.send(
            "POST", "/v1/badges", {"id": "b-late", "badge": "supporter"}, user="alice"
        )
        assert other.status_code == 409 and other.json()["code"] == "conflict"
        assert (await api.wallet("alice"))["coins"] == first.json()["balance"]
