"""``gifting serve`` on the embedded default, stopped as a service manager stops it."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect as ws_connect

from gifting.api.signatures import sign
from gifting.config import Settings
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


def _a_silent_connection_is_cut(port: int) -> None:
    """`gifting serve` times out a request whose headers never come (slowloris): 408."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(b"GET /v1/ws/viewer HTTP/1.1\r\nHost: x\r\n")  # and no more
        answer = b""
        while chunk := sock.recv(1024):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408"), answer


def _gifting(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from gifting.cli import main; main()", *args],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _send_gifts(base: str, env: dict[str, str]) -> None:
    """A purchase and three roses through the running server, as a user would."""
    viewer = _gifting("token", "alice", env=env).stdout.strip()
    creator = _gifting("token", "carol", "--creator", env=env).stdout.strip()
    body = json.dumps({
        "purchase_id": "p-1", "user": "alice", "package": "coins_70", "amount": 99,
        "currency": "USD",
    }).encode()  # fmt: skip
    secret = Settings().webhook_secret  # the dev default, as `make run` uses
    with httpx.Client(base_url=base, timeout=10) as http:
        answer = http.post(
            "/v1/webhooks/purchases", content=body,
            headers={"X-Gifting-Signature": sign(secret, body)},
        )  # fmt: skip
        assert answer.status_code == 200, answer.text
        answer = http.post(
            "/v1/streams", json={"title": "t"}, headers={"Authorization": f"Bearer {creator}"}
        )
        stream = answer.json()["stream"]
    url = f"{base.replace('http', 'ws')}/v1/ws/viewer?stream={stream}&token={viewer}"
    with ws_connect(url) as ws:
        ws.send(json.dumps({"op": "gift", "id": "c-1", "gift": "rose", "count": 3}))
        while (reply := json.loads(ws.recv(timeout=10)))["op"] != "ack":
            assert reply["op"] != "error", reply


def test_gifting_audit_finds_the_embedded_servers_of_a_running_serve(tmp_path: Path) -> None:
    """`gifting audit` beside `make run`: no URLs set, the data folder's record is used."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.update(GIFTING_DEV="1", GIFTING_DATA_DIR=str(tmp_path), GIFTING_HANDSHAKE_TIMEOUT_S="1")
    port = free_port()
    proc = subprocess.Popen(
        [*SERVE, "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _ready(port, proc)
        _a_silent_connection_is_cut(port)
        record = tmp_path / "servers.json"
        assert stat.S_IMODE(record.stat().st_mode) == 0o600
        _send_gifts(f"http://127.0.0.1:{port}", env)
        audit = _gifting("audit", env=env)
        assert audit.returncode == 0, audit.stdout + audit.stderr
        assert audit.stdout.startswith("gifting audit: OK")
        received = re.search(r"coins received by creators\s+(\d+)", audit.stdout)
        assert received is not None and int(received[1]) == 3, audit.stdout
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        assert not record.exists(), "the record outlived gifting serve"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    audit = _gifting("audit", env=env)
    assert audit.returncode == 2
    assert "no `gifting serve` is running" in audit.stderr
    assert str(tmp_path) in audit.stderr
