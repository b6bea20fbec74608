"""Both private servers under one data folder, started and stopped in order."""

from __future__ import annotations

import atexit
import os
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

from gifting.embedded.postgres_server import EmbeddedPostgres
from gifting.embedded.redis_server import EmbeddedRedis

__all__ = ["EmbeddedServers"]


class EmbeddedServers:
    """A private Redis and PostgreSQL under one data folder; a context manager.

    ``start()`` (or ``with``) starts both, ``stop()`` stops both; a normal
    interpreter exit stops them too (``atexit``), but only in the process that
    started them, never in a forked worker.
    """

    def __init__(
        self,
        data_dir: Path | str,
        *,
        appendfsync: Literal["always", "everysec"] = "always",
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.redis = EmbeddedRedis(self.data_dir, appendfsync=appendfsync)
        self.postgres = EmbeddedPostgres(self.data_dir)
        self._owner_pid: int | None = None

    @property
    def redis_url(self) -> str:
        """The private Redis URL."""
        return self.redis.url

    @property
    def database_url(self) -> str:
        """The private PostgreSQL URL (database ``gifting``)."""
        return self.postgres.url

    def start(self) -> Self:
        """Start Redis then PostgreSQL; on failure stop whatever started."""
        self._owner_pid = os.getpid()
        atexit.register(self._at_exit)
        try:
            self.redis.start()
            self.postgres.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop PostgreSQL and Redis and wait for both (idempotent)."""
        try:
            self.postgres.stop()
        finally:
            self.redis.stop()
            atexit.unregister(self._at_exit)
            self._owner_pid = None

    def _at_exit(self) -> None:
        if self._owner_pid == os.getpid():
            self.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
