"""Discovery across hubs: viewer connections on two hubs, counted once each in
``GET /v1/streams``; a viewer leaving, a hub whose beat stops and a hub killed
without cleanup all lower the count (the last within three beats)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets

from gifting.auth import mint_token
from gifting.hub.presence import BEATS_FRESH
from tests.hub.conftest import JWT_SECRET, HubServer, free_port, serve
from tests.hub.test_cross_process import _start

pytestmark = pytest.mark.cluster

BEAT_MS = 100
#: A dead hub stops counting within BEATS_FRESH beats; the rest is slack for a busy machine.
BOUND_S = BEATS_FRESH * BEAT_MS / 1000


@contextlib.asynccontextmanager
async def _hubs(redis_url: str, database_url: str, key_prefix: str) -> AsyncIterator[Any]:
    async with (
        serve(redis_url, database_url, key_prefix, GIFTING_PRESENCE_MS=BEAT_MS) as one,
        serve(redis_url, database_url, key_prefix, GIFTING_PRESENCE_MS=BEAT_MS) as two,
    ):
        yield one, two


async def _viewers(port: int) -> dict[str, int]:
    async with httpx.AsyncClient() as client:
        r = await client.get(f"http://127.0.0.1:{port}/v1/streams?live=1&limit=100")
    assert r.status_code == 200, r.text
    return {s["stream"]: s["viewers"] for s in r.json()["streams"]}


async def _until_viewers(port: int, stream: str, n: int, timeout: float = 10.0) -> float:
    """Poll the listing until ``stream`` shows ``n`` viewers; the seconds it took."""
    start = time.monotonic()
    async with asyncio.timeout(timeout):
        while (await _viewers(port)).get(stream) != n:  # noqa: ASYNC110 - polls another server
            await asyncio.sleep(0.02)
    return time.monotonic() - start


def _viewer(port: int, stream: str, user: str) -> Any:
    token = mint_token(JWT_SECRET, user, None, [], 600)
    return websockets.connect(
        f"ws://127.0.0.1:{port}/v1/ws/viewer?stream={stream}",
        additional_headers={"Authorization": f"Bearer {token}"},
    )


async def test_viewers_on_two_hubs_are_counted_once_each(
    redis_url: str, database_url: str, key_prefix: str
) -> None:
    one: HubServer
    two: HubServer
    async with _hubs(redis_url, database_url, key_prefix) as (one, two):
        busy, key = await one.stream("carol")
        quiet, _ = await two.stream("dave")
        async with (
            _viewer(one.port, busy, "v1"), _viewer(one.port, busy, "v2"),
            _viewer(two.port, busy, "v3"), _viewer(two.port, quiet, "v4"),
            one.overlay(busy, key),  # overlays are not viewers
        ):  # fmt: skip
            await _until_viewers(two.port, busy, 3)
            await _until_viewers(one.port, quiet, 1)
            assert list(await _viewers(one.port)) == [busy, quiet]  # most watched first
            async with _viewer(two.port, quiet, "v5"), _viewer(one.port, quiet, "v6"):
                await _until_viewers(one.port, quiet, 3)
                await _until_viewers(one.port, busy, 3)
            await _until_viewers(one.port, quiet, 1)  # both left
        await _until_viewers(one.port, busy, 0)  # every viewer left
        await _until_viewers(one.port, quiet, 0)
        # A clean stop deletes the hub's reports: nothing is left to expire.
        assert not await one.state.redis.exists(one.state.keys.stream_viewers(busy))


async def test_a_hub_whose_beat_stops_stops_counting_within_three_beats(
    redis_url: str, database_url: str, key_prefix: str
) -> None:
    one: HubServer
    two: HubServer
    async with _hubs(redis_url, database_url, key_prefix) as (one, two):
        stream, _ = await one.stream("carol")
        async with _viewer(one.port, stream, "v1"), _viewer(two.port, stream, "v2"):
            await _until_viewers(one.port, stream, 2)
            assert two.state.hub is not None
            await two.state.hub.presence.stop(clear=False)  # as if it hung or lost Redis
            took = await _until_viewers(one.port, stream, 1)
            assert took <= BOUND_S + 2.0, took
            await asyncio.sleep(BOUND_S)
            assert (await _viewers(one.port))[stream] == 1  # the live hub keeps its count


async def test_a_killed_hub_stops_counting_and_ended_streams_leave(
    redis_url: str, database_url: str, key_prefix: str
) -> None:
    env = dict(os.environ)
    env.update(
        REDIS_URL=redis_url, DATABASE_URL=database_url, GIFTING_KEY_PREFIX=key_prefix,
        GIFTING_JWT_SECRET=JWT_SECRET, GIFTING_WEBHOOK_SECRET="x" * 40, GIFTING_DEV="0",
        GIFTING_PRESENCE_MS=str(BEAT_MS),
    )  # fmt: skip
    ports = free_port(), free_port()
    procs = [await _start(p, env) for p in ports]
    try:
        creator = mint_token(JWT_SECRET, "carol", "Carol", ["creator"], 600)
        auth = {"Authorization": f"Bearer {creator}"}
        async with httpx.AsyncClient() as client:
            r = await client.post(
                f"http://127.0.0.1:{ports[0]}/v1/streams", json={"title": "t"}, headers=auth
            )
            assert r.status_code == 201, r.text
            stream = r.json()["stream"]
            async with _viewer(ports[0], stream, "v1"), _viewer(ports[1], stream, "v2"):
                await _until_viewers(ports[0], stream, 2)
                procs[1].send_signal(signal.SIGKILL)  # no cleanup at all
                procs[1].wait(10)
                took = await _until_viewers(ports[0], stream, 1)
                assert took <= BOUND_S + 2.0, took
                r = await client.post(
                    f"http://127.0.0.1:{ports[0]}/v1/streams/{stream}/end", headers=auth
                )
                assert r.status_code == 200, r.text
                assert stream not in await _viewers(ports[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except Exception:
                p.kill()
