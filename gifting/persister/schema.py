"""Versioned SQL migrations of the ledger database, applied once each.

Migrations are the files ``migrations/NNNN_<name>.sql`` shipped in the package,
applied in version order. :func:`apply_migrations` records each applied file
(version, name, SHA-256) in ``schema_migrations``, runs each new file in its
own transaction, and holds a session advisory lock for the whole run so two
processes starting at once (a hub and a persister) never race: the second one
waits, then finds nothing left to do. A file changed after it was applied is
refused (:class:`MigrationError`): migrations are append-only.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg
from asyncpg.pool import PoolConnectionProxy

__all__ = ["MIGRATION_LOCK_ID", "Migration", "MigrationError", "apply_migrations", "migrations"]

#: The advisory lock key ("gifting" in ASCII), shared by every process.
MIGRATION_LOCK_ID = 0x67696674696E67
_FILE = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")


class MigrationError(RuntimeError):
    """The migration files or the recorded history are inconsistent."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file: its version, name, SQL text and checksum."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the SQL text, recorded when applied."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations() -> list[Migration]:
    """Every migration file shipped in ``gifting/persister/migrations``, in version order."""
    folder = resources.files("gifting.persister").joinpath("migrations")
    found: list[Migration] = []
    for item in folder.iterdir():
        match = _FILE.fullmatch(item.name)
        if match is None:
            continue
        found.append(Migration(int(match[1]), match[2], item.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a version: {versions}")
    return found


_CREATE_HISTORY = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


async def apply_migrations(target: asyncpg.Pool | asyncpg.Connection) -> list[int]:
    """Apply every migration not yet applied; return the versions applied now.

    ``target`` is a pool (one connection is borrowed) or a connection. Safe to
    call from several processes at once (advisory lock) and on every start.
    """
    if isinstance(target, asyncpg.Pool):
        async with target.acquire() as conn:
            return await _apply(conn)
    return await _apply(target)


async def _apply(conn: asyncpg.Connection | PoolConnectionProxy) -> list[int]:
    files = migrations()
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
    try:
        await conn.execute(_CREATE_HISTORY)
        rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
        done = {int(r["version"]): str(r["checksum"]) for r in rows}
        applied: list[int] = []
        for m in files:
            if m.version in done:
                if done[m.version] != m.checksum:
                    raise MigrationError(
                        f"migration {m.version:04d}_{m.name}.sql changed after it was applied"
                    )
                continue
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    m.version,
                    m.name,
                    m.checksum,
                )
            applied.append(m.version)
        return applied
    finally:
        # A broken connection drops its session lock by itself.
        if not conn.is_closed():
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
