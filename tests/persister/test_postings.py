"""The pure entry -> event + postings mapping: balanced, strict, and a model check."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gifting.core.accounts import DIAMOND_ISSUANCE, EXTERNAL_PAYMENTS, PLATFORM_REVENUE
from gifting.core.ids import credit_event_id
from gifting.core.money import diamonds_for_spend
from gifting.persister.postings import (
    LedgerEvent,
    MalformedEntry,
    aggregate,
    imbalance,
    parse_entry,
    plan_rows,
)

from . import entries as E


def _parse(fields: dict[str, str]) -> LedgerEvent:
    return parse_entry("1-0", fields)


def _legs(event: LedgerEvent) -> set[tuple[str, str, int]]:
    return {(p.account, p.currency, p.amount) for p in event.postings}


def test_credit_event_id_derives_from_the_spend() -> None:
    assert credit_event_id("e0123456789abcdef") == "c0123456789abcdef"


@pytest.mark.parametrize(
    ("fields", "legs"),
    [
        (
            E.purchase("alice", 70),
            {("user:alice:coins", "coins", 70), (EXTERNAL_PAYMENTS, "coins", -70)},
        ),
        (
            E.refund("alice", 70),
            {("user:alice:coins", "coins", -70), (EXTERNAL_PAYMENTS, "coins", 70)},
        ),
        (
            E.spend("alice", "bob", unit=5, count=3),
            {("user:alice:coins", "coins", -15), ("creator:bob:received", "coins", 15)},
        ),
        (
            E.spend("alice", "bob", kind="effect", item="confetti", unit=99),
            {("user:alice:coins", "coins", -99), ("creator:bob:received", "coins", 99)},
        ),
        (
            E.spend("alice", kind="badge", item="vip", unit=2000),
            {("user:alice:coins", "coins", -2000), (PLATFORM_REVENUE, "coins", 2000)},
        ),
        (
            E.credit(E.spend("alice", "bob", unit=7), 3),
            {("user:bob:diamonds", "diamonds", 3), (DIAMOND_ISSUANCE, "diamonds", -3)},
        ),
        (E.credit(E.spend("alice", "bob", unit=1), 0), set()),
        (
            E.hold("bob", 2000),
            {("user:bob:diamonds", "diamonds", -2000), ("user:bob:held", "diamonds", 2000)},
        ),
        (
            E.settle(E.hold("bob", 2000), "paid"),
            {("user:bob:held", "diamonds", -2000), ("user:bob:paid", "diamonds", 2000)},
        ),
        (
            E.settle(E.hold("bob", 2000), "failed"),
            {("user:bob:held", "diamonds", -2000), ("user:bob:diamonds", "diamonds", 2000)},
        ),
    ],
    ids=[
        "purchase",
        "refund",
        "gift",
        "effect",
        "badge",
        "credit",
        "credit-0",
        "hold",
        "paid",
        "failed",
    ],
)
def test_every_entry_type_posts_balanced_legs(
    fields: dict[str, str], legs: set[tuple[str, str, int]]
) -> None:
    event = _parse(fields)
    assert event.event_id == fields["event"]
    assert event.type == fields["type"]
    assert _legs(event) == legs
    assert imbalance(event.postings) == {}


def _broken(base: dict[str, str], **changes: str | None) -> dict[str, str]:
    out = dict(base)
    for k, v in changes.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


_GIFT = E.spend("alice", "bob", unit=5, count=2)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"garbage": "1"}, "missing field 'type'"),
        (_broken(_GIFT, type="teleport"), "unknown entry type"),
        (_broken(_GIFT, event=None), "missing field 'event'"),
        (_broken(_GIFT, coins="ten"), "not an integer"),
        (_broken(_GIFT, coins="1.5"), "not an integer"),
        (_broken(_GIFT, coins=str(2**63)), "out of range"),
        (_broken(_GIFT, coins="1" * 20), "not an integer"),
        (_broken(_GIFT, count="0"), "out of range"),
        (_broken(_GIFT, coins="-10"), "out of range"),
        (_broken(_GIFT, coins="11"), "is not unit 5 x count 2"),
        (_broken(_GIFT, kind="hug"), "unknown spend kind"),
        (_broken(_GIFT, creator="alice"), "own stream"),
        (_broken(_GIFT, creator=""), "field 'creator'"),
        (_broken(_GIFT, user="a:b"), "field 'user'"),
        (_broken(_GIFT, user=""), "field 'user'"),
        (_broken(_GIFT, ts="-1"), "out of range"),
        (_broken(_GIFT, name="a\x00b"), "NUL"),
        (_broken(E.spend(kind="badge", item="vip", unit=2000), creator="bob"), "badge"),
        (_broken(E.credit(_GIFT, 5), event="cdifferent"), "does not derive"),
        (_broken(E.credit(_GIFT, 5), diamonds="-1"), "out of range"),
        (_broken(E.purchase(), currency="usd"), "ISO currency"),
        (_broken(E.hold(), diamonds="0"), "out of range"),
        (_broken(E.settle(E.hold()), cashout=None), "missing field 'cashout'"),
    ],
)
def test_malformed_entries_are_refused_with_a_reason(fields: dict[str, str], reason: str) -> None:
    with pytest.raises(MalformedEntry) as caught:
        _parse(fields)
    assert reason in caught.value.reason


def test_int64_edges() -> None:
    big = 2**63 - 1
    event = _parse(_broken(E.purchase(), coins=str(big), balance=str(-big)))
    assert event.coins == big
    with pytest.raises(MalformedEntry):
        _parse(_broken(E.purchase(), balance=str(-(2**63))))


def test_unknown_extra_fields_are_kept_not_refused() -> None:
    fields = {**E.purchase(), "future": "x"}
    assert _parse(fields).fields["future"] == "x"


def test_plan_rows_and_aggregates() -> None:
    g1 = E.spend("alice", "bob", unit=10, count=3, stream="s1")
    g2 = E.spend("carol", "bob", kind="effect", item="confetti", unit=99, stream="s1")
    g3 = E.spend("alice", "dave", unit=1, count=2, stream="s2")
    badge = E.spend("alice", kind="badge", item="vip", unit=2000)
    h = E.hold("bob", 2000)
    events = [
        _parse(f)
        for f in (
            g1,
            g2,
            g3,
            badge,
            E.credit(g1, 15),
            E.credit(g3, 1),
            h,
            E.settle(h),
            E.purchase(),
        )
    ]
    rows = plan_rows(events)
    assert len(rows.postings) == 2 * 9
    assert [r[0] for r in rows.purchases] == [events[-1].reference]
    assert [r[0] for r in rows.holds] == [h["cashout"]]
    assert [(r[0], r[3]) for r in rows.settlements] == [(h["cashout"], "paid")]
    streams, earnings = aggregate(events)
    assert [(s.stream, s.creator, s.coins, s.gifts, s.spends) for s in streams] == [
        ("s1", "bob", 129, 3, 2),
        ("s2", "dave", 2, 2, 1),
    ]
    assert [(d.creator, d.stream, d.coins, d.credited_coins, d.diamonds) for d in earnings] == [
        ("bob", "s1", 129, 30, 15),
        ("dave", "s2", 2, 2, 1),
    ]


# --------------------------------------------------------------------------- property

USERS = ("u1", "u2", "u3")
CREATORS = ("c1", "c2")
BPS = 5000


class Model:
    """Balances computed from the operations directly, never from postings."""

    def __init__(self) -> None:
        self.coins: Counter[str] = Counter()
        self.diamonds: Counter[str] = Counter()
        self.held: Counter[str] = Counter()
        self.paid: Counter[str] = Counter()
        self.received: Counter[str] = Counter()
        self.bought = 0
        self.badges = 0
        self.holds: list[dict[str, str]] = []
        self.uncredited: list[dict[str, str]] = []


@st.composite
def operations(draw: st.DrawFn) -> tuple[Model, list[dict[str, str]]]:
    model = Model()
    out: list[dict[str, str]] = []
    for _ in range(draw(st.integers(1, 60))):
        op = draw(
            st.sampled_from(["purchase", "refund", "gift", "badge", "credit", "hold", "settle"])
        )
        user = draw(st.sampled_from(USERS + CREATORS))
        amount = draw(st.integers(1, 10**6))
        if op == "purchase":
            out.append(E.purchase(user, amount))
            model.coins[user] += amount
            model.bought += amount
        elif op == "refund":
            out.append(E.refund(user, amount))
            model.coins[user] -= amount
            model.bought -= amount
        elif op in ("gift", "badge"):
            unit, count = draw(st.integers(1, 10**5)), draw(st.integers(1, 1000))
            if op == "badge":
                out.append(E.spend(user, kind="badge", item="vip", unit=unit))
                model.coins[user] -= unit
                model.badges += unit
            else:
                creator = draw(st.sampled_from([c for c in CREATORS if c != user]))
                s = E.spend(
                    user,
                    creator,
                    unit=unit,
                    count=count,
                    stream=f"s-{creator}-{draw(st.integers(0, 2))}",
                )
                out.append(s)
                model.coins[user] -= unit * count
                model.uncredited.append(s)
        elif op == "credit" and model.uncredited:
            s = model.uncredited.pop(draw(st.integers(0, len(model.uncredited) - 1)))
            creator, coins = s["creator"], int(s["coins"])
            d = diamonds_for_spend(model.received[creator], coins, BPS)
            model.received[creator] += coins
            model.diamonds[creator] += d
            out.append(E.credit(s, d))
        elif op == "hold" and model.diamonds[user] > 0:
            d = draw(st.integers(1, model.diamonds[user]))
            h = E.hold(user, d)
            out.append(h)
            model.diamonds[user] -= d
            model.held[user] += d
            model.holds.append(h)
        elif op == "settle" and model.holds:
            h = model.holds.pop(0)
            outcome = draw(st.sampled_from(["paid", "failed"]))
            out.append(E.settle(h, outcome))
            d = int(h["diamonds"])
            model.held[h["user"]] -= d
            (model.paid if outcome == "paid" else model.diamonds)[h["user"]] += d
    return model, out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations())
def test_random_sequences_post_balanced_and_match_a_model(
    generated: tuple[Model, list[dict[str, str]]],
) -> None:
    model, fields = generated
    events = [parse_entry(f"{i}-0", f) for i, f in enumerate(fields)]
    balances: Counter[str] = Counter()
    for e in events:
        assert imbalance(e.postings) == {}, e
        for p in e.postings:
            balances[p.account] += p.amount
    for user in USERS + CREATORS:
        assert balances[f"user:{user}:coins"] == model.coins[user]
        assert balances[f"user:{user}:diamonds"] == model.diamonds[user]
        assert balances[f"user:{user}:held"] == model.held[user]
        assert balances[f"user:{user}:paid"] == model.paid[user]
    for creator in CREATORS:
        # Received counts every spend to the creator, credited or not yet.
        spent_to = sum(
            int(f["coins"]) for f in fields if f["type"] == "spend" and f["creator"] == creator
        )
        assert balances[f"creator:{creator}:received"] == spent_to
    assert balances[EXTERNAL_PAYMENTS] == -model.bought
    assert balances[PLATFORM_REVENUE] == model.badges
    assert -balances[DIAMOND_ISSUANCE] == sum(model.diamonds.values()) + sum(
        model.held.values()
    ) + sum(model.paid.values())
    rows = plan_rows(events)
    assert len(rows.postings) == sum(len(e.postings) for e in events)
    streams, earnings = aggregate(events)
    assert sum(s.coins for s in streams) == sum(
        int(f["coins"]) for f in fields if f["type"] == "spend" and f["creator"]
    )
    assert sum(d.diamonds for d in earnings) == -balances[DIAMOND_ISSUANCE]
