"""Wires the webhook worker into the app: it runs wherever the app has a PostgreSQL pool.

Every such process runs a :class:`~gifting.feed.worker.FeedWorker`; one of them
(the holder of its advisory lock) delivers, the others stand by.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from gifting.feed.worker import FeedWorker
from gifting.state import AppState, Extension
from gifting.store.wiring import build_roomlog

log = logging.getLogger("gifting.feed")


@asynccontextmanager
async def feed_lifespan(state: AppState) -> AsyncIterator[None]:
    """Run the webhook worker while the app runs (after the persister made the pool)."""
    if state.pg_pool is None:
        log.warning("no PostgreSQL pool: webhook subscriptions are not delivered by this process")
        yield
        return
    roomlog = build_roomlog(state.settings, state.redis, state.catalog)
    worker = FeedWorker(
        state.settings, state.pg_pool, state.redis, state.keys, roomlog, state.streams
    )
    worker.start()
    try:
        yield
    finally:
        await worker.stop()
        await roomlog.aclose()


def feed_extension() -> Extension:
    """The ``feed`` extension: the webhook worker's lifespan (its routes are in the API)."""
    return Extension(name="feed", lifespan=feed_lifespan)
