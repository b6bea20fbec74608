"""Fixtures of the client tests: the real server of the hub tests, and a TCP proxy.

The server fixtures live in the server's own test suite (``tests/conftest.py``
for Redis and PostgreSQL, ``tests/hub/conftest.py`` for a uvicorn serving the
app); they are imported here so the client is tested against the real thing.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

_REPO = Path(__file__).resolve().parents[3]
if str(_REPO) not in sys.path:  # running only this folder: make `tests` importable
    sys.path.insert(0, str(_REPO))

from tcp_proxy import TcpProxy  # noqa: E402

from tests.conftest import (  # noqa: E402, F401
    _cluster_redis_url,
    _server_database_url,
    _server_redis_url,
    _servers_dir,
    create_database,
    database_url,
    key_prefix,
    redis_backend,
    redis_url,
)
from tests.hub.conftest import HubServer, hub, serve  # noqa: E402, F401


@pytest_asyncio.fixture(loop_scope="session")
async def proxy(hub: HubServer) -> AsyncIterator[TcpProxy]:  # noqa: F811
    """A TCP proxy in front of ``hub`` that tests can cut or make swallow replies."""
    async with TcpProxy(hub.port) as p:
        yield p


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def server(redis_url: str, database_url: str) -> AsyncIterator[HubServer]:  # noqa: F811
    """The whole app in dev mode, persister in process, fresh database: one per module.

    Tests sharing it use user ids of their own (the HTTP tests draw random ones).
    """
    db = await create_database(database_url)
    async with serve(
        redis_url, db, f"t{secrets.token_hex(4)}", with_persister=True,
        GIFTING_PERSISTER_IN_PROCESS=True, GIFTING_DEV=True,
        GIFTING_RATE_PER_S=1000, GIFTING_RATE_BURST=2000,
    ) as h:  # fmt: skip
        yield h
