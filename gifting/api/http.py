"""What every HTTP route shares: bounded JSON bodies, typed fields, the error mapping.

Bodies: at most :data:`MAX_BODY_BYTES` (64 KiB), checked on ``Content-Length``
before reading and on the bytes actually received (a chunked body has no
length), 413 past it. A body is UTF-8 JSON holding one object, without
duplicate keys, ``NaN`` or unpaired surrogates; :func:`read_body_as` then
converts it to the route's :class:`~gifting.api.schemas.Body` Struct
(unknown fields, wrong types, booleans for integers, values out of the
field's ``msgspec.Meta`` range: ``BadRequest`` naming the field).
:class:`JsonObject` is the older way (typed getters), kept for routes not
yet moved to a Struct.

Errors: :func:`exception_handlers` is the one table from exception to
response. A :class:`~gifting.core.errors.GiftingError` becomes its
``{"code", "message"}`` and status; a lost Redis connection is 503
``unavailable`` (safe to retry: every money operation is idempotent); any
other exception is a 500 ``unavailable`` without details (logged by the server).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Collection, Iterable
from typing import Any, Final, NoReturn, TypeVar

import msgspec
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route
from starlette.websockets import WebSocket

from gifting.api.schemas import MAX_SAFE_INTEGER, Body
from gifting.auth import Principal, principal_from_connection
from gifting.core.describe import json_kind, short
from gifting.core.errors import (
    BadRequest,
    GiftingError,
    NotFound,
    PayloadTooLarge,
    Unavailable,
)
from gifting.core.ids import ID_PATTERN, check_id
from gifting.state import app_state

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_SAFE_INTEGER",
    "JsonObject",
    "decode_body",
    "decode_json_object",
    "error_response",
    "exception_handlers",
    "principal",
    "query_int",
    "read_body",
    "read_body_as",
    "read_json",
]

log = logging.getLogger("gifting.api")

#: Largest request body, in bytes.
MAX_BODY_BYTES: Final = 64 * 1024
_B = TypeVar("_B", bound=Body)


# --------------------------------------------------------------------------- state


def principal(conn: HTTPConnection) -> Principal:
    """The verified caller of a request (bearer token), or raise ``Unauthorized``."""
    return principal_from_connection(conn, app_state(conn).settings.jwt_secret)


# --------------------------------------------------------------------------- bodies


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The raw request body, or ``PayloadTooLarge`` (413) past ``limit`` bytes.

    The declared ``Content-Length`` is checked before anything is read, and the
    received bytes are counted while reading, so neither a lying header nor a
    chunked upload gets more than ``limit`` bytes into memory.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isascii() or not declared.isdigit():
            raise BadRequest("Content-Length must be a number of bytes")
        if int(declared) > limit:
            raise PayloadTooLarge(f"the body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise BadRequest(f"duplicate field {short(key)} in a JSON object")
        obj[key] = value
    return obj


def _no_constants(name: str) -> NoReturn:
    raise BadRequest(f"{name} is not valid JSON")


def decode_json_object(raw: bytes, *, allow_empty: bool = False) -> dict[str, object]:
    """Decode a UTF-8 JSON body that must be one object; ``b""`` is ``{}`` if ``allow_empty``."""
    if not raw.strip():
        if allow_empty:
            return {}
        raise BadRequest("the body must be a JSON object")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the body must be UTF-8 encoded JSON") from None
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except RecursionError:
        raise BadRequest("the body is nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    except ValueError:  # an integer of thousands of digits (sys.get_int_max_str_digits)
        raise BadRequest("the body holds a number with too many digits") from None
    if not isinstance(data, dict):
        raise BadRequest(f"the body must be a JSON object, got {json_kind(data)}")
    return data


async def read_json(request: Request, *, allow_empty: bool = False) -> dict[str, object]:
    """Read and decode a bounded JSON-object body (see :func:`read_body`)."""
    return decode_json_object(await read_body(request), allow_empty=allow_empty)


async def read_body_as(request: Request, kind: type[_B], *, allow_empty: bool = False) -> _B:
    """Read a bounded body and decode it as ``kind`` (see :func:`decode_body`)."""
    return decode_body(await read_body(request), kind, allow_empty=allow_empty)


def decode_body(raw: bytes, kind: type[_B], *, allow_empty: bool = False) -> _B:
    """Decode ``raw`` as the request body ``kind``, or raise ``BadRequest`` naming the field.

    The JSON text is checked by :func:`decode_json_object` (UTF-8, one object,
    no duplicate keys, no ``NaN``), every string for unpaired surrogates, then
    ``msgspec.convert`` (strict: no ``"5"`` for 5, no ``true`` for 1) checks
    the fields against ``kind``'s types and ``Meta`` constraints.
    """
    data = decode_json_object(raw, allow_empty=allow_empty)
    _refuse_surrogates(data, "")
    try:
        return msgspec.convert(data, kind, strict=True)
    except msgspec.ValidationError as exc:
        raise BadRequest(_explain(str(exc), data, kind)) from None


def _refuse_surrogates(value: object, path: str) -> None:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest(f"field {path!r} holds an unpaired surrogate") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_surrogates(key, path or "(a field name)")
            _refuse_surrogates(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_surrogates(item, f"{path}[{index}]")


_AT = re.compile(r"^(?P<what>.*) - at `\$(?P<path>[^`]*)`$", re.S)
_KIND_NAMES: Final = {
    "int": "an integer", "str": "a string", "bool": "true or false", "null": "null",
    "array": "an array", "object": "an object", "float": "a number",
}  # fmt: skip
_SIMPLE: Final = [
    (re.compile(r"Expected `(?P<a>[^`]+)`, got `[^`]+`"), "must be {kinds}, got {kind}"),
    (re.compile(r"Expected `int` >= (?P<n>-?\d+)"), "must be at least {n}, got {value}"),
    (re.compile(r"Expected `int` <= (?P<n>-?\d+)"), "must be at most {n}, got {value}"),
    (re.compile(r"Expected `str` of length <= (?P<n>\d+)"), "is longer than {n} characters"),
    (re.compile(r"Expected `str` of length >= 1"), "must not be empty"),
    (re.compile(r"Expected `str` of length >= (?P<n>\d+)"), "must have at least {n} characters"),
    (re.compile(r"Invalid enum value"), "must be {options}, got {value}"),
    (re.compile(r"Expected `array` of length <= (?P<n>\d+)"), "holds more than {n} items"),
    (re.compile(r"Expected `array` of length >= 1"), "must hold at least one item"),
]
_ID_CLASS: Final = ID_PATTERN[: ID_PATTERN.index("\\")]  # "^[A-Za-z0-9._~@+"
_ID_RULE: Final = (
    "may hold only letters, digits and ._~@+-/=!#$%&*^| "
    "(no spaces, control characters, braces, colons or quotes)"
)


def _explain(error: str, data: dict[str, object], kind: type[Body]) -> str:
    """A clear message from msgspec's ``ValidationError`` text, naming the field."""
    allowed = kind.__struct_fields__
    if match := re.fullmatch(r"Object contains unknown field `(.*)`", error, re.S):
        hint = ", ".join(repr(k) for k in allowed) or "none"
        return f"unknown field {short(match[1])} (allowed: {hint})"
    if match := re.fullmatch(r"Object missing required field `(.*)`", error, re.S):
        return f"missing field {match[1]!r}"
    at = _AT.match(error)
    if at is None:
        return error
    what, path = at["what"], at["path"].lstrip(".")
    value = _value_at(data, path)
    if "matching regex" in what:
        is_id = _ID_CLASS in what  # msgspec quotes the pattern with repr()
        rule = _ID_RULE if is_id else "must not contain control characters"
        return f"field {path!r} {rule}"
    for pattern, template in _SIMPLE:
        if found := pattern.match(what):
            groups = found.groupdict()
            kinds = " or ".join(
                _KIND_NAMES.get(k.strip(), k.strip()) for k in groups.get("a", "").split("|")
            )
            return f"field {path!r} " + template.format(
                kinds=kinds, kind=json_kind(value), value=short(value), n=groups.get("n"),
                options=_options(kind, path),
            )  # fmt: skip
    return f"field {path!r}: {what}"


_STEP = re.compile(r"\.?([^.\[]+)|\[(\d+)\]")


def _value_at(data: object, path: str) -> object:
    """The value at msgspec's error path (``kinds[1]``, ``a.b``) in the decoded body."""
    for step in _STEP.finditer(path):
        key, index = step.groups()
        if key is not None and isinstance(data, dict):
            data = data.get(key)
        elif index is not None and isinstance(data, list) and int(index) < len(data):
            data = data[int(index)]
        else:
            return None
    return data


def _options(kind: type[Body], name: str) -> str:
    """The values a ``Literal`` field accepts, for its message."""
    info = msgspec.inspect.type_info(kind)
    for field in getattr(info, "fields", ()):
        if field.encode_name == name and isinstance(field.type, msgspec.inspect.LiteralType):
            return " or ".join(repr(v) for v in field.type.values)
    return "the documented values"


class JsonObject:
    """A decoded JSON object with the fields one route accepts, read with typed getters.

    The constructor rejects unknown and missing fields; each getter raises
    ``BadRequest`` naming the field and what it must be. Booleans are never
    integers, and integers above 2^53 - 1 are refused unless a getter allows them.
    """

    def __init__(
        self,
        data: dict[str, object],
        *,
        required: Collection[str] = (),
        optional: Collection[str] = (),
    ) -> None:
        allowed = [*required, *optional]
        unknown = [key for key in data if key not in allowed]
        if unknown:
            names = ", ".join(short(k) for k in unknown[:5])
            hint = ", ".join(repr(k) for k in allowed) or "none"
            raise BadRequest(f"unknown field {names} (allowed: {hint})")
        missing = [key for key in required if key not in data]
        if missing:
            raise BadRequest(f"missing field {', '.join(repr(k) for k in missing)}")
        self.data = data

    def has(self, name: str) -> bool:
        """Whether field ``name`` is present (``null`` counts as present)."""
        return name in self.data

    def integer(self, name: str, *, minimum: int, maximum: int = MAX_SAFE_INTEGER) -> int:
        """Field ``name`` as an integer in ``minimum..maximum``."""
        value = self.data.get(name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadRequest(f"field {name!r} must be an integer, got {json_kind(value)}")
        if value < minimum:
            raise BadRequest(f"field {name!r} must be at least {minimum}, got {value}")
        if value > maximum:
            raise BadRequest(f"field {name!r} must be at most {maximum}, got {short(value)}")
        return value

    def integer_or_null(
        self, name: str, *, minimum: int, maximum: int = MAX_SAFE_INTEGER
    ) -> int | None:
        """Field ``name`` as an integer in range, or ``None`` when it is ``null`` or absent."""
        if self.data.get(name) is None:
            return None
        return self.integer(name, minimum=minimum, maximum=maximum)

    def boolean(self, name: str, default: bool) -> bool:
        """Field ``name`` as ``true``/``false``, ``default`` when absent."""
        if name not in self.data:
            return default
        value = self.data[name]
        if not isinstance(value, bool):
            raise BadRequest(f"field {name!r} must be true or false, got {json_kind(value)}")
        return value

    def string(self, name: str, *, max_length: int, min_length: int = 0) -> str:
        """Field ``name`` as a string of ``min_length..max_length`` characters, valid UTF-8."""
        value = self.data.get(name)
        if not isinstance(value, str):
            raise BadRequest(f"field {name!r} must be a string, got {json_kind(value)}")
        if len(value) > max_length:
            raise BadRequest(f"field {name!r} is longer than {max_length} characters")
        if len(value) < min_length:
            if min_length == 1:
                raise BadRequest(f"field {name!r} must not be empty")
            raise BadRequest(f"field {name!r} must have at least {min_length} characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest(f"field {name!r} holds an unpaired surrogate") from None
        return value

    def ident(self, name: str) -> str:
        """Field ``name`` as an external id (see :func:`gifting.core.ids.check_id`)."""
        if name not in self.data:
            raise BadRequest(f"missing field {name!r}")
        return check_id(self.data[name], name)

    def ident_or_null(self, name: str) -> str | None:
        """Field ``name`` as an id, or ``None`` when it is ``null`` or absent."""
        if self.data.get(name) is None:
            return None
        return check_id(self.data[name], name)

    def choice(self, name: str, options: Iterable[str]) -> str:
        """Field ``name`` as one of ``options``."""
        allowed = list(options)
        value = self.data.get(name)
        if not isinstance(value, str) or value not in allowed:
            choices = " or ".join(repr(o) for o in allowed)
            raise BadRequest(f"field {name!r} must be {choices}, got {short(value)}")
        return value


def query_int(conn: HTTPConnection, name: str, default: int, *, minimum: int, maximum: int) -> int:
    """Query parameter ``name`` as an integer in range, ``default`` when absent."""
    raw = conn.query_params.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 16:
        raise BadRequest(f"query parameter {name!r} must be a whole number")
    value = int(raw)
    if not minimum <= value <= maximum:
        raise BadRequest(f"query parameter {name!r} must be between {minimum} and {maximum}")
    return value


# --------------------------------------------------------------------------- errors

_RETRY_AFTER_S: Final = "1"
#: WebSocket close codes for errors raised before a socket is accepted.
_WS_CLOSE: Final = {400: 1007, 401: 1008, 403: 1008, 404: 1008, 413: 1009, 503: 1013}


def error_response(error: GiftingError, headers: dict[str, str] | None = None) -> JSONResponse:
    """The response for ``error``: ``{"code", "message"}`` with its HTTP status."""
    extra = dict(headers or {})
    if error.status in (429, 503):
        extra.setdefault("Retry-After", _RETRY_AFTER_S)
    return JSONResponse(error.to_dict(), status_code=error.status, headers=extra or None)


async def _respond(conn: HTTPConnection, error: GiftingError) -> Response | None:
    if isinstance(conn, WebSocket):
        code = _WS_CLOSE.get(error.status, 1011)
        await conn.close(code=code, reason=error.message.encode()[:120].decode(errors="ignore"))
        return None
    return error_response(error)


async def _on_gifting_error(conn: HTTPConnection, exc: Exception) -> Response | None:
    assert isinstance(exc, GiftingError)
    return await _respond(conn, exc)


def _allowed_methods(conn: HTTPConnection) -> str:
    """Every method the request's path takes, for a 405's ``Allow`` (RFC 9110 §15.5.6).

    The router answers 405 from the first route whose path matched; a path
    served by one route per method (:class:`~gifting.api.routing.ApiRoute`)
    takes the methods of all of them.
    """
    methods: set[str] = set()
    for route in conn.app.routes:
        if isinstance(route, Route) and route.methods:
            match, _ = route.matches({**conn.scope, "type": "http"})
            if match != Match.NONE:
                methods |= route.methods
    return ", ".join(sorted(methods))


async def _on_http_exception(conn: HTTPConnection, exc: Exception) -> Response | None:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        error: GiftingError = NotFound("no such endpoint")
        return await _respond(conn, error)
    body = {"code": "bad_request", "message": str(exc.detail)}
    if exc.status_code >= 500:
        body["code"] = "unavailable"
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(conn) or headers.get("Allow", "")
    return JSONResponse(body, status_code=exc.status_code, headers=headers or None)


async def _on_redis_unavailable(conn: HTTPConnection, exc: Exception) -> Response | None:
    log.warning("redis unavailable during %s: %s", conn.url.path, exc)
    return await _respond(conn, Unavailable("the store is unavailable; retry shortly"))


async def _on_internal_error(conn: HTTPConnection, exc: Exception) -> Response:
    # Starlette's ServerErrorMiddleware re-raises after this, so the server logs the traceback.
    return JSONResponse(
        {"code": "unavailable", "message": "internal error; retry shortly"}, status_code=500
    )


def exception_handlers() -> dict[Any, Any]:
    """The one table from exception class to response, for ``Starlette(exception_handlers=)``.

    Looked up along the exception's MRO, so every subclass of
    ``GiftingError`` gets its own code and status.
    """
    return {
        GiftingError: _on_gifting_error,
        HTTPException: _on_http_exception,
        RedisConnectionError: _on_redis_unavailable,
        RedisTimeoutError: _on_redis_unavailable,
        Exception: _on_internal_error,
    }
