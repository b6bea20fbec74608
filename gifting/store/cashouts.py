"""Cash-outs: a creator's diamonds held for a payout, then paid or returned.

A hold (cashout_hold.lua) is idempotent by the creator's request id and
checks the minimum, the balance and the daily cap before its first write; a
settlement (cashout_settle.lua) is idempotent by the cash-out id; a failed
payout returns the diamonds and gives back the daily cap it used (the record
keeps its day). Each cash-out id carries its wallet shard (``co<NN>-...``: the
shard in decimal, at least two digits, up to the dash — ``co07-…`` as ever for
the default 16 shards, ``co12345-…`` with more), so the payout webhook finds
the record without an index.

A held cash-out may be cancelled by its creator (cashout_cancel.lua): the
diamonds return and the day's cap is released, as for a failed payout.
**"Until the payout provider is asked"** means, in this code base, while the
cash-out is ``held``: the server never calls the payout provider; the
provider's integration takes cash-outs in status ``held`` and reports each
one ``paid`` or ``failed`` through the signed payout webhook. Once that
report has settled it, a cancel is refused (``conflict``), and once a cancel
has settled it, the report is refused (``conflict``, nothing changes): the
two meet in the record's slot, so exactly one of them wins. The provider's
integration must therefore treat the webhook's 409 as "do not pay"; a
provider that pays before it reports would need a ``processing`` step
(docs/protocol.md, "Moderation and cash-out cancel").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from gifting.clock import now_ms
from gifting.core.catalog import Catalog
from gifting.core.errors import BadRequest, NotFound, refusal
from gifting.core.ids import check_id, new_event_id, new_id
from gifting.core.money import day_of
from gifting.store.keys import SHARDS, Keys
from gifting.store.scripts import Scripts
from gifting.store.wallets import MAX_BUDGET


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


def cashout_id_prefix(shard: int) -> str:
    """``co<NN>-``: the start of every cash-out id of wallet shard ``shard``."""
    return f"co{shard:02d}-"


def cashout_shard(cashout_id: str, shards: int = SHARDS) -> int:
    """The wallet shard encoded in a cash-out id (``co<digits>-...``), or raise NotFound.

    ``shards``: the deployment's shard count (a larger shard is no cash-out of it).
    """
    digits, dash, rest = cashout_id[2:].partition("-")
    if (
        not cashout_id.startswith("co")
        or not dash
        or not rest
        or not 2 <= len(digits) <= 5
        or not digits.isascii()
        or not digits.isdigit()
    ):
        raise NotFound("no such cash-out")
    shard = int(digits)
    if shard >= shards:
        raise NotFound("no such cash-out")
    return shard


class Cashouts:
    """Hold, settle and read cash-outs."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        scripts: Scripts,
        catalog: Catalog,
        *,
        idempotency_ttl_s: int,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._scripts = scripts
        self._catalog = catalog
        self._idempotency_ttl_s = idempotency_ttl_s
        self._clock = clock

    async def request_cashout(self, user: str, diamonds: object, request_id: str) -> Cashout:
        """Hold ``diamonds`` for a cash-out; idempotent by ``request_id``."""
        check_id(user, "user")
        check_id(request_id, "id")
        if isinstance(diamonds, bool) or not isinstance(diamonds, int):
            raise BadRequest("diamonds must be an integer")
        if diamonds <= 0 or diamonds > MAX_BUDGET:
            raise BadRequest("diamonds must be a positive integer")
        catalog = self._catalog
        unit = catalog.cashout_unit()
        if diamonds % unit:
            raise BadRequest(f"diamonds must be a multiple of {unit} (whole cents)")
        price = catalog.cashout_amount(diamonds)
        now = self._clock()
        shard = self._keys.shard_of(user)
        cashout_id = cashout_id_prefix(shard) + new_id("", now)
        k = self._keys
        status, out_id = await self._scripts.run(
            "cashout_hold",
            [
                k.wallet(user),
                k.cashout(shard, cashout_id),
                k.cashout_request(user, request_id),
                k.cashouts_of(user),
                k.outbox(shard),
            ],
            [
                cashout_id, diamonds, catalog.cashout_min_diamonds, day_of(now),
                catalog.cashout_daily_cap_diamonds, price.amount, price.currency, now, user,
                self._idempotency_ttl_s, new_event_id(now),
            ],
        )  # fmt: skip
        if status not in ("ok", "replay"):
            raise refusal(
                "cashout_hold",
                status,
                minimum=catalog.cashout_min_diamonds,
                cap=catalog.cashout_daily_cap_diamonds,
            )
        found = await self.cashout(out_id)
        assert found is not None
        return found

    async def settle_cashout(self, cashout_id: str, outcome: object) -> Cashout:
        """Settle a held cash-out as ``paid`` or ``failed`` (diamonds and the day's cap back).

        ``processing``: the payout provider is paying it; no money moves, and
        its creator can no longer cancel it (a provider that pays first and
        reports after says so before paying). It then settles as a held one.
        """
        check_id(cashout_id, "cashout")
        if outcome not in ("paid", "failed", "processing"):
            raise BadRequest('status must be "paid", "failed" or "processing"')
        shard = cashout_shard(cashout_id, self._keys.shards)
        record = self._keys.cashout(shard, cashout_id)
        user, created = await self._redis.hmget(record, ["user", "created"])
        if user is None:
            raise NotFound("no such cash-out")
        now = self._clock()
        # The day whose cap a failure gives back; the script prefers the day the
        # record kept itself (records older than that field only have 'created').
        day = day_of(int(created)) if created is not None else ""
        status, final = await self._scripts.run(
            "cashout_settle",
            [self._keys.wallet(user.decode()), record, self._keys.outbox(shard)],
            [str(outcome), new_event_id(now), now, cashout_id, day],
        )
        if status not in ("ok", "replay"):
            raise refusal("cashout_settle", status, final=final)
        found = await self.cashout(cashout_id)
        assert found is not None
        return found

    async def cancel_cashout(self, user: str, cashout_id: str) -> tuple[Cashout, bool]:
        """Cancel ``user``'s held cash-out: the diamonds and the day's cap return.

        Returns (the cash-out, whether this call cancelled it); cancelling a
        cancelled cash-out is a replay. Raises ``NotFound`` (no such cash-out:
        also when the id is malformed), ``Forbidden`` (another user's) or
        ``Conflict`` (already paid or failed); nothing changes then. Another
        user's cash-out is ``NotFound`` too, as ``GET /v1/cashouts/{id}`` answers.
        """
        check_id(user, "user")
        check_id(cashout_id, "cashout")
        shard = cashout_shard(cashout_id, self._keys.shards)
        record = self._keys.cashout(shard, cashout_id)
        created = await self._redis.hget(record, "created")
        now = self._clock()
        day = day_of(int(created)) if created is not None else ""
        if self._keys.shard_of(user) != shard:
            raise refusal("cashout_cancel", "forbidden")
        status, final = await self._scripts.run(
            "cashout_cancel",
            [self._keys.wallet(user), record, self._keys.outbox(shard)],
            [user, new_event_id(now), now, cashout_id, day],
        )
        if status not in ("ok", "replay"):
            raise refusal("cashout_cancel", status, final=final)
        found = await self.cashout(cashout_id)
        assert found is not None
        return found, status == "ok"

    async def cashout(self, cashout_id: str) -> Cashout | None:
        """Read one cash-out, or ``None``."""
        try:
            shard = cashout_shard(cashout_id, self._keys.shards)
        except NotFound:
            return None
        raw = await self._redis.hgetall(self._keys.cashout(shard, cashout_id))
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
        ids = await self._redis.zrevrange(self._keys.cashouts_of(user), 0, limit - 1)
        found = [await self.cashout(i.decode()) for i in ids]
        return [c for c in found if c is not None]
