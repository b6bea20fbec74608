"""Signed provider webhooks: the signature matrix, replays, conflicts and mismatches."""

from __future__ import annotations

import json
import time

import pytest
from api_support import WEBHOOK_SECRET, Api

from gifting.api.signatures import SIGNATURE_HEADER, sign, signature, verify
from gifting.core.errors import Unauthorized

BODY = {"purchase_id": "p-1", "user": "alice", "package": "coins_700",
        "amount": 999, "currency": "USD"}


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


SIGNATURE_CASES = {
    # name: (header or None, expected words in the message)
    "missing": (None, "missing"),
    "empty": ("", "missing"),
    "garbage": ("garbage", "malformed"),
    "no v1": (f"t={_now()}", "malformed"),
    "no t": ("v1=" + "a" * 64, "malformed"),
    "t not a number": ("t=abc,v1=" + "a" * 64, "malformed"),
    "t negative": ("t=-5,v1=" + "a" * 64, "malformed"),
    "two t": (f"t={_now()},t={_now()},v1=" + "a" * 64, "malformed"),
    "v1 not hex": (f"t={_now()},v1=" + "z" * 64, "malformed"),
    "v1 too short": (f"t={_now()},v1=abc", "malformed"),
    "too long": (f"t={_now()}," + "v0=x," * 300 + "v1=" + "a" * 64, "too long"),
    "wrong digest": (f"t={_now()},v1=" + "a" * 64, "does not match"),
    "wrong secret": (sign("not-the-secret", json.dumps(BODY).encode()), "does not match"),
    "other body": (sign(WEBHOOK_SECRET, b'{"purchase_id":"p-1"}'), "does not match"),
    "stale": (sign(WEBHOOK_SECRET, json.dumps(BODY).encode(), _now() - 301), "300 s"),
    "future": (sign(WEBHOOK_SECRET, json.dumps(BODY).encode(), _now() + 400), "300 s"),
}


@pytest.mark.parametrize("case", list(SIGNATURE_CASES))
async def test_bad_signatures_are_refused_and_change_nothing(api: Api, case: str) -> None:
    header, words = SIGNATURE_CASES[case]
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


@pytest.mark.parametrize("change", [{"package": "coins_350", "amount": 499},
                                    {"user": "bob"}])
async def test_same_purchase_id_with_another_body_is_a_conflict(
    api: Api, change: dict[str, object]
) -> None:
    await api.webhook("purchases", BODY)
    before = await api.snapshot()
    r = await api.webhook("purchases", BODY | change)
    assert r.status_code == 409
    assert r.json()["code"] == "conflict"
    assert await api.snapshot() == before


@pytest.mark.parametrize("change", [{"amount": 998}, {"amount": 1000}, {"currency": "EUR"},
                                    {"amount": 99, "package": "coins_700"}])
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
    assert first == {"purchase_id": "p-1", "user": "alice", "coins": 700, "balance": 70,
                     "refunded": True}
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
