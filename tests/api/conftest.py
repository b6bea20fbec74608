"""Fixtures of the HTTP API tests: the real app on a private Redis, driven in process.

``api`` is an :class:`api_support.Api` bound to an app whose lifespan ran (the
session's Redis and PostgreSQL, a unique key prefix per test), with helpers to
mint tokens, sign webhooks and read wallets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from api_support import Api, open_api, settings_for
from redis.asyncio import Redis

from gifting.clock import now_ms, set_clock


@pytest_asyncio.fixture(loop_scope="session")
async def api(
    redis_url: str, database_url: str, key_prefix: str, redis: Redis
) -> AsyncIterator[Api]:
    """The HTTP API on the session's Redis, lifespan running, keys cleaned afterwards."""
    async with open_api(settings_for(redis_url, database_url, key_prefix), redis) as api:
        yield api


@pytest.fixture
def clock() -> Iterator[list[int]]:
    """A frozen server clock: ``clock[0]`` is now (ms); tests move it by assignment."""
    now = [now_ms()]
    set_clock(lambda: now[0])
    try:
        yield now
    finally:
        set_clock(None)
