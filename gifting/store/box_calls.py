"""The treasure boxes' script calls, built without sending (pure: keys and arguments).

:mod:`gifting.store.rooms` adds :func:`create_call` to the emission of a box
drop (so the hub's settle step and the persister's repair both create the
box); :mod:`gifting.store.boxes` runs the rest.
"""

from __future__ import annotations

from gifting.core.boxes import box_id_of, closes_at, opens_at, params_of
from gifting.core.entries import BoxClaimArgs, BoxReturnArgs, SpendEntry, pairs
from gifting.core.money import MAX_SPEND_COINS, is_whole
from gifting.store.credits import NO_DEADLINE_MS
from gifting.store.keys import Keys
from gifting.store.scripts import ScriptCall

__all__ = ["create_call", "credit_call", "return_call"]


def create_call(keys: Keys, drop: SpendEntry, *, not_after: int | None = None) -> ScriptCall:
    """box_create.lua for the box of ``drop`` (a ``box`` spend), refused past ``not_after``."""
    params = params_of(drop.item, drop.coins)
    box = box_id_of(drop.event)
    return ScriptCall(
        "box_create",
        [keys.box(drop.stream, box)],
        [
            drop.user, drop.name, drop.coins, params.winners, opens_at(drop.ts, params),
            closes_at(drop.ts, params), drop.event,
            NO_DEADLINE_MS if not_after is None else not_after,
        ],
    )  # fmt: skip


def credit_call(keys: Keys, claim: BoxClaimArgs, event: str, now: int) -> ScriptCall:
    """box_credit.lua crediting ``claim.user`` its share, once per (box, claimer)."""
    if not is_whole(claim.coins, MAX_SPEND_COINS):
        raise ValueError("a box share is a positive whole number of coins")
    user = claim.user
    return ScriptCall(
        "box_credit",
        [keys.wallet(user), keys.box_credited(user, claim.box), keys.outbox(keys.shard_of(user))],
        [claim.coins, event, now, *pairs(claim.to_fields())],
    )


def return_call(keys: Keys, back: BoxReturnArgs, event: str, now: int) -> ScriptCall:
    """box_return.lua giving ``back.user`` (the dropper) ``back.coins`` (>= 0), once per box."""
    if not (back.coins == 0 or is_whole(back.coins, MAX_SPEND_COINS)):
        raise ValueError("a box return is a whole number of coins >= 0")
    user = back.user
    return ScriptCall(
        "box_return",
        [keys.wallet(user), keys.box_returned(user, back.box), keys.outbox(keys.shard_of(user))],
        [back.coins, event, now, *pairs(back.to_fields())],
    )
