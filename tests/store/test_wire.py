"""The lean Redis pipeline: RESP packing as redis-py packs it, and connections like the client's.

``pack_command`` is checked byte for byte against redis-py's own packers (the
pure-Python one and the hiredis one its connections pick). ``WirePipeline``
must reach the server the redis-py client reaches, the way it reaches it: the
same host, database and credentials, and over TLS with the same settings when
the client speaks TLS. The TLS tests run against a real ``redis-server
--tls-port`` with certificates made by ``openssl`` in a temporary folder, and
are skipped (saying why) when either cannot be had.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis._parsers import Encoder
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import Connection, SSLConnection
from redis.asyncio.sentinel import SentinelManagedConnection
from redis.connection import HiredisRespSerializer, PythonRespSerializer
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from gifting.embedded import EmbeddedError, find_redis_server
from gifting.store.wire import WirePipeline, pack_command
from gifting.store.wiring import redis_client

# No deadline: the test machine is shared, and a slow example there is load, not a
# regression.
RELAXED = settings(deadline=None)

# --------------------------------------------------------------------------- pack_command

_python_packer = PythonRespSerializer(6_000, Encoder("utf-8", "strict", False).encode)
_hiredis_packer = HiredisRespSerializer()


def redis_py_packs(*args: bytes | str | int) -> list[bytes]:
    """What redis-py sends for ``args``: its Python packer, its hiredis one, its connection's."""
    return [
        b"".join(_python_packer.pack(*args)),
        b"".join(_hiredis_packer.pack(*args)),
        b"".join(Connection().pack_command(*args)),
    ]


@pytest.mark.parametrize(
    "args",
    [
        ("PING",),
        ("GET", "k"),
        ("SET", "k", "v"),
        ("SET", b"k", b"v"),
        ("SET", "k", ""),  # an empty argument: $0
        ("SET", b"", b""),
        ("EVALSHA", "0" * 40, 2, "{u}:wallet", "{u}:outbox", 70, -1, 0, "x"),
        ("INCRBY", "k", 2**63 - 1),
        ("INCRBY", "k", -(2**63)),
        ("SET", "k", 2**100),  # ints of any size, in decimal
        ("SET", "rosé", "🌹 × 3"),  # UTF-8 on the wire; lengths in bytes, not characters
        ("SET", "k", b"\x00\xff\r\n$3\r\n"),  # binary safe: the length frames the bytes
        ("SET", "k", "x" * 100_000),  # past redis-py's buffer cut-off
        (b"EVALSHA", b"abc", b"0"),
    ],
)
def test_pack_command_matches_redis_py(args: tuple[bytes | str | int, ...]) -> None:
    ours = pack_command(args)
    assert all(ours == theirs for theirs in redis_py_packs(*args)), (ours, redis_py_packs(*args))


def test_pack_command_layout() -> None:
    assert pack_command(["SET", "k", "é"]) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n\xc3\xa9\r\n"
    assert pack_command([b"PING"]) == b"*1\r\n$4\r\nPING\r\n"
    assert pack_command(["INCRBY", "k", -5]) == b"*3\r\n$6\r\nINCRBY\r\n$1\r\nk\r\n$2\r\n-5\r\n"


def test_pack_command_sends_the_first_argument_whole() -> None:
    # redis-py splits a command name on spaces ("CONFIG GET"); the hot path never
    # needs that, so here every argument is one bulk string: pass "CONFIG", "GET".
    assert pack_command(["CONFIG GET", "x"]) == b"*2\r\n$10\r\nCONFIG GET\r\n$1\r\nx\r\n"
    assert pack_command(["CONFIG", "GET", "x"]) == b"".join(redis_py_packs("CONFIG GET", "x")[:1])


ARGS = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=64),
    st.integers(min_value=-(2**70), max_value=2**70),
)
NAMES = st.sampled_from(["EVALSHA", "SET", "GET", "EXISTS", b"HSET", "XADD"])


@RELAXED
@given(name=NAMES, args=st.lists(ARGS, max_size=12))
def test_pack_command_matches_redis_py_for_any_arguments(
    name: bytes | str, args: list[bytes | str | int]
) -> None:
    ours = pack_command([name, *args])
    for theirs in redis_py_packs(name, *args):
        assert ours == theirs


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ([], ValueError),  # Redis answers `*0` with nothing: the batch would wait out its timeout
        (["SET", "k", 1.5], TypeError),  # was sent as 1: a float near money is a bug
        (["SET", "k", 2.0], TypeError),
        (["SET", "k", True], TypeError),  # was sent as 1; redis-py refuses it too
        (["SET", "k", None], TypeError),
        (["SET", "k", [1]], TypeError),
    ],
)
def test_pack_command_refuses_what_redis_would_misread(args: list[Any], error: type) -> None:
    with pytest.raises(error):
        pack_command(args)


def test_redis_py_refuses_bools_too() -> None:
    with pytest.raises(RedisError):
        redis_py_packs("SET", "k", True)


# --------------------------------------------------------------------------- like / from_url


def test_like_a_plain_client_speaks_plain_tcp() -> None:
    client = Redis.from_url("redis://user:secret@example.internal:6380/3")
    pipe = WirePipeline.like(client)
    assert pipe.ssl_context is None
    assert pipe.params == {
        "host": "example.internal",
        "port": 6380,
        "db": 3,
        "username": "user",
        "password": "secret",
    }


def test_like_takes_the_clients_timeouts() -> None:
    # One setting bounds every Redis call: the lean pipeline answers a paused Redis
    # as late as the client it imitates, never later (it used to wait 30 s).
    client = redis_client("redis://example.internal:6380/0", timeout_s=1.5)
    assert WirePipeline.like(client).timeouts == (1.5, 1.5)
    assert WirePipeline.from_url("redis://h/0?socket_timeout=2").timeouts == (5.0, 2.0)
    assert WirePipeline.like(Redis.from_url("redis://h/0", socket_timeout=None)).timeouts[1] <= 5


def test_from_url_reads_what_redis_py_reads() -> None:
    url = "redis://:pw@10.0.0.7:7000/2"
    assert WirePipeline.from_url(url).params == WirePipeline.like(Redis.from_url(url)).params
    assert WirePipeline.from_url("unix:///run/redis.sock?db=4").params == {
        "path": "/run/redis.sock",
        "db": 4,
    }
    assert WirePipeline.from_url("unix:///run/redis.sock").ssl_context is None


def test_like_refuses_a_connection_it_cannot_imitate() -> None:
    # A sentinel-managed connection finds its master at connect time: a copy of
    # host/port would silently talk to another server.
    pool = ConnectionPool(connection_class=SentinelManagedConnection, host="sentinel")
    with pytest.raises(ValueError, match="SentinelManagedConnection"):
        WirePipeline.like(Redis(connection_pool=pool))

    class Custom(Connection):
        pass

    with pytest.raises(ValueError, match="Custom"):
        WirePipeline.like(Redis(connection_pool=ConnectionPool(connection_class=Custom)))


# --------------------------------------------------------------------------- certificates


@dataclass(frozen=True)
class Certificates:
    """A CA, a server certificate it signed (localhost only), a client one, and a stranger CA."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


def _openssl(*args: str | Path, cwd: Path) -> None:
    subprocess.run(["openssl", *map(str, args)], cwd=cwd, check=True, capture_output=True)


def _make_ca(d: Path, name: str) -> tuple[Path, Path]:
    key, cert = d / f"{name}.key", d / f"{name}.pem"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             f"/CN={name}", "-keyout", key, "-out", cert, cwd=d)  # fmt: skip
    return cert, key


def _make_leaf(d: Path, name: str, ca: tuple[Path, Path], extensions: str) -> tuple[Path, Path]:
    key, csr, cert, ext = (d / f"{name}.{x}" for x in ("key", "csr", "pem", "ext"))
    ext.write_text(extensions)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
             "-keyout", key, "-out", csr, cwd=d)  # fmt: skip
    _openssl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
             "-days", "2", "-extfile", ext, "-out", cert, cwd=d)  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: no certificates for the TLS tests")
    d = tmp_path_factory.mktemp("tls")
    ca = _make_ca(d, "test-ca")
    server = _make_leaf(
        d,
        "server",
        ca,
        "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n"
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n",
    )
    client = _make_leaf(
        d,
        "client",
        ca,
        "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\n",
    )
    other_ca, _ = _make_ca(d, "stranger-ca")
    return Certificates(ca[0], server[0], server[1], client[0], client[1], other_ca)


def rediss_url(port: int, host: str = "localhost", db: int = 0, **query: str) -> str:
    """A ``rediss://`` URL with redis-py's ``ssl_*`` settings in its query."""
    return f"rediss://{host}:{port}/{db}" + (f"?{urlencode(query)}" if query else "")


# --------------------------------------------------------------------------- TLS settings


def tls_settings(context: ssl.SSLContext) -> dict[str, object]:
    """Everything an SSLContext exposes that decides whom it trusts and how it talks."""
    return {
        "verify_mode": context.verify_mode,
        "check_hostname": context.check_hostname,
        "verify_flags": context.verify_flags,
        "minimum_version": context.minimum_version,
        "maximum_version": context.maximum_version,
        "options": context.options,
        "protocol": context.protocol,
        "ca_certs": context.get_ca_certs(),
        "ciphers": [c["name"] for c in context.get_ciphers()],
    }


def redis_py_context(client: Redis) -> ssl.SSLContext:
    """The SSLContext a connection of the client's own pool would use."""
    connection = client.connection_pool.make_connection()
    assert isinstance(connection, SSLConnection)
    context = connection.ssl_context.get()
    assert isinstance(context, ssl.SSLContext)
    return context


@pytest.mark.parametrize(
    "query",
    [
        {},  # redis-py's defaults: certificate required, hostname checked, system CAs
        {"ssl_cert_reqs": "none"},
        {"ssl_cert_reqs": "optional", "ssl_check_hostname": "false"},
        {"ssl_cert_reqs": "required", "ssl_ca_certs": "{ca}"},
        {"ssl_ca_certs": "{ca}", "ssl_certfile": "{cert}", "ssl_keyfile": "{key}"},
        {"ssl_ca_certs": "{ca}", "ssl_ciphers": "ECDHE-RSA-AES128-GCM-SHA256"},
        {"ssl_ca_certs": "{ca}", "ssl_min_version": str(int(ssl.TLSVersion.TLSv1_3))},
        {"ssl_ca_certs": "{ca}", "ssl_include_verify_flags": "VERIFY_X509_STRICT"},
    ],
    ids=["defaults", "no-verify", "optional", "own-ca", "client-cert", "ciphers", "tls13", "flags"],
)
def test_a_rediss_url_gives_redis_py_tls_settings(
    certs: Certificates, query: dict[str, str]
) -> None:
    paths = {"ca": certs.ca, "cert": certs.client_cert, "key": certs.client_key}
    url = rediss_url(6380, **{k: v.format(**paths) for k, v in query.items()})
    client = Redis.from_url(url)
    pipe = WirePipeline.like(client)
    assert pipe.ssl_context is not None
    assert tls_settings(pipe.ssl_context) == tls_settings(redis_py_context(client))
    from_url = WirePipeline.from_url(url).ssl_context
    assert from_url is not None
    assert tls_settings(from_url) == tls_settings(pipe.ssl_context)


def test_rediss_defaults_verify_the_server(certs: Certificates) -> None:
    pipe = WirePipeline.from_url(rediss_url(6380, ssl_ca_certs=str(certs.ca)))
    assert pipe.ssl_context is not None
    assert pipe.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert pipe.ssl_context.check_hostname is True
    subjects = [c["subject"] for c in pipe.ssl_context.get_ca_certs()]
    assert ((("commonName", "test-ca"),),) in subjects  # beside the system's CAs, as redis-py
    assert pipe.params == {"host": "localhost", "port": 6380, "db": 0}


def test_a_client_built_with_ssl_true_gives_tls(certs: Certificates) -> None:
    client = Redis(
        host="localhost",
        port=6380,
        ssl=True,
        ssl_ca_certs=str(certs.ca),
        ssl_cert_reqs="required",
        ssl_check_hostname=False,
    )
    pipe = WirePipeline.like(client)
    assert pipe.ssl_context is not None
    assert pipe.ssl_context.check_hostname is False
    assert tls_settings(pipe.ssl_context) == tls_settings(redis_py_context(client))


# --------------------------------------------------------------------------- a real TLS server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def tls_server(certs: Certificates, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The TLS port of a private redis-server that requires client certificates."""
    try:
        executable = shutil.which("redis-server") or find_redis_server()
    except EmbeddedError as exc:
        pytest.skip(f"no redis-server for the TLS tests: {exc}")
    d = tmp_path_factory.mktemp("tls-redis")
    log, console = d / "redis.log", d / "console.log"
    for _attempt in range(3):  # another process may take the free port first
        port = _free_port()
        with console.open("w") as out:  # config errors go here, not to the log file
            process = subprocess.Popen(
                [executable, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
                 "--tls-cert-file", str(certs.server_cert), "--tls-key-file", str(certs.server_key),
                 "--tls-ca-cert-file", str(certs.ca), "--tls-auth-clients", "yes",
                 "--save", "", "--appendonly", "no", "--dir", str(d), "--logfile", str(log)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and process.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        if process.poll() is None:
            try:
                yield port
            finally:
                process.terminate()
                process.wait(10)
            return
        said = "".join(f.read_text(errors="replace") for f in (console, log) if f.exists())
        if "tls" in said.lower() and ("not" in said.lower() or "bad directive" in said.lower()):
            pytest.skip(f"{executable} was built without TLS: {said.strip()[-200:]}")
    pytest.fail(f"{executable} did not start with --tls-port: {said.strip()[-300:]}")


async def _ping(how: WirePipeline | Redis) -> str:
    """``ok`` if a PING over ``how`` is answered, else the kind of failure."""
    try:
        if isinstance(how, WirePipeline):
            try:
                [reply] = await how.execute([["PING"]])
            finally:
                await how.close()
            return "ok" if reply == b"PONG" else f"reply {reply!r}"
        try:
            return "ok" if await how.ping() else "no"
        finally:
            await how.aclose()
    except (RedisConnectionError, OSError) as exc:
        return "refused: " + type(exc).__name__


CLIENTS = {
    "trusted": lambda c, port: rediss_url(
        port, ssl_ca_certs=c.ca, ssl_certfile=c.client_cert, ssl_keyfile=c.client_key
    ),
    "stranger CA": lambda c, port: rediss_url(
        port, ssl_ca_certs=c.other_ca, ssl_certfile=c.client_cert, ssl_keyfile=c.client_key
    ),
    "stranger CA, no verify": lambda c, port: rediss_url(
        port,
        ssl_ca_certs=c.other_ca,
        ssl_cert_reqs="none",
        ssl_certfile=c.client_cert,
        ssl_keyfile=c.client_key,
    ),
    "wrong hostname": lambda c, port: rediss_url(
        port,
        host="127.0.0.1",
        ssl_ca_certs=c.ca,
        ssl_certfile=c.client_cert,
        ssl_keyfile=c.client_key,
    ),
    "wrong hostname, unchecked": lambda c, port: rediss_url(
        port,
        host="127.0.0.1",
        ssl_ca_certs=c.ca,
        ssl_check_hostname="false",
        ssl_certfile=c.client_cert,
        ssl_keyfile=c.client_key,
    ),
    "no client certificate": lambda c, port: rediss_url(port, ssl_ca_certs=c.ca),
}


@pytest.mark.parametrize("name", list(CLIENTS))
async def test_over_real_tls_the_pipeline_connects_exactly_when_redis_py_does(
    certs: Certificates, tls_server: int, name: str
) -> None:
    url = CLIENTS[name](certs, tls_server)
    client = Redis.from_url(url)
    pipe = WirePipeline.like(client)
    theirs = await _ping(client)
    ours = await _ping(pipe)
    ours_from_url = await _ping(WirePipeline.from_url(url))
    assert (ours, ours_from_url) == (theirs, theirs), name
    expected_ok = name in ("trusted", "stranger CA, no verify", "wrong hostname, unchecked")
    assert (theirs == "ok") == expected_ok, theirs


async def test_money_scripts_path_over_tls(certs: Certificates, tls_server: int) -> None:
    client = Redis.from_url(CLIENTS["trusted"](certs, tls_server))
    pipe = WirePipeline.like(client)
    try:
        replies = await pipe.execute(
            [
                ["SET", "wire:k", "🌹"],
                ["INCRBY", "wire:n", 70],
                ["GET", "wire:k"],
                ["HGET", "wire:k", "x"],
            ]
        )
        assert replies[:3] == [b"OK", 70, "🌹".encode()]
        assert isinstance(replies[3], ResponseError)  # in place, the batch goes on
        assert await client.get("wire:n") == b"70"  # the same server and database
    finally:
        await pipe.close()
        await client.delete("wire:k", "wire:n")
        await client.aclose()


# --------------------------------------------------------------------------- plain TCP, real server


async def test_like_the_session_client(redis: Redis, key_prefix: str) -> None:
    pipe = WirePipeline.like(redis)
    key = f"{key_prefix}:wire"
    value = b"\x00\xff\r\n*1\r\n"  # bytes that look like RESP travel intact
    try:
        replies = await pipe.execute(
            [["SET", key, value], ["GET", key], ["SET", f"{key}:u", "rosé 🌹"], ["GET", f"{key}:u"]]
        )
        assert replies == [b"OK", value, b"OK", "rosé 🌹".encode()]
    finally:
        await pipe.close()


async def test_an_empty_command_fails_alone(redis: Redis, key_prefix: str) -> None:
    pipe = WirePipeline.like(redis)
    try:
        with pytest.raises(ValueError):
            await pipe.execute([["PING"], []])
        # Nothing was sent: the connection is still in step.
        assert await pipe.execute([["PING"]]) == [b"PONG"]
    finally:
        await pipe.close()
