"""The money operations of gifting, each one Lua script on one Redis hash slot.

Every method here is atomic in Redis (one script) unless its docstring says
otherwise; every one is idempotent by the id that caused it (docs/contract.md §7):

========================  ==========================  ==========================
operation                 idempotency key             script
========================  ==========================  ==========================
purchase credit           provider purchase id        purchase.lua
refund                    provider purchase id        refund.lua
spend                     (sender, client message id) spend.lua
creator credit            spend event id              credit.lua
cash-out hold             (creator, request id)       cashout_hold.lua
cash-out settle           cash-out id                 cashout_settle.lua
========================  ==========================  ==========================

Each script appends the settled ledger event to the outbox stream of its shard
in the same script, so the persister sees exactly what Redis did.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from redis.asyncio import Redis

from gifting.clock import now_ms
from gifting.core.catalog import Catalog
from gifting.core.entries import (
    CreditArgs,
    PurchaseArgs,
    RefundArgs,
    SpendArgs,
    SpendEntry,
    pairs,
)
from gifting.core.errors import (
    BadRequest,
    Conflict,
    NotFound,
    UnknownItem,
    Unprocessable,
    refusal,
)
from gifting.core.ids import check_id, credit_event_id, fingerprint, new_event_id, new_id
from gifting.core.money import MAX_SPEND_COINS, day_of, month_of
from gifting.core.pricing import Priced
from gifting.store.keys import SHARDS, Keys, shard_of
from gifting.store.scripts import ScriptCall, Scripts

# Budgets and cash-outs above this are typos, not intentions; far below 2**53.
MAX_BUDGET = 10**12
CREDIT_MARKER_MIN_TTL_S = 30 * 24 * 3600


@dataclass(frozen=True, slots=True)
class SpendOrder:
    """A priced spend from one sender, with the client's message id."""

    sender: str
    sender_name: str
    client_id: str
    priced: Priced
    stream: str = ""
    creator: str = ""
    text: str = ""


@dataclass(frozen=True, slots=True)
class SpendResult:
    """The ack of a spend: the ledger event, the balance after it, the combo count."""

    event: str
    balance: int
    combo: int
    replayed: bool


@dataclass(frozen=True, slots=True)
class PurchaseResult:
    """The coins a purchase credited and the balance right after it."""

    purchase_id: str
    user: str
    coins: int
    balance: int
    replayed: bool


@dataclass(frozen=True, slots=True)
class Budget:
    """The monthly budget (``None``: none set) and what was spent in ``period``."""

    monthly: int | None
    spent: int
    period: str


@dataclass(frozen=True, slots=True)
class Wallet:
    """A user's balances as Redis holds them now."""

    user: str
    coins: int
    diamonds: int
    held: int
    paid: int
    earned: int
    received: int
    budget: Budget


@dataclass(frozen=True, slots=True)
class Cashout:
    """One cash-out: diamonds held, then paid or failed (diamonds returned)."""

    cashout: str
    user: str
    diamonds: int
    amount: int
    currency: str
    status: str
    created: int

    def to_public(self) -> dict[str, Any]:
        """The wire form of the cash-out."""
        return {
            "cashout": self.cashout,
            "status": self.status,
            "diamonds": self.diamonds,
            "amount": {"amount": self.amount, "currency": self.currency},
            "created": self.created,
        }


def _whole(value: object, limit: int) -> bool:
    """Whether ``value`` is a real integer (not a bool) in 1..``limit``."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= limit


def _int(raw: bytes | str | None) -> int:
    if raw is None:
        return 0
    return int(raw)


def spend_args(order: SpendOrder) -> SpendArgs:
    """The caller's part of the outbox entry of ``order`` (what spend.lua's ARGV carries)."""
    p = order.priced
    return SpendArgs(
        user=order.sender, name=order.sender_name, client_id=order.client_id, kind=p.kind,
        item=p.item, count=p.count, unit=p.unit_coins, coins=p.coins, stream=order.stream,
        creator=order.creator, text=order.text,
    )  # fmt: skip


def spend_entry(order: SpendOrder, result: SpendResult, ts: int) -> SpendEntry:
    """The outbox entry of a debited ``order``, as spend.lua appended it (``ts``: its now)."""
    return SpendEntry(
        **msgspec.structs.asdict(spend_args(order)),
        event=result.event, ts=ts, balance=result.balance, combo=result.combo,
    )  # fmt: skip


def cashout_shard(cashout_id: str) -> int:
    """The wallet shard encoded in a cash-out id (``co<NN>-...``), or raise NotFound."""
    if len(cashout_id) < 5 or not cashout_id.startswith("co") or not cashout_id[2:4].isdigit():
        raise NotFound("no such cash-out")
    shard = int(cashout_id[2:4])
    if shard >= SHARDS:
        raise NotFound("no such cash-out")
    return shard


class Ledger:
    """Wallets, spends, purchases, refunds, creator credits and cash-outs on Redis."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        catalog: Catalog,
        *,
        idempotency_ttl_s: int = 7 * 24 * 3600,
        combo_window_ms: int = 3000,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.catalog = catalog
        self.scripts = Scripts(redis)
        self.idempotency_ttl_s = idempotency_ttl_s
        self.credit_ttl_s = max(idempotency_ttl_s, CREDIT_MARKER_MIN_TTL_S)
        self.combo_window_ms = combo_window_ms
        self.clock = clock

    # -- purchases -------------------------------------------------------------
    async def purchase(
        self, purchase_id: str, user: str, package_id: str, amount: object, currency: object
    ) -> PurchaseResult:
        """Credit a completed purchase once; a replay returns the first result.

        Two steps: the purchase id is bound to its user in the id's own slot
        (SET NX) so a refund can find the wallet, then purchase.lua credits the
        wallet. A crash between them is repaired by the provider's retry.
        """
        check_id(purchase_id, "purchase_id")
        check_id(user, "user")
        package = self.catalog.packages.get(package_id)
        if package is None:
            raise UnknownItem(f"unknown package {package_id[:64]!r}")
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise BadRequest("amount must be an integer (minor units)")
        if not isinstance(currency, str):
            raise BadRequest("currency must be a string")
        if amount != package.price.amount or currency != package.price.currency:
            raise Unprocessable(
                f"package {package.id} costs {package.price.amount} {package.price.currency}"
            )
        fp = fingerprint(user, package_id, amount, currency)
        owner_key = self.keys.purchase_owner(purchase_id)
        if not await self.redis.set(owner_key, user, nx=True):
            owner = await self.redis.get(owner_key)
            if owner is not None and owner.decode() != user:
                raise Conflict("this purchase id was already used with another payload")
        now = self.clock()
        event = new_event_id(now)
        shard = shard_of(user)
        entry = PurchaseArgs(
            user=user, purchase_id=purchase_id, package=package.id, coins=package.coins,
            amount=amount, currency=currency,
        )  # fmt: skip
        status, coins, balance = await self.scripts.run(
            "purchase",
            [
                self.keys.wallet(user),
                self.keys.purchase(user, purchase_id),
                self.keys.outbox(shard),
            ],
            [fp, package.coins, event, now, *pairs(entry.to_fields())],
        )
        if status not in ("ok", "replay"):
            raise refusal("purchase", status)
        return PurchaseResult(purchase_id, user, int(coins), int(balance), status == "replay")

    async def refund(self, purchase_id: str) -> PurchaseResult:
        """Claw back a purchase's coins once (the balance may go negative)."""
        check_id(purchase_id, "purchase_id")
        owner = await self.redis.get(self.keys.purchase_owner(purchase_id))
        if owner is None:
            raise NotFound("no such purchase")
        user = owner.decode()
        now = self.clock()
        entry = RefundArgs(user=user, purchase_id=purchase_id)
        status, coins, balance = await self.scripts.run(
            "refund",
            [
                self.keys.wallet(user),
                self.keys.purchase(user, purchase_id),
                self.keys.outbox(shard_of(user)),
            ],
            [new_event_id(now), now, *pairs(entry.to_fields())],
        )
        if status not in ("ok", "replay"):
            raise refusal("refund", status)
        return PurchaseResult(purchase_id, user, int(coins), int(balance), status == "replay")

    # -- spends ------------------------------------------------------------------
    def spend_call(self, order: SpendOrder, *, live: bool, now: int) -> ScriptCall:
        """The spend.lua call for ``order`` (validated), for :meth:`spend` or a pipeline.

        ``live`` is the stream's state read by the caller just before (it lives
        in another slot). A stream that ends between that read and the script
        may still take this one spend: the race is one round trip wide.
        """
        check_id(order.sender, "sender")
        check_id(order.client_id, "id")
        if order.creator and order.creator == order.sender:
            raise BadRequest("you cannot send to your own stream")
        p = order.priced
        # The scripts trust ARGV: a price that is not a positive integer would
        # mint coins (negative) or fail after the outbox append (non-integer).
        if not (
            _whole(p.coins, MAX_SPEND_COINS)
            and _whole(p.unit_coins, MAX_SPEND_COINS)
            and _whole(p.count, MAX_SPEND_COINS)
            and p.coins == p.unit_coins * p.count
        ):
            raise BadRequest("the price of a spend must be a positive whole number of coins")
        sender = order.sender
        keys = [
            self.keys.wallet(sender),
            self.keys.spend_result(sender, order.client_id),
            self.keys.outbox(shard_of(sender)),
            self.keys.combo(sender, order.stream),
        ]
        args: list[str | int] = [
            fingerprint(p.kind, p.item, p.count, order.stream, order.text),
            p.coins, month_of(now), new_event_id(now), now, self.idempotency_ttl_s,
            p.item if p.kind == "gift" and p.streakable else "", self.combo_window_ms,
            p.count, "1" if live else "0", *pairs(spend_args(order).to_fields()),
        ]  # fmt: skip
        return ScriptCall("spend", keys, args)

    @staticmethod
    def spend_outcome(reply: list[str]) -> SpendResult:
        """Turn a spend.lua reply into a result, or raise the spend's typed error."""
        status, balance, event, combo = reply
        outcome = status.removeprefix("replay:")
        if outcome != "ok":
            raise refusal("spend", outcome)
        return SpendResult(event, int(balance), int(combo), status.startswith("replay:"))

    async def spend(self, order: SpendOrder, *, live: bool) -> SpendResult:
        """Debit a spend once; refused when short, over budget or not ``live``."""
        call = self.spend_call(order, live=live, now=self.clock())
        return self.spend_outcome(await self.scripts.run(call.name, call.keys, call.args))

    def credit_call(
        self, *, spend_event: str, creator: str, coins: int, stream: str, sender: str, now: int
    ) -> ScriptCall:
        """The credit.lua call crediting ``creator`` for spend ``spend_event``."""
        if not _whole(coins, MAX_SPEND_COINS):
            raise BadRequest("a credit must be a positive whole number of coins")
        entry = CreditArgs(
            user=creator, spend_event=spend_event, coins=coins, stream=stream, sender=sender
        )
        keys = [
            self.keys.wallet(creator),
            self.keys.credit_done(creator, spend_event),
            self.keys.outbox(shard_of(creator)),
        ]
        args: list[str | int] = [
            coins, self.catalog.creator_share_bps, credit_event_id(spend_event), now,
            self.credit_ttl_s, *pairs(entry.to_fields()),
        ]  # fmt: skip
        return ScriptCall("credit", keys, args)

    async def credit_creator(
        self, *, spend_event: str, creator: str, coins: int, stream: str, sender: str
    ) -> int:
        """Credit the creator's diamonds for a settled spend, once; return the diamonds.

        The credit's own event id is derived from the spend's, so the persister
        deduplicates it in PostgreSQL too.
        """
        call = self.credit_call(
            spend_event=spend_event, creator=creator, coins=coins, stream=stream,
            sender=sender, now=self.clock(),
        )  # fmt: skip
        _status, diamonds = await self.scripts.run(call.name, call.keys, call.args)
        return int(diamonds)

    # -- wallets -------------------------------------------------------------------
    async def wallet(self, user: str) -> Wallet:
        """Read a user's balances and budget."""
        check_id(user, "user")
        raw = await self.redis.hmget(
            self.keys.wallet(user),
            ["coins", "diamonds", "held", "paid", "earned", "received", "budget", "month", "spent"],
        )
        coins, diamonds, held, paid, earned, received, budget, month, spent = raw
        period = month_of(self.clock())
        spent_now = _int(spent) if month is not None and month.decode() == period else 0
        return Wallet(
            user,
            _int(coins),
            _int(diamonds),
            _int(held),
            _int(paid),
            _int(earned),
            _int(received),
            Budget(None if budget is None else int(budget), spent_now, period),
        )

    async def set_budget(self, user: str, monthly: object) -> Budget:
        """Set (an integer >= 0) or clear (``None``) the user's monthly coin budget."""
        check_id(user, "user")
        key = self.keys.wallet(user)
        if monthly is None:
            await self.redis.hdel(key, "budget")
        else:
            if isinstance(monthly, bool) or not isinstance(monthly, int):
                raise BadRequest("monthly must be an integer or null")
            if not 0 <= monthly <= MAX_BUDGET:
                raise BadRequest(f"monthly must be between 0 and {MAX_BUDGET}")
            await self.redis.hset(key, "budget", str(monthly))
        return (await self.wallet(user)).budget

    # -- cash-outs -----------------------------------------------------------------
    async def request_cashout(self, user: str, diamonds: object, request_id: str) -> Cashout:
        """Hold ``diamonds`` for a cash-out; idempotent by ``request_id``."""
        check_id(user, "user")
        check_id(request_id, "id")
        if isinstance(diamonds, bool) or not isinstance(diamonds, int):
            raise BadRequest("diamonds must be an integer")
        if diamonds <= 0 or diamonds > MAX_BUDGET:
            raise BadRequest("diamonds must be a positive integer")
        unit = self.catalog.cashout_unit()
        if diamonds % unit:
            raise BadRequest(f"diamonds must be a multiple of {unit} (whole cents)")
        price = self.catalog.cashout_amount(diamonds)
        now = self.clock()
        shard = shard_of(user)
        cashout_id = f"co{shard:02d}-" + new_id("", now)
        status, out_id = await self.scripts.run(
            "cashout_hold",
            [
                self.keys.wallet(user),
                self.keys.cashout(shard, cashout_id),
                self.keys.cashout_request(user, request_id),
                self.keys.cashouts_of(user),
                self.keys.outbox(shard),
            ],
            [
                cashout_id,
                diamonds,
                self.catalog.cashout_min_diamonds,
                day_of(now),
                self.catalog.cashout_daily_cap_diamonds,
                price.amount,
                price.currency,
                now,
                user,
                self.idempotency_ttl_s,
                new_event_id(now),
            ],
        )
        if status not in ("ok", "replay"):
            raise refusal(
                "cashout_hold",
                status,
                minimum=self.catalog.cashout_min_diamonds,
                cap=self.catalog.cashout_daily_cap_diamonds,
            )
        found = await self.cashout(out_id)
        assert found is not None
        return found

    async def settle_cashout(self, cashout_id: str, outcome: object) -> Cashout:
        """Settle a held cash-out as ``paid`` or ``failed`` (diamonds returned), once."""
        check_id(cashout_id, "cashout")
        if outcome not in ("paid", "failed"):
            raise BadRequest('status must be "paid" or "failed"')
        shard = cashout_shard(cashout_id)
        record = self.keys.cashout(shard, cashout_id)
        user = await self.redis.hget(record, "user")
        if user is None:
            raise NotFound("no such cash-out")
        now = self.clock()
        status, final = await self.scripts.run(
            "cashout_settle",
            [self.keys.wallet(user.decode()), record, self.keys.outbox(shard)],
            [str(outcome), new_event_id(now), now, cashout_id],
        )
        if status not in ("ok", "replay"):
            raise refusal("cashout_settle", status, final=final)
        found = await self.cashout(cashout_id)
        assert found is not None
        return found

    async def cashout(self, cashout_id: str) -> Cashout | None:
        """Read one cash-out, or ``None``."""
        try:
            shard = cashout_shard(cashout_id)
        except NotFound:
            return None
        raw = await self.redis.hgetall(self.keys.cashout(shard, cashout_id))
        if not raw:
            return None
        r = {k.decode(): v.decode() for k, v in raw.items()}
        return Cashout(
            cashout_id,
            r["user"],
            int(r["diamonds"]),
            int(r["amount"]),
            r["currency"],
            r["status"],
            int(r["created"]),
        )

    async def cashouts(self, user: str, limit: int = 100) -> list[Cashout]:
        """The user's most recent cash-outs, newest first."""
        check_id(user, "user")
        ids = await self.redis.zrevrange(self.keys.cashouts_of(user), 0, limit - 1)
        found = [await self.cashout(i.decode()) for i in ids]
        return [c for c in found if c is not None]

    # -- profile badge (display, not money) ------------------------------------------
    async def set_badge(self, user: str, badge: str, *, only_if_unset: bool = False) -> None:
        """Show ``badge`` on the user's events (field ``badge`` of the wallet hash).

        ``only_if_unset`` (HSETNX) is for a replayed purchase: it restores a
        badge lost to a crash without undoing a newer badge bought since.
        """
        key = self.keys.wallet(user)
        if only_if_unset:
            await self.redis.hsetnx(key, "badge", badge)
        else:
            await self.redis.hset(key, "badge", badge)

    async def badge_of(self, user: str) -> str | None:
        """The badge shown on the user's events, or ``None``."""
        raw = await self.redis.hget(self.keys.wallet(user), "badge")
        return None if raw is None else raw.decode()
