"""The ``gifting`` command: ``serve | token | migrate | persist | audit``.

``gifting serve`` runs the app under uvicorn (httptools, the sans-I/O
websockets protocol and uvloop when installed). With no ``REDIS_URL`` /
``DATABASE_URL`` it starts private servers under ``GIFTING_DATA_DIR`` first,
in this parent process; the workers (and ``gifting audit | persist |
migrate`` in another terminal) find them through the record in the data
folder (:mod:`gifting.embedded.launch`), so ``--workers 4`` shares one Redis
and one PostgreSQL. Settings are read once per process and never written
back to the environment.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import signal
from contextlib import ExitStack
from typing import Annotated, Final

import typer

from gifting.auth import CREATOR, MAX_TTL_S, mint_token
from gifting.config import Settings, SettingsError, check_secrets, load_settings
from gifting.core.errors import BadRequest
from gifting.embedded.launch import attach, attach_or_start, redacted
from gifting.logs import log_config

__all__ = ["app", "main"]

log = logging.getLogger("gifting.cli")

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8000

app = typer.Typer(
    help="Live-stream gifting server: coins, gifts, overlays, diamonds and an audited ledger.",
    no_args_is_help=True,
    add_completion=False,
)


def _default_port() -> int:
    raw = os.environ.get("PORT", "")
    return int(raw) if raw.isdigit() and 0 < int(raw) < 65536 else DEFAULT_PORT


def _ws_protocol() -> str | type[asyncio.Protocol]:
    """uvicorn's ``websockets-sansio`` when it has it (faster fan-out), else ``websockets``.

    The sans-I/O one in the subclass that answers every refused handshake
    (gifting/hub/uvicorn_ws.py).
    """
    from uvicorn.config import WS_PROTOCOLS

    if "websockets-sansio" not in WS_PROTOCOLS:
        return "websockets"
    from gifting.hub.uvicorn_ws import HubWebSocketProtocol

    return HubWebSocketProtocol


def _loop() -> str:
    return "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"


def _settings() -> Settings:
    """The environment's settings, or exit 2 naming each setting out of its bounds."""
    try:
        return load_settings()
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = DEFAULT_HOST,
    port: Annotated[
        int | None, typer.Option(help="Port (default: $PORT, else 8000).", min=0, max=65535)
    ] = None,
    workers: Annotated[int, typer.Option(help="Worker processes.", min=1, max=256)] = 1,
) -> None:
    """Serve the HTTP API, WebSockets and overlay pages."""
    import uvicorn

    from gifting.serving import HeaderDeadlineProtocol

    settings = _settings()
    try:
        check_secrets(settings)
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    port = _default_port() if port is None else port
    # uvicorn re-raises the signal that stopped it once it is done; with the
    # default SIGTERM action that would kill this process before the embedded
    # servers are stopped. Turned into SystemExit, the ExitStack unwinds.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    with ExitStack() as stack:
        # Started here, before the workers, which find them in the data folder's record.
        attached = attach_or_start(settings, stack)
        if attached.redis is not None or attached.postgres is not None:
            typer.echo(
                f"embedded servers under {settings.data_dir.resolve()}: redis "
                f"{redacted(attached.settings.redis_url)}, "
                f"postgresql {redacted(attached.settings.database_url)}",
                err=True,
            )
        shown_host = f"[{host}]" if ":" in host else host
        typer.echo(f"gifting serving on http://{shown_host}:{port} ({workers} worker(s))", err=True)
        if settings.dev:
            typer.echo(
                "dev mode: mint a token with `gifting token alice --creator`, "
                f"or open http://{shown_host}:{port}/ for the demo page",
                err=True,
            )
        uvicorn.run(
            "gifting.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            # httptools with a deadline on a request's headers (gifting/serving.py).
            http=HeaderDeadlineProtocol,
            ws=_ws_protocol(),
            loop=_loop(),
            # A frame over the limit is refused by uvicorn with close code 1009.
            ws_max_size=settings.max_frame_bytes,
            # Heartbeat: a ping every heartbeat_s; no pong within idle_timeout_s closes (1011).
            ws_ping_interval=settings.heartbeat_s,
            ws_ping_timeout=settings.idle_timeout_s,
            # Room frames are small and sent to many: compressing each costs more
            # CPU than it saves bytes on a LAN (12% of a gift storm's profile).
            ws_per_message_deflate=False,
            lifespan="on",
            timeout_graceful_shutdown=10,
            proxy_headers=True,
            forwarded_allow_ips=settings.forwarded_allow_ips,
            log_config=log_config(json_lines=settings.log_format == "json"),
        )


@app.command()
def token(
    user: Annotated[str, typer.Argument(help="User id (the token's sub).")],
    name: Annotated[str | None, typer.Option(help="Display name (default: the user id).")] = None,
    creator: Annotated[bool, typer.Option("--creator", help="Grant the creator role.")] = False,
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds.", min=1, max=MAX_TTL_S)] = 24
    * 3600,
) -> None:
    """Print a bearer token for USER signed with GIFTING_JWT_SECRET."""
    settings = _settings()
    try:
        signed = mint_token(settings.jwt_secret, user, name, [CREATOR] if creator else [], ttl)
    except BadRequest as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None
    typer.echo(signed)


def _run_persister_command(command: str, shards: list[int] | None = None) -> int:
    """Run a persister command with the environment's settings; 2 on a configuration error."""
    from gifting.persister.service import (
        ConfigurationError,
        run_audit_cli,
        run_migrate,
        run_persister,
    )

    settings = attach(_settings())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        if command == "persist":
            asyncio.run(run_persister(settings, shards=shards))
            return 0
        if command == "migrate":
            applied = asyncio.run(run_migrate(settings))
            typer.echo(f"applied migrations: {applied or 'none (up to date)'}")
            return 0
        return asyncio.run(run_audit_cli(settings))
    except ConfigurationError as exc:
        typer.echo(f"error: {exc}", err=True)
        return 2


@app.command()
def migrate() -> None:
    """Apply the PostgreSQL migrations (DATABASE_URL)."""
    raise typer.Exit(_run_persister_command("migrate"))


def _shard_list(raw: str | None) -> list[int] | None:
    if raw is None:
        return None
    try:
        shards = sorted({int(part) for part in raw.split(",") if part.strip()})
    except ValueError:
        raise typer.BadParameter("a comma-separated list of shard numbers, like 0,1,2") from None
    if not shards:
        raise typer.BadParameter("name at least one shard")
    return shards


@app.command()
def persist(
    shards: Annotated[
        str | None,
        typer.Option(
            help="Consume only these outbox shards (comma-separated, like 0,1,2). By default "
            "every `gifting persist` shares the shards with the others (by leases on a cluster)."
        ),
    ] = None,
) -> None:
    """Run the persister: outbox streams -> PostgreSQL ledger (REDIS_URL, DATABASE_URL)."""
    raise typer.Exit(_run_persister_command("persist", _shard_list(shards)))


@app.command()
def audit() -> None:
    """Check money conservation, and Redis against the PostgreSQL ledger; non-zero on drift."""
    raise typer.Exit(_run_persister_command("audit"))


def main() -> None:
    """Entry point of the ``gifting`` command."""
    app()
