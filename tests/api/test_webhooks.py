"""Signed provider webhooks: the signature matrix, replays, conflicts and mismatches."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from api_support import JWT_SECRET, WEBHOOK_SECRET, Api, snapshot
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gifting.api.signatures import SIGNATURE_HEADER, sign, signature, verify
from gifting.core.errors import Unauthorized

BODY = {
    "purchase_id": "p-1",
    "user": "alice",
    "package": "coins_700",
    "amount": 999,
    "currency": "USD",
}


# --------------------------------------------------------------------------- signatures


def test_sign_then_verify_round_trips() -> None:
    body = b'{"a":1}'
    t = int(time.time())
    header = sign("s3cret", body, t)
    assert header == f"t={t},v1={signature('s3cret', body, t)}"
    assert verify("s3cret", header, body) == t


def test_any_of_several_v1_signatures_may_match() -> None:
    body, t = b"{}", int(time.time())
    header = f"t={t},v1={'0' * 64},v1={signature('s3cret', body, t)}"
    assert verify("s3cret", header, body) == t


def test_tolerance_is_inclusive(clock: list[int]) -> None:
    t = clock[0] // 1000
    assert verify("k", sign("k", b"x", t - 300), b"x", tolerance_s=300) == t - 300
    assert verify("k", sign("k", b"x", t + 300), b"x", tolerance_s=300) == t + 300
    with pytest.raises(Unauthorized, match="300 s"):
        verify("k", sign("k", b"x", t - 301), b"x", tolerance_s=300)


def _now() -> int:
    return int(time.time())


SIGNATURE_CASES: dict[str, tuple[Callable[[], str | None], str]] = {
    # name: (the header or None, made when the test runs: a signature made at import
    # would age with the suite; expected words in the message)
    "missing": (lambda: None, "missing"),
    "empty": (lambda: "", "missing"),
    "garbage": (lambda: "garbage", "malformed"),
    "no v1": (lambda: f"t={_now()}", "malformed"),
    "no t": (lambda: "v1=" + "a" * 64, "malformed"),
    "t not a number": (lambda: "t=abc,v1=" + "a" * 64, "malformed"),
    "t negative": (lambda: "t=-5,v1=" + "a" * 64, "malformed"),
    "two t": (lambda: f"t={_now()},t={_now()},v1=" + "a" * 64, "malformed"),
    "v1 not hex": (lambda: f"t={_now()},v1=" + "z" * 64, "malformed"),
    "v1 too short": (lambda: f"t={_now()},v1=abc", "malformed"),
    "too long": (lambda: f"t={_now()}," + "v0=x," * 300 + "v1=" + "a" * 64, "too long"),
    "wrong digest": (lambda: f"t={_now()},v1=" + "a" * 64, "does not match"),
    "wrong secret": (lambda: sign("not-the-secret", json.dumps(BODY).encode()), "does not match"),
    "other body": (lambda: sign(WEBHOOK_SECRET, b'{"purchase_id":"p-1"}'), "does not match"),
    "stale": (lambda: sign(WEBHOOK_SECRET, json.dumps(BODY).encode(), _now() - 301), "300 s"),
    "future": (lambda: sign(WEBHOOK_SECRET, json.dumps(BODY).encode(), _now() + 400), "300 s"),
}


@pytest.mark.parametrize("case", list(SIGNATURE_CASES))
async def test_bad_signatures_are_refused_and_change_nothing(api: Api, case: str) -> None:
    make_header, words = SIGNATURE_CASES[case]
    header = make_header()
    before = await api.snapshot()
    headers = {} if header is None else {SIGNATURE_HEADER: header}
    for path in ("purchases", "refunds", "payouts"):
        r = await api.client.post(
            f"/v1/webhooks/{path}", content=json.dumps(BODY).encode(), headers=headers
        )
        assert r.status_code == 401, (path, r.text)
        assert r.json()["code"] == "unauthorized"
        assert words in r.json()["message"]
    assert await api.snapshot() == before


# --------------------------------------------------------------------------- purchases


async def test_purchase_credits_once_and_a_replay_returns_the_first_result(api: Api) -> None:
    r = await api.webhook("purchases", BODY)
    assert r.status_code == 200
    first = r.json()
    assert first == {"purchase_id": "p-1", "user": "alice", "coins": 700, "balance": 700}
    assert r.headers["Idempotent-Replayed"] == "false"
    # The same body again, signed at another time: the same answer, no second credit.
    again = await api.webhook("purchases", BODY, t=_now() - 100)
    assert again.status_code == 200
    assert again.json() == first
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (await api.wallet("alice"))["coins"] == 700


async def test_replay_reports_the_first_balance_after_later_purchases(api: Api) -> None:
    await api.webhook("purchases", BODY)
    await api.buy("alice", "coins_70")
    again = await api.webhook("purchases", BODY)
    assert again.json()["balance"] == 700
    assert (await api.wallet("alice"))["coins"] == 770


@pytest.mark.parametrize("change", [{"package": "coins_350", "amount": 499}, {"user": "bob"}])
async def test_same_purchase_id_with_another_body_is_a_conflict(
    api: Api, change: dict[str, object]
) -> None:
    await api.webhook("purchases", BODY)
    before = await api.snapshot()
    r = await api.webhook("purchases", BODY | change)
    assert r.status_code == 409
    assert r.json()["code"] == "conflict"
    assert await api.snapshot() == before


@pytest.mark.parametrize(
    "change",
    [
        {"amount": 998},
        {"amount": 1000},
        {"currency": "EUR"},
        {"amount": 99, "package": "coins_700"},
    ],
)
async def test_amount_or_currency_not_the_packages_is_unprocessable(
    api: Api, change: dict[str, object]
) -> None:
    before = await api.snapshot()
    r = await api.webhook("purchases", BODY | change)
    assert r.status_code == 422
    assert r.json()["code"] == "bad_request"
    assert "999 USD" in r.json()["message"]
    assert await api.snapshot() == before
    # The id was not burnt: the right body still goes through.
    assert (await api.webhook("purchases", BODY)).status_code == 200


async def test_unknown_package_is_refused(api: Api) -> None:
    before = await api.snapshot()
    r = await api.webhook("purchases", BODY | {"package": "coins_1"})
    assert r.status_code == 404
    assert r.json()["code"] == "unknown_item"
    assert await api.snapshot() == before


# --------------------------------------------------------------------------- refunds


async def test_refund_claws_back_once(api: Api) -> None:
    await api.webhook("purchases", BODY)
    await api.buy("alice", "coins_70")
    r = await api.webhook("refunds", {"purchase_id": "p-1"})
    assert r.status_code == 200
    first = r.json()
    assert first == {
        "purchase_id": "p-1",
        "user": "alice",
        "coins": 700,
        "balance": 70,
        "refunded": True,
    }
    again = await api.webhook("refunds", {"purchase_id": "p-1"})
    assert again.status_code == 200
    assert again.json() == first
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (await api.wallet("alice"))["coins"] == 70
    # A refunded purchase replayed is still the first result, not a new credit.
    assert (await api.webhook("purchases", BODY)).json()["balance"] == 700
    assert (await api.wallet("alice"))["coins"] == 70


async def test_refund_after_spending_leaves_a_negative_balance(api: Api) -> None:
    await api.webhook("purchases", BODY)
    r = await api.send("POST", "/v1/badges", {"id": "b-1", "badge": "super_fan"}, user="alice")
    assert r.status_code == 200
    r = await api.webhook("refunds", {"purchase_id": "p-1"})
    assert r.json()["balance"] == 200 - 700
    r = await api.send("POST", "/v1/badges", {"id": "b-2", "badge": "supporter"}, user="alice")
    assert r.status_code == 402
    assert r.json()["code"] == "insufficient_funds"


async def test_refund_of_an_unknown_purchase_is_not_found(api: Api) -> None:
    before = await api.snapshot()
    r = await api.webhook("refunds", {"purchase_id": "nope"})
    assert r.status_code == 404
    assert r.json()["code"] == "not_found"
    assert await api.snapshot() == before


# --------------------------------------------------------------------------- payouts


async def _held_cashout(api: Api) -> str:
    await api.earn_diamonds("carol", "alice")  # 10,000 coins -> 5,000 diamonds
    r = await api.send("POST", "/v1/cashouts", {"diamonds": 2000, "id": "co-1"}, user="carol")
    assert r.status_code == 201, r.text
    cashout: str = r.json()["cashout"]
    return cashout


async def test_payout_paid_then_replayed_then_contradicted(api: Api) -> None:
    cashout = await _held_cashout(api)
    r = await api.webhook("payouts", {"cashout": cashout, "status": "paid"})
    assert r.status_code == 200
    paid = r.json()
    assert paid["status"] == "paid"
    assert paid["cashout"] == cashout
    assert paid["diamonds"] == 2000
    assert paid["amount"] == {"amount": 1000, "currency": "USD"}
    wallet = await api.wallet("carol")
    assert (wallet["diamonds"], wallet["diamonds_held"], wallet["diamonds_paid"]) == (3000, 0, 2000)
    again = await api.webhook("payouts", {"cashout": cashout, "status": "paid"})
    assert again.status_code == 200
    assert again.json() == paid
    before = await api.snapshot()
    conflict = await api.webhook("payouts", {"cashout": cashout, "status": "failed"})
    assert conflict.status_code == 409
    assert conflict.json()["code"] == "conflict"
    assert await api.snapshot() == before


async def test_payout_failed_returns_the_diamonds(api: Api) -> None:
    cashout = await _held_cashout(api)
    assert (await api.wallet("carol"))["diamonds"] == 3000
    r = await api.webhook("payouts", {"cashout": cashout, "status": "failed"})
    assert r.status_code == 200
    assert r.json()["status"] == "failed"
    wallet = await api.wallet("carol")
    assert (wallet["diamonds"], wallet["diamonds_held"], wallet["diamonds_paid"]) == (5000, 0, 0)
    again = await api.webhook("payouts", {"cashout": cashout, "status": "failed"})
    assert again.status_code == 200
    assert (await api.wallet("carol"))["diamonds"] == 5000
    assert (await api.webhook("payouts", {"cashout": cashout, "status": "paid"})).status_code == 409


@pytest.mark.parametrize("cashout", ["co00-nope", "co99-x", "nope"])
async def test_payout_of_an_unknown_cashout_is_not_found(api: Api, cashout: str) -> None:
    r = await api.webhook("payouts", {"cashout": cashout, "status": "paid"})
    assert r.status_code == 404
    assert r.json()["code"] == "not_found"


async def test_a_signed_body_replayed_to_another_webhook_path_is_refused(api: Api) -> None:
    """The signature covers `<t>.<body>` (contract §4), not the path: the bodies of
    the three webhooks are disjoint by their exact fields, so a body signed for one
    path is refused on the others, and changes nothing."""
    assert (await api.webhook("purchases", BODY)).status_code == 200
    bodies = {
        "purchases": BODY,
        "refunds": {"purchase_id": "p-1"},
        "payouts": {"cashout": "co03-abc", "status": "failed"},
    }
    before = await api.snapshot()
    for signed_for, body in bodies.items():
        content = json.dumps(body).encode()
        header = sign(WEBHOOK_SECRET, content)
        for path in bodies:
            if path == signed_for:
                continue
            r = await api.webhook(path, raw=content, signature=header)
            assert r.status_code == 400, (signed_for, path, r.text)
            assert r.json()["code"] == "bad_request"
    assert await api.snapshot() == before


# --------------------------------------------------------------------------- hostile providers


async def _paid_cashout_body(api: Api) -> dict[str, object]:
    return {"cashout": await _held_cashout(api), "status": "paid"}


@pytest.mark.parametrize("path", ["purchases", "refunds", "payouts"])
async def test_the_identical_signed_request_replayed_is_the_same_answer_and_nothing_more(
    api: Api, path: str
) -> None:
    """A captured request (same body, same signature header) sent again within the
    tolerance: the first answer, byte for byte, and not one more change."""
    if path == "purchases":
        body: dict[str, object] = BODY
    elif path == "refunds":
        await api.webhook("purchases", BODY)
        body = {"purchase_id": "p-1"}
    else:
        body = await _paid_cashout_body(api)
    raw = json.dumps(body).encode()
    header = sign(WEBHOOK_SECRET, raw)
    first = await api.webhook(path, raw=raw, signature=header)
    assert first.status_code == 200, first.text
    after_first = await api.snapshot()
    for _ in range(5):
        again = await api.webhook(path, raw=raw, signature=header)
        assert (again.status_code, again.content) == (200, first.content)
        if path != "payouts":
            assert again.headers["Idempotent-Replayed"] == "true"
    assert await api.snapshot() == after_first


def _flip(data: bytes, position: int, mask: int) -> bytes:
    return data[:position] + bytes([data[position] ^ mask]) + data[position + 1 :]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(where=st.sampled_from(["body", "digest", "timestamp"]), position=st.integers(0, 10**6),
       mask=st.integers(1, 255))  # fmt: skip
async def test_one_byte_tampered_anywhere_is_refused_401_and_changes_nothing(
    api: Api, where: str, position: int, mask: int
) -> None:
    raw = json.dumps(BODY | {"purchase_id": "p-tamper"}).encode()
    t = _now()
    header = sign(WEBHOOK_SECRET, raw, t)
    digest = header.split("v1=")[1]
    if where == "body":
        raw = _flip(raw, position % len(raw), mask)
    elif where == "digest":
        i = position % len(digest)
        other = "0123456789abcdef"[(int(digest[i], 16) + mask) % 16]
        assume(other != digest[i])
        header = f"t={t},v1={digest[:i]}{other}{digest[i + 1 :]}"
    else:
        header = f"t={t - 1 - position % 299},v1={digest}"  # an earlier, still fresh, time
    before = await api.snapshot()
    r = await api.webhook("purchases", raw=raw, signature=header)
    assert r.status_code == 401, r.text
    assert r.json()["code"] == "unauthorized"
    assert await api.snapshot() == before


async def test_the_untampered_request_still_goes_through(api: Api) -> None:
    """The refusals above are not a broken webhook."""
    r = await api.webhook("purchases", BODY | {"purchase_id": "p-tamper"})
    assert r.status_code == 200


@pytest.mark.parametrize("offset", [-3600, -301, 301, 3600, None])
async def test_a_stale_or_future_signature_is_refused_even_when_valid(
    api: Api, offset: int | None
) -> None:
    """Signed with the right secret over the exact body, but outside the 300 s tolerance
    (None: at t=0, the epoch)."""
    raw = json.dumps(BODY).encode()
    t = 0 if offset is None else _now() + offset
    before = await api.snapshot()
    for path in ("purchases", "refunds", "payouts"):
        r = await api.webhook(path, raw=raw, t=t)
        assert r.status_code == 401, (path, r.text)
        assert "300 s" in r.json()["message"]
    assert await api.snapshot() == before


@pytest.mark.parametrize(
    "secret",
    ["", "x", WEBHOOK_SECRET[:-1], WEBHOOK_SECRET + "x", WEBHOOK_SECRET.upper(), JWT_SECRET],
)
async def test_a_body_signed_with_another_secret_is_refused(api: Api, secret: str) -> None:
    """Near misses of the secret, and the JWT secret (another of the server's own keys)."""
    before = await api.snapshot()
    r = await api.webhook("purchases", BODY, secret=secret)
    assert r.status_code == 401
    assert "does not match" in r.json()["message"]
    assert await api.snapshot() == before


@pytest.mark.parametrize(
    ("size", "declared"),
    [(64 * 1024 + 1, True), (1024 * 1024, True), (64 * 1024 + 1, False), (8 * 1024**2, False)],
)
async def test_a_huge_signed_body_is_413_over_a_real_server_and_changes_nothing(
    redis_url: str, database_url: str, key_prefix: str, size: int, declared: bool
) -> None:
    """Through uvicorn: a correctly signed body over 64 KiB, with its length declared or
    streamed in chunks with none, is refused 413 without being read whole."""
    import httpx

    from tests.hub.conftest import serve

    secret = "hub-test-webhook-secret-0123456789"  # tests/hub/conftest.py's
    raw = b'{"pad":"' + b"x" * (size - 10) + b'"}'
    header = sign(secret, raw)
    async with serve(redis_url, database_url, key_prefix) as hub, httpx.AsyncClient() as client:
        before = await snapshot(hub.state.redis, key_prefix)

        async def chunks() -> Any:
            for i in range(0, len(raw), 16 * 1024):
                yield raw[i : i + 16 * 1024]

        r = await client.post(
            f"http://127.0.0.1:{hub.port}/v1/webhooks/purchases",
            content=raw if declared else chunks(),
            headers={SIGNATURE_HEADER: header},
        )
        assert r.status_code == 413, r.text
        assert r.json()["code"] == "bad_request"
        assert await snapshot(hub.state.redis, key_prefix) == before
