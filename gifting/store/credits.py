"""Creator credits: credit.lua turns a settled spend's coins into the creator's diamonds.

Idempotent by the spend's event id (a marker in the creator's shard), so the
hub's fast path and the persister's repair may both credit the same spend;
the credit's own event id derives from the spend's, so PostgreSQL
deduplicates it too. :func:`credit_call` builds one call (pure);
:meth:`Credits.settle_many` (the hub) and :meth:`Credits.repair` (the
persister) send batches, each with a deadline past which credit.lua refuses
to run (``stale``): the marker expires once the persister retired it, and no
credit may run after that (:mod:`gifting.store.retire` gives the argument).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from gifting.clock import now_ms
from gifting.core.entries import CreditArgs, SpendEntry, credit_of, pairs
from gifting.core.errors import BadRequest
from gifting.core.ids import credit_event_id
from gifting.core.money import MAX_SPEND_COINS, is_whole
from gifting.core.periods import month_of, week_of
from gifting.store.keys import Keys
from gifting.store.retire import settle_failure
from gifting.store.scripts import ScriptCall, Scripts

#: What credit.lua reads as "no deadline" (year 5138): tools and tests that credit by hand.
NO_DEADLINE_MS = 10**14
#: How long a period's board keys outlive the period (then PostgreSQL answers for it).
BOARD_KEEP_MS = 24 * 3600 * 1000


def credit_call(
    keys: Keys, credit: CreditArgs, *, share_bps: int, now: int, not_after: int | None = None
) -> ScriptCall:
    """The credit.lua call crediting ``credit.user`` (the creator) for ``credit.spend_event``.

    ``not_after`` (unix ms): past it Redis refuses the credit (``stale``);
    ``None`` for no deadline.
    """
    if not is_whole(credit.coins, MAX_SPEND_COINS):
        raise BadRequest("a credit must be a positive whole number of coins")
    creator = credit.user
    shard = keys.shard_of(creator)
    # The spend's own time places it on the boards (a repair counts in the same period).
    week, month = week_of(credit.spend_ts or now), month_of(credit.spend_ts or now)
    call_keys = [
        keys.wallet(creator),
        keys.credit_done(creator, credit.spend_event),
        keys.outbox(shard),
        keys.board_supporters(creator, week.label),
        keys.board_supporters(creator, month.label),
        keys.board_names(creator),
        keys.board_creators(shard, week.label),
        keys.board_creators(shard, month.label),
    ]
    args: list[str | int] = [
        credit.coins, share_bps, credit_event_id(credit.spend_event), now,
        NO_DEADLINE_MS if not_after is None else not_after,
        credit.sender, credit.sender_name, week.end_ms + BOARD_KEEP_MS,
        month.end_ms + BOARD_KEEP_MS, creator,
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
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._keys = keys
        self._scripts = scripts
        self._share_bps = share_bps
        self._clock = clock

    def call(self, credit: CreditArgs, *, now: int, not_after: int | None = None) -> ScriptCall:
        """The credit.lua call for ``credit`` with this ledger's keys and settings."""
        return credit_call(
            self._keys, credit, share_bps=self._share_bps, now=now, not_after=not_after
        )

    async def credit(self, credit: CreditArgs) -> int:
        """Credit the creator once, without deadline (tools, tests); return the diamonds.

        On a replay, the diamonds of the first credit.
        """
        call = self.call(credit, now=self._clock())
        _status, diamonds = await self._scripts.run(call.name, call.keys, call.args)
        return int(diamonds)

    async def settle_many(
        self,
        spends: Sequence[SpendEntry],
        emits: Sequence[ScriptCall],
        *,
        not_after: int | None = None,
    ) -> list[Exception]:
        """Credit the creator of each spend (those with one), then run ``emits``, in one pipeline.

        ``emits`` are the room emissions of the same spends (emit.lua calls,
        idempotent too): one round trip settles the batch. Each credit is
        stamped with its spend's time and refused past ``not_after``. Returns
        the calls that failed (a refusal past the deadline as
        :class:`~gifting.store.retire.LateSettle`); each is idempotent, so the persister's repair
        redoes what failed here.
        """
        calls = [
            self.call(credit_of(s), now=s.ts, not_after=not_after) for s in spends if s.creator
        ]
        replies = await self._scripts.run_many([*calls, *emits], lane="settle")
        return [f for f in (settle_failure(r) for r in replies) if f is not None]

    async def repair(
        self, spends: Sequence[SpendEntry], *, chunk: int = 256, not_after: int | None = None
    ) -> int:
        """Credit every spend's creator a hub may have left uncredited; return the credits run.

        One EXISTS per spend first (the markers credit.lua sets): most spends
        were credited by their hub, and only the rest run the script, in
        pipelines of ``chunk`` calls, refused past ``not_after``. Raises the
        first failure (:class:`~gifting.store.retire.LateSettle` past the deadline; nothing is lost:
        every credit is idempotent, the caller retries the batch).
        """
        spends = [s for s in spends if s.creator]
        if not spends:
            return 0
        chunk = max(1, chunk)
        credited = await self._scripts.exists_many(
            [self._keys.credit_done(s.creator, s.event) for s in spends], lane="persister"
        )
        todo = [s for s, done in zip(spends, credited, strict=True) if not done]
        now = self._clock()
        for start in range(0, len(todo), chunk):
            calls = [
                self.call(credit_of(s), now=now, not_after=not_after)
                for s in todo[start : start + chunk]
            ]
            for reply in await self._scripts.run_many(calls, lane="persister"):
                failure = settle_failure(reply)
                if failure is not None:
                    raise failure
        # A marker found above may be one a master set and never replicated (its call
        # failed its WAIT): wait for the replicas to hold every credit, or raise.
        keys = self._keys
        await self._scripts.fence(sorted({keys.outbox(keys.shard_of(s.creator)) for s in spends}))
        return len(todo)
