"""Bad input of any kind gets a clear error and changes nothing (docs/contract.md §3.6).

For every endpoint that takes a body, a matrix of malformed bodies (invalid
JSON, non-objects, duplicate keys, NaN, non-UTF-8, deep nesting, > 64 KiB,
unknown and missing fields) and of bad values per field (wrong types,
booleans for integers, 2^53, 2^63, -1, 0, ids too long or with control
characters) is sent; each must be refused with ``bad_request`` (or
``unknown_item``) naming the field, and every Redis key of the test must be
byte-for-byte what it was. The valid body then succeeds, so the matrix did
not pass merely because the endpoint was broken.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from api_support import Api

BIG = [2**53, 2**63, 10**30]
INT_BAD: list[Any] = ["5", True, False, 1.5, 5.0, 1e3, None, [1], {"n": 1}, -1, *BIG]
POSITIVE_BAD: list[Any] = [*INT_BAD, 0]
ID_BAD: list[Any] = [
    "",
    "x" * 65,
    "a\nb",
    "a\x00b",
    "a b",
    "a:b",
    "a{b}",
    "é",
    5,
    None,
    True,
    ["a"],
]
NAME_BAD: list[Any] = ["", "x" * 65, 5, None, True, ["rose"], {"id": "rose"}]
TEXT_BAD: list[Any] = [5, None, True, ["t"], "x" * 201, "a\x01b", "\ud800"]

GENERIC: list[tuple[str, bytes, int]] = [
    ("empty body", b"", 400),
    ("invalid JSON", b"{", 400),
    ("trailing garbage", b"{} x", 400),
    ("array", b"[]", 400),
    ("string", b'"x"', 400),
    ("number", b"1", 400),
    ("null", b"null", 400),
    ("true", b"true", 400),
    ("NaN", b'{"a": NaN}', 400),
    ("Infinity", b'{"a": -Infinity}', 400),
    ("not UTF-8", b'{"a": "\xff\xfe"}', 400),
    ("UTF-16", '{"a": 1}'.encode("utf-16"), 400),
    ("deep nesting", b"[" * 30_000 + b"]" * 30_000, 400),
    ("huge integer text", b'{"a": ' + b"9" * 5000 + b"}", 400),
    ("over 64 KiB", b'{"pad": "' + b"x" * (64 * 1024) + b'"}', 413),
]


@dataclass
class Endpoint:
    method: str
    path: str
    body: dict[str, Any]
    fields: dict[str, list[Any]]
    user: str | None = None  # None: a signed webhook
    creator: bool = False
    optional: tuple[str, ...] = ()
    unknown_item: dict[str, Any] = field(default_factory=dict)


ENDPOINTS = {
    "budget": Endpoint(
        "PUT",
        "/v1/wallet/budget",
        {"monthly": 100},
        {"monthly": [v for v in INT_BAD if v is not None]},
        "alice",
    ),
    "badge": Endpoint(
        "POST",
        "/v1/badges",
        {"id": "b-1", "badge": "supporter"},
        {"id": ID_BAD, "badge": NAME_BAD},
        "alice",
        unknown_item={"badge": "emperor"},
    ),
    "cashout": Endpoint(
        "POST",
        "/v1/cashouts",
        {"diamonds": 2000, "id": "c-1"},
        {"diamonds": POSITIVE_BAD, "id": [v for v in ID_BAD if v is not None]},
        "carol",
        optional=("id",),
    ),
    "stream": Endpoint(
        "POST", "/v1/streams", {"title": "t"}, {"title": TEXT_BAD}, "carol", creator=True
    ),
    "goal": Endpoint(
        "PUT",
        "/v1/streams/{stream}/goal",
        {"target": 100, "gift": "rose"},
        {"target": POSITIVE_BAD, "gift": [v for v in NAME_BAD if v is not None]},
        "carol",
        optional=("gift",),
        unknown_item={"gift": "dragon"},
    ),
    "end": Endpoint("POST", "/v1/streams/{stream}/end", {}, {}, "carol"),
    "purchase": Endpoint(
        "POST",
        "/v1/webhooks/purchases",
        {
            "purchase_id": "p-new",
            "user": "alice",
            "package": "coins_70",
            "amount": 99,
            "currency": "USD",
        },
        {
            "purchase_id": ID_BAD,
            "user": ID_BAD,
            "package": NAME_BAD,
            "amount": POSITIVE_BAD,
            "currency": [5, None, True, "", "x" * 9, ["USD"]],
        },
        unknown_item={"package": "coins_1"},
    ),
    "refund": Endpoint(
        "POST", "/v1/webhooks/refunds", {"purchase_id": "p-alice-1"}, {"purchase_id": ID_BAD}
    ),
    "payout": Endpoint(
        "POST",
        "/v1/webhooks/payouts",
        {"cashout": "{cashout}", "status": "paid"},
        {"cashout": ID_BAD, "status": ["PAID", "", "paid ", 5, None, True]},
    ),
}


async def _setup(api: Api) -> dict[str, str]:
    """Wallets with coins and diamonds, a live stream, a purchase and a held cash-out."""
    await api.buy("alice")  # purchase p-alice-1
    await api.earn_diamonds("carol", "dave")
    stream = (await api.create_stream("carol"))["stream"]
    r = await api.send("POST", "/v1/cashouts", {"diamonds": 2000, "id": "held"}, user="carol")
    return {"stream": stream, "cashout": r.json()["cashout"]}


async def _send(api: Api, ep: Endpoint, ctx: dict[str, str], raw: bytes) -> Any:
    path = ep.path.format(**ctx)
    if ep.user is None:
        return await api.webhook(path.removeprefix("/v1/webhooks/"), raw=raw)
    return await api.send(ep.method, path, raw=raw, user=ep.user, creator=ep.creator)


def _encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode("utf-8", "surrogatepass")


def _cases(ep: Endpoint, ctx: dict[str, str]) -> list[tuple[str, bytes, int, str | None]]:
    """(label, raw body, expected status, word the message must hold)."""
    valid = {k: (v.format(**ctx) if isinstance(v, str) else v) for k, v in ep.body.items()}
    cases: list[tuple[str, bytes, int, str | None]] = [
        (label, raw, status, None)
        for label, raw, status in GENERIC
        if not (ep.path.endswith("/end") and label == "empty body")
    ]
    cases.append(("unknown field", _encode(valid | {"extra": 1}), 400, "extra"))
    if valid:
        first = next(iter(valid))
        dup = _encode(valid)[:-1] + f', "{first}": {json.dumps(valid[first])}}}'.encode()
        cases.append(("duplicate key", dup, 400, first))
    for name in valid:
        if name not in ep.optional:
            missing = {k: v for k, v in valid.items() if k != name}
            cases.append((f"missing {name}", _encode(missing), 400, name))
    for name, bad_values in ep.fields.items():
        for bad in bad_values:
            cases.append((f"{name}={bad!r:.40}", _encode(valid | {name: bad}), 400, name))
    for name, unknown in ep.unknown_item.items():
        cases.append((f"{name}={unknown!r}", _encode(valid | {name: unknown}), 404, None))
    return cases


@pytest.mark.parametrize("name", list(ENDPOINTS))
async def test_bad_bodies_are_refused_and_change_nothing(api: Api, name: str) -> None:
    ep = ENDPOINTS[name]
    ctx = await _setup(api)
    before = await api.snapshot()
    failures = []
    for label, raw, status, word in _cases(ep, ctx):
        r = await _send(api, ep, ctx, raw)
        body = r.json()
        expected_code = "unknown_item" if status == 404 else "bad_request"
        ok = (
            r.status_code == status
            and body.get("code") == expected_code
            and isinstance(body.get("message"), str)
            and (word is None or word in body["message"])
        )
        if not ok:
            failures.append(f"{label}: {r.status_code} {r.text[:200]}")
    assert not failures, "\n".join(failures)
    assert await api.snapshot() == before
    valid = {k: (v.format(**ctx) if isinstance(v, str) else v) for k, v in ep.body.items()}
    r = await _send(api, ep, ctx, _encode(valid))
    assert r.is_success, r.text


async def test_bad_bodies_with_a_bad_signature_are_unauthorized_first(api: Api) -> None:
    """A webhook's body is not even parsed before its signature is checked."""
    r = await api.webhook("purchases", raw=b"[not json", signature="t=1,v1=" + "0" * 64)
    assert r.status_code == 401
