"""``GET /openapi.json``: a valid OpenAPI 3.1 document of every route, true to the server.

The document is checked by openapi-spec-validator; every route ``create_app``
mounts (Mounts walked) must be in it, and every documented operation must
exist on a real uvicorn server (anything but the router's 404 "no such
endpoint" or a 405). Each body schema accepts a valid example, which the
server then takes; bodies the schema refuses, the server refuses with 400
naming the field and changes nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
from api_support import Api, open_api, settings_for
from hypothesis import given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate
from redis.asyncio import Redis
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

from gifting.api.openapi import build_document
from gifting.api.routing import ApiRoute
from gifting.app import create_app
from gifting.core.errors import BadRequest
from gifting.core.events import comment_event, sender_of
from gifting.core.ids import ID_PATTERN, check_id, comment_event_id
from gifting.persister.service import persister_lifespan
from gifting.state import Extension
from gifting.store.wiring import build_roomlog
from tests.hub.conftest import serve

# Valid bodies by schema name; "{stream}", "{cashout}" and "{purchase}" are filled in
# (and in paths "{event}", a comment to hide; "{cashout}" of ".../cancel" is another one).
EXAMPLES: dict[str, dict[str, Any]] = {
    "BudgetBody": {"monthly": 500},
    "BadgeBody": {"id": "badge-1", "badge": "supporter"},
    "CashoutBody": {"diamonds": 2000, "id": "co-1"},
    "StreamBody": {"title": "hello"},
    "EmptyBody": {},
    "GoalBody": {"target": 100, "gift": "rose"},
    "GuestsBody": {"guests": ["bob", {"user": "dan", "name": "Dan"}]},
    "GoalsBody": {"goals": [{"id": "g1", "title": "Roses", "target": 100, "gift": "rose",
                             "steps": [10, 50]}]},
    "PurchaseWebhook": {"purchase_id": "p-new", "user": "alice", "package": "coins_70",
                        "amount": 99, "currency": "USD"},
    "RefundWebhook": {"purchase_id": "{purchase}"},
    "PayoutWebhook": {"cashout": "{cashout}", "status": "paid"},
    "DevTokenBody": {"user": "alice", "name": "Alice", "creator": True},
    "DevPurchaseBody": {"package": "coins_70"},
    "ModeratorBody": {"user": "mod"},
    "BlockBody": {"user": "bob", "scope": "stream"},
    "SubscriptionBody": {"url": "http://127.0.0.1:9/hook", "kinds": ["gift", "comment"],
                         "stream": "{stream}"},
    "VideoBody": {"title": "a clip"},
    "VideoGiftBody": {"id": "vg-1", "gift": "rose", "count": 2},
}  # fmt: skip


def _walk(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, BaseRoute]]:
    for route in routes:
        if isinstance(route, Mount):
            if route.routes:
                yield from _walk(list(route.routes), prefix + route.path)
            else:
                yield prefix + route.path + "/{path}", route
        else:
            assert isinstance(route, Route | WebSocketRoute), route
            yield prefix + route.path, route


def _full_app() -> Any:
    return create_app(settings_for("redis://unused", "postgresql://unused", "t", GIFTING_DEV=True))


def _resolver_schema(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with the document's components beside it, so ``$ref`` resolves."""
    return {**schema, "components": document["components"]}


def _body_schema(document: dict[str, Any], path: str, method: str) -> tuple[str, dict[str, Any]]:
    ref = document["paths"][path][method]["requestBody"]["content"]["application/json"]
    name = ref["schema"]["$ref"].rsplit("/", 1)[1]
    return name, _resolver_schema(document, ref["schema"])


def test_the_document_is_valid_openapi_3_1() -> None:
    document = build_document(_full_app().routes)
    validate(document)
    assert document["openapi"].startswith("3.1")
    schemes = document["components"]["securitySchemes"]
    assert {"bearer", "overlayKey", "webhookSignature"} <= set(schemes)


def test_every_mounted_route_is_in_the_document() -> None:
    app = _full_app()
    document = build_document(app.routes)
    websockets = {w["path"] for w in document["x-websockets"]}
    missing = []
    for path, route in _walk(app.routes):
        if isinstance(route, WebSocketRoute):
            if path not in websockets:
                missing.append(f"ws {path}")
            continue
        methods = getattr(route, "methods", None) or {"GET"}
        for method in methods - {"HEAD"}:
            if method.lower() not in document["paths"].get(path, {}):
                missing.append(f"{method} {path}")
    assert not missing, missing
    assert {"/v1/ws/viewer", "/v1/ws/overlay"} <= websockets
    assert {"/healthz", "/readyz", "/metrics", "/", "/overlay/{stream}", "/static/{path}",
            "/openapi.json"} <= set(document["paths"])  # fmt: skip
    metrics = document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert "text/plain" in metrics


def test_every_v1_http_route_is_an_api_route() -> None:
    """A /v1 route carries its document (bodies, answers, errors): see ApiRoute."""
    plain = [
        path for path, route in _walk(_full_app().routes)
        if path.startswith("/v1/") and isinstance(route, Route) and not isinstance(route, ApiRoute)
    ]  # fmt: skip
    assert not plain, f"declare these with gifting.api.routing.ApiRoute: {plain}"


def test_an_answer_that_is_not_json_has_its_media_type() -> None:
    async def feed(request: Any) -> Any:
        """A feed of events."""

    route = ApiRoute("/v1/x/{stream}/events", feed, "GET", media_type="text/event-stream",
                     auth="overlay_key")  # fmt: skip
    operation = build_document([route])["paths"]["/v1/x/{stream}/events"]["get"]
    assert operation["responses"]["200"]["content"] == {
        "text/event-stream": {"schema": {"type": "string"}}
    }
    assert operation["security"] == [{"overlayKey": []}]
    assert operation["summary"] == "A feed of events."
    validate(build_document([route]))


def test_errors_are_the_error_schema_with_their_codes() -> None:
    document = build_document(_full_app().routes)
    badges = document["paths"]["/v1/badges"]["post"]["responses"]
    assert set(badges) == {"200", "400", "401", "402", "404", "409", "413", "503"}
    codes = badges["402"]["content"]["application/json"]["schema"]["allOf"][1]
    assert codes["properties"]["code"]["enum"] == ["insufficient_funds", "budget_exceeded"]
    assert document["paths"]["/v1/streams"]["post"]["responses"]["403"]
    assert document["paths"]["/v1/webhooks/purchases"]["post"]["security"] == [
        {"webhookSignature": []}
    ]
    assert "security" not in document["paths"]["/v1/catalog"]["get"]
    limit = document["paths"]["/v1/cashouts"]["get"]["parameters"][0]
    assert limit == {"name": "limit", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 1, "maximum": 100,
                                "default": 50}}  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=70) | st.from_regex(r"[A-Za-z0-9:{} \n._-]{0,66}", fullmatch=True))
def test_the_id_pattern_is_check_ids_rule(value: str) -> None:
    try:
        check_id(value, "id")
        accepted = True
    except BadRequest:
        accepted = False
    assert (re.search(ID_PATTERN, value) is not None) == accepted
    assert accepted == jsonschema.Draft202012Validator(
        {"type": "string", "pattern": ID_PATTERN, "maxLength": 64, "minLength": 1}
    ).is_valid(value)


async def test_the_server_serves_its_document(api: Api) -> None:
    r = await api.client.get("/openapi.json")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json() == json.loads(json.dumps(build_document(api.app.routes)))


async def test_every_documented_operation_exists_on_a_real_server(
    redis_url: str, database_url: str, key_prefix: str
) -> None:
    async with (
        serve(redis_url, database_url, key_prefix, with_persister=True, GIFTING_DEV=True) as hub,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{hub.port}") as client,
    ):
        document = (await client.get("/openapi.json")).json()
        assert len(document["paths"]) >= 20
        wrong = []
        for path, operations in document["paths"].items():
            url = re.sub(r"{[^}]+}", "x", path.replace("{path}", "overlay.js"))
            for method in operations:
                r = await client.request(method.upper(), url)
                no_route = r.status_code == 404 and "no such endpoint" in r.text
                if no_route or r.status_code == 405 or r.status_code >= 500:
                    wrong.append(f"{method} {path}: {r.status_code} {r.text[:80]}")
        assert not wrong, wrong


async def _context(api: Api) -> dict[str, str]:
    purchase = (await api.buy("alice"))["purchase_id"]
    await api.buy("carol")
    await api.earn_diamonds("carol", "dave")
    await api.earn_diamonds("carol", "dave")
    stream = (await api.create_stream("carol"))["stream"]
    r = await api.send("POST", "/v1/cashouts", {"diamonds": 2000, "id": "held"}, user="carol")
    cancel = await api.send("POST", "/v1/cashouts", {"diamonds": 2000, "id": "c2"}, user="carol")
    event = comment_event_id("alice", "c1")
    roomlog = build_roomlog(api.state.settings, api.redis, api.state.catalog)
    try:
        await roomlog.emit(stream, comment_event(stream, event, 1, sender_of("alice", "A"), "x"))
    finally:
        await roomlog.aclose()
    video = await api.send("POST", "/v1/videos", {"title": "v"}, user="vera", creator=True)
    return {"stream": stream, "cashout": r.json()["cashout"], "purchase": purchase,
            "cancel": cancel.json()["cashout"], "event": event,
            "video": video.json()["video"]}  # fmt: skip


def _fill(value: Any, ctx: dict[str, str]) -> Any:
    return value.format(**ctx) if isinstance(value, str) else value


async def _call(api: Api, method: str, path: str, body: bytes) -> httpx.Response:
    if path.startswith("/v1/webhooks/"):
        return await api.webhook(path.removeprefix("/v1/webhooks/"), raw=body)
    return await api.send(method.upper(), path, raw=body, user="carol", creator=True)


def _bad_variants(
    example: dict[str, Any], schema: dict[str, Any]
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(label, field the message must name, body) the schema must refuse."""
    yield "unknown field", "extra", {**example, "extra": 1}
    for name in example:
        prop = schema.get("properties", {}).get(name, {})
        if not (prop.get("type") == "array" and not prop.get("minItems")):  # [] may be valid
            yield f"{name}=[]", name, {**example, name: []}
        yield f"{name}=true", name, {**example, name: True} if not isinstance(
            example[name], bool) else {**example, name: "yes"}  # fmt: skip
    for name in schema.get("required", []):
        yield f"no {name}", name, {k: v for k, v in example.items() if k != name}


async def test_every_body_schema_takes_its_example_and_the_server_refuses_what_it_refuses(
    redis_url: str, database_url: str, key_prefix: str, redis: Redis
) -> None:
    settings = settings_for(redis_url, database_url, key_prefix, GIFTING_DEV=True)
    pool = Extension("persister", lifespan=persister_lifespan)  # its pool: no consumer here
    async with open_api(settings, redis, [pool]) as api:
        await _check_bodies(api)


async def _check_bodies(api: Api) -> None:
    document = build_document(api.app.routes)
    ctx = await _context(api)
    bodies = [(p, m) for p, ops in document["paths"].items() for m, op in ops.items()
              if "requestBody" in op]  # fmt: skip
    bodies.sort(key=lambda pm: pm[0].endswith("/end"))  # the stream ends last
    assert len(bodies) >= 11
    failures = []
    for path, method in bodies:
        name, schema = _body_schema(document, path, method)
        validator = jsonschema.Draft202012Validator(schema)
        component = document["components"]["schemas"][name]
        example = {k: _fill(v, ctx) for k, v in EXAMPLES[name].items()}
        url = path.format(**ctx | ({"cashout": ctx["cancel"]} if path.endswith("/cancel") else {}))
        assert validator.is_valid(example), (name, list(validator.iter_errors(example)))
        for label, field, bad in _bad_variants(example, component):
            assert not validator.is_valid(bad), (name, label)
            before = await api.snapshot()
            r = await _call(api, method, url, json.dumps(bad).encode())
            if (r.status_code, r.json()["code"]) != (400, "bad_request") or (
                field not in r.json()["message"]
            ):
                failures.append(f"{method} {path} {label}: {r.status_code} {r.text[:120]}")
            assert await api.snapshot() == before, (path, label)
        r = await _call(api, method, url, json.dumps(example).encode())
        if not r.is_success:
            failures.append(f"{method} {path} example: {r.status_code} {r.text[:120]}")
    assert not failures, "\n".join(failures)


async def test_a_method_a_path_does_not_take_is_405_listing_every_method_it_takes() -> None:
    """RFC 9110: a 405 carries ``Allow`` with the path's methods, however many routes serve it."""
    app = _full_app()
    paths = build_document(app.routes)["paths"]
    transport = httpx.ASGITransport(app=app)
    wrong = []
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        for path, operations in paths.items():
            if path == "/static/{path}":
                continue  # a Mount of files: GET and HEAD
            url = re.sub(r"{[^}]+}", "x", path)
            r = await client.request("PATCH", url)
            documented = {m.upper() for m in operations}
            allowed = {m.strip() for m in r.headers.get("allow", "").split(",")} - {"HEAD"}
            if r.status_code != 405 or set(r.json()) != {"code", "message"}:
                wrong.append(f"PATCH {path}: {r.status_code} {r.text[:80]}")
            elif allowed != documented:
                wrong.append(f"PATCH {path}: Allow {sorted(allowed)}, takes {sorted(documented)}")
    assert not wrong, "\n".join(wrong)
