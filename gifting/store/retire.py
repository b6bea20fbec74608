"""Retirement: the persister shortens the Redis idempotency records PostgreSQL now holds.

A debited spend leaves three records in Redis, none with an expiry: its result
under (sender, client id) (spend.lua), the creator's credited marker
(credit.lua) and the room's emitted marker (emit.lua), both keyed by the
spend's event id (and a fourth, the emitted marker of its ``level_up``, when
the spend crossed a gifter level: :mod:`gifting.core.levels`). Kept for ever
they grow without bound (at 1,000 gifts/s, hundreds of GB under
``noeviction``); expired on a timer alone, a retry or a repair after the timer
would debit, credit or show the spend again. So they live until PostgreSQL
holds the spend, then a *recent window* ``R``
(``GIFTING_IDEMPOTENCY_RECENT_S``) more, and PostgreSQL is the long-term
record (``spend_ids``, read by the hub on each batch).

The persister retires a batch's spends only **after** its transaction
committed **and** its XACK was answered (:func:`retire_calls`, retire.lua:
each record's expiry becomes at most ``R``).

Why the spend result may go: a retry of the id within ``R`` replays from
Redis in spend.lua; after ``R`` the hub finds the id in ``spend_ids`` (the
commit came first) and replays it without running the script.

Why a credited or emitted marker may go, i.e. why no credit or emission of
the spend can run after its marker expired. Credits and emissions of a spend
come from two places only:

1. the hub that debited it, in its settle step right after the ack;
2. the persister's repair, once per delivery of the spend's outbox entry,
   before that delivery is acknowledged.

A delivered entry is acknowledged once; after its XACK, no XREADGROUP
(new or pending) nor XAUTOCLAIM hands it out again (they serve new and
pending entries only), and the trim removes it. A Redis restart cannot bring
the acknowledgement back undone without also undoing the retirement: the
append-only file is a prefix of the command history, and the retirement was
written after the XACK. So every delivery that may still repair the spend
began before the retirement, and so did the hub's debit. Each of them gets a
deadline: the debit's time + ``R/2`` (the hub), the time the persister began
the read that delivered the entry + ``R/2`` (the repair). credit.lua and
emit.lua refuse, in Redis's own clock, to run past their deadline
(``stale``: nothing written), so a process paused anywhere between its check
and the script cannot act late. Every credit or emission therefore runs
before (retirement time + ``R/2``), while the marker lives until (retirement
time + ``R``): it outlives every possible redelivery, with ``R/2`` to spare
for clock skew between hosts. A refused repair abandons its batch unacked;
the next read delivers what is still pending, with a fresh deadline.

What is left: a dead-lettered spend is never retired (its records keep no
expiry, a few hundred bytes each); a refused spend's result keeps its own
expiry (``GIFTING_IDEMPOTENCY_TTL``, see :mod:`gifting.core.idempotency`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from gifting.core.catalog import Catalog
from gifting.core.entries import SpendEntry
from gifting.core.levels import level_up_event_ids
from gifting.store.keys import Keys
from gifting.store.scripts import ScriptCall

__all__ = [
    "DEFAULT_RECENT_S",
    "MAX_KEYS_PER_CALL",
    "LateSettle",
    "repair_deadline",
    "retire_calls",
    "settle_failure",
]

#: The recent window by default: an hour of fast replays from Redis after a spend is durable.
DEFAULT_RECENT_S: Final = 3600
#: Keys per retire.lua call (a call is one slot's; long ones are split).
MAX_KEYS_PER_CALL: Final = 512


class LateSettle(RuntimeError):
    """A credit or room emission past its deadline was refused (``stale``); nothing was written.

    The persister's next delivery of the spend's entry does it (its own
    deadline is fresh), unless the spend is already durable and settled.
    """


def settle_failure(reply: list[str] | Exception) -> Exception | None:
    """The failure of a credit.lua or emit.lua reply: its error, ``stale``, or ``None``."""
    if isinstance(reply, Exception):
        return reply
    if reply and reply[0] == "stale":
        return LateSettle("a credit or room emission past its deadline was refused")
    return None


def repair_deadline(start_ms: int, recent_s: int) -> int:
    """The last instant (unix ms) a credit or emission begun at ``start_ms`` may run.

    Half the recent window: see the module's argument.
    """
    return start_ms + recent_s * 500


def retire_calls(
    keys: Keys, spends: Sequence[SpendEntry], keep_s: int, catalog: Catalog | None = None
) -> list[ScriptCall]:
    """retire.lua calls shortening every record of ``spends`` to ``keep_s`` seconds.

    One call per hash slot: the senders' results and the creators' markers in
    their wallet shards, the emitted markers in their rooms (with ``catalog``,
    the ``level_up`` markers of a spend that crossed gifter levels too: it is
    emitted with its spend, by the same two emitters, under the same deadline).
    """
    by_slot: dict[str, list[str]] = {}
    for s in spends:
        by_slot.setdefault(keys.tag(keys.shard_of(s.user)), []).append(
            keys.spend_result(s.user, s.client_id)
        )
        if s.creator:
            by_slot.setdefault(keys.tag(keys.shard_of(s.creator)), []).append(
                keys.credit_done(s.creator, s.event)
            )
        if s.stream:
            room = by_slot.setdefault(f"r:{s.stream}", [])
            room.append(keys.room_emitted(s.stream, s.event))
            if catalog is not None:
                for event, _ in level_up_event_ids(catalog, s.event, s.lifetime, s.coins):
                    room.append(keys.room_emitted(s.stream, event))
        if s.video:  # a gift on a video: its marker in the video's slot (store/videos.py)
            by_slot.setdefault(f"v:{s.video}", []).append(keys.video_emitted(s.video, s.event))
    return [
        ScriptCall("retire", slot_keys[i : i + MAX_KEYS_PER_CALL], [keep_s])
        for slot_keys in by_slot.values()
        for i in range(0, len(slot_keys), MAX_KEYS_PER_CALL)
    ]
