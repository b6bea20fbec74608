"""Migrations: each file once, concurrent starters do not race, edits are refused."""

from __future__ import annotations

import asyncio
import secrets

import asyncpg
import pytest

from gifting.persister.schema import MigrationError, apply_migrations, migrations
from tests.conftest import create_database, drop_database

from .conftest import with_database


async def test_migrations_apply_once_even_when_started_concurrently(database_url: str) -> None:
    url = with_database(database_url, "postgres")
    fresh = await create_database(url)  # already migrated once by the helper
    try:
        conns = [await asyncpg.connect(fresh) for _ in range(3)]
        try:
            results = await asyncio.gather(*(apply_migrations(c) for c in conns))
        finally:
            for c in conns:
                await c.close()
        assert results == [[], [], []]
        conn = await asyncpg.connect(fresh)
        try:
            versions = [
                r["version"]
                for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")
            ]
            assert versions == [m.version for m in migrations()]
            tables = {
                r["tablename"]
                for r in await conn.fetch(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                )
            }
            assert {
                "ledger_events",
                "postings",
                "stream_totals",
                "creator_earnings",
                "purchases",
                "refunds",
                "cashouts",
                "schema_migrations",
            } <= tables
        finally:
            await conn.close()
    finally:
        await drop_database(fresh)


async def test_concurrent_first_run_creates_the_schema_once(database_url: str) -> None:
    name = f"mig_race_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = with_database(database_url, name)
    try:
        conns = [await asyncpg.connect(url) for _ in range(4)]
        try:
            results = await asyncio.gather(*(apply_migrations(c) for c in conns))
        finally:
            for c in conns:
                await c.close()
        assert sorted(map(len, results)) == [0, 0, 0, len(migrations())]
    finally:
        await drop_database(url)


async def test_an_applied_migration_that_changed_is_refused(pool: asyncpg.Pool) -> None:
    await pool.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await apply_migrations(pool)
