"""Logging: secrets never reach a log line, whoever configured the loggers.

Browsers can only pass a WebSocket's credentials in its URL, and uvicorn logs
request lines (``uvicorn.access``) and WebSocket handshakes (``uvicorn.error``)
with their query string. :class:`RedactSecrets` hides ``token=`` and ``key=``
values; :func:`install_redaction` puts it on those loggers (the app does this
at build, so ``uvicorn --factory gifting.app:create_app`` is covered too), and
:func:`log_config` is the config ``gifting serve`` hands to uvicorn.

Clients must not be able to write server errors into the log at will:
:class:`ClientFaultsAsWarnings` turns uvicorn's ``ERROR`` with a traceback for
a client's text frame that is not UTF-8 (which it then closes with 1007, as
it should) into a one-line ``WARNING``; :func:`install_redaction` installs it too.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any, Final

__all__ = [
    "UVICORN_LOGGERS",
    "ClientFaultsAsWarnings",
    "RedactSecrets",
    "install_redaction",
    "log_config",
]

#: The loggers whose lines carry request URLs.
UVICORN_LOGGERS: Final = ("uvicorn.access", "uvicorn.error")


class RedactSecrets(logging.Filter):
    """Hide ``token=`` and ``key=`` query values (bearer tokens, overlay keys) in log lines.

    Browsers can only pass a WebSocket's credentials in its URL, and uvicorn
    logs request lines with their query string.
    """

    _SECRET = re.compile(r"([?&](?:token|key)=)[^&\s\"]*")

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message and string arguments; never drops a record."""
        if isinstance(record.msg, str):
            record.msg = self._SECRET.sub(r"\1***", record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                self._SECRET.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args
            )
        return True


class ClientFaultsAsWarnings(logging.Filter):
    """Log what a client did wrong as a one-line ``WARNING``, not an ``ERROR`` with a traceback.

    uvicorn's sans-I/O WebSocket logs a text frame that is not UTF-8 with
    ``logger.exception`` before closing the connection with 1007: any client
    could fill the error log (and page whoever watches it) at will.
    """

    CLIENT_FAULTS: Final = frozenset({"Invalid UTF-8 sequence received from client."})

    def filter(self, record: logging.LogRecord) -> bool:
        """Demote a client fault in place; never drops a record."""
        if record.levelno > logging.WARNING and str(record.msg) in self.CLIENT_FAULTS:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info = record.exc_text = None
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's logging config plus the ``gifting`` loggers and :class:`RedactSecrets`.

    Passed to every worker (each applies it with ``dictConfig``).
    """
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"redact": {"()": f"{__name__}.RedactSecrets"}}
    for handler in config["handlers"].values():
        handler["filters"] = ["redact"]
    config["loggers"]["gifting"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def install_redaction() -> None:
    """Put :class:`RedactSecrets` and :class:`ClientFaultsAsWarnings` on uvicorn's loggers
    (once, however often called)."""
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        for kind in (RedactSecrets, ClientFaultsAsWarnings):
            if not any(isinstance(f, kind) for f in logger.filters):
                logger.addFilter(kind())
