"""Purchases and refunds: coins bought from a payment provider, and clawed back.

Both are idempotent by the provider's purchase id (purchase.lua, refund.lua).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis

from gifting.clock import now_ms
from gifting.core.catalog import Catalog
from gifting.core.entries import PurchaseArgs, RefundArgs, pairs
from gifting.core.errors import BadRequest, Conflict, NotFound, UnknownItem, Unprocessable, refusal
from gifting.core.ids import check_id, fingerprint, new_event_id
from gifting.store.keys import Keys
from gifting.store.scripts import Scripts


@dataclass(frozen=True, slots=True)
class PurchaseResult:
    """The coins a purchase credited and the balance right after it."""

    purchase_id: str
    user: str
    coins: int
    balance: int
    replayed: bool


class Purchases:
    """Credit completed purchases and claw back refunded ones, once each."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        scripts: Scripts,
        catalog: Catalog,
        *,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._scripts = scripts
        self._catalog = catalog
        self._clock = clock

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
        package = self._catalog.packages.get(package_id)
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
        owner_key = self._keys.purchase_owner(purchase_id)
        if not await self._redis.set(owner_key, user, nx=True):
            owner = await self._redis.get(owner_key)
            if owner is not None and owner.decode() != user:
                raise Conflict("this purchase id was already used with another payload")
        now = self._clock()
        entry = PurchaseArgs(
            user=user, purchase_id=purchase_id, package=package.id, coins=package.coins,
            amount=amount, currency=currency,
        )  # fmt: skip
        status, coins, balance = await self._scripts.run(
            "purchase",
            [
                self._keys.wallet(user),
                self._keys.purchase(user, purchase_id),
                self._keys.outbox(self._keys.shard_of(user)),
            ],
            [fp, package.coins, new_event_id(now), now, *pairs(entry.to_fields())],
        )
        if status not in ("ok", "replay"):
            raise refusal("purchase", status)
        return PurchaseResult(purchase_id, user, int(coins), int(balance), status == "replay")

    async def refund(self, purchase_id: str) -> PurchaseResult:
        """Claw back a purchase's coins once (the balance may go negative)."""
        check_id(purchase_id, "purchase_id")
        owner = await self._redis.get(self._keys.purchase_owner(purchase_id))
        if owner is None:
            raise NotFound("no such purchase")
        user = owner.decode()
        now = self._clock()
        entry = RefundArgs(user=user, purchase_id=purchase_id)
        status, coins, balance = await self._scripts.run(
            "refund",
            [
                self._keys.wallet(user),
                self._keys.purchase(user, purchase_id),
                self._keys.outbox(self._keys.shard_of(user)),
            ],
            [new_event_id(now), now, *pairs(entry.to_fields())],
        )
        if status not in ("ok", "replay"):
            raise refusal("refund", status)
        return PurchaseResult(purchase_id, user, int(coins), int(balance), status == "replay")
