"""``gifting serve`` on the embedded default, stopped as a service manager stops it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.hub.conftest import free_port

SERVE = [sys.executable, "-c", "from gifting.cli import main; main()", "serve"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    return state != "Z"


def _ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "gifting serve exited at start"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("gifting serve did not become ready")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_stops_its_embedded_servers_on_a_signal(tmp_path: Path, sig: signal.Signals) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.update(GIFTING_DEV="1", GIFTING_DATA_DIR=str(tmp_path))
    port = free_port()
    proc = subprocess.Popen(
        [*SERVE, "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _ready(port, proc)
        redis_pid = int((tmp_path / "redis" / "redis.pid").read_text())
        pg_pid = int((tmp_path / "postgres" / "postmaster.pid").read_text().splitlines()[0])
        assert _alive(redis_pid)
        assert _alive(pg_pid)
        proc.send_signal(sig)
        proc.wait(30)
        deadline = time.monotonic() + 10
        while (_alive(redis_pid) or _alive(pg_pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(redis_pid), "the embedded Redis outlived gifting serve"
        assert not _alive(pg_pid), "the embedded PostgreSQL outlived gifting serve"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
