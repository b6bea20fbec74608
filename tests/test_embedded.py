"""The private servers are real, durable, and leave nothing running behind them."""

from __future__ import annotations

import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import asyncpg
import pytest
import redis as redis_sync
from redis import exceptions as redis_exceptions
from redis.asyncio import Redis

from gifting.embedded import EmbeddedError, EmbeddedPostgres, EmbeddedRedis, EmbeddedServers


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def _children(pid: int) -> list[int]:
    """Live direct children of ``pid``."""
    kids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            kids.append(int(entry.name))
    return kids


def _pid_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


# ---------------------------------------------------------------- Redis


def test_redis_starts_and_answers(private_redis: EmbeddedRedis) -> None:
    password = private_redis.password
    assert private_redis.url == f"redis://:{password}@127.0.0.1:{private_redis.port}/0"
    client = redis_sync.Redis.from_url(private_redis.url)
    try:
        assert client.ping()
        info = client.info("server")
        assert int(str(info["redis_version"]).split(".")[0]) >= 6
    finally:
        client.close()


def test_redis_durability_config_by_default(private_redis: EmbeddedRedis) -> None:
    client = redis_sync.Redis.from_url(private_redis.url, decode_responses=True)
    try:
        assert client.config_get("appendfsync") == {"appendfsync": "always"}
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    finally:
        client.close()


def test_redis_everysec_is_configurable(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path, appendfsync="everysec")
    server.start()
    try:
        client = redis_sync.Redis.from_url(server.url, decode_responses=True)
        assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
        client.close()
    finally:
        server.stop()


async def test_redis_acked_write_survives_sigkill(private_redis: EmbeddedRedis) -> None:
    port = private_redis.port
    client = Redis.from_url(private_redis.url)
    await client.set("wallet:alice", b"4210")
    await client.aclose()

    private_redis.kill()
    assert not private_redis.running
    private_redis.restart()

    assert private_redis.port == port
    client = Redis.from_url(private_redis.url)
    try:
        assert await client.get("wallet:alice") == b"4210"
    finally:
        await client.aclose()


def test_redis_stop_leaves_no_process(private_redis: EmbeddedRedis) -> None:
    server = private_redis
    pid = server.pid
    assert pid is not None
    assert _group_members(pid) == [pid]
    server.stop()
    assert not server.running
    assert _pid_gone(pid)
    assert _group_members(pid) == []


def test_a_live_owner_keeps_its_data_dir(private_redis: EmbeddedRedis) -> None:
    with pytest.raises(EmbeddedError, match="in use"):
        EmbeddedRedis(private_redis.dir.parent).start()
    assert private_redis.running


# ---------------------------------------------------------------- PostgreSQL


async def test_postgres_committed_row_survives_sigkill(
    private_postgres: EmbeddedPostgres,
) -> None:
    port = private_postgres.port
    password = private_postgres.password
    assert private_postgres.url == f"postgresql://postgres:{password}@127.0.0.1:{port}/gifting"
    conn = await asyncpg.connect(private_postgres.url)
    try:
        assert await conn.fetchval("SELECT 1") == 1
        assert await conn.fetchval("SHOW fsync") == "on"
        await conn.execute("CREATE TABLE ledger (event text PRIMARY KEY, coins bigint)")
        await conn.execute("INSERT INTO ledger VALUES ('e-1', 5)")
    finally:
        await conn.close()

    pid = private_postgres.pid
    assert pid is not None
    workers = _children(pid)
    private_postgres.kill()
    assert not private_postgres.running
    assert all(_pid_gone(p) for p in [pid, *workers])  # a crash takes the workers too
    private_postgres.restart()

    assert private_postgres.port == port
    conn = await asyncpg.connect(private_postgres.url)
    try:
        assert await conn.fetchval("SELECT coins FROM ledger WHERE event = 'e-1'") == 5
    finally:
        await conn.close()


def test_postgres_stop_leaves_no_process(private_postgres: EmbeddedPostgres) -> None:
    server = private_postgres
    pid = server.pid
    assert pid is not None
    workers = _children(pid)  # checkpointer, walwriter, ... (each in its own session)
    assert len(workers) >= 3
    server.stop()
    assert not server.running
    assert all(_pid_gone(p) for p in [pid, *workers])
    assert not (server.pgdata / "postmaster.pid").exists()


# ---------------------------------------------------------------- both, and orphans


_ORPHAN_MAKER = textwrap.dedent(
    """
    import os, sys
    from gifting.embedded import EmbeddedServers
    servers = EmbeddedServers(sys.argv[1]).start()
    servers.postgres.psql("CREATE TABLE t (v int); INSERT INTO t VALUES (7)", "gifting")
    import redis
    redis.Redis.from_url(servers.redis_url).set("k", "v")
    print(servers.redis.pid, servers.postgres.pid, flush=True)
    os._exit(0)  # die without stopping anything, like a SIGKILLed app
    """
)


def test_servers_stop_orphans_of_a_dead_app_and_keep_data(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _ORPHAN_MAKER, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    redis_pid, pg_pid = (int(p) for p in done.stdout.split())
    assert not _pid_gone(redis_pid)  # orphans still running
    assert not _pid_gone(pg_pid)

    with EmbeddedServers(tmp_path) as servers:
        assert _pid_gone(redis_pid)
        assert _pid_gone(pg_pid)
        client = redis_sync.Redis.from_url(servers.redis_url)
        try:
            assert client.get("k") == b"v"
        finally:
            client.close()
        assert servers.postgres.psql("SELECT v FROM t", "gifting").strip() == "7"
        assert servers.database_url.endswith("/gifting")
        pids = [servers.redis.pid, servers.postgres.pid]

    assert all(pid is not None and _pid_gone(pid) for pid in pids)


# ---------------------------------------------------------------- the shared fixtures


_used_prefixes: list[str] = []


async def test_redis_fixture_gives_a_client_and_a_prefix(redis: Redis, key_prefix: str) -> None:
    assert key_prefix.startswith("t")
    assert len(key_prefix) == 9
    await redis.set(f"{key_prefix}:{{w07}}:wallet:alice", b"1")
    await redis.set(f"{{{key_prefix}}}:x", b"2")
    assert await redis.get(f"{key_prefix}:{{w07}}:wallet:alice") == b"1"
    _used_prefixes.append(key_prefix)


async def test_redis_fixture_deleted_the_previous_tests_keys(redis: Redis, key_prefix: str) -> None:
    # Relies on file order: the test above ran first and left two keys behind.
    assert _used_prefixes
    assert key_prefix not in _used_prefixes
    previous = _used_prefixes[0]
    assert [k async for k in redis.scan_iter(match=f"{previous}:*")] == []
    assert [k async for k in redis.scan_iter(match=f"{{{previous}*")] == []


async def test_database_url_is_a_fresh_session_database(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        name = await conn.fetchval("SELECT current_database()")
        assert name.startswith("gifting_test_")
    finally:
        await conn.close()


def test_a_taken_fixed_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(EmbeddedError, match="is taken"):
            EmbeddedRedis(tmp_path, port=port).start()
        with pytest.raises(EmbeddedError, match="is taken"):
            EmbeddedPostgres(tmp_path, port=port).start()


async def test_embedded_servers_let_in_only_the_owner_of_the_data_folder(tmp_path: Path) -> None:
    """A random secret under the owner-only data folder: no password, no entry."""
    with EmbeddedServers(tmp_path) as servers:
        for secret in (tmp_path / "redis" / "password", tmp_path / "postgres.password"):
            assert stat.S_IMODE(secret.stat().st_mode) == 0o600
            assert len(secret.read_text()) == 64
        assert stat.S_IMODE((tmp_path / "redis" / "redis.conf").stat().st_mode) == 0o600
        port = servers.redis.port
        anonymous = redis_sync.Redis(host="127.0.0.1", port=port)
        with pytest.raises(redis_exceptions.AuthenticationError):
            anonymous.set("k", "v")
        anonymous.close()
        guessed = redis_sync.Redis(host="127.0.0.1", port=port, password="guess")
        with pytest.raises(redis_exceptions.AuthenticationError):
            guessed.ping()
        guessed.close()
        assert redis_sync.Redis.from_url(servers.redis_url).ping()
        pg_port = servers.postgres.port
        for url in (
            f"postgresql://postgres@127.0.0.1:{pg_port}/gifting",
            f"postgresql://postgres:guess@127.0.0.1:{pg_port}/gifting",
        ):
            with pytest.raises(asyncpg.InvalidPasswordError):
                await asyncpg.connect(url)
        conn = await asyncpg.connect(servers.database_url)
        assert await conn.fetchval("SELECT 1") == 1
        await conn.close()
