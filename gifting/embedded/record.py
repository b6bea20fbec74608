"""Where the embedded servers of a running ``gifting serve`` listen: a record in the data folder.

``gifting serve`` on the embedded default writes ``<data_dir>/servers.json``
(mode 0600: it names the servers and, later, their credentials) once its
private Redis and PostgreSQL answer, and removes it when it stops. The
operator's other commands (``gifting audit | persist | migrate``) read it when
``REDIS_URL`` / ``DATABASE_URL`` are unset, so a user of ``make run`` can
audit their own money from another terminal.

A record whose writer is gone (``serve`` was SIGKILLed) is treated as absent:
its servers may be gone too, and a command must not connect to a recycled port.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from gifting.embedded.process import _pid_alive, write_private

__all__ = ["RECORD_NAME", "ServersRecord", "read_record", "remove_record", "write_record"]

RECORD_NAME: Final = "servers.json"


@dataclass(frozen=True)
class ServersRecord:
    """The URLs of the embedded servers and the pid of the process that owns them."""

    redis_url: str | None
    database_url: str | None
    pid: int


def _path(data_dir: Path) -> Path:
    return data_dir / RECORD_NAME


def write_record(data_dir: Path, redis_url: str | None, database_url: str | None) -> Path:
    """Record the servers this process owns; readable and writable by the owner only.

    Written to a temporary file and renamed, so a reader never sees half a record.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    path = _path(data_dir)
    body = json.dumps({"redis_url": redis_url, "database_url": database_url, "pid": os.getpid()})
    tmp = path.with_name(f".{RECORD_NAME}.{os.getpid()}")
    write_private(tmp, body)
    os.replace(tmp, path)
    return path


def remove_record(data_dir: Path) -> None:
    """Remove the record if this process wrote it (another live owner's record stays)."""
    record = read_record(data_dir)
    if record is not None and record.pid == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            _path(data_dir).unlink()


def read_record(data_dir: Path) -> ServersRecord | None:
    """The record of a live ``gifting serve`` under ``data_dir``, or ``None``.

    ``None`` when there is no record, it cannot be read, or its writer is dead.
    """
    try:
        raw = json.loads(_path(data_dir).read_text())
        record = ServersRecord(
            redis_url=raw["redis_url"], database_url=raw["database_url"], pid=int(raw["pid"])
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record if _pid_alive(record.pid) else None
