"""The private PostgreSQL: pgserver's binaries, run directly as our child, ``fsync=on``.

``EmbeddedPostgres`` runs ``initdb`` once per data folder (all-or-nothing, via
a side folder), then ``postgres`` itself (no ``pg_ctl``) under
``<data_dir>/postgres``; as root it runs as the ``pgserver`` account, since
PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path

from gifting.embedded.process import (
    _POLL_S,
    HOST,
    EmbeddedError,
    _AddressInUseError,
    _ChildServer,
    _owns_dir,
    _read_pid,
    _stop_orphan,
    owner_secret,
)

__all__ = ["PG_DATABASE", "PG_SYSTEM_USER", "EmbeddedPostgres"]

PG_SYSTEM_USER = "pgserver"  # the account pgserver itself uses when run as root
PG_DATABASE = "gifting"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


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


def _digest(path: Path) -> str:
    return hashlib.sha256(str(path).encode()).hexdigest()[:12]


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
        #: The ``postgres`` role's password over TCP (scram-sha-256); Unix-socket
        #: connections are trusted, but the socket sits in a folder only the
        #: server's account (and root) can enter.
        self.password = owner_secret(root / "postgres.password")
        self.socket_dir = (
            self.pgdata
            if _socket_dir_ok(self.pgdata)
            else Path(tempfile.gettempdir()) / f"gifting-pg-{_digest(self.pgdata)}"
        )

    @property
    def url(self) -> str:
        """``postgresql://postgres:PASSWORD@127.0.0.1:PORT/gifting``."""
        return self.admin_url(self.database)

    def admin_url(self, database: str = "postgres") -> str:
        """The URL of another database on this server (default: ``postgres``)."""
        return f"postgresql://postgres:{self.password}@{HOST}:{self.port}/{database}"

    def start(self) -> None:
        """initdb if needed, start ``postgres``, wait until it takes connections, create the db."""
        if self.running:
            return
        self._lock.acquire()
        user = _system_user()
        self._ensure_cluster(user)
        self._clear_stale_postmaster()
        self._start_with_port_retry()
        self._ensure_password()
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
                "-h", str(self.socket_dir), "-p", str(self.port), "-U", "postgres",
                "-d", database,
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

    def _write_hba(self, user: pwd.struct_passwd | None) -> None:
        """Password (scram) over TCP; trust only on the private Unix socket."""
        hba = self.pgdata / "pg_hba.conf"
        hba.write_text(
            "# written by gifting at every start\n"
            "local all all trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
        )
        hba.chmod(0o600)
        if self.socket_dir != self.pgdata:
            self.socket_dir.mkdir(mode=0o700, exist_ok=True)
            self.socket_dir.chmod(0o700)
        if user is not None:
            os.chown(hba, user.pw_uid, user.pw_gid)
            os.chown(self.socket_dir, user.pw_uid, user.pw_gid)

    def _ensure_password(self) -> None:
        # a hex string made by owner_secret: nothing to escape
        self.psql(f"ALTER ROLE postgres PASSWORD '{self.password}'")

    def _spawn_and_wait(self) -> None:
        user = _system_user()
        self._write_hba(user)
        socket_dir = str(self.socket_dir)
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
