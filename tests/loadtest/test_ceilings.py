"""The ceilings and peers of the benchmark run, in their quick mode, and count right.

These are not performance tests (no figure is compared with a threshold):
each measurement runs for about a second and must produce positive figures,
meter the CPU of both sides, and — for the fan-out peers — deliver every
event emitted to every client. Only the Node peer may be skipped, and only
when its npm packages cannot be installed here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gifting.embedded import EmbeddedPostgres
from loadtest.ceilings.broadcast import broadcast_ceiling
from loadtest.ceilings.clients import FanoutFigures
from loadtest.ceilings.echo import echo_ceiling
from loadtest.ceilings.pg_insert import pg_insert_ceiling
from loadtest.ceilings.redis_spend import redis_spend_ceiling, spend_command
from loadtest.peers.pg_debit import pg_debit_peer
from loadtest.peers.socketio_node import NodeUnavailable, ensure_node_server, socketio_node_fanout
from loadtest.peers.socketio_py import socketio_py_fanout

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def pg_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One private PostgreSQL for the PostgreSQL measurements (each makes its own database)."""
    server = EmbeddedPostgres(tmp_path_factory.mktemp("ceilings-pg"))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def _check_fanout(f: FanoutFigures) -> None:
    assert f.available, f.reason
    assert f.deliveries_per_s > 0
    assert f.events_sent > 0
    assert f.complete, f.summary()
    assert f.delivered == f.expected == f.events_sent * f.connections
    assert f.min_per_connection == f.max_per_connection == f.events_sent
    assert f.server_cpu_s > 0
    assert f.generator_cpu_s > 0
    assert f.processes >= 2


def test_echo_ceiling_answers_every_message() -> None:
    f = echo_ceiling(mode="quick", connections=40)
    assert f.messages_per_s > 0
    assert f.messages == f.latency.samples > 0
    assert f.errors == 0
    assert 0 < f.latency.p50_ms <= f.latency.p99_ms <= f.latency.max_ms
    assert f.server_cpu_s > 0
    assert f.generator_cpu_s > 0
    assert f.processes >= 2


def test_broadcast_ceiling_delivers_every_frame_to_every_client() -> None:
    _check_fanout(broadcast_ceiling(mode="quick", connections=60))


def test_broadcast_ceiling_at_a_rate() -> None:
    f = broadcast_ceiling(mode="quick", connections=20, rate=200.0)
    _check_fanout(f)
    assert f.events_per_s == pytest.approx(200.0, rel=0.25)


def test_redis_spend_command_is_the_ledgers_spend_with_fresh_ids() -> None:
    cmd = spend_command("0" * 40)
    # wallet, result, outbox, combo, gate, the two block keys, the shard's deadlines
    assert cmd[:3] == ["EVALSHA", "0" * 40, "8"]
    assert "__rand_int__" in cmd[4]  # the spend-result key: a fresh spend each call
    assert cmd[14].endswith("__rand_int__")  # ARGV[4], the event id
    assert cmd[3].endswith(":wallet:bench-viewer-1")
    # each command draws its ids under its own nonce (redis-benchmark's seeds can repeat)
    assert spend_command("0" * 40)[4] != cmd[4]


def test_redis_spend_ceiling_debits_for_real(tmp_path: Path) -> None:
    f = redis_spend_ceiling(mode="quick", data_dir=tmp_path, duration_s=0.5)
    for run in (f.pipelined, f.unpipelined):
        assert run.spends_per_s > 0
        # every call debited (redis-benchmark may overshoot -n by a few in-flight calls;
        # a random id may repeat once in a while and replay instead)
        assert run.fresh_spends >= run.calls * 0.99, run.summary()
        assert run.server_cpu_s > 0
        assert run.generator_cpu_s > 0
        assert run.p99_ms >= run.p50_ms > 0
    assert f.pipelined.pipeline > 1
    assert f.unpipelined.pipeline == 1


def test_pg_insert_ceiling_inserts_batches(pg_url: str) -> None:
    f = pg_insert_ceiling(mode="quick", database_url=pg_url)
    assert f.batches > 0
    assert f.events_per_s > 0
    assert f.rows_per_s == pytest.approx(3 * f.events_per_s)
    assert f.server_cpu_s > 0
    assert f.generator_cpu_s > 0


def test_pg_debit_peer_keeps_its_ledger_consistent(pg_url: str) -> None:
    f = pg_debit_peer(mode="quick", database_url=pg_url, connections=8)
    assert f.spends > 0
    assert f.spends_per_s > 0
    assert f.refused == 0
    assert f.consistent
    assert f.server_cpu_s > 0
    assert f.generator_cpu_s > 0
    assert 0 < f.latency.p50_ms <= f.latency.p99_ms


def test_python_socketio_delivers_every_event_to_the_room() -> None:
    _check_fanout(socketio_py_fanout(mode="quick", connections=60))


def test_node_socketio_delivers_every_event_to_the_room() -> None:
    try:
        ensure_node_server(timeout_s=240)
    except NodeUnavailable as exc:
        pytest.skip(f"the Node socket.io peer cannot be installed here: {exc}")
    _check_fanout(socketio_node_fanout(mode="quick", connections=60))


def test_node_peer_without_node_is_marked_unavailable_not_faked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("shutil.which", lambda _name: None)
    f = socketio_node_fanout(mode="quick")
    assert not f.available
    assert "node is not on PATH" in f.reason
    assert f.deliveries_per_s == 0
    assert "unavailable" in f.summary()
