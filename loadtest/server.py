"""The server under test: started for the run, or one already running.

:func:`target` is an async context manager that yields a :class:`Target`:
its URLs, the secrets to mint tokens and sign webhooks, where its Redis and
PostgreSQL are (for the checks), and its processes by role for CPU figures.

By default it starts a private Redis and PostgreSQL
(:class:`gifting.embedded.EmbeddedServers`) in a temp folder, then
``gifting serve --workers N`` as a subprocess with high rate limits, the
persister in-process (``GIFTING_PERSISTER_IN_PROCESS=1``) or as a separate
``gifting persist``; everything is stopped on the way out. It never reads
``REDIS_URL`` / ``DATABASE_URL`` from the environment unless it targets a
running server (``url``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import httpx
import psutil

from gifting.embedded import EmbeddedServers, free_port
from loadtest.config import ServerOptions
from loadtest.stats import ProcessSource, tree

__all__ = ["ConfigError", "Target", "target"]

READY_TIMEOUT_S: Final = 60.0
STOP_TIMEOUT_S: Final = 20.0
#: Rate limits high enough that a storm is never throttled (a viewer sends a lot).
HIGH_RATE: Final = "1000000"
HIGH_CAP: Final = "100000"
_GIFTING: Final = "from gifting.cli import main; main()"


class ConfigError(RuntimeError):
    """The run cannot start: a URL or secret is missing, or the server did not come up."""


@dataclass
class Target:
    """A server to send a storm to, and what the checks need to read it."""

    base_url: str
    redis_url: str
    database_url: str
    jwt_secret: str
    webhook_secret: str
    key_prefix: str
    workdir: Path | None
    #: role -> its live processes (server, persister, redis, postgres)
    processes: dict[str, ProcessSource] = field(default_factory=dict)
    #: the processes that run the app (uvicorn workers), for py-spy
    app_pids: list[int] = field(default_factory=list)
    description: str = ""

    @property
    def ws_url(self) -> str:
        """``ws://host:port``."""
        return "ws" + self.base_url.removeprefix("http")


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


async def _wait_ready(base_url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    async with httpx.AsyncClient(base_url=base_url, timeout=2.0) as client:
        while True:
            if proc.poll() is not None:
                raise ConfigError(f"gifting serve exited with {proc.returncode}:\n{_tail(log)}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get("/readyz")).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise ConfigError(
                    f"gifting serve was not ready in {READY_TIMEOUT_S}s:\n{_tail(log)}"
                )
            await asyncio.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def _external(opts: ServerOptions) -> Target:
    need = {
        "REDIS_URL": opts.redis_url or os.environ.get("REDIS_URL"),
        "DATABASE_URL": opts.database_url or os.environ.get("DATABASE_URL"),
        "GIFTING_JWT_SECRET": opts.jwt_secret or os.environ.get("GIFTING_JWT_SECRET"),
        "GIFTING_WEBHOOK_SECRET": opts.webhook_secret or os.environ.get("GIFTING_WEBHOOK_SECRET"),
    }
    missing = [name for name, value in need.items() if not value]
    if missing or not opts.url:
        raise ConfigError(
            f"--url needs {', '.join(missing)} (to set up viewers and check the results)"
        )
    redis_url, database_url, jwt, hook = (str(need[name]) for name in need)
    pids = list(opts.server_pids)
    return Target(
        base_url=opts.url.rstrip("/"), redis_url=redis_url, database_url=database_url,
        jwt_secret=jwt, webhook_secret=hook, key_prefix=opts.key_prefix, workdir=None,
        processes={"server": lambda: [p for pid in pids for p in tree(pid)]},
        app_pids=pids, description=f"running server at {opts.url}",
    )  # fmt: skip


def _spawn(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """``gifting ARGS`` in its own session, output to ``log_path``."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-c", _GIFTING, *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def _app_pids(serve: subprocess.Popen[bytes], workers: int) -> list[int]:
    """The processes that run the app: the serve process, or its workers."""
    if workers <= 1:
        return [serve.pid]
    try:
        kids = psutil.Process(serve.pid).children()
    except psutil.Error:
        return [serve.pid]
    return [k.pid for k in kids if "python" in k.name().lower()] or [serve.pid]


@contextlib.asynccontextmanager
async def target(opts: ServerOptions) -> AsyncIterator[Target]:
    """The server of a run (see the module docstring); stops what it started."""
    if opts.external:
        yield _external(opts)
        return
    workdir = Path(tempfile.mkdtemp(prefix="gifting-storm-"))
    embedded: EmbeddedServers | None = None
    procs: list[tuple[subprocess.Popen[bytes], signal.Signals]] = []
    try:
        if opts.redis_url and opts.database_url:
            redis_url, database_url = opts.redis_url, opts.database_url
            where = "the given Redis and PostgreSQL"
        else:
            embedded = EmbeddedServers(workdir / "data", appendfsync=opts.appendfsync)
            await asyncio.to_thread(embedded.start)
            redis_url, database_url = embedded.redis_url, embedded.database_url
            where = f"private Redis (appendfsync {opts.appendfsync}) and PostgreSQL"
        jwt, hook = secrets.token_hex(32), secrets.token_hex(32)
        port = free_port()
        env = {
            **os.environ,
            "REDIS_URL": redis_url, "DATABASE_URL": database_url,
            "GIFTING_JWT_SECRET": jwt, "GIFTING_WEBHOOK_SECRET": hook,
            "GIFTING_KEY_PREFIX": opts.key_prefix, "GIFTING_DATA_DIR": str(workdir / "var"),
            "GIFTING_RATE_PER_S": HIGH_RATE, "GIFTING_RATE_BURST": HIGH_RATE,
            # Every generated client comes from 127.0.0.1, fan-out benches open
            # hundreds of overlays of one stream: no connection caps either.
            "GIFTING_MAX_CONNECTIONS_PER_ADDRESS": HIGH_CAP,
            "GIFTING_MAX_CONNECTIONS_PER_OVERLAY": HIGH_CAP,
            "GIFTING_MAX_CONNECTIONS_PER_USER": HIGH_CAP,
            "GIFTING_PERSISTER_IN_PROCESS": "1" if opts.persister == "in-process" else "0",
            "GIFTING_DEV": "0",
            **opts.env,
        }  # fmt: skip
        serve_log = workdir / "serve.log"
        serve = _spawn(
            ["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(opts.workers)],
            env,
            serve_log,
        )
        procs.append((serve, signal.SIGINT))
        persist: subprocess.Popen[bytes] | None = None
        if opts.persister == "separate":
            persist = _spawn(["persist"], env, workdir / "persist.log")
            procs.append((persist, signal.SIGTERM))
        base_url = f"http://127.0.0.1:{port}"
        await _wait_ready(base_url, serve, serve_log)
        processes: dict[str, ProcessSource] = {"server": lambda: tree(serve.pid)}
        if persist is not None:
            processes["persister"] = lambda: tree(persist.pid)
        if embedded is not None:
            r, pg = embedded.redis, embedded.postgres
            processes["redis"] = lambda: tree(r.pid) if r.pid else []
            processes["postgres"] = lambda: tree(pg.pid) if pg.pid else []
        persister = "in-process" if persist is None else "separate process"
        yield Target(
            base_url=base_url, redis_url=redis_url, database_url=database_url,
            jwt_secret=jwt, webhook_secret=hook, key_prefix=opts.key_prefix, workdir=workdir,
            processes=processes, app_pids=_app_pids(serve, opts.workers),
            description=(f"gifting serve --workers {opts.workers} (persister {persister}) "
                         f"on {where}"),
        )  # fmt: skip
    finally:
        for proc, sig in reversed(procs):
            await asyncio.to_thread(_stop, proc, sig)
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
        if opts.keep_dir:
            sys.stderr.write(f"storm: server files kept in {workdir}\n")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
