"""The gift path: spends batched per loop tick into Redis pipelines.

validate -> (stream live? id kept in PostgreSQL?) -> spend.lua -> ack, then
settle: credit.lua for the creator and emit.lua for the room, both idempotent
by the event id so the persister can repair a hub that died in between.
Spends submitted while a batch is in flight form the next batch: under load
one round trip carries hundreds of spends instead of one each.

Each batch reads its streams' live flags and guest lists (one HMGET each, one
pipeline: a gift's ``to`` must be a current guest) and, in parallel, looks its ids up
in PostgreSQL (``spend_ids``, one query): an id found there is a retry of a
durable spend whose Redis record may have been retired, and gets its
original result (or ``conflict``) without running a script. Without
PostgreSQL (no pool), or while it fails, Redis alone answers, as it did
before durable ids: a retry older than the recent window would then debit
again (logged).

Replays are not settled again: the original was settled by its hub or is
repaired by the persister, which reads every debited spend.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from gifting.clock import now_ms
from gifting.core.entries import SpendEntry
from gifting.core.errors import GiftingError, Unavailable
from gifting.core.idempotency import KeptSpend, SpendId
from gifting.hub import metrics
from gifting.store.ledger import Ledger, SpendOrder, SpendResult, kept_outcome, spend_entry
from gifting.store.rooms import RoomLog
from gifting.store.spends import with_guests
from gifting.store.streams import Streams

log = logging.getLogger(__name__)
MAX_BATCH = 512
#: How long a batch waits for PostgreSQL's kept ids before going on with Redis alone.
KEPT_LOOKUP_TIMEOUT_S: Final = 0.5
#: After a failed lookup, batches skip PostgreSQL this long (a down database costs no latency).
KEPT_LOOKUP_PAUSE_S: Final = 5.0

#: Looks ids up in the durable record: the original results of those it keeps.
KeptLookup = Callable[[list[SpendId]], Awaitable[Mapping[SpendId, KeptSpend]]]


@dataclass(slots=True)
class Settled:
    """A debited spend on its way to the creator's wallet and the room."""

    order: SpendOrder
    result: SpendResult
    ts: int


class SpendPipeline:
    """Debits spends in per-tick batches; settles them (credit + emit) behind the acks."""

    def __init__(
        self,
        ledger: Ledger,
        streams: Streams,
        rooms: RoomLog,
        on_settled: Callable[[Settled], None] | None = None,
        clock: Callable[[], int] = now_ms,
        kept: KeptLookup | None = None,
    ) -> None:
        self.ledger = ledger
        self.streams = streams
        self.rooms = rooms
        self.on_settled = on_settled
        self.clock = clock
        #: The durable record's lookup (``None``: Redis alone keeps ids).
        self.kept = kept
        self._kept_paused_until = 0.0
        self._queue: list[tuple[SpendOrder, asyncio.Future[SpendResult]]] = []
        self._settle: list[Settled] = []
        self._wake = asyncio.Event()
        self._settle_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._in_flight = 0  # batches being debited or settled right now
        self._drained = asyncio.Event()  # set once closing with nothing left to do
        # Per sender: spends taken and not yet shown in their room (or refused).
        self._unshown: dict[str, int] = {}
        self._shown: dict[str, asyncio.Event] = {}

    def start(self) -> None:
        """Start the debit and settle loops."""
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._debit_loop()), loop.create_task(self._settle_loop())]

    async def stop(self, drain_s: float = 5.0) -> None:
        """Drain, then stop both loops.

        New spends are refused at once (``unavailable``: the client retries on
        another hub with the same id); the spends already queued are debited
        and every debited spend is settled (credited, shown in its room),
        within ``drain_s``. What is still queued after that gets
        ``unavailable`` (safe to retry) and what is debited but not settled is
        left to the persister's repair.
        """
        self._closing = True
        self._wake.set()
        self._settle_wake.set()
        self._note_drained()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained.wait(), drain_s)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for order, fut in self._queue:
            self._done_with(order.sender)
            if not fut.done():
                fut.set_exception(Unavailable("the server is shutting down; retry"))

    def _note_drained(self) -> None:
        if self._closing and not (self._queue or self._settle or self._in_flight):
            self._drained.set()

    def submit(self, order: SpendOrder) -> asyncio.Future[SpendResult]:
        """Queue a spend for the next batch; the future resolves to its ack or error."""
        fut: asyncio.Future[SpendResult] = asyncio.get_running_loop().create_future()
        if self._closing:
            fut.set_exception(Unavailable("the server is shutting down; retry"))
            return fut
        self._queue.append((order, fut))
        self._unshown[order.sender] = self._unshown.get(order.sender, 0) + 1
        self._wake.set()
        return fut

    async def shown(self, sender: str, within_s: float = 1.0) -> None:
        """Wait until the sender's spends taken so far are in their rooms (or refused).

        A gift's room event is emitted behind its ack (the settle batch), so a
        comment the sender posts right after the ack would otherwise overtake
        it. Bounded by ``within_s``: a settle that cannot run (Redis away) is
        the persister's to repair, and the comment goes on.
        """
        if sender not in self._unshown:
            return
        done = self._shown.setdefault(sender, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), within_s)

    def unshown(self, sender: str) -> int:
        """How many of the sender's spends are taken and neither shown nor refused yet."""
        return self._unshown.get(sender, 0)

    def _done_with(self, sender: str) -> None:
        left = self._unshown.get(sender, 0) - 1
        if left > 0:
            self._unshown[sender] = left
            return
        self._unshown.pop(sender, None)
        done = self._shown.pop(sender, None)
        if done is not None:
            done.set()

    async def _debit_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                self._in_flight += 1
                try:
                    await self._debit(batch)
                except Exception as exc:
                    log.warning("spend batch failed: %s", exc)
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(Unavailable("the ledger is unavailable; retry"))
                finally:
                    self._in_flight -= 1
                    self._note_drained()

    async def _debit(self, batch: list[tuple[SpendOrder, asyncio.Future[SpendResult]]]) -> None:
        # Orders not yet shown or refused: released here unless they go on to be settled.
        unreleased = {id(order): order for order, _ in batch}
        try:
            await self._debit_batch(batch, unreleased)
        finally:
            for order in unreleased.values():
                self._done_with(order.sender)

    async def _debit_batch(
        self,
        batch: list[tuple[SpendOrder, asyncio.Future[SpendResult]]],
        unreleased: dict[int, SpendOrder],
    ) -> None:
        metrics.BATCH_SIZE.observe(len(batch))
        (live, guests), kept = await asyncio.gather(
            self.streams.admission_many(sorted({o.stream for o, _ in batch if o.stream})),
            self._kept_of(batch),
        )
        now = self.clock()
        # (the order as taken, the order as debited, its future)
        todo: list[tuple[SpendOrder, SpendOrder, asyncio.Future[SpendResult]]] = []
        for order, fut in batch:
            found = kept.get((order.sender, order.client_id))
            if found is None:
                # A gift to a guest gets the guest's name, or spend.lua refuses it.
                todo.append((order, with_guests(order, guests.get(order.stream, {})), fut))
            elif not fut.done():
                _resolve(fut, kept_outcome(order, found))
        outcomes = await self.ledger.debit_many([o for _, o, _ in todo], live=live, now=now)
        for (taken, order, fut), outcome in zip(todo, outcomes, strict=True):
            if order.stream and isinstance(outcome, SpendResult) and not outcome.replayed:
                # Settled even if its client has gone: the gift was debited.
                self._settle.append(Settled(order, outcome, now))
                del unreleased[id(taken)]  # released once its settle batch ran
            if not fut.done():
                _resolve(fut, outcome)
        if self._settle:
            self._settle_wake.set()

    async def _kept_of(
        self, batch: Sequence[tuple[SpendOrder, asyncio.Future[SpendResult]]]
    ) -> Mapping[SpendId, KeptSpend]:
        """The batch's ids PostgreSQL keeps; empty without it, or when it fails or is slow."""
        if self.kept is None or time.monotonic() < self._kept_paused_until:
            return {}
        ids = list(dict.fromkeys((o.sender, o.client_id) for o, _ in batch))
        try:
            async with asyncio.timeout(KEPT_LOOKUP_TIMEOUT_S):
                return await self.kept(ids)
        except Exception as exc:
            self._kept_paused_until = time.monotonic() + KEPT_LOOKUP_PAUSE_S
            metrics.KEPT_LOOKUP_FAILURES.inc()
            log.warning(
                "PostgreSQL's spend ids unavailable (%s: %s): Redis alone answers retries "
                "for %.0fs",
                type(exc).__name__, exc, KEPT_LOOKUP_PAUSE_S,
            )  # fmt: skip
            return {}

    async def _settle_loop(self) -> None:
        while True:
            await self._settle_wake.wait()
            self._settle_wake.clear()
            while self._settle:
                batch, self._settle = self._settle[:MAX_BATCH], self._settle[MAX_BATCH:]
                self._in_flight += 1
                try:
                    await self._settle_batch(batch)
                except Exception as exc:
                    log.warning("settle batch failed (the persister will repair it): %s", exc)
                finally:
                    self._in_flight -= 1
                    for settled in batch:
                        self._done_with(settled.order.sender)
                    self._note_drained()

    async def _settle_batch(self, batch: list[Settled]) -> None:
        entries = [settled_entry(s) for s in batch]
        # Past this, Redis refuses the credits and emissions (the persister does them):
        # a marker the persister retired could have expired by then (store/retire.py).
        not_after = self.ledger.settle_deadline(min(s.ts for s in batch))
        emits = [c for e in entries for c in self.rooms.spend_emit_calls(e, not_after=not_after)]
        for failure in await self.ledger.settle_many(entries, emits, not_after=not_after):
            log.warning("settle step failed (the persister will repair it): %s", failure)
        drops = [e for e in entries if e.kind == "box"]
        if drops:  # a box's open and close; the persister schedules them too (idempotent)
            try:
                await self.rooms.schedule_boxes(drops)
            except Exception as exc:
                log.warning("scheduling boxes failed (the persister will repair it): %s", exc)
        if self.on_settled is not None:
            for s in batch:
                self.on_settled(s)


def _resolve(fut: asyncio.Future[SpendResult], outcome: SpendResult | GiftingError) -> None:
    if isinstance(outcome, GiftingError):
        fut.set_exception(outcome)
    else:
        fut.set_result(outcome)


def settled_entry(s: Settled) -> SpendEntry:
    """The outbox entry of a settled spend (what the persister sees)."""
    return spend_entry(s.order, s.result, s.ts)
