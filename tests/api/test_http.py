"""The shared HTTP edges: body limits, the one error mapping, health and readiness."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from api_support import Api, open_api, settings_for
from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gifting.api.http import MAX_BODY_BYTES, JsonObject, decode_body
from gifting.api.schemas import EmptyBody, PayoutWebhook, PurchaseWebhook, RefundWebhook
from gifting.app import create_app
from gifting.core.errors import BadRequest, Conflict
from gifting.embedded import EmbeddedRedis
from gifting.state import AppState, Extension


def _padded(body: dict[str, Any], size: int) -> bytes:
    """``body`` as JSON padded with trailing spaces to exactly ``size`` bytes."""
    raw = json.dumps(body).encode()
    return raw + b" " * (size - len(raw))


async def test_a_body_of_exactly_64_kib_is_accepted_one_byte_more_is_not(api: Api) -> None:
    r = await api.send(
        "POST",
        "/v1/streams",
        raw=_padded({"title": "t"}, MAX_BODY_BYTES),
        user="carol",
        creator=True,
    )
    assert r.status_code == 201
    before = await api.snapshot()
    r = await api.send(
        "POST",
        "/v1/streams",
        raw=_padded({"title": "t"}, MAX_BODY_BYTES + 1),
        user="carol",
        creator=True,
    )
    assert r.status_code == 413
    assert r.json() == {"code": "bad_request", "message": "the body is larger than 65536 bytes"}
    assert await api.snapshot() == before


async def test_a_chunked_body_without_length_is_counted(api: Api) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"title": "'
        for _ in range(20):
            yield b"x" * 4096
        yield b'"}'

    before = await api.snapshot()
    r = await api.client.post(
        "/v1/streams", content=chunks(), headers=api.auth("carol", creator=True)
    )
    assert r.status_code == 413
    assert await api.snapshot() == before


async def _raw_call(
    app: Any, headers: list[tuple[bytes, bytes]], chunks: list[bytes]
) -> tuple[int, bytes]:
    """Drive the ASGI app by hand, so the Content-Length header can lie."""
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/streams",
        "raw_path": b"/v1/streams",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 5000),
    }
    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body


async def test_a_lying_content_length_does_not_let_more_bytes_in(api: Api) -> None:
    auth = api.auth("carol", creator=True)["Authorization"].encode()
    before = await api.snapshot()
    status, body = await _raw_call(
        api.app,
        [(b"content-length", b"20"), (b"authorization", auth)],
        [b'{"title": "', b"x" * 40_000, b"x" * 40_000, b'"}'],
    )
    assert status == 413
    assert json.loads(body)["code"] == "bad_request"
    status, body = await _raw_call(
        api.app, [(b"content-length", b"999999"), (b"authorization", auth)], [b"{}"]
    )
    assert status == 413
    status, body = await _raw_call(
        api.app, [(b"content-length", b"12abc"), (b"authorization", auth)], [b"{}"]
    )
    assert status == 400
    assert "Content-Length" in json.loads(body)["message"]
    assert await api.snapshot() == before


async def test_unknown_paths_and_methods_are_json_errors(api: Api) -> None:
    r = await api.client.get("/v1/nope")
    assert (r.status_code, r.json()["code"]) == (404, "not_found")
    r = await api.client.delete("/v1/catalog")
    assert r.status_code == 405
    assert r.json()["code"] == "bad_request"
    assert "GET" in r.headers["allow"]


def test_json_object_getters() -> None:
    body = JsonObject(
        {"n": 3, "s": "x", "b": True, "z": None},
        required=("n",),
        optional=("s", "b", "z", "absent"),
    )
    assert body.integer("n", minimum=1) == 3
    assert body.integer_or_null("z", minimum=0) is None
    assert body.integer_or_null("absent", minimum=0) is None
    assert body.boolean("b", False) is True
    assert body.boolean("absent", False) is False
    assert body.choice("s", ["x", "y"]) == "x"
    with pytest.raises(BadRequest, match="'s' must be 'a' or 'b'"):
        body.choice("s", ["a", "b"])
    with pytest.raises(BadRequest, match="'n' must be true or false"):
        body.boolean("n", False)
    with pytest.raises(BadRequest, match="missing field 'n'"):
        JsonObject({}, required=("n",))


# --------------------------------------------------------------------------- error mapping


async def _boom(request: Request) -> JSONResponse:
    raise RuntimeError("secret internal detail")


async def _conflict(request: Request) -> JSONResponse:
    raise Conflict("taken")


async def test_errors_map_in_one_place(
    redis_url: str, database_url: str, key_prefix: str, redis: Redis
) -> None:
    routes = [Route("/test/boom", _boom), Route("/test/conflict", _conflict)]
    settings = settings_for(redis_url, database_url, key_prefix)
    async with open_api(
        settings, redis, [Extension("test", routes=routes)], raise_app_exceptions=False
    ) as api:
        r = await api.client.get("/test/boom")
        assert r.status_code == 500
        assert r.json() == {"code": "unavailable", "message": "internal error; retry shortly"}
        assert "secret" not in r.text
        r = await api.client.get("/test/conflict")
        assert (r.status_code, r.json()) == (409, {"code": "conflict", "message": "taken"})


async def test_requests_before_the_lifespan_are_unavailable(
    redis_url: str, database_url: str, key_prefix: str
) -> None:
    app = create_app(settings_for(redis_url, database_url, key_prefix), extensions=[])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        r = await client.get("/v1/catalog")
    assert r.status_code == 503
    assert r.json()["code"] == "unavailable"
    assert r.headers["retry-after"] == "1"


async def test_redis_down_is_503_and_readyz_says_so(
    private_redis: EmbeddedRedis, database_url: str, key_prefix: str
) -> None:
    client = Redis.from_url(private_redis.url)
    settings = settings_for(private_redis.url, database_url, key_prefix)
    try:
        async with open_api(settings, client) as api:
            await api.buy("alice")
            assert (await api.client.get("/readyz")).json() == {
                "status": "ready",
                "checks": {"redis": "ok"},
            }
            private_redis.kill()
            r = await api.get("/v1/wallet", "alice")
            assert r.status_code == 503
            assert r.json()["code"] == "unavailable"
            assert r.headers["retry-after"] == "1"
            r = await api.client.get("/readyz")
            assert r.status_code == 503
            assert r.json()["checks"]["redis"].startswith("failed")
            assert (await api.client.get("/healthz")).status_code == 200
            private_redis.restart()
            assert (await api.client.get("/readyz")).status_code == 200
            assert (await api.wallet("alice"))["coins"] == 700  # appendonly file kept it
    finally:
        await client.aclose()


async def test_readyz_runs_the_checks_extensions_register(
    redis_url: str, database_url: str, key_prefix: str, redis: Redis
) -> None:
    async def broken() -> None:
        raise ConnectionError("no postgres")

    @asynccontextmanager
    async def persister(state: AppState) -> AsyncIterator[None]:
        state.readiness["postgres"] = broken
        yield

    settings = settings_for(redis_url, database_url, key_prefix)
    async with open_api(settings, redis, [Extension("p", lifespan=persister)]) as api:
        r = await api.client.get("/readyz")
        assert r.status_code == 503
        assert r.json()["checks"] == {"redis": "ok", "postgres": "failed: ConnectionError"}
        assert "postgres" in r.json()["message"]


async def test_catalog_is_public_and_cacheable(api: Api) -> None:
    r = await api.client.get("/v1/catalog")
    assert r.status_code == 200
    body = r.json()
    assert body == api.state.catalog.to_public()
    assert {
        "gifts",
        "packages",
        "effects",
        "highlights",
        "badges",
        "creator_share_bps",
        "diamond_value",
        "cashout_min_diamonds",
    } <= set(body)
    assert body["packages"][0] == {
        "id": "coins_70",
        "coins": 70,
        "price": {"amount": 99, "currency": "USD"},
    }
    assert "max-age" in r.headers["cache-control"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"purchase_id": 5}', "field 'purchase_id' must be a string, got integer"),
        (b'{"purchase_id": ""}', "field 'purchase_id' must not be empty"),
        (b'{"purchase_id": "' + b"x" * 65 + b'"}',
         "field 'purchase_id' is longer than 64 characters"),
        (b'{"purchase_id": "a\\n"}', "field 'purchase_id' may hold only letters"),
        (b'{"purchase_id": "\\ud800"}', "field 'purchase_id' holds an unpaired surrogate"),
        (b'{"purchase_id": "p", "x": 1}', "unknown field 'x' (allowed: 'purchase_id')"),
        (b'{}', "missing field 'purchase_id'"),
        (b'{"purchase_id": "p", "purchase_id": "q"}', "duplicate field 'purchase_id'"),
    ],
)
def test_decode_body_names_the_field(body: bytes, message: str) -> None:
    with pytest.raises(BadRequest) as caught:
        decode_body(body, RefundWebhook)
    assert caught.value.message.startswith(message), caught.value.message


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("true", "field 'amount' must be an integer, got boolean"),
        ("5.0", "field 'amount' must be an integer, got float"),
        ('"5"', "field 'amount' must be an integer, got string"),
        ("0", "field 'amount' must be at least 1, got 0"),
        (str(2**53), "field 'amount' must be at most 9007199254740991"),
        ("1" + "0" * 40, "field 'amount' must be at most 9007199254740991"),
    ],
)
def test_decode_body_integers_are_strict_and_bounded(value: str, message: str) -> None:
    raw = ('{"purchase_id": "p", "user": "u", "package": "x", "currency": "USD", '
           f'"amount": {value}}}').encode()
    with pytest.raises(BadRequest) as caught:
        decode_body(raw, PurchaseWebhook)
    assert caught.value.message.startswith(message), caught.value.message


def test_decode_body_literals_name_their_values() -> None:
    with pytest.raises(BadRequest, match="field 'status' must be 'failed' or 'paid'"):
        decode_body(b'{"cashout": "c", "status": "PAID"}', PayoutWebhook)
    assert decode_body(b"", EmptyBody, allow_empty=True) == EmptyBody()
    with pytest.raises(BadRequest, match="must be a JSON object"):
        decode_body(b"", EmptyBody)
