"""Treasure boxes on Redis: claims, the open and the close, every step idempotent.

Coins move viewer to viewers (DESIGN.md §3.9, §10), each step a script on
one slot, each idempotent by an id derived from the drop
(:mod:`gifting.core.boxes`), so whichever process runs a step — the hub that
took the claim, the hub or persister running the box's deadline, a second
one running it at the same time, a rerun after a crash — it happens once:

1. **drop** — spend.lua debits the dropper (kind ``box``, no payee); the
   settle step of the hub that debited it and the persister's repair of the
   drop's outbox entry both create the box (box_create.lua, in the room's
   slot) and emit ``box_dropped`` (:meth:`RoomLog.spend_emit_calls`), and
   both schedule its two deadlines (``box_open``, ``box_close``; the same
   due times, so scheduling twice changes nothing).
2. **claim** — box_claim.lua (room slot) records the claim in claim order
   and decides its share; then box_credit.lua (the claimer's wallet slot)
   credits the share once per (box, claimer) and appends a ``box_claim``
   ledger entry; then ``box_claimed`` is emitted once.
3. **open** (deadline) — ``box_opened`` emitted once. Claims do not wait for
   it: box_claim.lua reads the time from Redis.
4. **close** (deadline) — box_seal.lua stops the claims (whatever the
   clocks say) and returns the final claims; every claim is credited again
   (a replay, or the repair of a claim whose process died before its
   credit) and its ``box_claimed`` emitted again (once); box_return.lua
   gives the dropper what nobody claimed (once per box, a ``box_return``
   entry even for 0 coins: the ledger's record that the box settled);
   ``box_closed`` is emitted once; box_settle.lua marks the box settled.

A crash anywhere leaves a state the next run of the same deadline completes:
each step before it is a replay. A deadline whose box does not exist yet
(the process that debited the drop died before creating it) raises
:class:`BoxMissing`, and runs again later, once the persister has created it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from redis.asyncio import Redis

from gifting.clock import now_ms
from gifting.core.boxes import (
    CLOSE_KIND,
    OPEN_KIND,
    SETTLED_TTL_S,
    box_claimed_event,
    box_closed_event,
    box_opened_event,
    claim_event_id,
    parse_task,
    return_event_id,
)
from gifting.core.entries import BoxClaimArgs, BoxReturnArgs
from gifting.core.errors import refusal
from gifting.core.ids import check_id
from gifting.store.box_calls import credit_call, return_call
from gifting.store.deadlines import NotYet
from gifting.store.keys import Keys
from gifting.store.rooms import RoomLog
from gifting.store.scripts import ScriptCall, Scripts

__all__ = ["BoxMissing", "Boxes", "Claim"]

_json = msgspec.json.Decoder()


class BoxMissing(RuntimeError):
    """A box deadline ran before its box was created; raised so that it runs again later."""


@dataclass(frozen=True, slots=True)
class Claim:
    """An accepted claim: its share, its place in claim order, the claimer's balance after."""

    box: str
    event: str
    share: int
    order: int
    balance: int
    replayed: bool


@dataclass(frozen=True, slots=True)
class _Recorded:
    """One claim as box_claim.lua recorded it."""

    user: str
    order: int
    share: int
    name: str


def _s(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _raise_first(replies: Sequence[list[str] | Exception]) -> None:
    """Raise the first failure of a pipeline (every step is idempotent: the rerun redoes it)."""
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply


def _flat(raw: Sequence[Any]) -> dict[str, str]:
    return {_s(raw[i]): _s(raw[i + 1]) for i in range(0, len(raw), 2)}


class Boxes:
    """Claim, open and close treasure boxes (the drop is a spend: see the module docstring)."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        rooms: RoomLog,
        *,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._rooms = rooms
        self._scripts = Scripts(redis)
        self._clock = clock

    # -- claims --------------------------------------------------------------------------
    async def claim(self, stream: str, box: str, user: str, name: str, client_id: str) -> Claim:
        """Record ``user``'s claim on ``box`` in ``stream``, credit the share, show it; once.

        Raises the claim's typed error (``unknown_box``, ``box_not_open``,
        ``box_closed``, ``already_claimed``). The same ``client_id`` again
        gets the same claim (its credit and emission run again: replays).
        """
        check_id(box, "box")
        check_id(client_id, "id")
        k = self._keys
        status, share, order, dropper = await self._scripts.run(
            "box_claim", [k.box(stream, box), k.box_claims(stream, box)], [user, client_id, name]
        )
        if status not in ("ok", "replay"):
            raise refusal("box_claim", status)
        recorded = _Recorded(user, int(order), int(share), name)
        balance = await self._credit(stream, box, dropper, recorded)
        await self._show_claim(stream, box, recorded)
        event = claim_event_id(box, user)
        return Claim(box, event, recorded.share, recorded.order, balance, status == "replay")

    def _credit_call(self, stream: str, box: str, dropper: str, c: _Recorded) -> ScriptCall:
        args = BoxClaimArgs(
            user=c.user, box=box, stream=stream, dropper=dropper, order=c.order, coins=c.share
        )
        return credit_call(self._keys, args, claim_event_id(box, c.user), self._clock())

    async def _credit(self, stream: str, box: str, dropper: str, c: _Recorded) -> int:
        call = self._credit_call(stream, box, dropper, c)
        _status, balance = await self._scripts.run(call.name, call.keys, call.args)
        return int(balance)

    def _claimed(self, stream: str, box: str, c: _Recorded) -> dict[str, Any]:
        return box_claimed_event(stream, box, self._clock(), c.user, c.name, c.share, c.order)

    async def _show_claim(self, stream: str, box: str, c: _Recorded) -> None:
        await self._rooms.emit(stream, self._claimed(stream, box, c))

    # -- deadlines -------------------------------------------------------------------------
    async def open(self, rest: str) -> None:
        """The ``box_open`` deadline: emit ``box_opened`` once (raise if no box yet).

        Raises :class:`NotYet` while Redis's clock says the box is not open.
        """
        stream, box = parse_task(rest)
        opens, closes = await self._redis.hmget(
            self._keys.box(stream, box), "opens_at", "closes_at"
        )
        if opens is None or closes is None:
            raise BoxMissing(f"box {box} of stream {stream} does not exist yet")
        sec, usec = await self._redis.time()
        if sec * 1000 + usec // 1000 < int(opens):  # a runner whose clock is ahead of Redis's
            raise NotYet(int(opens))
        await self._rooms.emit(stream, box_opened_event(stream, box, self._clock(), int(closes)))

    async def close(self, rest: str) -> None:
        """The ``box_close`` deadline: seal, credit every claim, return the rest, settle; once.

        Every step is idempotent: a rerun after a crash anywhere (or a second
        process running it at the same time) completes what is missing and
        repeats nothing. Raises :class:`BoxMissing` if the box is not created yet,
        :class:`NotYet` before its ``closes_at`` by Redis's clock.
        """
        stream, box = parse_task(rest)
        k = self._keys
        keys = [k.box(stream, box), k.box_claims(stream, box)]
        state, raw_box, raw_claims = await self._scripts.run_raw("box_seal", keys, [])
        if _s(state) == "missing":
            raise BoxMissing(f"box {box} of stream {stream} does not exist yet")
        fields = _flat(raw_box)
        if _s(state) == "early":
            raise NotYet(int(fields["closes_at"]))
        claims = sorted(
            (
                _Recorded(user, int(v[0]), int(v[1]), str(v[3]))
                for user, value in _flat(raw_claims).items()
                for v in [_json.decode(value)]
            ),
            key=lambda c: c.order,
        )
        dropper, coins = fields["dropper"], int(fields["coins"])
        # Every claim's credit, then its box_claimed: a pipeline each (replays, or the
        # repair of a claim whose process died before its credit or its emission).
        credits = [self._credit_call(stream, box, dropper, c) for c in claims]
        _raise_first(await self._scripts.run_many(credits, lane="boxes"))
        shown = [ScriptCall("emit", *self._rooms.emit_args(stream, self._claimed(stream, box, c)))
                 for c in claims]  # fmt: skip
        _raise_first(await self._rooms.scripts.run_many(shown, lane="boxes"))
        claimed = sum(c.share for c in claims)
        back = BoxReturnArgs(
            user=dropper, box=box, stream=stream, claimed=claimed, claims=len(claims),
            coins=coins - claimed,
        )  # fmt: skip
        call = return_call(k, back, return_event_id(box), self._clock())
        await self._scripts.run(call.name, call.keys, call.args)
        body = box_closed_event(stream, box, self._clock(), claimed, len(claims), coins - claimed)
        await self._rooms.emit(stream, body)
        await self._scripts.run("box_settle", keys, [SETTLED_TTL_S])

    def handlers(self) -> dict[str, Callable[[str], Awaitable[None]]]:
        """The deadline handlers of boxes, by kind (for the deadline runner)."""
        return {OPEN_KIND: self.open, CLOSE_KIND: self.close}

    async def aclose(self) -> None:
        """Close the private pipeline connections (not the Redis client)."""
        await self._scripts.close()
