"""The ledger held against a pure Python model of the wallets, op by op.

A seeded random sequence of purchases (new and replayed, some with the wrong
amount or another buyer), refunds, spends of every kind (message ids drawn
from a small pool, so retries and reused ids are common; some on ended
streams; self-gifts, refused; creators' own effects, kept by the platform),
creator credits delivered late and twice, budget changes, clock jumps across
days and months, cash-out requests and settles.
After every step each wallet in Redis must equal the model's; at the end the
outbox streams alone must prove both conservation laws of docs/contract.md §2.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import Any

import pytest
from redis.asyncio import Redis

from gifting.core.catalog import Catalog
from gifting.core.errors import (
    BadRequest,
    BudgetExceeded,
    Conflict,
    Forbidden,
    GiftingError,
    InsufficientFunds,
    NotFound,
    StreamNotLive,
    Unprocessable,
)
from gifting.core.money import day_of, diamonds_for_spend, month_of
from gifting.core.pricing import Priced, price_badge, price_effect, price_gift, price_highlight
from gifting.store.keys import Keys
from gifting.store.ledger import Budget, Cashout, Ledger, PurchaseResult, SpendOrder, SpendResult

from .support import FakeClock, coins_of, of_type, outbox_entries

pytestmark = pytest.mark.cluster

STEPS = 300
BPS = 5000
DAILY_CAP = 6000  # small, so the cap is hit
VIEWERS = ["v0", "v1", "v2", "v3"]
STREAMS = {"s0": "c0", "s1": "c1"}  # stream -> its creator
CREATORS = list(STREAMS.values())
USERS = VIEWERS + CREATORS
PACKAGES = ["coins_70", "coins_350", "coins_3500", "coins_7000", "coins_17500"]
GIFTS = ["rose", "rose", "rosa", "cap", "hand_hearts", "galaxy", "whale_diving", "sports_car"]
COMBO_WINDOW_MS = 3000


@dataclass
class ModelWallet:
    coins: int = 0
    diamonds: int = 0
    held: int = 0
    paid: int = 0
    earned: int = 0
    received: int = 0
    budget: int | None = None
    month: str = ""
    spent: int = 0
    cash_day: str = ""
    cash_total: int = 0


@dataclass
class ModelPurchase:
    user: str
    package: str
    coins: int
    balance: int
    refunded: bool = False
    refund_balance: int = 0


@dataclass
class ModelSpend:
    fingerprint: tuple[object, ...]
    error: type[GiftingError] | None
    balance: int
    event: str = ""
    combo: int = 0


@dataclass
class ModelCashout:
    user: str
    diamonds: int
    status: str = "held"


@dataclass
class Model:
    """What the wallets must hold, computed with plain Python integers."""

    wallets: dict[str, ModelWallet] = field(
        default_factory=lambda: {u: ModelWallet() for u in USERS}
    )
    purchases: dict[str, ModelPurchase] = field(default_factory=dict)
    spends: dict[tuple[str, str], ModelSpend] = field(default_factory=dict)
    combos: dict[tuple[str, str], tuple[str, int, int]] = field(default_factory=dict)
    credited: dict[tuple[str, str], int] = field(default_factory=dict)
    pending_credits: list[tuple[str, str, int, str, str]] = field(default_factory=list)
    delivered_credits: list[tuple[str, str, int, str, str]] = field(default_factory=list)
    requests: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)
    cashouts: dict[str, ModelCashout] = field(default_factory=dict)
    purchased: int = 0
    refunded: int = 0
    spent: int = 0
    badges: int = 0


class Run:
    """One seeded sequence against a fresh keyspace."""

    def __init__(self, seed: int, ledger: Ledger, clock: FakeClock) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.ledger = ledger
        self.catalog = ledger.catalog
        self.clock = clock
        self.m = Model()
        self.log: list[str] = []

    def fail(self, message: str) -> None:
        recent = "\n  ".join(self.log[-8:])
        pytest.fail(f"seed {self.seed}, step {len(self.log)}: {message}\n  {recent}")

    def expect(self, got: object, want: object) -> None:
        ok = got is want if isinstance(want, type) else got == want
        if not ok:
            self.fail(f"got {got!r}, expected {want!r}")

    async def attempt(self, coro: Any) -> Any:
        try:
            return await coro
        except GiftingError as e:
            return type(e)

    # -- operations ----------------------------------------------------------------
    async def purchase(self) -> None:
        rng, m = self.rng, self.m
        if m.purchases and rng.random() < 0.3:
            pid = rng.choice(list(m.purchases))
            first = m.purchases[pid]
            user, package = (
                (first.user, first.package)
                if rng.random() < 0.5
                else (rng.choice(USERS), rng.choice(PACKAGES))
            )
        else:
            pid, user, package = f"p{len(self.log)}", rng.choice(VIEWERS), rng.choice(PACKAGES)
        price = self.catalog.packages[package].price
        amount = price.amount if rng.random() < 0.9 else price.amount + rng.choice([-1, 1])
        self.log.append(f"purchase {pid} {user} {package} {amount}")

        want: object
        if amount != price.amount:
            want = Unprocessable
        elif pid in m.purchases:
            rec = m.purchases[pid]
            if (rec.user, rec.package) != (user, package):
                want = Conflict
            else:
                want = PurchaseResult(pid, user, rec.coins, rec.balance, True)
        else:
            coins = self.catalog.packages[package].coins
            w = m.wallets[user]
            w.coins += coins
            m.purchased += coins
            m.purchases[pid] = ModelPurchase(user, package, coins, w.coins)
            want = PurchaseResult(pid, user, coins, w.coins, False)
        got = await self.attempt(self.ledger.purchase(pid, user, package, amount, price.currency))
        self.expect(got, want)

    async def refund(self) -> None:
        rng, m = self.rng, self.m
        known = list(m.purchases)
        pid = rng.choice(known) if known and rng.random() < 0.85 else f"nope{len(self.log)}"
        self.log.append(f"refund {pid}")
        want: object
        if pid not in m.purchases:
            want = NotFound
        else:
            rec = m.purchases[pid]
            if rec.refunded:
                want = PurchaseResult(pid, rec.user, rec.coins, rec.refund_balance, True)
            else:
                w = m.wallets[rec.user]
                w.coins -= rec.coins
                m.refunded += rec.coins
                rec.refunded, rec.refund_balance = True, w.coins
                want = PurchaseResult(pid, rec.user, rec.coins, w.coins, False)
        self.expect(await self.attempt(self.ledger.refund(pid)), want)

    def _random_order(self) -> SpendOrder:
        rng, c = self.rng, self.catalog
        sender = rng.choice(VIEWERS) if rng.random() < 0.85 else rng.choice(CREATORS)
        client_id = f"m{rng.randrange(40)}"
        stream = rng.choice(list(STREAMS))
        creator, text = STREAMS[stream], ""
        kind = rng.choices(["gift", "effect", "highlight", "badge"], [80, 8, 7, 5])[0]
        priced: Priced
        if kind == "gift":
            priced = price_gift(c, rng.choice(GIFTS), rng.choice([1, 1, 1, 2, 3, 5]))
        elif kind == "effect":
            priced = price_effect(c, rng.choice(list(c.effects)))
        elif kind == "highlight":
            text = rng.choice(["hi", "great stream!", "x" * 40])
            priced = price_highlight(c, rng.choice(list(c.highlights)), text)
        else:
            priced = price_badge(c, rng.choice(list(c.badges)))
            stream, creator = "", ""
        return SpendOrder(sender, sender.upper(), client_id, priced, stream, creator, text)

    async def spend(self) -> None:
        m, order = self.m, self._random_order()
        live = self.rng.random() < 0.9
        p, now = order.priced, self.clock()
        self.log.append(
            f"spend {order.sender}/{order.client_id} {p.kind} {p.item}x{p.count}={p.coins}"
            f" {order.stream or '-'} live={live}"
        )
        key = (order.sender, order.client_id)
        fp = (p.kind, p.item, p.count, order.stream, order.text)
        got = await self.attempt(self.ledger.spend(order, live=live))

        if order.creator == order.sender and p.kind == "gift":
            self.expect(got, Forbidden)  # a self-gift; an own effect or highlight is kept
            return
        # Who is credited: nobody for a badge or a creator's own effect / highlight.
        payee = "" if order.creator == order.sender else order.creator
        if key in m.spends:
            rec = m.spends[key]
            if rec.fingerprint != fp:
                self.expect(got, Conflict)
            elif rec.error is not None:
                self.expect(got, rec.error)
            else:
                self.expect(got, SpendResult(rec.event, rec.balance, rec.combo, True))
            return

        w = m.wallets[order.sender]
        month = month_of(now)
        spent = w.spent if w.month == month else 0
        error: type[GiftingError] | None = None
        if not live:
            error = StreamNotLive
        elif w.coins < p.coins:
            error = InsufficientFunds
        elif w.budget is not None and spent + p.coins > w.budget:
            error = BudgetExceeded
        if error is not None:
            m.spends[key] = ModelSpend(fp, error, w.coins)
            self.expect(got, error)
            return

        combo = 0
        if p.kind == "gift" and p.streakable:
            streak = m.combos.get((order.sender, order.stream))
            if streak and streak[0] == p.item and now - streak[2] <= COMBO_WINDOW_MS:
                combo = streak[1] + p.count
            else:
                combo = p.count
            m.combos[(order.sender, order.stream)] = (p.item, combo, now)
        w.coins -= p.coins
        w.month, w.spent = month, spent + p.coins
        m.spent += p.coins
        if not payee:  # kept by the platform
            m.badges += p.coins
        if not isinstance(got, SpendResult):
            self.fail(f"got {got!r}, expected a fresh ack")
            return
        self.expect((got.balance, got.combo, got.replayed), (w.coins, combo, False))
        m.spends[key] = ModelSpend(fp, None, w.coins, got.event, combo)
        if payee:
            credit = (got.event, payee, p.coins, order.stream, order.sender)
            m.pending_credits.append(credit)
            if self.rng.random() < 0.7:  # the hub's fast path; else the repair does it later
                await self.credit(m.pending_credits.pop())

    async def credit(self, credit: tuple[str, str, int, str, str] | None = None) -> None:
        m, rng = self.m, self.rng
        if credit is None:
            if m.pending_credits and (rng.random() < 0.7 or not m.delivered_credits):
                credit = m.pending_credits.pop(rng.randrange(len(m.pending_credits)))
            elif m.delivered_credits:
                credit = rng.choice(m.delivered_credits)
            else:
                return
        event, creator, coins, stream, sender = credit
        self.log.append(f"credit {creator} {event} {coins}")
        if (creator, event) in m.credited:
            want = m.credited[(creator, event)]
        else:
            w = m.wallets[creator]
            want = diamonds_for_spend(w.received, coins, BPS)
            w.received += coins
            w.earned += want
            w.diamonds += want
            m.credited[(creator, event)] = want
            m.delivered_credits.append(credit)
        got = await self.ledger.credit_creator(
            spend_event=event, creator=creator, coins=coins, stream=stream, sender=sender
        )
        self.expect(got, want)

    async def budget(self) -> None:
        user = self.rng.choice(USERS)
        value = self.rng.choice(
            [None, None, 0, 50, 200, 1000, 5000, self.rng.randrange(3000), -1, True, 1.5, "100"]
        )
        self.log.append(f"budget {user} {value!r}")
        got = await self.attempt(self.ledger.set_budget(user, value))
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 0
        ):
            self.expect(got, BadRequest)
            return
        w = self.m.wallets[user]
        w.budget = value
        period = month_of(self.clock())
        self.expect(got, Budget(value, w.spent if w.month == period else 0, period))

    async def tick(self) -> None:
        step = self.rng.choice([1, 500, 2999, 3001, 60_000, 3_600_000, 86_400_000, 9 * 86_400_000])
        self.clock.advance(step)
        self.log.append(f"tick +{step} ms -> {day_of(self.clock())}")

    async def request_cashout(self) -> None:
        m, rng = self.m, self.rng
        user = rng.choice(CREATORS) if rng.random() < 0.9 else rng.choice(VIEWERS)
        diamonds = rng.choice([2000, 2000, 2002, 2500, 3000, 4000, 1998, 2001, 0, 10**6])
        request_id = f"r{rng.randrange(8)}"
        today = day_of(self.clock())
        self.log.append(f"cashout {user} {diamonds} {request_id}")
        got = await self.attempt(self.ledger.request_cashout(user, diamonds, request_id))

        w = m.wallets[user]
        today_total = w.cash_total if w.cash_day == today else 0
        if diamonds <= 0 or diamonds % 2:
            self.expect(got, BadRequest)
        elif (user, request_id) in m.requests:
            cashout_id, first = m.requests[(user, request_id)]
            if first != diamonds:
                self.expect(got, Conflict)
            else:
                self._expect_cashout(got, user, diamonds, m.cashouts[cashout_id].status)
                self.expect(got.cashout, cashout_id)
        elif diamonds < self.catalog.cashout_min_diamonds:
            self.expect(got, BadRequest)
        elif w.diamonds < diamonds:
            self.expect(got, InsufficientFunds)
        elif today_total + diamonds > DAILY_CAP:
            self.expect(got, BudgetExceeded)
        else:
            w.diamonds -= diamonds
            w.held += diamonds
            w.cash_day, w.cash_total = today, today_total + diamonds
            self._expect_cashout(got, user, diamonds, "held")
            m.requests[(user, request_id)] = (got.cashout, diamonds)
            m.cashouts[got.cashout] = ModelCashout(user, diamonds)

    def _expect_cashout(self, got: object, user: str, diamonds: int, status: str) -> None:
        if not isinstance(got, Cashout):
            self.fail(f"got {got!r}, expected a cash-out")
            return
        value = self.catalog.cashout_amount(diamonds)
        self.expect(
            (got.user, got.diamonds, got.amount, got.currency, got.status),
            (user, diamonds, value.amount, value.currency, status),
        )

    async def settle(self) -> None:
        m, rng = self.m, self.rng
        known = list(m.cashouts)
        cashout_id = rng.choice(known) if known and rng.random() < 0.9 else "co01-e0nothing"
        outcome = rng.choice(["paid", "failed"])
        self.log.append(f"settle {cashout_id} {outcome}")
        got = await self.attempt(self.ledger.settle_cashout(cashout_id, outcome))
        rec = m.cashouts.get(cashout_id)
        if rec is None:
            self.expect(got, NotFound)
            return
        if rec.status == "held":
            w = m.wallets[rec.user]
            w.held -= rec.diamonds
            if outcome == "paid":
                w.paid += rec.diamonds
            else:
                w.diamonds += rec.diamonds
            rec.status = outcome
        elif rec.status != outcome:
            self.expect(got, Conflict)
            return
        self._expect_cashout(got, rec.user, rec.diamonds, outcome)

    # -- checks --------------------------------------------------------------------
    async def check_wallets(self) -> None:
        period = month_of(self.clock())
        for user in USERS:
            got = await self.ledger.wallet(user)
            w = self.m.wallets[user]
            want = (
                w.coins, w.diamonds, w.held, w.paid, w.earned, w.received,
                Budget(w.budget, w.spent if w.month == period else 0, period),
            )  # fmt: skip
            have = (
                got.coins,
                got.diamonds,
                got.held,
                got.paid,
                got.earned,
                got.received,
                got.budget,
            )
            if have != want:
                self.fail(f"wallet {user}: redis {have} != model {want}")
            if got.earned != got.received * BPS // 10_000 or got.earned != (
                got.diamonds + got.held + got.paid
            ):
                self.fail(f"diamonds of {user} not conserved: {got}")
        coins = sum(self.m.wallets[u].coins for u in USERS)
        if self.m.purchased - self.m.refunded != coins + self.m.spent:
            self.fail("coins not conserved in the model")

    async def run(self, steps: int) -> None:
        ops = [self.purchase, self.refund, self.spend, self.credit, self.budget, self.tick,
               self.request_cashout, self.settle]  # fmt: skip
        weights = [12, 4, 50, 8, 5, 5, 10, 6]
        for _ in range(steps):
            await self.rng.choices(ops, weights)[0]()
            await self.check_wallets()
        while self.m.pending_credits:  # the repair path delivers whatever is left
            await self.credit(self.m.pending_credits.pop())
        await self.check_wallets()


@pytest.mark.parametrize("seed", range(1, 9))
async def test_random_operations_match_the_model_and_conserve_money(
    redis: Redis, keys: Keys, catalog: Catalog, seed: int
) -> None:
    clock = FakeClock.at("2026-01-27T10:00:00Z")  # month ends are near
    small_cap = dataclasses.replace(catalog, cashout_daily_cap_diamonds=DAILY_CAP)
    assert small_cap.creator_share_bps == BPS
    run = Run(seed, Ledger(redis, keys, small_cap, clock=clock), clock)
    await run.run(STEPS)
    m = run.m

    # The run exercised what it is meant to.
    errors = {s.error for s in m.spends.values()}
    assert {None, InsufficientFunds, StreamNotLive} <= errors
    assert any(p.refunded for p in m.purchases.values())

    # The outbox alone proves conservation (what the persister will write).
    entries = await outbox_entries(redis, keys)
    balances = sum([(await run.ledger.wallet(u)).coins for u in USERS])
    assert coins_of(entries, "purchase") == m.purchased
    assert coins_of(entries, "refund") == m.refunded
    assert coins_of(entries, "spend") == m.spent
    assert coins_of(entries, "purchase") - coins_of(entries, "refund") == (
        balances + coins_of(entries, "spend")
    )
    # kept by the platform: badges and creators' own effects and highlights (no creator)
    badges = sum(int(e["coins"]) for e in of_type(entries, "spend") if not e["creator"])
    assert badges == m.badges
    assert coins_of(entries, "spend") == coins_of(entries, "credit") + badges
    spend_events = {e["event"] for e in of_type(entries, "spend") if e["creator"]}
    assert sorted(e["spend_event"] for e in of_type(entries, "credit")) == sorted(spend_events)
    for creator in CREATORS:
        w = await run.ledger.wallet(creator)
        mine = [e for e in entries if e.get("user") == creator]
        assert sum(int(e["coins"]) for e in of_type(mine, "credit")) == w.received
        assert sum(int(e["diamonds"]) for e in of_type(mine, "credit")) == w.earned
        held = sum(int(e["diamonds"]) for e in of_type(mine, "cashout_hold"))
        failed = sum(int(e["diamonds"]) for e in of_type(mine, "cashout_failed"))
        paid = sum(int(e["diamonds"]) for e in of_type(mine, "cashout_paid"))
        assert (held - failed - paid, paid) == (w.held, w.paid)
        assert w.earned == w.diamonds + w.held + w.paid == w.received * BPS // 10_000
