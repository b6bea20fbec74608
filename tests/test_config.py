"""Settings out of their bounds are refused at start-up, naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gifting.app import create_app
from gifting.config import SettingsError, load_settings

BAD = [
    ("GIFTING_IDEMPOTENCY_TTL", "0"),  # results deleted at once: retries would debit again
    ("GIFTING_IDEMPOTENCY_TTL", "-1"),
    ("GIFTING_SEND_QUEUE_BYTES", "1000"),
    ("GIFTING_SEND_QUEUE_BYTES", "-5"),
    ("GIFTING_RATE_PER_S", "0"),
    ("GIFTING_RATE_BURST", "0"),
    ("GIFTING_HISTORY_MAX_EVENTS", "0"),
    ("GIFTING_HISTORY_MAX_AGE", "0"),
    ("GIFTING_MAX_FRAME_BYTES", "10"),
    ("GIFTING_MAX_FRAME_BYTES", str(2**40)),
    ("GIFTING_VIEWER_BATCH_MS", "-1"),
    ("GIFTING_COMBO_WINDOW_MS", "0"),
    ("GIFTING_HEARTBEAT_S", "0"),
    ("GIFTING_IDLE_TIMEOUT_S", "0"),
    ("GIFTING_PERSISTER_BATCH", "0"),
    ("GIFTING_PERSISTER_CLAIM_IDLE_MS", "0"),
    ("GIFTING_WEBHOOK_TOLERANCE", "0"),
    ("GIFTING_REDIS_TIMEOUT_S", "0"),  # every Redis call would fail at once
    ("GIFTING_REDIS_TIMEOUT_S", "3600"),  # a paused Redis would hold gifts for an hour
    ("GIFTING_KEY_PREFIX", ""),
    ("GIFTING_KEY_PREFIX", "a b"),
    ("GIFTING_KEY_PREFIX", "{w01}"),  # a hash tag in the prefix would move every key's slot
    ("GIFTING_PUBLIC_URL", "javascript:alert(1)"),
    ("GIFTING_RATE_PER_S", "lots"),
    ("GIFTING_WALLET_SHARDS", "0"),
    ("GIFTING_WALLET_SHARDS", "16385"),  # more shards than hash slots
    ("GIFTING_REDIS_WAIT_REPLICAS", "-1"),
    ("GIFTING_REDIS_WAIT_MS", "0"),
    ("GIFTING_PERSISTER_LEASE_MS", "10"),
]


@pytest.mark.parametrize(("name", "value"), BAD)
def test_a_setting_out_of_bounds_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=name):
        load_settings()
    with pytest.raises(SettingsError, match=name):
        create_app()  # `uvicorn --factory gifting.app:create_app` refuses it too


def test_the_defaults_and_the_edges_of_each_range_are_accepted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    load_settings()
    for name, value in [
        ("GIFTING_IDEMPOTENCY_TTL", "86400"), ("GIFTING_VIEWER_BATCH_MS", "0"),
        ("GIFTING_RATE_PER_S", "1000000"), ("GIFTING_KEY_PREFIX", "prod-eu.1"),
        ("GIFTING_WALLET_SHARDS", "16384"), ("GIFTING_REDIS_WAIT_REPLICAS", "1"),
    ]:  # fmt: skip
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.idempotency_ttl_s == 86400
    assert settings.key_prefix == "prod-eu.1"
    assert (settings.wallet_shards, settings.redis_wait_replicas) == (16384, 1)


def test_the_shard_count_defaults_to_the_layout_of_every_earlier_deployment() -> None:
    from gifting.store.wiring import build_keys

    assert load_settings().wallet_shards == 16
    assert build_keys(load_settings(GIFTING_WALLET_SHARDS=64)).shards == 64


def test_a_cluster_url_gives_cluster_clients_and_any_other_a_single_redis() -> None:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

    from gifting.store.wiring import redis_client

    assert isinstance(redis_client("redis+cluster://:pw@127.0.0.1:7000,127.0.0.1:7001"),
                      RedisCluster)  # fmt: skip
    assert isinstance(redis_client("redis://127.0.0.1:6379/0"), Redis)


@pytest.mark.parametrize("command", [["serve"], ["audit"], ["token", "alice"]])
def test_every_command_exits_2_with_the_setting_named(command: list[str]) -> None:
    env = dict(os.environ, GIFTING_IDEMPOTENCY_TTL="0", GIFTING_DEV="1")
    done = subprocess.run(
        [sys.executable, "-c", "from gifting.cli import main; main()", *command],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "GIFTING_IDEMPOTENCY_TTL" in done.stderr
    assert "greater than or equal to 86400" in done.stderr


STRONG = "s" * 32
WEAK = [
    ("GIFTING_WEBHOOK_SECRET", ""),  # anyone could sign a purchase: free coins
    ("GIFTING_WEBHOOK_SECRET", "short"),
    ("GIFTING_JWT_SECRET", "12345"),
    ("GIFTING_JWT_SECRET", "x" * 31),
    ("GIFTING_JWT_SECRET", None),  # the public development default
    ("GIFTING_WEBHOOK_SECRET", None),
]


@pytest.mark.parametrize(("name", "value"), WEAK)
def test_the_app_refuses_a_weak_secret_outside_dev_mode(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str | None
) -> None:
    """`uvicorn --factory gifting.app:create_app` and `gifting serve` alike."""
    monkeypatch.delenv("GIFTING_DEV", raising=False)
    monkeypatch.setenv("GIFTING_JWT_SECRET", STRONG)
    monkeypatch.setenv("GIFTING_WEBHOOK_SECRET", STRONG)
    if value is None:
        monkeypatch.delenv(name)
    else:
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=name):
        create_app()
    env = {k: v for k, v in os.environ.items() if k != name}
    if value is not None:
        env[name] = value
    done = subprocess.run(
        [sys.executable, "-c", "from gifting.cli import main; main()", "serve", "--port", "0"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert name in done.stderr


def test_dev_mode_and_strong_secrets_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIFTING_DEV", "1")
    monkeypatch.delenv("GIFTING_JWT_SECRET", raising=False)
    create_app()
    monkeypatch.setenv("GIFTING_DEV", "0")
    monkeypatch.setenv("GIFTING_JWT_SECRET", STRONG)
    monkeypatch.setenv("GIFTING_WEBHOOK_SECRET", STRONG)
    create_app()
