"""A tiny storm end to end: the real server, two generator processes, every check.

``gifting serve`` runs as a subprocess against the session's Redis (a key
prefix of its own) and a PostgreSQL database of its own (the audit reads the
whole database). The storm records its gifts; replaying that trace against
the same server must settle the same number of gifts for the same coins.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio

from loadtest.config import Mix, ServerOptions, StormConfig
from loadtest.storm import run_storm
from loadtest.trace import read_trace


@pytest_asyncio.fixture(loop_scope="session")
async def storm_database(_server_database_url: str) -> AsyncIterator[str]:
    """A fresh database on the session's PostgreSQL, dropped afterwards."""
    name = f"gifting_storm_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(_server_database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield urlunsplit(urlsplit(_server_database_url)._replace(path="/" + name))
    finally:
        admin = await asyncpg.connect(_server_database_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.mark.timeout(60)
async def test_tiny_storm_passes_every_check(
    redis_url: str, storm_database: str, key_prefix: str, tmp_path: Path
) -> None:
    server = ServerOptions(redis_url=redis_url, database_url=storm_database, key_prefix=key_prefix)
    trace = tmp_path / "storm.jsonl"
    config = StormConfig(
        rooms=2,
        viewers=4,
        overlays=2,
        duration_s=2.0,
        rate=120.0,
        pattern="burst",
        processes=2,
        mix=Mix(retry_share=0.2, broke_share=0.25, bad_share=0.05),
        server=server,
        record=trace,
        report_dir=tmp_path / "report",
        drain_timeout_s=10.0,
        seed=7,
    )
    result = await run_storm(config)

    assert result.ok, result.failures
    c = result.counts
    assert c["settled_gifts"] > 50
    assert c["replays"] > 0 and c["refused_bad_frames"] > 0
    assert c["refused_insufficient_funds"] > 0
    assert result.checks["persisted"] == c["settled_gifts"]
    assert result.ack.count > 0 and result.overlay.count > 0
    assert set(result.generator_cpu["per_process_cores"]) == {"generator-0", "generator-1"}
    report = tmp_path / "report"
    for name in ("result.json", "summary.md", "throughput.png", "latency.png",
                 "latency_distribution.png", "cpu.png"):  # fmt: skip
        assert (report / name).stat().st_size > 0, name
    assert json.loads((report / "result.json").read_text())["ok"] is True

    recorded = read_trace(trace)
    assert len(recorded.events) == c["gifts_sent"] + c["retries_sent"]

    replay = await run_storm(
        StormConfig(trace=trace, rate=None, overlays=1, processes=2, server=server,
                    mix=Mix(retry_share=0.0), drain_timeout_s=10.0)
    )  # fmt: skip
    assert replay.ok, replay.failures
    assert replay.counts["settled_gifts"] == c["settled_gifts"]
    assert replay.checks["acked_coins"] == result.checks["acked_coins"]
