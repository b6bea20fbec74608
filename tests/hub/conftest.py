"""Fixtures of the hub tests: a real uvicorn serving the app, real websockets clients."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest
import pytest_asyncio
import uvicorn
import websockets

from gifting.app import create_app
from gifting.auth import mint_token
from gifting.config import Settings
from gifting.hub.extension import hub_extension
from gifting.hub.uvicorn_ws import HubWebSocketProtocol
from gifting.state import AppState, Extension
from gifting.store.keys import Keys

JWT_SECRET = "hub-test-jwt-secret-0123456789abcdef0123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class HubServer:
    """A running app: its base ws/http URLs and its state."""

    port: int
    state: AppState

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def token(self, user: str, name: str | None = None, creator: bool = False) -> str:
        return mint_token(JWT_SECRET, user, name, ["creator"] if creator else [], 600)

    async def stream(self, creator: str = "carol") -> tuple[str, str]:
        s = await self.state.streams.create(creator, creator.title(), "test stream")
        return s.stream, s.overlay_key

    async def fund(self, user: str, package: str = "coins_700", n: int = 1) -> None:
        for i in range(n):
            p = self.state.catalog.packages[package]
            await self.state.ledger.purchase(
                f"buy-{user}-{package}-{i}", user, package, p.price.amount, p.price.currency
            )

    def viewer(self, stream: str, user: str, msgpack: bool = False, **kw: Any) -> Any:
        proto = ["gifting.msgpack.v1"] if msgpack else ["gifting.json.v1"]
        return websockets.connect(
            f"{self.ws}/v1/ws/viewer?stream={stream}",
            additional_headers={"Authorization": f"Bearer {self.token(user)}"},
            subprotocols=proto,
            **kw,  # type: ignore[arg-type]
        )

    def overlay(
        self, stream: str, key: str, since: str | None = None, msgpack: bool = False, **kw: Any
    ) -> Any:
        url = f"{self.ws}/v1/ws/overlay?stream={stream}&key={key}"
        if since:
            url += f"&since={since}"
        proto = ["gifting.msgpack.v1"] if msgpack else ["gifting.json.v1"]
        return websockets.connect(url, subprotocols=proto, **kw)  # type: ignore[arg-type]


def decode(frame: str | bytes) -> dict[str, Any]:
    if isinstance(frame, bytes):
        out: dict[str, Any] = msgspec.msgpack.decode(frame)
    else:
        out = msgspec.json.decode(frame)
    return out


def encode(msg: dict[str, Any], msgpack: bool = False) -> str | bytes:
    return msgspec.msgpack.encode(msg) if msgpack else msgspec.json.encode(msg).decode()


async def recv(ws: Any, timeout: float = 5.0) -> dict[str, Any]:
    return decode(await asyncio.wait_for(ws.recv(), timeout))


async def recv_until(ws: Any, pred: Any, timeout: float = 5.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            msg = decode(await ws.recv())
            if pred(msg):
                return msg


def metric(name: str, **labels: str) -> float:
    """The current value of a Prometheus sample of this process (0 when absent)."""
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


async def until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll ``check`` until it holds (a generous deadline: no timing assertion)."""
    async with asyncio.timeout(timeout):
        while not check():  # noqa: ASYNC110 - polls state of another task or process
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def serve(
    redis_url: str,
    database_url: str,
    key_prefix: str,
    *,
    with_persister: bool = False,
    extensions: Callable[[Settings], list[Extension]] | None = None,
    **overrides: Any,
) -> AsyncIterator[HubServer]:
    """The app on uvicorn on a free port: by default the hub alone (fast to start);
    ``with_persister`` for every default extension, or the given ``extensions``."""
    settings = Settings(
        REDIS_URL=redis_url,
        DATABASE_URL=database_url,
        GIFTING_KEY_PREFIX=key_prefix,
        GIFTING_JWT_SECRET=JWT_SECRET,
        GIFTING_WEBHOOK_SECRET="hub-test-webhook-secret-0123456789",
        **overrides,
    )
    # The default extensions include the persister (its consumer runs when
    # GIFTING_PERSISTER_IN_PROCESS=1); the bare hub is faster to start.
    if with_persister:
        chosen = None
    elif extensions is not None:
        chosen = extensions(settings)
    else:
        chosen = [hub_extension(settings)]
    app = create_app(settings, extensions=chosen)
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ws=HubWebSocketProtocol,  # as `gifting serve` (gifting/cli.py)
        ws_max_size=settings.max_frame_bytes,
        lifespan="on",
        ws_per_message_deflate=False,
    )
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield HubServer(port, app.state.gifting)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


@pytest_asyncio.fixture(loop_scope="session")
async def hub(redis_url: str, database_url: str, key_prefix: str) -> AsyncIterator[HubServer]:
    async with serve(
        redis_url,
        database_url,
        key_prefix,
        GIFTING_RATE_PER_S=1000,
        GIFTING_RATE_BURST=2000,
        # Tests reconnect the same users fast; the caps have tests of their own.
        GIFTING_MAX_CONNECTIONS_PER_USER=10_000,
        GIFTING_MAX_CONNECTIONS_PER_ADDRESS=100_000,
    ) as h:
        yield h


@pytest.fixture
def keys(key_prefix: str) -> Keys:
    """The test's own Redis key names."""
    return Keys(key_prefix)
