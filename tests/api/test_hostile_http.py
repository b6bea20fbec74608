"""Every HTTP body, query and path, fuzzed (docs/contract.md §3.6).

tests/api/test_bad_input.py sends a fixed matrix of bad bodies; here
Hypothesis writes them: random JSON documents, noise, and near-valid bodies
with one or two fields mutated (wrong types, edge integers, control, format
and markup strings, deep nesting, huge values, duplicate, unknown and missing
keys), for every route that takes a body, the three webhooks with valid
signatures over the hostile bodies included; and random query strings,
history cursors and path segments for every route that reads. Each must get
a 4xx that fits (400 for a malformed body, 413 past 64 KiB) as
``{"code", "message"}``, never a 5xx, and every Redis key of the test must be
what it was (the app raises instead of answering 500 here, so a crash fails
the test too).

Whether a body is valid is restated here from docs/protocol.md (field types
and ranges); a body this file calls malformed that a route accepts is a defect.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import pytest_asyncio
from api_support import Api, open_api, settings_for
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from gifting.api import history
from gifting.persister.service import persister_lifespan
from gifting.records import encode_cursor
from gifting.state import Extension
from tests.hostile import EDGE_INTS, deep_json, hostile_text, json_documents

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
MAX_SAFE = 2**53 - 1
MAX_BUDGET = 10**12

# --------------------------------------------------------------------------- the API, restated

ID = re.compile(r"[A-Za-z0-9._~@+\-/=!#$%&*^|]{1,64}")


def _int(lo: int, hi: int, *, null: bool = False) -> Callable[[Any], bool]:
    def ok(v: Any) -> bool:
        if v is None:
            return null
        return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi

    return ok


def _ident(*, null: bool = False) -> Callable[[Any], bool]:
    return lambda v: (v is None and null) or (isinstance(v, str) and bool(ID.fullmatch(v)))


def _utf8(v: str) -> bool:
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _text(lo: int, hi: int, *, null: bool = False, controls: bool = True) -> Callable[[Any], bool]:
    def ok(v: Any) -> bool:
        if v is None:
            return null
        return (isinstance(v, str) and lo <= len(v) <= hi and _utf8(v)
                and (controls or not any(ord(c) < 32 for c in v)))  # fmt: skip

    return ok


@dataclass
class Route:
    """A route that takes a JSON object: its fields' validity, as docs/protocol.md gives them."""

    method: str
    path: str
    valid: dict[str, Any]  # a valid body ("{stream}", "{cashout}" filled in)
    fields: dict[str, Callable[[Any], bool]]
    optional: tuple[str, ...] = ()
    user: str | None = None  # None: a signed webhook
    creator: bool = False
    empty_ok: bool = False  # an empty body is {}

    def well_formed(self, body: Any) -> bool:
        if not isinstance(body, dict) or not set(body) <= set(self.fields):
            return False
        if any(name not in body for name in self.fields if name not in self.optional):
            return False
        return all(self.fields[name](value) for name, value in body.items())


ROUTES = {
    "budget": Route("PUT", "/v1/wallet/budget", {"monthly": 100},
                    {"monthly": _int(0, MAX_BUDGET, null=True)}, user="alice"),
    "badge": Route("POST", "/v1/badges", {"id": "b-1", "badge": "supporter"},
                   {"id": _ident(), "badge": _text(1, 64)}, user="alice"),
    "cashout": Route("POST", "/v1/cashouts", {"diamonds": 2000, "id": "c-1"},
                     {"diamonds": _int(1, MAX_BUDGET), "id": _ident(null=True)},
                     optional=("id",), user="carol"),
    "stream": Route("POST", "/v1/streams", {"title": "t"},
                    {"title": _text(0, 200, controls=False)}, user="carol", creator=True),
    "goal": Route("PUT", "/v1/streams/{stream}/goal", {"target": 100, "gift": "rose"},
                  {"target": _int(1, 10**12), "gift": _text(1, 64, null=True)},
                  optional=("gift",), user="carol"),
    "end": Route("POST", "/v1/streams/{stream}/end", {}, {}, user="carol", empty_ok=True),
    "purchase": Route(
        "POST", "/v1/webhooks/purchases",
        {"purchase_id": "p-new", "user": "alice", "package": "coins_70", "amount": 99,
         "currency": "USD"},
        {"purchase_id": _ident(), "user": _ident(), "package": _text(1, 64),
         "amount": _int(1, MAX_SAFE), "currency": _text(1, 8)},
    ),
    "refund": Route("POST", "/v1/webhooks/refunds", {"purchase_id": "p-alice-1"},
                    {"purchase_id": _ident()}),
    "payout": Route("POST", "/v1/webhooks/payouts", {"cashout": "{cashout}", "status": "paid"},
                    {"cashout": _ident(), "status": lambda v: v in ("paid", "failed")}),
}  # fmt: skip


class _Duplicate(ValueError):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _Duplicate
    return obj


def _refuse(name: str) -> Any:
    raise ValueError(name)


def malformed(route: Route, raw: bytes) -> bool:
    """Whether ``raw`` is not a body ``route`` takes (any parse error, or a field out of spec)."""
    if not raw.strip():
        return not route.empty_ok
    try:
        body = json.loads(raw.decode("utf-8"), object_pairs_hook=_pairs, parse_constant=_refuse)
    except (ValueError, RecursionError, UnicodeDecodeError):
        return True
    return not route.well_formed(body)


# --------------------------------------------------------------------------- bodies


@dataclass(frozen=True)
class Raw:
    """A value given as JSON text (what an encoder would not write: deep nesting)."""

    text: str


def _dump(value: Any, ascii_only: bool) -> str:
    if isinstance(value, Raw):
        return value.text
    return json.dumps(value, ensure_ascii=ascii_only)


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    return True


field_values: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(EDGE_INTS),
    st.integers(-3, 3),
    hostile_text(),
    json_documents,
    st.sampled_from([None, True, False, 1.5, 1e300, -0.0, [], {}]),
    st.integers(30, 5000).map(lambda n: Raw(deep_json(n))),
    st.integers(100, 4000).map(lambda n: [1] * n),
)


class Body:
    """A request body, shown short in Hypothesis' reports."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def __repr__(self) -> str:
        return f"Body({self.raw[:300]!r}{'…' if len(self.raw) > 300 else ''}, {len(self.raw)} B)"


@st.composite
def bodies(draw: st.DrawFn, route: Route) -> Body:
    """Noise, any JSON document, or the route's valid body with one or two mutations."""
    ascii_only = draw(st.booleans())
    kind = draw(st.sampled_from(["noise", "document", "near", "near", "near"]))
    if kind == "noise":
        return Body(draw(st.one_of(st.binary(max_size=200),
                                   st.text(max_size=200).map(str.encode))))  # fmt: skip
    if kind == "document":
        value = draw(json_documents.filter(_finite))
        return Body(_dump(value, ascii_only).encode("utf-8", "surrogatepass"))
    pairs: list[tuple[str, Any]] = list(route.valid.items())
    for _ in range(draw(st.integers(1, 2))):
        mutation = draw(st.sampled_from(["set", "set", "drop", "add", "duplicate"]))
        if mutation == "set" and pairs:
            i = draw(st.integers(0, len(pairs) - 1))
            pairs[i] = (pairs[i][0], draw(field_values))
        elif mutation == "drop" and pairs:
            pairs.pop(draw(st.integers(0, len(pairs) - 1)))
        elif mutation == "add":
            name = draw(st.one_of(st.sampled_from(["user", "sender", "coins", "balance",
                                                   "creator", "Id", "id "]),
                                  hostile_text(12)))  # fmt: skip
            pairs.append((name, draw(field_values)))
        elif mutation == "duplicate" and pairs:
            name, value = pairs[draw(st.integers(0, len(pairs) - 1))]
            pairs.insert(draw(st.integers(0, len(pairs))), (name, draw(st.one_of(
                st.just(value), field_values))))  # fmt: skip
    text = "{" + ",".join(f"{_dump(k, ascii_only)}:{_dump(v, ascii_only)}" for k, v in pairs) + "}"
    return Body(text.encode("utf-8", "surrogatepass"))


# --------------------------------------------------------------------------- the app


@dataclass
class Site:
    """The app with the history routes (PostgreSQL), money in place, and its context."""

    api: Api
    ctx: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return "Site()"

    async def send(self, route: Route, raw: bytes) -> Any:
        path = route.path.format(**self.ctx)
        if route.user is None:
            return await self.api.webhook(path.removeprefix("/v1/webhooks/"), raw=raw)
        return await self.api.send(route.method, path, raw=raw, user=route.user,
                                   creator=route.creator)  # fmt: skip


@pytest_asyncio.fixture(loop_scope="session")
async def site(redis_url: str, db_url: str, key_prefix: str, redis: Redis) -> AsyncIterator[Site]:
    persister = Extension("persister", routes=history.routes, lifespan=persister_lifespan)
    async with open_api(settings_for(redis_url, db_url, key_prefix), redis, [persister]) as api:
        await api.buy("alice")  # purchase p-alice-1
        await api.earn_diamonds("carol", "dave")
        stream = (await api.create_stream("carol"))["stream"]
        r = await api.send("POST", "/v1/cashouts", {"diamonds": 2000, "id": "held"}, user="carol")
        yield Site(api, {"stream": stream, "cashout": r.json()["cashout"]})


def _refused(r: Any, *statuses: int) -> dict[str, Any]:
    """The ``{"code", "message"}`` of a 4xx answer with one of ``statuses``."""
    assert r.status_code in statuses, (r.status_code, r.text[:300])
    body: dict[str, Any] = r.json()
    assert set(body) == {"code", "message"}, body
    assert isinstance(body["code"], str) and isinstance(body["message"], str) and body["message"]
    return body


@pytest.mark.parametrize("name", list(ROUTES))
@FUZZ
@given(data=st.data())
async def test_any_malformed_body_is_refused_400_and_changes_nothing(
    site: Site, name: str, data: st.DataObject
) -> None:
    route = ROUTES[name]
    valid = {k: v.format(**site.ctx) if isinstance(v, str) else v for k, v in route.valid.items()}
    route = dataclasses.replace(route, valid=valid)
    body = data.draw(bodies(route))
    assume(malformed(route, body.raw))
    before = await site.api.snapshot()
    r = await site.send(route, body.raw)
    if len(body.raw) > 64 * 1024:
        assert _refused(r, 413)["code"] == "bad_request"
    else:
        assert _refused(r, 400)["code"] == "bad_request"
    assert await site.api.snapshot() == before


@pytest.mark.parametrize("name", ["purchase", "badge", "budget"])
async def test_a_valid_body_still_goes_through(site: Site, name: str) -> None:
    """The refusals above are not a broken route."""
    route = ROUTES[name]
    r = await site.send(route, json.dumps(route.valid).encode())
    assert r.status_code == 200, r.text


# --------------------------------------------------------------------------- queries and paths

READS = [
    ("/v1/wallet/history", "alice"), ("/v1/earnings", "carol"), ("/v1/wallet/cashouts", "carol"),
    ("/v1/cashouts", "carol"), ("/v1/wallet", "alice"), ("/v1/catalog", None),
]  # fmt: skip

query_values = st.one_of(
    hostile_text(40),
    st.sampled_from(EDGE_INTS).map(str),
    st.integers(-5, 300).map(str),
    st.sampled_from(["1.5", "1e3", "+5", " 5", "5 ", "0x10", "٣", "²", "5\x00", "", "-0"]),
)
cursors = st.one_of(
    hostile_text(60),
    st.binary(max_size=120).map(lambda b: base64.urlsafe_b64encode(b).decode().rstrip("=")),
    st.tuples(st.sampled_from(EDGE_INTS), st.sampled_from(EDGE_INTS),
              st.sampled_from(["e1", "x" * 64, "a:b", "é", ""])).map(
        lambda t: base64.urlsafe_b64encode(f"{t[0]}-{t[1]}:{t[2]}".encode()).decode()),
    st.tuples(st.integers(0, 2**63 - 1), st.integers(0, 2**63 - 1)).map(
        lambda t: encode_cursor((t[0], t[1], "e1"))),
)  # fmt: skip


@FUZZ
@given(path_user=st.sampled_from(READS), limit=st.none() | query_values,
       cursor=st.none() | cursors, extra=st.dictionaries(hostile_text(8), hostile_text(8),
                                                         max_size=2))  # fmt: skip
async def test_any_query_is_answered_200_or_400_and_changes_nothing(
    site: Site,
    path_user: tuple[str, str | None],
    limit: str | None,
    cursor: str | None,
    extra: dict[str, str],
) -> None:
    path, user = path_user
    params = {k: v for k, v in extra.items() if k not in ("limit", "cursor", "token")}
    params |= {k: v for k, v in (("limit", limit), ("cursor", cursor)) if v is not None}
    assume(len(urlencode(params)) < 16_000)  # httpx refuses a longer URL itself
    before = await site.api.snapshot()
    r = await site.api.get(path, user, params=params)
    if r.status_code != 200:
        body = _refused(r, 400)
        assert body["code"] == "bad_request"
        assert "limit" in body["message"] or "cursor" in body["message"], body
    assert await site.api.snapshot() == before


@FUZZ
@given(segment=st.one_of(hostile_text(70), st.binary(min_size=1, max_size=40)).map(
    lambda v: quote(v, safe="")),
       template=st.sampled_from(["/v1/streams/{}", "/v1/streams/{}/overlay",
                                 "/v1/cashouts/{}", "/v1/streams/{}/end",
                                 "/v1/streams/{}/goal"]))  # fmt: skip
async def test_any_path_segment_is_answered_4xx_and_changes_nothing(
    site: Site, segment: str, template: str
) -> None:
    """Stream and cash-out ids in the path: malformed (400), unknown (404), not the
    caller's (404: cash-out ids do not leak); never a 5xx. A write to a path that is no
    stream of the caller's changes nothing. An encoded slash may make a trailing one,
    which Starlette redirects (307) to the same origin without it."""
    assume(segment not in ("", ".", "..") and site.ctx["stream"] not in segment)
    path = template.format(segment)  # percent-encoded
    before = await site.api.snapshot()
    if template.endswith(("/end", "/goal")):
        method = "POST" if template.endswith("/end") else "PUT"
        r = await site.api.send(method, path, {"target": 5} if method == "PUT" else None,
                                user="carol")  # fmt: skip
    else:
        r = await site.api.get(path, "carol")
    if r.status_code == 307:  # Starlette's redirect_slashes: "%2F" decodes to a trailing "/"
        assert r.headers["location"].startswith("http://testserver/"), r.headers
        assert "%2F" in segment.upper()
    else:
        _refused(r, 400, 403, 404)
    assert await site.api.snapshot() == before


async def test_methods_a_route_does_not_take_are_405_with_a_json_error(site: Site) -> None:
    before = await site.api.snapshot()
    for method, path in [("DELETE", "/v1/wallet"), ("PATCH", "/v1/wallet/budget"),
                         ("GET", "/v1/webhooks/purchases"), ("PUT", "/v1/badges"),
                         ("DELETE", f"/v1/streams/{site.ctx['stream']}"),
                         ("POST", "/v1/catalog")]:  # fmt: skip
        r = await site.api.send(method, path, {"x": 1}, user="alice")
        body = _refused(r, 405)
        assert body["code"] == "bad_request"
    assert await site.api.snapshot() == before
