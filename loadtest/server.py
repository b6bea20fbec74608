"""The server under test: started for the run, or one already running.

:func:`target` is an async context manager that yields a :class:`Target`:
its URLs, the secrets to mint tokens and sign webhooks, where its Redis and
PostgreSQL are (for the checks), and its processes by role for CPU figures.

By default it starts a private Redis and PostgreSQL
(:class:`gifting.embedded.EmbeddedServers`) in a temp folder — or, with
``cluster``, a private 3-master Redis Cluster and a PostgreSQL — then
``gifting serve --workers N`` as a subprocess (``hubs`` of them, each on its
own port) with high rate limits, the persister in-process
(``GIFTING_PERSISTER_IN_PROCESS=1``) or as ``persisters`` separate
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

from gifting.embedded import EmbeddedPostgres, EmbeddedServers, free_port
from gifting.embedded.redis_cluster import EmbeddedRedisCluster
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
    #: every hub's base URL (``base_url`` is the first); generators split between them
    base_urls: list[str] = field(default_factory=list)

    def hub_url(self, index: int) -> str:
        """The base URL of the hub that generator ``index`` talks to (round robin)."""
        urls = self.base_urls or [self.base_url]
        return urls[index % len(urls)]

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
    cluster: EmbeddedRedisCluster | None = None
    postgres: EmbeddedPostgres | None = None
    procs: list[tuple[subprocess.Popen[bytes], signal.Signals]] = []
    try:
        if opts.redis_url and opts.database_url:
            redis_url, database_url = opts.redis_url, opts.database_url
            where = "the given Redis and PostgreSQL"
        elif opts.cluster:
            cluster = EmbeddedRedisCluster(workdir / "cluster", appendfsync=opts.appendfsync)
            postgres = EmbeddedPostgres(workdir / "data")
            await asyncio.to_thread(cluster.start)
            await asyncio.to_thread(postgres.start)
            redis_url, database_url = cluster.url, postgres.url
            where = (f"a private Redis Cluster of {cluster.masters} masters "
                     f"(appendfsync {opts.appendfsync}) and PostgreSQL")  # fmt: skip
        else:
            embedded = EmbeddedServers(workdir / "data", appendfsync=opts.appendfsync)
            await asyncio.to_thread(embedded.start)
            redis_url, database_url = embedded.redis_url, embedded.database_url
            where = f"private Redis (appendfsync {opts.appendfsync}) and PostgreSQL"
        jwt, hook = secrets.token_hex(32), secrets.token_hex(32)
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
        hubs: list[tuple[str, subprocess.Popen[bytes], Path]] = []
        for h in range(max(1, opts.hubs)):
            port = free_port()
            serve_log = workdir / f"serve{h or ''}.log"
            args = ["serve", "--host", "127.0.0.1", "--port", str(port)]
            serve = _spawn([*args, "--workers", str(opts.workers)], env, serve_log)
            procs.append((serve, signal.SIGINT))
            hubs.append((f"http://127.0.0.1:{port}", serve, serve_log))
        persists: list[subprocess.Popen[bytes]] = []
        if opts.persister == "separate":
            for n in range(max(1, opts.persisters)):
                persist = _spawn(["persist"], env, workdir / f"persist{n or ''}.log")
                procs.append((persist, signal.SIGTERM))
                persists.append(persist)
        for url, serve, serve_log in hubs:
            await _wait_ready(url, serve, serve_log)
        serves = [serve for _, serve, _ in hubs]
        processes: dict[str, ProcessSource] = {
            "server": lambda: [p for s in serves for p in tree(s.pid)]
        }
        if persists:
            processes["persister"] = lambda: [p for s in persists for p in tree(s.pid)]
        if embedded is not None:
            r, pg = embedded.redis, embedded.postgres
            processes["redis"] = lambda: tree(r.pid) if r.pid else []
            processes["postgres"] = lambda: tree(pg.pid) if pg.pid else []
        if cluster is not None and postgres is not None:
            nodes, pg_server = cluster.nodes, postgres
            processes["redis"] = lambda: [p for n in nodes if n.pid for p in tree(n.pid)]
            processes["postgres"] = lambda: tree(pg_server.pid) if pg_server.pid else []
        persister = "in-process" if not persists else f"{len(persists)} separate process(es)"
        hub_note = f"{len(hubs)} x " if len(hubs) > 1 else ""
        yield Target(
            base_url=hubs[0][0], redis_url=redis_url, database_url=database_url,
            jwt_secret=jwt, webhook_secret=hook, key_prefix=opts.key_prefix, workdir=workdir,
            processes=processes,
            app_pids=[pid for s in serves for pid in _app_pids(s, opts.workers)],
            description=(f"{hub_note}gifting serve --workers {opts.workers} "
                         f"(persister {persister}) on {where}"),
            base_urls=[url for url, _, _ in hubs],
        )  # fmt: skip
    finally:
        for proc, sig in reversed(procs):
            await asyncio.to_thread(_stop, proc, sig)
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
        if cluster is not None:
            await asyncio.to_thread(cluster.stop)
        if postgres is not None:
            await asyncio.to_thread(postgres.stop)
        if opts.keep_dir:
            sys.stderr.write(f"storm: server files kept in {workdir}\n")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
