"""The composition root and the command line: wiring, hooks, dev mode, ``gifting token``."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import redis.exceptions
from api_support import JWT_SECRET, open_api, settings_for
from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from typer.testing import CliRunner

from gifting.app import create_app
from gifting.auth import principal_from_token
from gifting.cli import _ws_protocol
from gifting.cli import app as cli
from gifting.config import Settings
from gifting.logs import ClientFaultsAsWarnings, RedactSecrets, log_config
from gifting.state import AppState, Extension


def test_create_app_connects_to_nothing() -> None:
    app = create_app(
        Settings(REDIS_URL="redis://127.0.0.1:1/0", DATABASE_URL="postgresql://x", GIFTING_DEV=True)
    )
    assert {getattr(r, "path", "") for r in app.routes} >= {
        "/v1/catalog",
        "/v1/wallet",
        "/v1/streams",
        "/healthz",
        "/readyz",
        "/v1/webhooks/purchases",
    }


async def test_lifespan_fails_fast_on_a_wrong_redis_url(database_url: str) -> None:
    app = create_app(
        Settings(REDIS_URL="redis://127.0.0.1:1/0", DATABASE_URL=database_url, GIFTING_DEV=True),
        extensions=[],
    )
    with pytest.raises(redis.exceptions.ConnectionError):
        async with app.router.lifespan_context(app):
            pass


async def test_extensions_start_in_order_stop_in_reverse_and_add_routes(
    redis_url: str, database_url: str, key_prefix: str, redis: Redis
) -> None:
    log: list[str] = []

    def ext(name: str) -> Extension:
        @asynccontextmanager
        async def lifespan(state: AppState) -> AsyncIterator[None]:
            assert state.ledger is not None
            log.append(f"start {name}")
            state.readiness[name] = state.redis.ping
            yield
            log.append(f"stop {name}")

        async def hello(request: Request) -> PlainTextResponse:
            return PlainTextResponse(name)

        return Extension(name, routes=[Route(f"/{name}", hello)], lifespan=lifespan)

    settings = settings_for(redis_url, database_url, key_prefix)
    async with open_api(settings, redis, [ext("persister"), ext("hub")]) as api:
        assert log == ["start persister", "start hub"]
        assert (await api.client.get("/hub")).text == "hub"
        assert set(api.state.readiness) == {"redis", "persister", "hub"}
        assert api.state.redis_url == redis_url
        assert api.state.database_url == database_url
        assert api.state.embedded is None
        app = api.app
    assert log == ["start persister", "start hub", "stop hub", "stop persister"]
    assert app.state.gifting is None


async def test_dev_routes_exist_only_in_dev_mode(
    redis_url: str, database_url: str, key_prefix: str, redis: Redis
) -> None:
    async with open_api(settings_for(redis_url, database_url, key_prefix), redis) as api:
        r = await api.send("POST", "/v1/dev/token", {"user": "alice"})
        assert r.status_code == 404
    settings = settings_for(redis_url, database_url, key_prefix, GIFTING_DEV=True)
    async with open_api(settings, redis) as api:
        r = await api.send("POST", "/v1/dev/token", {"user": "alice", "creator": True})
        assert r.status_code == 200
        token = r.json()["token"]
        assert principal_from_token(token, JWT_SECRET).roles == {"creator"}
        r = await api.client.post(
            "/v1/dev/purchase",
            json={"package": "coins_350"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 200
        assert r.json()["balance"] == 350
        r = await api.send("POST", "/v1/dev/token", {"user": "alice", "creator": "yes"})
        assert r.status_code == 400


async def test_embedded_redis_starts_when_redis_url_is_unset(
    tmp_path: Path, database_url: str, key_prefix: str
) -> None:
    settings = Settings(
        REDIS_URL=None,
        DATABASE_URL=database_url,
        GIFTING_DATA_DIR=str(tmp_path),
        GIFTING_KEY_PREFIX=key_prefix,
        GIFTING_REDIS_APPENDFSYNC="everysec",
        GIFTING_DEV=True,
    )
    app = create_app(settings, extensions=[])
    async with app.router.lifespan_context(app):
        state: AppState = app.state.gifting
        assert state.embedded is not None
        assert state.redis_url.startswith("redis://")
        assert await state.redis.ping()
        server = state.embedded.redis
        assert server is not None and state.embedded.postgres is None
    assert not server.running
    assert (tmp_path / "redis").is_dir()


# --------------------------------------------------------------------------- CLI


def test_cli_token_prints_a_verifiable_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIFTING_JWT_SECRET", JWT_SECRET)
    result = CliRunner().invoke(
        cli, ["token", "alice", "--name", "Alice", "--creator", "--ttl", "60"]
    )
    assert result.exit_code == 0, result.output
    p = principal_from_token(result.stdout.strip(), JWT_SECRET)
    assert (p.user, p.name, p.roles) == ("alice", "Alice", frozenset({"creator"}))


def test_cli_token_refuses_a_bad_user() -> None:
    result = CliRunner().invoke(cli, ["token", "bad user"])
    assert result.exit_code == 2
    assert "user" in result.output


@pytest.mark.parametrize("command", ["migrate", "persist", "audit"])
def test_cli_persister_commands_need_their_urls(
    command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    result = CliRunner().invoke(cli, [command])
    assert result.exit_code == 2
    assert "_URL" in result.output


def test_cli_migrate_then_audit_an_empty_deployment(
    monkeypatch: pytest.MonkeyPatch, redis_url: str, db_url: str, key_prefix: str
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("DATABASE_URL", db_url)  # a database of its own: the audit reads it all
    monkeypatch.setenv("GIFTING_KEY_PREFIX", key_prefix)
    migrated = CliRunner().invoke(cli, ["migrate"])
    assert migrated.exit_code == 0, migrated.output
    audited = CliRunner().invoke(cli, ["audit"])
    assert audited.exit_code == 0, audited.output


def test_cli_serve_refuses_default_secrets_outside_dev(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GIFTING_JWT_SECRET", "GIFTING_WEBHOOK_SECRET", "GIFTING_DEV"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(cli, ["serve", "--port", "0"])
    assert result.exit_code == 2
    assert "GIFTING_JWT_SECRET" in result.output


def test_cli_prefers_the_sans_io_websocket_protocol() -> None:
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

    from gifting.hub.uvicorn_ws import HubWebSocketProtocol

    assert _ws_protocol() is HubWebSocketProtocol
    assert issubclass(HubWebSocketProtocol, WebSocketsSansIOProtocol)


def test_log_lines_hide_tokens_and_overlay_keys() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("1.2.3.4:5", "GET", "/v1/ws/viewer?stream=s1&token=eyJhbGci.x.y", "1.1", 101),
        None,
    )
    assert RedactSecrets().filter(record)
    assert record.getMessage() == '1.2.3.4:5 - "GET /v1/ws/viewer?stream=s1&token=*** HTTP/1.1" 101'
    record = logging.LogRecord(
        "uvicorn.error", logging.INFO, __file__, 1, "%s", ("/overlay/s1?key=SECRET&since=5",), None
    )
    RedactSecrets().filter(record)
    assert record.getMessage() == "/overlay/s1?key=***&since=5"
    config = log_config()  # not applied here: it would take the gifting loggers from caplog
    assert config["filters"]["redact"]["()"] == "gifting.logs.RedactSecrets"
    assert all(h["filters"] == ["redact"] for h in config["handlers"].values())
    assert "gifting" in config["loggers"]


def test_a_client_fault_is_a_one_line_warning_not_an_error() -> None:
    try:
        b"\xff".decode()
    except UnicodeDecodeError:
        record = logging.LogRecord(
            "uvicorn.error", logging.ERROR, __file__, 1,
            "Invalid UTF-8 sequence received from client.", None, sys.exc_info(),
        )  # fmt: skip
    assert ClientFaultsAsWarnings().filter(record)
    assert (record.levelno, record.levelname, record.exc_info) == (logging.WARNING, "WARNING", None)
    other = logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1, "boom", None, None)
    assert ClientFaultsAsWarnings().filter(other)
    assert other.levelno == logging.ERROR


def test_the_app_itself_hides_tokens_in_uvicorn_lines(caplog: pytest.LogCaptureFixture) -> None:
    """`uvicorn --factory gifting.app:create_app` gets no log_config from us: the app
    puts the filter on uvicorn's loggers when it is built."""
    create_app(Settings(GIFTING_DEV=True), extensions=[])
    caplog.set_level(logging.INFO, logger="uvicorn.access")
    with caplog.at_level(logging.INFO, logger="uvicorn.error"):
        logging.getLogger("uvicorn.error").info(
            '%s - "WebSocket %s" [accepted]', "1.2.3.4:5", "/v1/ws/viewer?stream=s1&token=eyJ.x.y"
        )
        logging.getLogger("uvicorn.access").info(
            '%s - "%s %s HTTP/%s" %d', "1.2.3.4:5", "GET", "/overlay/s1?key=k3y", "1.1", 200
        )
    text = caplog.text
    assert "eyJ.x.y" not in text and "k3y" not in text
    assert "token=***" in text and "key=***" in text
