"""Logging: secrets never reach a log line, whoever configured the loggers.

Browsers can only pass a WebSocket's credentials in its URL, and uvicorn logs
request lines (``uvicorn.access``) and WebSocket handshakes (``uvicorn.error``)
with their query string. :class:`RedactSecrets` hides ``token=`` and ``key=``
values; :func:`install_redaction` puts it on those loggers (the app does this
at build, so ``uvicorn --factory gifting.app:create_app`` is covered too), and
:func:`log_config` is the config ``gifting serve`` hands to uvicorn.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any, Final

__all__ = ["UVICORN_LOGGERS", "RedactSecrets", "install_redaction", "log_config"]

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
    """Put :class:`RedactSecrets` on uvicorn's loggers (once, however often called)."""
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())
