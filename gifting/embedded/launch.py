"""The one place that starts the embedded servers, or finds the ones already running.

Every process of a deployment on the embedded default needs the same two
URLs: ``gifting serve`` (which starts the servers before its workers),
each uvicorn worker (``--workers N``, or ``uvicorn --factory``), and the
operator's commands in another terminal (``gifting audit | persist |
migrate``). They meet in the record of the data folder
(:mod:`gifting.embedded.record`), never in environment variables written
at run time:

* :func:`attach_or_start` — for a server: the URLs given in the settings; else a
  live record's; else private servers started now (stopped, with their
  record, when ``stack`` unwinds).
* :func:`attach` — for the operator's commands: the URLs given, else a live
  record's, never starting anything.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from gifting.config import Settings
from gifting.embedded.postgres_server import EmbeddedPostgres
from gifting.embedded.record import read_record, remove_record, write_record
from gifting.embedded.redis_server import EmbeddedRedis

__all__ = ["Attached", "attach", "attach_or_start", "redacted"]

log = logging.getLogger("gifting.embedded")


@dataclass(frozen=True, slots=True)
class Attached:
    """The settings with every URL that could be found filled in, and who started what.

    ``redis`` / ``postgres`` are the servers this call started (``None`` when
    the URL was given or found in a record).
    """

    settings: Settings
    redis: EmbeddedRedis | None = None
    postgres: EmbeddedPostgres | None = None


def redacted(url: str | None) -> str:
    """``url`` with its password shown as ``***`` (for logs and the terminal)."""
    if url is None:
        return "(none)"
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def attach(settings: Settings) -> Settings:
    """``settings`` with unset URLs filled from a live record under the data folder, if any."""
    if settings.redis_url and settings.database_url:
        return settings
    record = read_record(settings.data_dir)
    if record is None:
        return settings
    return settings.model_copy(
        update={
            "redis_url": settings.redis_url or record.redis_url,
            "database_url": settings.database_url or record.database_url,
        }
    )


def attach_or_start(settings: Settings, stack: ExitStack) -> Attached:
    """Both URLs for a server process, starting private servers for what is still missing.

    Blocking (the servers take seconds to start): call it in a thread from
    async code. What it starts is stopped by ``stack``, after the record is
    removed.
    """
    found = attach(settings)
    if found.redis_url and found.database_url:
        return Attached(found)
    log.info("starting embedded servers under %s", settings.data_dir.resolve())
    redis = postgres = None
    redis_url, database_url = found.redis_url, found.database_url
    if not redis_url:
        redis = EmbeddedRedis(settings.data_dir, appendfsync=settings.appendfsync)
        redis.start()
        stack.callback(redis.stop)
        redis_url = redis.url
    if not database_url:
        postgres = EmbeddedPostgres(settings.data_dir)
        postgres.start()
        stack.callback(postgres.stop)
        database_url = postgres.url
    write_record(
        settings.data_dir,
        redis.url if redis is not None else None,
        postgres.url if postgres is not None else None,
    )
    stack.callback(remove_record, settings.data_dir)
    log.info("embedded redis at %s, postgresql at %s", redacted(redis_url), redacted(database_url))
    started = found.model_copy(update={"redis_url": redis_url, "database_url": database_url})
    return Attached(started, redis, postgres)
