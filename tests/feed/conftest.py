"""Fixtures of the event feed tests: the app on a real uvicorn with the persister's pool,
the hub and the webhook worker (fast settings), SSE and webhook-receiver helpers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec
import pytest_asyncio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gifting.config import Settings
from gifting.feed.extension import feed_extension
from gifting.hub.extension import hub_extension
from gifting.persister.service import persister_lifespan
from gifting.state import Extension
from tests.hub.conftest import HubServer, free_port, serve

FAST = {
    "GIFTING_RATE_PER_S": 1000,
    "GIFTING_RATE_BURST": 2000,
    "GIFTING_MAX_CONNECTIONS_PER_USER": 10_000,
    "GIFTING_MAX_CONNECTIONS_PER_ADDRESS": 100_000,
    "GIFTING_FEED_KEEPALIVE_S": 0.3,
    "GIFTING_WEBHOOK_POLL_MS": 50,
    "GIFTING_WEBHOOK_BACKOFF_S": 0.1,
    "GIFTING_WEBHOOK_BACKOFF_MAX_S": 0.4,
    "GIFTING_WEBHOOK_TIMEOUT_S": 0.5,
}


def feed_extensions(settings: Settings) -> list[Extension]:
    """The persister's pool (no consumer), the hub and the webhook worker."""
    return [
        Extension("persister", lifespan=persister_lifespan),
        hub_extension(settings),
        feed_extension(),
    ]


@contextlib.asynccontextmanager
async def feed_server(
    redis_url: str, db_url: str, key_prefix: str, **overrides: Any
) -> AsyncIterator[HubServer]:
    """A served app with the feed (``overrides``: more settings)."""
    async with serve(
        redis_url, db_url, key_prefix, extensions=feed_extensions, **{**FAST, **overrides}
    ) as h:
        yield h


@pytest_asyncio.fixture(loop_scope="session")
async def feed(redis_url: str, db_url: str, key_prefix: str) -> AsyncIterator[HubServer]:
    async with feed_server(redis_url, db_url, key_prefix) as h:
        yield h


def http(h: HubServer) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{h.port}", timeout=10, trust_env=False)


def bearer(h: HubServer, user: str, creator: bool = False) -> dict[str, str]:
    return {"Authorization": f"Bearer {h.token(user, creator=creator)}"}


@dataclass
class SseMessage:
    id: str | None
    event: str
    data: str

    def json(self) -> dict[str, Any]:
        out: dict[str, Any] = msgspec.json.decode(self.data)
        return out


class SseReader:
    """Reads one SSE response: messages, and the comment lines seen (keepalives)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.aiter_lines()
        self.comments = 0

    async def next(self, timeout: float = 5.0) -> SseMessage:
        fields: dict[str, str] = {}
        async with asyncio.timeout(timeout):
            async for line in self.lines:
                if line == "":
                    if fields:
                        return SseMessage(fields.get("id"), fields.get("event", "message"),
                                          fields.get("data", ""))  # fmt: skip
                    continue
                if line.startswith(":"):
                    self.comments += 1
                    continue
                name, _, value = line.partition(":")
                fields[name] = value[1:] if value.startswith(" ") else value
        raise EOFError("the stream ended")


@contextlib.asynccontextmanager
async def sse(
    client: httpx.AsyncClient, stream: str, *, key: str | None = None,
    headers: dict[str, str] | None = None, since: str | None = None,
) -> AsyncIterator[SseReader]:  # fmt: skip
    params = {}
    if key is not None:
        params["key"] = key
    if since is not None:
        params["since"] = since
    hdrs = {"Accept": "text/event-stream", **(headers or {})}
    async with client.stream(
        "GET", f"/v1/streams/{stream}/events", params=params, headers=hdrs
    ) as response:
        assert response.status_code == 200, (response.status_code, await response.aread())
        assert response.headers["content-type"].startswith("text/event-stream")
        yield SseReader(response)


# --------------------------------------------------------------------------- receivers


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1: answers by ``mode`` ("ok", "fail", "stall")."""

    mode: str = "ok"
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    hits: int = 0
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def handle(self, request: Request) -> Response:
        self.hits += 1
        body = await request.body()
        if self.mode == "stall":
            await asyncio.sleep(3600)
        if self.mode == "fail":
            return Response("boom", status_code=500)
        self.received.append((dict(request.headers), body))
        return Response("ok")

    def events(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for _, body in self.received:
            event: dict[str, Any] = msgspec.json.decode(body)
            out[event["event"]] = event
        return out


@contextlib.asynccontextmanager
async def receiver(mode: str = "ok") -> AsyncIterator[Receiver]:
    r = Receiver(mode)
    app = Starlette(routes=[Route("/hook", r.handle, methods=["POST"])])
    r.port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=r.port, log_level="error", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn's own flag
        await asyncio.sleep(0.01)
    try:
        yield r
    finally:
        server.should_exit = True
        server.force_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 5)
