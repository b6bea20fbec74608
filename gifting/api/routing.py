""":class:`ApiRoute`: a Starlette route that carries its own API document.

A route module declares each operation once, with the types that validate
it; :mod:`gifting.api.openapi` reads these declarations to build
``/openapi.json``::

    LIMIT = QueryInt("limit", default=50, minimum=1, maximum=100)

    async def list_things(request: Request) -> JSONResponse:
        caller = principal(request)
        limit = LIMIT.read(request)
        ...

    async def add_thing(request: Request) -> JSONResponse:
        body = await read_body_as(request, ThingBody)   # a schemas.Body Struct
        ...

    routes = [
        ApiRoute("/v1/things", list_things, "GET", answer=Things, auth="bearer", query=[LIMIT]),
        ApiRoute("/v1/things", add_thing, "POST", body=ThingBody, answer=Thing, status=201,
                 auth="creator", errors=[Conflict, UnknownItem]),
    ]

An answer that is not JSON (a server-sent event stream, text) gives its
``media_type`` instead of an ``answer`` Struct; answers other than the
success and the errors (a 204) are ``other_answers`` (status: description).

``errors`` lists the :class:`~gifting.core.errors.GiftingError` classes the
handler raises itself; those implied by the declaration are added: a body
or a query gives ``bad_request`` (400, and 413 for a body), an ``auth``
gives ``unauthorized`` (and ``forbidden`` for ``creator``), and every
operation may answer 503 ``unavailable``. Path parameters are ids
(:data:`~gifting.api.schemas.Id`) unless ``params`` says otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.requests import HTTPConnection
from starlette.routing import Route

from gifting.api.http import query_int
from gifting.api.schemas import Answer, Body
from gifting.core.errors import BadRequest, GiftingError

__all__ = [
    "ApiRoute",
    "Auth",
    "OperationDoc",
    "QueryChoice",
    "QueryInt",
    "QueryParam",
    "QueryText",
]

#: Who may call: a user's bearer JWT, a bearer JWT with role ``creator``, the
#: payment provider's ``X-Gifting-Signature``, a stream's overlay key
#: (``?key=``), either of the last and a bearer JWT, or anyone (``None``).
Auth = Literal["bearer", "creator", "signed", "overlay_key", "overlay_key_or_bearer"]


@dataclass(frozen=True)
class QueryInt:
    """An integer query parameter in ``minimum..maximum``, ``default`` when absent."""

    name: str
    default: int
    minimum: int
    maximum: int
    description: str = ""

    def read(self, conn: HTTPConnection) -> int:
        """The parameter's value in ``conn``, or raise ``BadRequest``."""
        return query_int(conn, self.name, self.default, minimum=self.minimum, maximum=self.maximum)

    def schema(self) -> dict[str, Any]:
        """Its JSON Schema."""
        return {
            "type": "integer",
            "minimum": self.minimum,
            "maximum": self.maximum,
            "default": self.default,
        }


@dataclass(frozen=True)
class QueryText:
    """A string query parameter of at most ``max_length`` characters, or ``None``."""

    name: str
    max_length: int
    description: str = ""

    def read(self, conn: HTTPConnection) -> str | None:
        """The parameter's value in ``conn`` (``None`` when absent), or raise ``BadRequest``."""
        value = conn.query_params.get(self.name)
        if value is not None and len(value) > self.max_length:
            raise BadRequest(
                f"query parameter {self.name!r} is longer than {self.max_length} characters"
            )
        return value

    def schema(self) -> dict[str, Any]:
        """Its JSON Schema."""
        return {"type": "string", "maxLength": self.max_length}


@dataclass(frozen=True)
class QueryChoice:
    """A string query parameter that is one of ``options``, or ``None`` when absent."""

    name: str
    options: tuple[str, ...]
    description: str = ""

    def read(self, conn: HTTPConnection) -> str | None:
        """The parameter's value in ``conn`` (``None`` when absent), or raise ``BadRequest``."""
        value = conn.query_params.get(self.name)
        if value is not None and value not in self.options:
            choices = " or ".join(f'"{o}"' for o in self.options)
            raise BadRequest(f"{self.name} must be {choices}")
        return value

    def schema(self) -> dict[str, Any]:
        """Its JSON Schema."""
        return {"type": "string", "enum": list(self.options)}


QueryParam = QueryInt | QueryText | QueryChoice


@dataclass(frozen=True)
class OperationDoc:
    """What the API document says about one operation (see :class:`ApiRoute`)."""

    method: str
    summary: str
    description: str
    body: type[Body] | None = None
    body_optional: bool = False
    answer: type[Answer] | None = None
    media_type: str = "application/json"
    status: int = 200
    errors: tuple[type[GiftingError], ...] = ()
    auth: Auth | None = None
    query: tuple[QueryParam, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    request_headers: Mapping[str, str] = field(default_factory=dict)
    answer_headers: Mapping[str, str] = field(default_factory=dict)
    other_answers: Mapping[int, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()


class ApiRoute(Route):
    """A route of one method whose :attr:`doc` feeds the OpenAPI document."""

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        method: str,
        *,
        summary: str | None = None,
        body: type[Body] | None = None,
        body_optional: bool = False,
        answer: type[Answer] | None = None,
        media_type: str = "application/json",
        status: int = 200,
        errors: Sequence[type[GiftingError]] = (),
        auth: Auth | None = None,
        query: Sequence[QueryParam] = (),
        params: Mapping[str, Any] | None = None,
        request_headers: Mapping[str, str] | None = None,
        answer_headers: Mapping[str, str] | None = None,
        other_answers: Mapping[int, str] | None = None,
        tags: Sequence[str] = (),
    ) -> None:
        super().__init__(path, endpoint, methods=[method])
        doc = (endpoint.__doc__ or "").strip().replace("``", "`")  # reST to Markdown
        first, _, rest = doc.partition("\n")
        self.doc = OperationDoc(
            method=method.upper(),
            summary=summary or first.strip(),
            description=rest.strip(),
            body=body,
            body_optional=body_optional,
            answer=answer,
            media_type=media_type,
            status=status,
            errors=tuple(errors),
            auth=auth,
            query=tuple(query),
            params=dict(params or {}),
            request_headers=dict(request_headers or {}),
            answer_headers=dict(answer_headers or {}),
            other_answers=dict(other_answers or {}),
            tags=tuple(tags) or (path.removeprefix("/v1/").split("/")[0],),
        )
