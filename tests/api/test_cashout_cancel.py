"""``POST /v1/cashouts/{id}/cancel``: a held cash-out's diamonds come back, once.

Run on one Redis and on the cluster: the cancel is one script in the
wallet's slot (the wallet, the cash-out record and the shard's outbox).
"""

from __future__ import annotations

import pytest
from api_support import Api

pytestmark = pytest.mark.cluster


async def _hold(api: Api, user: str = "carol", diamonds: int = 2000, rid: str = "r1") -> str:
    r = await api.send("POST", "/v1/cashouts", {"diamonds": diamonds, "id": rid}, user=user)
    assert r.status_code == 201, r.text
    cashout: str = r.json()["cashout"]
    return cashout


async def _outbox_types(api: Api, user: str) -> list[str]:
    keys = api.state.keys
    rows = await api.redis.xrange(keys.outbox(keys.shard_of(user)))
    return [f[b"type"].decode() for _, f in rows if f.get(b"user") == user.encode()]


async def test_cancel_returns_the_diamonds_and_the_days_cap_once(api: Api) -> None:
    await api.earn_diamonds("carol", "alice")  # 5,000 diamonds
    cashout = await _hold(api)
    wallet_key = api.state.keys.wallet("carol")
    assert int(await api.redis.hget(wallet_key, "ctotal") or 0) == 2000
    r = await api.send("POST", f"/v1/cashouts/{cashout}/cancel", user="carol")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled" and r.json()["diamonds"] == 2000
    wallet = await api.wallet("carol")
    assert (wallet["diamonds"], wallet["diamonds_held"]) == (5000, 0)
    assert int(await api.redis.hget(wallet_key, "ctotal") or 0) == 0  # the cap is released
    # Idempotent: a retry answers the same and moves nothing.
    before = await api.snapshot()
    again = await api.send("POST", f"/v1/cashouts/{cashout}/cancel", user="carol")
    assert again.status_code == 200 and again.json() == r.json()
    assert await api.snapshot() == before
    assert (await _outbox_types(api, "carol")).count("cashout_cancelled") == 1
    # The cash-out reads as cancelled, and a late payout report changes nothing.
    got = await api.get(f"/v1/cashouts/{cashout}", "carol")
    assert got.json()["status"] == "cancelled"
    late = await api.webhook("payouts", {"cashout": cashout, "status": "paid"})
    assert late.status_code == 409 and late.json()["code"] == "conflict"
    assert await api.snapshot() == before


@pytest.mark.parametrize("outcome", ["paid", "failed"])
async def test_a_settled_cashout_cannot_be_cancelled(api: Api, outcome: str) -> None:
    await api.earn_diamonds("carol", "alice")
    cashout = await _hold(api)
    r = await api.webhook("payouts", {"cashout": cashout, "status": outcome})
    assert r.status_code == 200, r.text
    before = await api.snapshot()
    r = await api.send("POST", f"/v1/cashouts/{cashout}/cancel", user="carol")
    assert r.status_code == 409, r.text
    assert r.json() == {
        "code": "conflict",
        "message": f"this cash-out was already settled as {outcome}",
    }
    assert await api.snapshot() == before


async def test_someone_elses_or_unknown_cashout_is_not_found(api: Api) -> None:
    await api.earn_diamonds("carol", "alice")
    cashout = await _hold(api)
    before = await api.snapshot()
    # Users in every shard: the same shard reaches the script, another is refused before it.
    others = [f"mallory{i}" for i in range(40)]
    shards = {api.state.keys.shard_of(u) for u in others}
    assert api.state.keys.shard_of("carol") in shards and len(shards) > 1
    for other in others:
        r = await api.send("POST", f"/v1/cashouts/{cashout}/cancel", user=other)
        assert r.status_code == 404, r.text
        assert r.json()["code"] == "not_found"
    for bad in ["co99-nope", "co00-nope", "nonsense", "co01-x:y"]:
        r = await api.send("POST", f"/v1/cashouts/{bad}/cancel", user="carol")
        assert r.status_code in (400, 404), r.text
        assert r.json()["code"] in ("bad_request", "not_found")
    r = await api.send("POST", f"/v1/cashouts/{cashout}/cancel")  # no token
    assert r.status_code == 401
    r = await api.send("POST", f"/v1/cashouts/{cashout}/cancel", {"extra": 1}, user="carol")
    assert r.status_code == 400
    assert await api.snapshot() == before
    assert (await api.wallet("carol"))["diamonds_held"] == 2000


async def test_once_the_provider_is_paying_it_a_cashout_cannot_be_cancelled(api: Api) -> None:
    """A provider that pays, then reports, says "processing" first: no cancel can pay twice."""
    await api.earn_diamonds("carol", "alice")
    cashout = await _hold(api)
    r = await api.webhook("payouts", {"cashout": cashout, "status": "processing"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "processing"
    again = await api.webhook("payouts", {"cashout": cashout, "status": "processing"})
    assert again.status_code == 200 and again.json() == r.json()  # a replay
    before = await api.snapshot()
    refused = await api.send("POST", f"/v1/cashouts/{cashout}/cancel", user="carol")
    assert refused.status_code == 409, refused.text
    assert refused.json() == {
        "code": "conflict",
        "message": "this cash-out is being paid out and can no longer be cancelled",
    }
    assert await api.snapshot() == before
    assert (await api.get(f"/v1/cashouts/{cashout}", "carol")).json()["status"] == "processing"
    # The report that follows settles it as usual, once.
    paid = await api.webhook("payouts", {"cashout": cashout, "status": "paid"})
    assert paid.status_code == 200 and paid.json()["status"] == "paid"
    wallet = await api.wallet("carol")
    assert (wallet["diamonds"], wallet["diamonds_held"], wallet["diamonds_paid"]) == (3000, 0, 2000)
    late = await api.webhook("payouts", {"cashout": cashout, "status": "processing"})
    assert late.status_code == 409 and late.json()["code"] == "conflict"
