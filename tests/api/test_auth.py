"""Bearer tokens: the forged, expired, malformed and misused ones are refused (contract §3.7)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from api_support import JWT_SECRET, Api, open_api, settings_for
from redis.asyncio import Redis
from starlette.requests import HTTPConnection

from gifting.api import history
from gifting.auth import Principal, bearer_token, mint_token, principal_from_token
from gifting.core.errors import BadRequest, Unauthorized
from gifting.persister.service import persister_lifespan
from gifting.state import Extension
from tests.hostile import bad_tokens, claims, hs256

SECRET = JWT_SECRET


def _claims(**over: object) -> dict[str, object]:
    return claims(**over)


def _hs256(body: dict[str, object], secret: str = SECRET) -> str:
    return hs256(secret, body)


def test_valid_token_gives_its_principal() -> None:
    token = mint_token(SECRET, "alice", "Alice", ["creator"], 60)
    expected = Principal("alice", "Alice", frozenset({"creator"}))
    assert principal_from_token(token, SECRET) == expected


def test_name_defaults_to_the_user_and_roles_to_none() -> None:
    p = principal_from_token(_hs256(_claims(name=None)), SECRET)
    assert (p.user, p.name, p.roles) == ("alice", "alice", frozenset())


#: Every kind of bad token (tests/hostile.py: alg none, HS512/RS256 headers, another key,
#: expired, not yet valid, missing or foreign iss/aud, bad claims, garbage, huge).
BAD_TOKENS = bad_tokens(SECRET)


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


@pytest_asyncio.fixture(loop_scope="session")
async def money_api(
    redis_url: str, db_url: str, key_prefix: str, redis: Redis
) -> AsyncIterator[tuple[Api, dict[str, str]]]:
    """The app with every bearer route (history ones too), alice's coins and badge, carol's
    diamonds, live stream and held cash-out."""
    persister = Extension("persister", routes=history.routes, lifespan=persister_lifespan)
    async with open_api(settings_for(redis_url, db_url, key_prefix), redis, [persister]) as api:
        await api.buy("alice", "coins_17500")
        r = await api.send("POST", "/v1/badges", {"id": "b-1", "badge": "supporter"}, user="alice")
        assert r.status_code == 200, r.text
        await api.earn_diamonds("carol", "dave")
        stream = (await api.create_stream("carol"))["stream"]
        r = await api.send("POST", "/v1/cashouts", {"diamonds": 2000, "id": "held"}, user="carol")
        yield api, {"stream": stream, "cashout": r.json()["cashout"]}


#: Every route that needs a bearer token, with a body it would take from its owner.
BEARER_ROUTES: list[tuple[str, str, dict[str, object] | None]] = [
    ("GET", "/v1/wallet", None),
    ("PUT", "/v1/wallet/budget", {"monthly": 5}),
    ("POST", "/v1/badges", {"id": "b-2", "badge": "supporter"}),
    ("POST", "/v1/cashouts", {"diamonds": 1000, "id": "c-2"}),
    ("GET", "/v1/cashouts", None),
    ("GET", "/v1/cashouts/{cashout}", None),
    ("POST", "/v1/streams", {"title": "mine"}),
    ("GET", "/v1/streams/{stream}/overlay", None),
    ("PUT", "/v1/streams/{stream}/goal", {"target": 5}),
    ("POST", "/v1/streams/{stream}/end", None),
    ("GET", "/v1/wallet/history", None),
    ("GET", "/v1/earnings", None),
    ("GET", "/v1/wallet/cashouts", None),
]


@pytest.mark.parametrize("case", list(BAD_TOKENS))
async def test_http_refuses_bad_tokens_on_every_route_and_changes_nothing(
    money_api: tuple[Api, dict[str, str]], case: str
) -> None:
    api, ctx = money_api
    token = BAD_TOKENS[case]()
    before = await api.snapshot()
    for method, path, body in BEARER_ROUTES:
        r = await api.send(method, path.format(**ctx), body,
                           headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        assert r.status_code == 401, (method, path, r.status_code, r.text)
        assert set(r.json()) == {"code", "message"}
        assert r.json()["code"] == "unauthorized" and r.json()["message"]
    assert await api.snapshot() == before
    # The same routes with the owner's token are not broken.
    ok = await api.send("PUT", "/v1/streams/{stream}/goal".format(**ctx), {"target": 5},
                        user="carol")  # fmt: skip
    assert ok.status_code == 200, ok.text


async def test_a_token_acts_only_for_its_own_user(money_api: tuple[Api, dict[str, str]]) -> None:
    """bob, with alice's display name and alice's and carol's ids in his bodies, spends,
    holds and reads only his own: he has no coins and no diamonds, so each is refused, and
    nothing of alice's or carol's changes."""
    api, ctx = money_api
    before = await api.snapshot()
    alice, carol = await api.wallet("alice"), await api.wallet("carol")
    headers = {"Authorization": f"Bearer {mint_token(SECRET, 'bob', 'alice', [], 600)}"}

    async def as_bob(method: str, path: str, body: object = None) -> Any:
        return await api.send(method, path.format(**ctx), body, headers=headers)

    r = await as_bob("POST", "/v1/badges", {"id": "b-1", "badge": "supporter"})  # alice's id
    assert (r.status_code, r.json()["code"]) == (402, "insufficient_funds")
    r = await as_bob("POST", "/v1/cashouts", {"diamonds": 2000, "id": "held"})  # carol's id
    assert (r.status_code, r.json()["code"]) == (402, "insufficient_funds")
    assert (await as_bob("GET", "/v1/cashouts/{cashout}")).status_code == 404  # ids do not leak
    assert (await as_bob("GET", "/v1/cashouts")).json() == {"cashouts": []}
    for field in ("user", "sender", "sub"):
        r = await as_bob("PUT", "/v1/wallet/budget", {"monthly": 0, field: "alice"})
        assert (r.status_code, r.json()["code"]) == (400, "bad_request")
    r = await as_bob("POST", "/v1/streams/{stream}/end")
    assert r.status_code == 403  # not a creator; a creator who is not carol: the test above
    wallet = (await as_bob("GET", "/v1/wallet?user=alice")).json()
    assert (wallet["user"], wallet["coins"], wallet["badge"]) == ("bob", 0, None)
    history_page = (await as_bob("GET", "/v1/wallet/history")).json()
    assert history_page == {"entries": [], "next": None}
    assert await api.wallet("alice") == alice
    assert await api.wallet("carol") == carol
    after = await api.snapshot()
    changed = {k.decode() for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert not {k for k in changed if "alice" in k or "carol" in k or "held" in k}, changed


async def test_http_needs_a_token(api: Api) -> None:
    for method, path in [
        ("GET", "/v1/wallet"),
        ("PUT", "/v1/wallet/budget"),
        ("POST", "/v1/badges"),
        ("POST", "/v1/cashouts"),
        ("GET", "/v1/cashouts"),
        ("POST", "/v1/streams"),
    ]:
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
