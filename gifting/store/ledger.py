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
cash-out cancel           cash-out id                 cashout_cancel.lua
========================  ==========================  ==========================

Each script appends the settled ledger event to the outbox stream of its shard
in the same script, so the persister sees exactly what Redis did.

:class:`Ledger` is the facade the app, the hub and the persister hold (its
Redis client, keys, scripts and clock stay inside); each job lives in its own
module: :mod:`~gifting.store.purchases`,
:mod:`~gifting.store.spends`, :mod:`~gifting.store.credits`,
:mod:`~gifting.store.wallets`, :mod:`~gifting.store.cashouts` and
:mod:`~gifting.store.badges` (display, not money).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from redis.asyncio import Redis

from gifting.clock import now_ms
from gifting.core.catalog import Catalog
from gifting.core.entries import CreditArgs, SpendEntry
from gifting.core.errors import GiftingError
from gifting.store.badges import Badges
from gifting.store.cashouts import Cashout, Cashouts, cashout_shard
from gifting.store.credits import Credits
from gifting.store.keys import Keys
from gifting.store.purchases import PurchaseResult, Purchases
from gifting.store.retire import DEFAULT_RECENT_S, repair_deadline, retire_calls
from gifting.store.scripts import ReplicaWait, ScriptCall, Scripts
from gifting.store.spends import (
    DEFAULT_COMBO_WINDOW_MS,
    DEFAULT_IDEMPOTENCY_TTL_S,
    SpendOrder,
    SpendResult,
    Spends,
    kept_outcome,
    spend_entry,
)
from gifting.store.wallets import MAX_BUDGET, Budget, Wallet, Wallets

__all__ = [
    "MAX_BUDGET",
    "Budget",
    "Cashout",
    "Ledger",
    "PurchaseResult",
    "SpendOrder",
    "SpendResult",
    "Wallet",
    "cashout_shard",
    "kept_outcome",
    "spend_entry",
]


class Ledger:
    """Wallets, spends, purchases, refunds, creator credits and cash-outs on Redis."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        catalog: Catalog,
        *,
        idempotency_ttl_s: int = DEFAULT_IDEMPOTENCY_TTL_S,
        combo_window_ms: int = DEFAULT_COMBO_WINDOW_MS,
        recent_s: int = DEFAULT_RECENT_S,
        clock: Callable[[], int] = now_ms,
        replica_wait: ReplicaWait | None = None,
    ) -> None:
        #: The catalog it prices with (shared, read-only).
        self.catalog = catalog
        #: How long a spend's Redis records stay once PostgreSQL holds it (the recent window).
        self.recent_s = recent_s
        self._keys = keys
        self._scripts = scripts = Scripts(redis, wait=replica_wait)
        self._purchases = Purchases(redis, keys, scripts, catalog, clock=clock)
        self._spends = Spends(
            keys, scripts, idempotency_ttl_s=idempotency_ttl_s,
            combo_window_ms=combo_window_ms, clock=clock,
        )  # fmt: skip
        self._credits = Credits(keys, scripts, share_bps=catalog.creator_share_bps, clock=clock)
        self._wallets = Wallets(redis, keys, clock=clock)
        self._cashouts = Cashouts(
            redis, keys, scripts, catalog, idempotency_ttl_s=idempotency_ttl_s, clock=clock
        )
        self._badges = Badges(redis, keys, scripts, catalog)

    # -- purchases -------------------------------------------------------------
    async def purchase(
        self, purchase_id: str, user: str, package_id: str, amount: object, currency: object
    ) -> PurchaseResult:
        """Credit a completed purchase once; a replay returns the first result (see Purchases)."""
        return await self._purchases.purchase(purchase_id, user, package_id, amount, currency)

    async def refund(self, purchase_id: str) -> PurchaseResult:
        """Claw back a purchase's coins once (the balance may go negative)."""
        return await self._purchases.refund(purchase_id)

    # -- spends ------------------------------------------------------------------
    async def spend(self, order: SpendOrder, *, live: bool) -> SpendResult:
        """Debit a spend once; refused when short, over budget or not ``live``."""
        return await self._spends.spend(order, live=live)

    async def debit_many(
        self, orders: Sequence[SpendOrder], *, live: Mapping[str, bool], now: int
    ) -> list[SpendResult | GiftingError]:
        """Debit a batch in one round trip: a result or typed error per order, in order.

        ``live``: the live flag of each stream the orders name. Raises only if
        the round trip as a whole fails (see :meth:`Spends.debit_many`).
        """
        return await self._spends.debit_many(orders, live=live, now=now)

    # -- creator credits -----------------------------------------------------------
    def settle_deadline(self, start_ms: int) -> int:
        """The deadline (unix ms) of a credit or emission begun at ``start_ms``.

        Half the recent window (:func:`gifting.store.retire.repair_deadline`).
        """
        return repair_deadline(start_ms, self.recent_s)

    async def settle_many(
        self,
        spends: Sequence[SpendEntry],
        emits: Sequence[ScriptCall],
        *,
        not_after: int | None = None,
    ) -> list[Exception]:
        """Credit each spend's creator and run the room ``emits``, in one round trip.

        Credits are refused past ``not_after`` (unix ms; the emits carry their
        own). Returns the calls that failed (the persister repairs them; see
        :meth:`Credits.settle_many`).
        """
        return await self._credits.settle_many(spends, emits, not_after=not_after)

    async def repair_credits(
        self, spends: Sequence[SpendEntry], *, chunk: int = 256, not_after: int | None = None
    ) -> int:
        """Credit the creators a crashed hub did not; return how many credits ran.

        An EXISTS per spend first finds those credited already; raises the first
        failure, a refusal past ``not_after`` included (see :meth:`Credits.repair`).
        """
        return await self._credits.repair(spends, chunk=chunk, not_after=not_after)

    async def retire(self, spends: Sequence[SpendEntry], *, keep_s: int | None = None) -> int:
        """Shorten the Redis records of ``spends`` to the recent window; return how many.

        Only for spends PostgreSQL holds whose outbox entries were
        acknowledged (the persister, after commit and XACK): see
        :mod:`gifting.store.retire` for why nothing can then use them late.
        ``keep_s`` defaults to the ledger's recent window. Raises the first
        failure (the records then keep no expiry; nothing is wrong with money).
        """
        keep = self.recent_s if keep_s is None else keep_s
        calls = retire_calls(self._keys, spends, keep, self.catalog)
        shortened = 0
        for reply in await self._scripts.run_many(calls, lane="persister"):
            if isinstance(reply, Exception):
                raise reply
            shortened += int(reply[0])
        return shortened

    async def credit_creator(
        self,
        *,
        spend_event: str,
        creator: str,
        coins: int,
        stream: str,
        sender: str,
        sender_name: str = "",
        spend_ts: int = 0,
    ) -> int:
        """Credit the creator's diamonds for a settled spend, once; return the diamonds.

        The credit's own event id is derived from the spend's, so the persister
        deduplicates it in PostgreSQL too. ``spend_ts`` (the spend's time; 0:
        now) and ``sender_name`` place it on the leaderboards.
        """
        return await self._credits.credit(
            CreditArgs(
                user=creator, spend_event=spend_event, coins=coins, stream=stream, sender=sender,
                sender_name=sender_name, spend_ts=spend_ts,
            )
        )  # fmt: skip

    # -- wallets -------------------------------------------------------------------
    async def wallet(self, user: str) -> Wallet:
        """Read a user's balances and budget."""
        return await self._wallets.wallet(user)

    async def set_budget(self, user: str, monthly: object) -> Budget:
        """Set (an integer >= 0) or clear (``None``) the user's monthly coin budget."""
        return await self._wallets.set_budget(user, monthly)

    # -- cash-outs -----------------------------------------------------------------
    async def request_cashout(self, user: str, diamonds: object, request_id: str) -> Cashout:
        """Hold ``diamonds`` for a cash-out; idempotent by ``request_id``."""
        return await self._cashouts.request_cashout(user, diamonds, request_id)

    async def settle_cashout(self, cashout_id: str, outcome: object) -> Cashout:
        """Settle a held cash-out as ``paid`` or ``failed`` (diamonds returned), once."""
        return await self._cashouts.settle_cashout(cashout_id, outcome)

    async def cancel_cashout(self, user: str, cashout_id: str) -> tuple[Cashout, bool]:
        """Cancel ``user``'s held cash-out (diamonds and the day's cap back), once."""
        return await self._cashouts.cancel_cashout(user, cashout_id)

    async def cashout(self, cashout_id: str) -> Cashout | None:
        """Read one cash-out, or ``None``."""
        return await self._cashouts.cashout(cashout_id)

    async def cashouts(self, user: str, limit: int = 100) -> list[Cashout]:
        """The user's most recent cash-outs, newest first."""
        return await self._cashouts.cashouts(user, limit)

    # -- profile badge (display, not money) ------------------------------------------
    async def grant_badge(self, user: str, badge: str) -> str:
        """Add a bought ``badge`` to the user's; return the one shown now (the dearest owned)."""
        return await self._badges.grant(user, badge)

    async def grant_badges(self, grants: Sequence[tuple[str, str]]) -> None:
        """Grant each (user, badge) again (idempotent): the persister's repair of badge spends."""
        await self._badges.grant_many(grants)

    async def badges_owned(self, user: str) -> set[str]:
        """The badges the user owns."""
        return await self._badges.owned(user)

    async def badge_of(self, user: str) -> str | None:
        """The badge shown on the user's events, or ``None``."""
        return await self._badges.badge_of(user)

    async def sender_marks(self, user: str) -> tuple[str | None, int]:
        """What a user's events show beside the name: the badge (or ``None``), lifetime spent."""
        return await self._badges.marks_of(user)

    async def replicated(self, keys: Sequence[str]) -> None:
        """Return once the writes made so far in the slots of ``keys`` reached the replicas
        (``GIFTING_REDIS_WAIT_REPLICAS``; a no-op without it); else raise.

        The persister calls it with the outboxes of a batch before writing
        PostgreSQL, so it never records an entry that a failover could take
        back (see docs/operations.md).
        """
        await self._scripts.fence(keys)

    async def aclose(self) -> None:
        """Close the private pipeline connections of the batch calls (not the Redis client)."""
        await self._scripts.close()
