"""Logging: secrets never reach a log line, whoever configured the loggers.

Browsers can only pass a WebSocket's credentials in its URL, and uvicorn logs
request lines (``uvicorn.access``) and WebSocket handshakes (``uvicorn.error``)
with their query string. With ``GIFTING_LOG_FORMAT=json`` every line is one
JSON object carrying the request (or connection) id :class:`RequestIds` gives
each request, and the event ids the code logs. :class:`RedactSecrets` hides ``token=`` and ``key=``
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
import json
import logging
import re
import secrets
import time
from contextvars import ContextVar
from typing import Any, Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "UVICORN_LOGGERS",
    "ClientFaultsAsWarnings",
    "JsonFormatter",
    "RedactSecrets",
    "RequestIds",
    "install_redaction",
    "log_config",
    "request_id",
]

#: The loggers whose lines carry request URLs.
UVICORN_LOGGERS: Final = ("uvicorn.access", "uvicorn.error")
#: The id of the request or WebSocket connection being served (None outside one).
request_id: ContextVar[str | None] = ContextVar("gifting_request_id", default=None)
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


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


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, and the ids in context.

    ``request`` is the request (or WebSocket connection) being served
    (:data:`request_id`, set by :class:`RequestIds`); any ``extra={...}`` a
    call passes (``event``, ``stream``, ``user`` ...) is kept as its own key.
    """

    _STANDARD = frozenset([*vars(logging.makeLogRecord({})), "message", "asctime", "color_message"])

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        out: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request = request_id.get()
        if request is not None:
            out["request"] = request
        for key, value in vars(record).items():
            if key not in self._STANDARD and not key.startswith("_"):
                out[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


JsonFormatter.converter = time.gmtime


def log_config(*, json_lines: bool = False) -> dict[str, Any]:
    """uvicorn's logging config plus the ``gifting`` loggers and :class:`RedactSecrets`.

    ``json_lines``: every line (uvicorn's too) as one JSON object
    (:class:`JsonFormatter`), for log pipelines. Passed to every worker (each
    applies it with ``dictConfig``).
    """
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"redact": {"()": f"{__name__}.RedactSecrets"}}
    for handler in config["handlers"].values():
        handler["filters"] = ["redact"]
    if json_lines:
        config["formatters"] = {"json": {"()": f"{__name__}.JsonFormatter"}}
        for handler in config["handlers"].values():
            handler["formatter"] = "json"
    config["loggers"]["gifting"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


class RequestIds:
    """ASGI middleware: an id for each request or WebSocket connection, in every log line.

    The id is the client's ``X-Request-ID`` when it sent a sane one, else a new
    one; HTTP answers carry it back in ``X-Request-ID``. It lives in
    :data:`request_id` for the whole connection (a WebSocket's too).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve ``scope`` with its request id set."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or ()).get(b"x-request-id", b"").decode("latin-1")
        rid = given if _REQUEST_ID.fullmatch(given) else secrets.token_hex(8)
        token = request_id.set(rid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), (b"x-request-id", rid.encode())]
                message = {**message, "headers": headers}
            await send(message)

        try:
            # A WebSocket's frames go straight out: no wrapper on the per-frame path.
            await self.app(scope, receive, send_with_id if scope["type"] == "http" else send)
        finally:
            request_id.reset(token)


def install_redaction() -> None:
    """Put :class:`RedactSecrets` and :class:`ClientFaultsAsWarnings` on uvicorn's loggers
    (once, however often called)."""
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        for kind in (RedactSecrets, ClientFaultsAsWarnings):
            if not any(isinstance(f, kind) for f in logger.filters):
                logger.addFilter(kind())
