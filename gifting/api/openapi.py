"""``GET /openapi.json``: the OpenAPI 3.1 document, built from the app's own routes.

Nothing here is written twice: each :class:`~gifting.api.routing.ApiRoute`
carries its body and answer Structs (the ones that validate requests), its
query parameters, its auth and the errors it raises; :func:`build_document`
walks ``app.routes`` (Mounts included) and turns them into operations, with
``msgspec.json.schema_components`` for every Struct under
``components/schemas``. An error answer is the ``Error`` schema with the
codes that status can carry on that operation (:mod:`gifting.core.errors`).

Routes that are not ``ApiRoute`` (pages, ``/metrics``, the static mount)
are listed with their content type; WebSocket endpoints are no OpenAPI
operations and are listed under ``x-websockets``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

from gifting.api.routing import ApiRoute, OperationDoc
from gifting.api.schemas import Error, Id
from gifting.api.signatures import SIGNATURE_HEADER
from gifting.core.errors import (
    BadRequest,
    Forbidden,
    GiftingError,
    PayloadTooLarge,
    Unauthorized,
    Unavailable,
)

__all__ = ["build_document", "get_openapi", "routes"]

OPENAPI_VERSION: Final = "3.1.0"
_REF: Final = "#/components/schemas/{name}"
_PARAM: Final = re.compile(r"{([^}:]+)(?::[^}]+)?}")

#: Content types of the routes that are not ``ApiRoute`` (pages, metrics).
_PLAIN_TYPES: Final = {
    "/metrics": ("text/plain", "Prometheus metrics (text exposition format)"),
    "/": ("text/html", "the demo page"),
    "/overlay/{stream}": ("text/html", "a stream's overlay page (`?key=` its overlay key)"),
}

_SECURITY_SCHEMES: Final = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "a user's token (HS256 JWT: `sub` the user, `roles` may hold "
        "`creator`); `gifting token USER` mints one",
    },
    "overlayKey": {
        "type": "apiKey",
        "in": "query",
        "name": "key",
        "description": "a stream's overlay key (shown to its creator)",
    },
    "webhookSignature": {
        "type": "apiKey",
        "in": "header",
        "name": SIGNATURE_HEADER,
        "description": '`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">` '
        "with the webhook secret",
    },
}
_SECURITY: Final[dict[str, list[dict[str, list[str]]]]] = {
    "bearer": [{"bearer": []}],
    "creator": [{"bearer": []}],
    "signed": [{"webhookSignature": []}],
    "overlay_key": [{"overlayKey": []}],
    "overlay_key_or_bearer": [{"overlayKey": []}, {"bearer": []}],
}


def _implied_errors(doc: OperationDoc, path: str) -> list[type[GiftingError]]:
    """The errors an operation's declaration implies (see :class:`ApiRoute`)."""
    implied: list[type[GiftingError]] = []
    if doc.body is not None:
        implied += [BadRequest, PayloadTooLarge]
    if doc.query or _PARAM.search(path):
        implied.append(BadRequest)
    if doc.auth is not None:
        implied.append(Unauthorized)
    if doc.auth == "creator":
        implied.append(Forbidden)
    return [*implied, *doc.errors, Unavailable]


def _error_answers(errors: Iterable[type[GiftingError]]) -> dict[str, Any]:
    """One answer per status, ``Error`` with the codes that status carries here."""
    by_status: dict[int, list[str]] = {}
    for error in errors:
        codes = by_status.setdefault(error.status, [])
        if error.code not in codes:
            codes.append(error.code)
    answers: dict[str, Any] = {}
    for status, codes in sorted(by_status.items()):
        schema = {
            "allOf": [
                {"$ref": _REF.format(name="Error")},
                {"properties": {"code": {"enum": codes}}},
            ]
        }
        answers[str(status)] = {
            "description": "code " + " or ".join(f"`{c}`" for c in codes),
            "content": {"application/json": {"schema": schema}},
        }
    return answers


def _ref(kind: type[Any]) -> dict[str, str]:
    return {"$ref": _REF.format(name=kind.__name__)}


def _path_parameters(path: str, doc: OperationDoc | None, id_schema: Any) -> list[Any]:
    names = _PARAM.findall(path)
    params = doc.params if doc is not None else {}
    return [
        {"name": n, "in": "path", "required": True, "schema": params.get(n, id_schema)}
        for n in names
    ]


def _operation(path: str, doc: OperationDoc, id_schema: Any) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": doc.summary, "tags": list(doc.tags)}
    if doc.description:
        operation["description"] = doc.description
    operation["operationId"] = _operation_id(doc.method, path)
    parameters = _path_parameters(path, doc, id_schema)
    parameters += [
        {"name": q.name, "in": "query", "required": False, "schema": q.schema()}
        | ({"description": q.description} if q.description else {})
        for q in doc.query
    ]
    parameters += [
        {"name": name, "in": "header", "required": False, "description": text,
         "schema": {"type": "string"}}
        for name, text in doc.request_headers.items()
    ]  # fmt: skip
    if parameters:
        operation["parameters"] = parameters
    if doc.body is not None:
        operation["requestBody"] = {
            "required": not doc.body_optional,
            "content": {"application/json": {"schema": _ref(doc.body)}},
        }
    ok: dict[str, Any] = {"description": "OK" if doc.status == 200 else "Created"}
    if doc.answer is not None:
        ok["content"] = {doc.media_type: {"schema": _ref(doc.answer)}}
    elif doc.media_type != "application/json":
        ok["content"] = {doc.media_type: {"schema": {"type": "string"}}}
    if doc.answer_headers:
        ok["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in doc.answer_headers.items()
        }
    others = {str(status): {"description": text} for status, text in doc.other_answers.items()}
    operation["responses"] = (
        {str(doc.status): ok} | others | _error_answers(_implied_errors(doc, path))
    )
    if doc.auth is not None:
        operation["security"] = _SECURITY[doc.auth]
        if doc.auth == "creator":
            operation["description"] = (
                operation.get("description", "") + "\n\nThe token must carry role `creator`."
            ).strip()
    return operation


def _operation_id(method: str, path: str) -> str:
    words = re.sub(r"[^A-Za-z0-9]+", "_", _PARAM.sub(r"by_\1", path)).strip("_")
    return f"{method.lower()}_{words}"


def _plain_operation(method: str, path: str, route: BaseRoute, id_schema: Any) -> dict[str, Any]:
    """A route that is no ``ApiRoute``: its content type (``_PLAIN_TYPES``) and docstring."""
    endpoint = getattr(route, "endpoint", None)
    doc = (getattr(endpoint, "__doc__", None) or "").strip().partition("\n")[0]
    fallback = "a static file" if isinstance(route, Mount) else doc.replace("``", "`")
    content_type, summary = _PLAIN_TYPES.get(path, ("*/*", fallback or "a page"))
    operation: dict[str, Any] = {
        "summary": summary,
        "tags": ["pages"],
        "operationId": _operation_id(method, path),
        "responses": {
            "200": {
                "description": summary,
                "content": {content_type: {"schema": {"type": "string"}}},
            },
            "404": {"description": "no such page or file"},
            **_error_answers([Unavailable]),
        },
    }
    parameters = _path_parameters(path, None, id_schema)
    if path == "/static/{path}":
        name = {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,100}$(?!\\n)"}
        parameters = [{"name": "path", "in": "path", "required": True, "schema": name}]
    if parameters:
        operation["parameters"] = parameters
    return operation


def _walk(routes: Sequence[BaseRoute], prefix: str = "") -> Iterator[tuple[str, BaseRoute]]:
    """Every route under ``routes`` with its full path (Mounts entered or named)."""
    for route in routes:
        if isinstance(route, Mount):
            inner = route.routes
            if inner:
                yield from _walk(inner, prefix + route.path)
            else:
                yield prefix + route.path + "/{path}", route
        elif isinstance(route, Route | WebSocketRoute):
            yield prefix + route.path, route


def build_document(routes: Sequence[BaseRoute], *, version: str = "1") -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes`` (usually ``app.routes``)."""
    docs = [r.doc for _, r in _walk(routes) if isinstance(r, ApiRoute)]
    kinds: list[Any] = [Error]
    for doc in docs:
        kinds += [k for k in (doc.body, doc.answer) if k is not None]
    (id_schema, *_), schemas = msgspec.json.schema_components(
        [Id, *dict.fromkeys(kinds)], ref_template=_REF
    )
    paths: dict[str, dict[str, Any]] = {}
    websockets: list[dict[str, str]] = []
    for path, route in _walk(routes):
        if isinstance(route, ApiRoute):
            paths.setdefault(path, {})[route.doc.method.lower()] = _operation(
                path, route.doc, id_schema
            )
        elif isinstance(route, WebSocketRoute):
            summary = (route.endpoint.__doc__ or "").strip().partition("\n")[0]
            websockets.append({"path": path, "summary": summary})
        else:
            methods = getattr(route, "methods", None) or {"GET"}
            for method in sorted(methods - {"HEAD"}):
                paths.setdefault(path, {})[method.lower()] = _plain_operation(
                    method, path, route, id_schema
                )
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "gifting",
            "version": version,
            "description": "The HTTP API of the gifting server. Every error is "
            '`{"code", "message"}`; see docs/protocol.md. WebSocket endpoints are listed '
            "under `x-websockets` (their protocol is in docs/protocol.md). Integers are "
            'JSON integers (`5`, never `5.0` or `"5"`) up to 2^53 - 1.',
        },
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": _SECURITY_SCHEMES},
        "x-websockets": websockets,
    }


async def get_openapi(request: Request) -> JSONResponse:
    """This server's OpenAPI 3.1 document (anyone)."""
    document = getattr(request.app.state, "openapi_document", None)
    if document is None:
        document = build_document(request.app.routes)
        request.app.state.openapi_document = document
    return JSONResponse(document)


routes: list[BaseRoute] = [ApiRoute("/openapi.json", get_openapi, "GET", tags=["document"])]
