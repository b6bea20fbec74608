"""Bearer tokens: the forged, expired, malformed and misused ones are refused (contract §3.7)."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from api_support import JWT_SECRET, Api
from starlette.requests import HTTPConnection

from gifting.auth import Principal, bearer_token, mint_token, principal_from_token
from gifting.core.errors import BadRequest, Unauthorized

SECRET = JWT_SECRET


def _b64(data: dict[str, object]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _claims(**over: object) -> dict[str, object]:
    claims: dict[str, object] = {
        "sub": "alice", "name": "Alice", "exp": int(time.time()) + 600,
        "iss": "gifting", "aud": "gifting",
    }  # fmt: skip
    claims.update(over)
    return {k: v for k, v in claims.items() if v is not None}


def _hs256(claims: dict[str, object], secret: str = SECRET) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


def test_valid_token_gives_its_principal() -> None:
    token = mint_token(SECRET, "alice", "Alice", ["creator"], 60)
    expected = Principal("alice", "Alice", frozenset({"creator"}))
    assert principal_from_token(token, SECRET) == expected


def test_name_defaults_to_the_user_and_roles_to_none() -> None:
    p = principal_from_token(_hs256(_claims(name=None)), SECRET)
    assert (p.user, p.name, p.roles) == ("alice", "alice", frozenset())


BAD_TOKENS = {
    "forged signature": lambda: _hs256(_claims(), "another-secret-0123456789abcdef0123"),
    "alg none": lambda: f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims())}.",
    "alg none with a signature": lambda: (
        f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims())}."
        + _hs256(_claims()).rsplit(".", 1)[1]
    ),
    "HS512": lambda: jwt.encode(_claims(), SECRET * 2, algorithm="HS512"),
    "expired": lambda: _hs256(_claims(exp=int(time.time()) - 1)),
    "missing exp": lambda: _hs256(_claims(exp=None)),
    "exp in the year 3e10 (no maximum lifetime)": lambda: _hs256(_claims(exp=10**18)),
    "exp past the maximum lifetime": lambda: _hs256(_claims(exp=int(time.time()) + 367 * 86400)),
    "missing iss": lambda: _hs256(_claims(iss=None)),
    "another service's iss": lambda: _hs256(_claims(iss="billing")),
    "missing aud": lambda: _hs256(_claims(aud=None)),
    "another audience": lambda: _hs256(_claims(aud="billing")),
    "audience list without ours": lambda: _hs256(_claims(aud=["billing", "chat"])),
    "exp not a number": lambda: _hs256(_claims(exp="tomorrow")),
    "missing sub": lambda: _hs256(_claims(sub=None)),
    "sub not a string": lambda: _hs256(_claims(sub=42)),
    "sub with a newline": lambda: _hs256(_claims(sub="ali\nce")),
    "sub with NUL": lambda: _hs256(_claims(sub="ali\x00ce")),
    "sub with a space": lambda: _hs256(_claims(sub="ali ce")),
    "sub too long": lambda: _hs256(_claims(sub="a" * 65)),
    "empty sub": lambda: _hs256(_claims(sub="")),
    "roles not a list": lambda: _hs256(_claims(roles="creator")),
    "roles of numbers": lambda: _hs256(_claims(roles=[1])),
    "name too long": lambda: _hs256(_claims(name="x" * 65)),
    "name with control characters": lambda: _hs256(_claims(name="a\x07b")),
    "not yet valid": lambda: _hs256(_claims(nbf=int(time.time()) + 600)),
    "garbage": lambda: "not-a-token",
    "two parts": lambda: "abc.def",
    "huge": lambda: "a" * 10_000,
    "empty": lambda: "",
}


@pytest.mark.parametrize("case", list(BAD_TOKENS))
def test_bad_tokens_are_unauthorized(case: str) -> None:
    with pytest.raises(Unauthorized):
        principal_from_token(BAD_TOKENS[case](), SECRET)


def test_expiry_follows_the_server_clock(clock: list[int]) -> None:
    token = mint_token(SECRET, "alice", ttl_s=60)
    assert principal_from_token(token, SECRET).user == "alice"
    clock[0] += 61_000
    with pytest.raises(Unauthorized, match="expired"):
        principal_from_token(token, SECRET)


def test_mint_token_validates_its_input() -> None:
    with pytest.raises(BadRequest):
        mint_token(SECRET, "bad user")
    with pytest.raises(BadRequest):
        mint_token(SECRET, "alice", "x" * 100)
    with pytest.raises(BadRequest):
        mint_token(SECRET, "alice", ttl_s=0)


def _conn(
    headers: list[tuple[bytes, bytes]], query: bytes = b"", kind: str = "http"
) -> HTTPConnection:
    return HTTPConnection(
        {"type": kind, "headers": headers, "query_string": query, "path": "/", "method": "GET"}
    )


def test_bearer_token_sources() -> None:
    assert bearer_token(_conn([(b"authorization", b"Bearer abc")])) == "abc"
    assert bearer_token(_conn([(b"authorization", b"bearer  abc ")])) == "abc"
    assert bearer_token(_conn([], b"token=xyz", "websocket")) == "xyz"
    with pytest.raises(Unauthorized, match="WebSockets only"):
        bearer_token(_conn([], b"token=xyz"))  # plain HTTP
    assert bearer_token(_conn([])) is None
    # The header wins over the query parameter.
    assert bearer_token(_conn([(b"authorization", b"Bearer h")], b"token=q", "websocket")) == "h"
    with pytest.raises(Unauthorized):
        bearer_token(_conn([(b"authorization", b"Basic YWxpY2U6cHc=")]))
    with pytest.raises(Unauthorized):
        bearer_token(_conn([(b"authorization", b"Bearer")]))


# --------------------------------------------------------------------------- over HTTP


@pytest.mark.parametrize("case", ["forged signature", "alg none", "expired", "missing sub",
                                  "sub with a newline", "garbage"])
async def test_http_refuses_bad_tokens(api: Api, case: str) -> None:
    r = await api.client.get(
        "/v1/wallet", headers={"Authorization": f"Bearer {BAD_TOKENS[case]()}"}
    )
    assert r.status_code == 401
    assert r.json()["code"] == "unauthorized"
    assert r.json()["message"]


async def test_http_needs_a_token(api: Api) -> None:
    for method, path in [("GET", "/v1/wallet"), ("PUT", "/v1/wallet/budget"),
                         ("POST", "/v1/badges"), ("POST", "/v1/cashouts"),
                         ("GET", "/v1/cashouts"), ("POST", "/v1/streams")]:
        r = await api.client.request(method, path, content=b"{}")
        assert r.status_code == 401, (method, path)
        assert r.json() == {
            "code": "unauthorized",
            "message": "missing bearer token (Authorization header or token parameter)",
        }


async def test_http_refuses_the_token_query_parameter(api: Api) -> None:
    """A token in an HTTP URL ends up in access logs and referrers: WebSockets only."""
    before = await api.snapshot()
    r = await api.client.get("/v1/wallet", params={"token": api.token("alice")})
    assert r.status_code == 401
    assert "Authorization header" in r.json()["message"]
    r = await api.client.post(
        "/v1/streams", params={"token": api.token("carol", creator=True)}, json={"title": "x"}
    )
    assert r.status_code == 401
    assert await api.snapshot() == before


async def test_http_refuses_other_authorization_schemes(api: Api) -> None:
    r = await api.client.get("/v1/wallet", headers={"Authorization": "Basic YWxpY2U6cHc="})
    assert r.status_code == 401
    assert "Bearer" in r.json()["message"]


async def test_non_creator_cannot_create_a_stream(api: Api) -> None:
    before = await api.snapshot()
    r = await api.send("POST", "/v1/streams", {"title": "mine"}, user="bob")
    assert r.status_code == 403
    assert r.json()["code"] == "forbidden"
    assert await api.snapshot() == before


async def test_nobody_ends_or_steers_someone_elses_stream(api: Api) -> None:
    stream = (await api.create_stream("carol"))["stream"]
    before = await api.snapshot()
    for method, path, body in [
        ("POST", f"/v1/streams/{stream}/end", None),
        ("PUT", f"/v1/streams/{stream}/goal", {"target": 100}),
    ]:
        for intruder, creator in [("bob", False), ("mallory", True)]:
            r = await api.send(method, path, body, user=intruder, creator=creator)
            assert r.status_code == 403, (path, intruder)
            assert r.json()["code"] == "forbidden"
    r = await api.get(f"/v1/streams/{stream}/overlay", "bob")
    assert r.status_code == 403
    assert await api.snapshot() == before
    assert (await api.get(f"/v1/streams/{stream}")).json()["live"] is True


async def test_a_token_reads_only_its_own_wallet(api: Api) -> None:
    await api.buy("alice")
    bob = await api.wallet("bob")
    assert bob["user"] == "bob"
    assert bob["coins"] == 0
    # A ?user= parameter is not a way into someone else's wallet.
    r = await api.get("/v1/wallet", "bob", params={"user": "alice"})
    assert r.json()["user"] == "bob"
