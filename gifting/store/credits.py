"""Creator credits: credit.lua turns a settled spend's coins into the creator's diamonds.

Idempotent by the spend's event id (a marker in the creator's shard), so the
hub's fast path and the persister's repair may both credit the same spend;
the credit's own event id derives from the spend's, so PostgreSQL
deduplicates it too. :func:`credit_call` builds one call (pure).
"""

from __future__ import annotations

from collections.abc import Callable

from gifting.clock import now_ms
from gifting.core.entries import CreditArgs, pairs
from gifting.core.errors import BadRequest
from gifting.core.ids import credit_event_id
from gifting.core.money import MAX_SPEND_COINS, is_whole
from gifting.store.keys import Keys, shard_of
from gifting.store.scripts import ScriptCall, Scripts

#: Credited markers are kept at least this long (and at least the idempotency TTL).
CREDIT_MARKER_MIN_TTL_S = 30 * 24 * 3600


def credit_call(
    keys: Keys, credit: CreditArgs, *, share_bps: int, marker_ttl_s: int, now: int
) -> ScriptCall:
    """The credit.lua call crediting ``credit.user`` (the creator) for ``credit.spend_event``."""
    if not is_whole(credit.coins, MAX_SPEND_COINS):
        raise BadRequest("a credit must be a positive whole number of coins")
    creator = credit.user
    call_keys = [
        keys.wallet(creator),
        keys.credit_done(creator, credit.spend_event),
        keys.outbox(shard_of(creator)),
    ]
    args: list[str | int] = [
        credit.coins, share_bps, credit_event_id(credit.spend_event), now, marker_ttl_s,
        *pairs(credit.to_fields()),
    ]  # fmt: skip
    return ScriptCall("credit", call_keys, args)


class Credits:
    """Credit creators for settled spends, once each."""

    def __init__(
        self,
        keys: Keys,
        scripts: Scripts,
        *,
        share_bps: int,
        marker_ttl_s: int,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._keys = keys
        self._scripts = scripts
        self._share_bps = share_bps
        self._marker_ttl_s = marker_ttl_s
        self._clock = clock

    def call(self, credit: CreditArgs, *, now: int) -> ScriptCall:
        """The credit.lua call for ``credit`` with this ledger's keys and settings."""
        return credit_call(
            self._keys, credit, share_bps=self._share_bps, marker_ttl_s=self._marker_ttl_s,
            now=now,
        )  # fmt: skip

    async def credit(self, credit: CreditArgs) -> int:
        """Credit the creator once; return the diamonds (those of the first credit on a replay)."""
        call = self.call(credit, now=self._clock())
        _status, diamonds = await self._scripts.run(call.name, call.keys, call.args)
        return int(diamonds)
