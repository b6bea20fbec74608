"""Wallet, monthly budget, profile badges and cash-outs over HTTP."""

from __future__ import annotations

import pytest
from api_support import Api

from gifting.core.money import month_of


async def test_a_new_wallet_is_empty(api: Api, clock: list[int]) -> None:
    assert await api.wallet("alice") == {
        "user": "alice",
        "coins": 0,
        "diamonds": 0,
        "diamonds_held": 0,
        "diamonds_paid": 0,
        "diamonds_earned": 0,
        "badge": None,
        "badges": [],
        "budget": {"monthly": None, "spent": 0, "remaining": None, "period": month_of(clock[0])},
    }


async def test_budget_put_then_a_spend_over_it_is_refused(api: Api) -> None:
    await api.buy("alice", "coins_700")
    r = await api.send("PUT", "/v1/wallet/budget", {"monthly": 150}, user="alice")
    assert r.status_code == 200
    assert r.json()["budget"]["monthly"] == 150
    r = await api.send("POST", "/v1/badges", {"id": "b-1", "badge": "supporter"}, user="alice")
    assert r.status_code == 200
    assert r.json()["balance"] == 600
    budget = (await api.wallet("alice"))["budget"]
    assert (budget["monthly"], budget["spent"], budget["remaining"]) == (150, 100, 50)
    before = await api.snapshot()
    r = await api.send("POST", "/v1/badges", {"id": "b-2", "badge": "supporter"}, user="alice")
    assert r.status_code == 402
    assert r.json()["code"] == "budget_exceeded"
    wallet = await api.wallet("alice")
    assert wallet["coins"] == 600
    assert wallet["budget"]["spent"] == 100
    # Only the stored failure of b-2 was added (docs/contract.md §7: failures are kept per id).
    after = await api.snapshot()
    assert {k: v for k, v in after.items() if not k.endswith(b":spend:alice:b-2")} == before
    # Clearing the budget lets a new id through; the failed id stays failed.
    r = await api.send("PUT", "/v1/wallet/budget", {"monthly": None}, user="alice")
    assert r.json()["budget"]["monthly"] is None
    r = await api.send("POST", "/v1/badges", {"id": "b-2", "badge": "supporter"}, user="alice")
    assert r.status_code == 402
    r = await api.send("POST", "/v1/badges", {"id": "b-3", "badge": "supporter"}, user="alice")
    assert r.status_code == 200
    assert r.json()["balance"] == 500


async def test_a_zero_budget_stops_every_spend(api: Api) -> None:
    await api.buy("alice")
    assert (
        await api.send("PUT", "/v1/wallet/budget", {"monthly": 0}, user="alice")
    ).status_code == 200
    r = await api.send("POST", "/v1/badges", {"id": "b-1", "badge": "supporter"}, user="alice")
    assert r.json()["code"] == "budget_exceeded"


async def test_badge_spend_is_idempotent_and_shown_on_the_wallet(api: Api) -> None:
    await api.buy("alice", "coins_700")
    r = await api.send("POST", "/v1/badges", {"id": "b-1", "badge": "super_fan"}, user="alice")
    assert r.status_code == 200
    first = r.json()
    assert first["balance"] == 200
    assert first["badge"] == "super_fan"
    assert first["event"]
    assert r.headers["Idempotent-Replayed"] == "false"
    again = await api.send("POST", "/v1/badges", {"id": "b-1", "badge": "super_fan"}, user="alice")
    assert again.json() == first
    assert again.headers["Idempotent-Replayed"] == "true"
    wallet = await api.wallet("alice")
    assert (wallet["coins"], wallet["badge"]) == (200, "super_fan")
    # A cheaper badge bought later is owned but never replaces the dearer one shown.
    r = await api.send("POST", "/v1/badges", {"id": "b-2", "badge": "supporter"}, user="alice")
    assert (r.json()["balance"], r.json()["shown"]) == (100, "super_fan")
    await api.send("POST", "/v1/badges", {"id": "b-1", "badge": "super_fan"}, user="alice")
    wallet = await api.wallet("alice")
    assert (wallet["coins"], wallet["badge"]) == (100, "super_fan")
    assert [b["id"] for b in wallet["badges"]] == ["super_fan", "supporter"]
    assert wallet["badges"][0] == {"id": "super_fan", "name": "Super Fan", "tier": 2}
    assert await api.state.ledger.badge_of("alice") == "super_fan"


async def test_badge_id_reused_for_another_badge_is_a_conflict(api: Api) -> None:
    await api.buy("alice")
    await api.send("POST", "/v1/badges", {"id": "b-1", "badge": "supporter"}, user="alice")
    before = await api.snapshot()
    r = await api.send("POST", "/v1/badges", {"id": "b-1", "badge": "super_fan"}, user="alice")
    assert r.status_code == 409
    assert r.json()["code"] == "conflict"
    assert await api.snapshot() == before


async def test_badge_ids_are_per_user(api: Api) -> None:
    await api.buy("alice")
    await api.buy("bob")
    for user in ("alice", "bob"):
        r = await api.send("POST", "/v1/badges", {"id": "b-1", "badge": "supporter"}, user=user)
        assert r.json()["balance"] == 600


async def test_badge_without_coins_stays_failed_after_a_top_up(api: Api) -> None:
    r = await api.send("POST", "/v1/badges", {"id": "b-1", "badge": "supporter"}, user="alice")
    assert r.status_code == 402
    assert r.json()["code"] == "insufficient_funds"
    await api.buy("alice")
    r = await api.send("POST", "/v1/badges", {"id": "b-1", "badge": "supporter"}, user="alice")
    assert r.status_code == 402
    wallet = await api.wallet("alice")
    assert (wallet["coins"], wallet["badge"]) == (700, None)


async def test_unknown_badge(api: Api) -> None:
    await api.buy("alice")
    before = await api.snapshot()
    r = await api.send("POST", "/v1/badges", {"id": "b-1", "badge": "emperor"}, user="alice")
    assert r.status_code == 404
    assert r.json()["code"] == "unknown_item"
    assert await api.snapshot() == before


# --------------------------------------------------------------------------- cash-outs


async def test_cashout_below_the_minimum_or_beyond_the_balance(api: Api) -> None:
    await api.earn_diamonds("carol", "alice")  # 5,000 diamonds
    before = await api.snapshot()
    r = await api.send("POST", "/v1/cashouts", {"diamonds": 1998}, user="carol")
    assert r.status_code == 400
    assert "minimum" in r.json()["message"]
    r = await api.send("POST", "/v1/cashouts", {"diamonds": 6000}, user="carol")
    assert r.status_code == 402
    assert r.json()["code"] == "insufficient_funds"
    r = await api.send("POST", "/v1/cashouts", {"diamonds": 2001}, user="carol")
    assert r.status_code == 400
    assert "multiple of 2" in r.json()["message"]
    assert await api.snapshot() == before


async def test_cashout_holds_diamonds_and_is_idempotent(api: Api) -> None:
    await api.earn_diamonds("carol", "alice")
    r = await api.send("POST", "/v1/cashouts", {"diamonds": 2000, "id": "req-1"}, user="carol")
    assert r.status_code == 201
    held = r.json()
    assert held["status"] == "held"
    assert held["diamonds"] == 2000
    assert held["amount"] == {"amount": 1000, "currency": "USD"}
    assert held["id"] == "req-1"
    wallet = await api.wallet("carol")
    assert (wallet["diamonds"], wallet["diamonds_held"]) == (3000, 2000)
    again = await api.send("POST", "/v1/cashouts", {"diamonds": 2000, "id": "req-1"}, user="carol")
    assert again.status_code == 201
    assert again.json() == held
    assert (await api.wallet("carol"))["diamonds"] == 3000
    before = await api.snapshot()
    other = await api.send("POST", "/v1/cashouts", {"diamonds": 2002, "id": "req-1"}, user="carol")
    assert other.status_code == 409
    assert await api.snapshot() == before


async def test_cashout_idempotency_key_header(api: Api) -> None:
    await api.earn_diamonds("carol", "alice")
    hdr = {"Idempotency-Key": "k-1"}
    r1 = await api.send("POST", "/v1/cashouts", {"diamonds": 2000}, user="carol", headers=hdr)
    r2 = await api.send("POST", "/v1/cashouts", {"diamonds": 2000}, user="carol", headers=hdr)
    assert r1.status_code == r2.status_code == 201
    assert r1.json() == r2.json()
    assert r1.json()["id"] == "k-1"
    same = await api.send(
        "POST", "/v1/cashouts", {"diamonds": 2000, "id": "k-1"}, user="carol", headers=hdr
    )
    assert same.json() == r1.json()
    before = await api.snapshot()
    r = await api.send(
        "POST", "/v1/cashouts", {"diamonds": 2000, "id": "k-2"}, user="carol", headers=hdr
    )
    assert r.status_code == 400
    assert "Idempotency-Key" in r.json()["message"]
    r = await api.send(
        "POST",
        "/v1/cashouts",
        {"diamonds": 2000},
        user="carol",
        headers={"Idempotency-Key": "bad key"},
    )
    assert r.status_code == 400
    assert await api.snapshot() == before


async def test_cashouts_without_an_id_are_each_new(api: Api) -> None:
    await api.earn_diamonds("carol", "alice")
    r1 = await api.send("POST", "/v1/cashouts", {"diamonds": 2000}, user="carol")
    r2 = await api.send("POST", "/v1/cashouts", {"diamonds": 2000}, user="carol")
    assert r1.json()["cashout"] != r2.json()["cashout"]
    assert (await api.wallet("carol"))["diamonds"] == 1000


async def test_cashouts_are_listed_and_read_by_their_owner_only(api: Api) -> None:
    await api.earn_diamonds("carol", "alice")
    ids = []
    for n in range(2):
        r = await api.send("POST", "/v1/cashouts", {"diamonds": 2000, "id": f"r{n}"}, user="carol")
        ids.append(r.json()["cashout"])
    listed = (await api.get("/v1/cashouts", "carol")).json()["cashouts"]
    assert {c["cashout"] for c in listed} == set(ids)
    assert all(c["status"] == "held" for c in listed)
    assert (
        len((await api.get("/v1/cashouts", "carol", params={"limit": 1})).json()["cashouts"]) == 1
    )
    assert (await api.get("/v1/cashouts", "bob")).json() == {"cashouts": []}
    one = await api.get(f"/v1/cashouts/{ids[0]}", "carol")
    assert one.status_code == 200
    assert one.json()["cashout"] == ids[0]
    assert (await api.get(f"/v1/cashouts/{ids[0]}", "bob")).status_code == 404
    assert (await api.get("/v1/cashouts/co00-none", "carol")).status_code == 404


@pytest.mark.parametrize("limit", ["0", "101", "-1", "x", "1.5"])
async def test_cashout_list_limit_is_checked(api: Api, limit: str) -> None:
    r = await api.get("/v1/cashouts", "carol", params={"limit": limit})
    assert r.status_code == 400
    assert "limit" in r.json()["message"]


async def test_cashout_paid_and_failed_through_the_payout_webhook(api: Api) -> None:
    await api.earn_diamonds("carol", "alice")
    a = (await api.send("POST", "/v1/cashouts", {"diamonds": 2000}, user="carol")).json()
    b = (await api.send("POST", "/v1/cashouts", {"diamonds": 2000}, user="carol")).json()
    assert (await api.webhook("payouts", {"cashout": a["cashout"], "status": "paid"})).is_success
    assert (await api.webhook("payouts", {"cashout": b["cashout"], "status": "failed"})).is_success
    wallet = await api.wallet("carol")
    assert (wallet["diamonds"], wallet["diamonds_held"], wallet["diamonds_paid"]) == (3000, 0, 2000)
    statuses = {
        c["cashout"]: c["status"]
        for c in (await api.get("/v1/cashouts", "carol")).json()["cashouts"]
    }
    assert statuses == {a["cashout"]: "paid", b["cashout"]: "failed"}
