"""The child-process toolkit both private servers stand on.

Pid checks that see through zombies and recycled pids, stopping an orphan a
dead app left behind, killing a whole process tree at once, an exclusive lock
per data folder, the tail of a log, a free port, and ``_ChildServer``: the
shared lifecycle (own session, fixed port once chosen, ``kill`` / ``restart``,
retry on an address clash). Nothing here knows Redis or PostgreSQL.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["HOST", "EmbeddedError", "free_port"]

HOST = "127.0.0.1"
_PORT_ATTEMPTS = 5
_POLL_S = 0.02


class EmbeddedError(RuntimeError):
    """A private server could not be started or stopped."""


def free_port(host: str = HOST) -> int:
    """Return a TCP port that was free on ``host`` a moment ago (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def owner_secret(path: Path) -> str:
    """The secret kept in ``path`` (mode 0600), made on first use: 64 random hex digits.

    The embedded servers' password: only the owner of the data folder (and
    root) can read it, so only they can connect.
    """
    try:
        secret = path.read_text().strip()
    except FileNotFoundError:
        secret = ""
    if len(secret) >= 32:
        return secret
    secret = secrets.token_hex(32)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    write_private(tmp, secret)
    os.replace(tmp, path)
    return secret


def write_private(path: Path, text: str) -> None:
    """Write ``path`` readable and writable by the owner only (it may hold a secret)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
    finally:
        os.close(fd)


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
