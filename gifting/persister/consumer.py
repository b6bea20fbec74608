"""The persister: a consumer group over the outbox streams, writing PostgreSQL, then XACK.

Delivery guarantee: every outbox entry is written to PostgreSQL exactly once
(by its unique event id, whatever the number of deliveries) and acknowledged
only after the transaction that wrote it committed. The loop, per batch:

1. read up to ``batch_size`` entries per stream (XREADGROUP over the 16
   outboxes; after a failure or a reclaim, first our own pending entries);
2. parse each entry (:func:`gifting.persister.postings.parse_entry`); a
   malformed or unknown one is set aside for the dead-letter stream;
3. for each spend with a creator, repair what a crashed hub may have left
   undone: the creator credit (``Ledger.repair_credits``: credit.lua,
   idempotent by the spend's event id; pipelined), before PostgreSQL sees
   the spend (the audit relies on it), and the ``on_spends`` hook (the room
   emission, idempotent too) at the same time as step 4; both refused by
   Redis past a deadline (half the recent window after the read began);
4. write the batch in one PostgreSQL transaction (:func:`write_batch`; the
   spends' ids go to ``spend_ids``, their long-term record); the batch goes
   on only once this and the emissions both succeeded;
5. XADD the set-aside entries to the dead letters, with their reason;
6. XACK every entry of the batch;
7. retire the Redis records of the batch's persisted spends (``Ledger.retire``:
   their expiry becomes the recent window). Only now: after the commit and the
   XACK, nothing can credit or emit these spends again
   (:mod:`gifting.store.retire` gives the argument). A failure here is logged
   and counted; the batch stays acknowledged (the records keep no expiry).

Any failure in 3–6 abandons the batch without acknowledging it; the loop
backs off (capped exponential), then reads its pending entries again (their
replay is harmless: steps 3 and 4 are idempotent). Entries a crashed
persister left pending are claimed after ``claim_idle_ms`` (XAUTOCLAIM), at
start and periodically. Maintenance trims only acknowledged entries (see
:mod:`gifting.persister.progress`) and updates the lag gauges.

Shutdown (:meth:`OutboxConsumer.stop`) is ordered: no new batch starts, a read
in flight is cancelled (what it fetched stays pending), the batch in flight is
given ``shutdown_timeout_s`` to finish and is otherwise abandoned unacknowledged.

Over 400 lines on purpose: the loop, its retries, reclaims and ordered
shutdown are one delivery guarantee, read best in one place.

Modelled on centrifugo's ``internal/redisqueue/consumer.go``. Redis Cluster:
one XREADGROUP over the 16 outboxes touches 16 hash slots, which only a
single Redis accepts; on a cluster each consumer reads one outbox
(``streams=[keys.outbox(n)]``) and :mod:`gifting.persister.shards` shares the
shards between processes by leases.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from gifting.core.entries import SpendEntry
from gifting.persister import metrics
from gifting.persister.postings import LedgerEvent, MalformedEntry, parse_entry
from gifting.persister.progress import GROUP, id_ms, outbox_progress
from gifting.persister.writer import write_batch
from gifting.store.keys import Keys
from gifting.store.ledger import Ledger

__all__ = ["GROUP", "OnSpends", "OutboxConsumer", "OutboxEntry"]

log = logging.getLogger("gifting.persister")

#: The room's repair: the spends to emit, and the deadline (unix ms) past which Redis refuses.
OnSpends = Callable[[list[SpendEntry], int], Awaitable[None]]

# Errors that reject the data itself: retrying the same rows cannot succeed.
_DATA_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
)


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One entry read from an outbox stream; ``fields`` is empty if it was deleted."""

    stream: str
    id: str
    fields: dict[bytes, bytes]


def _s(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _wall_ms() -> int:
    """Now, unix ms (the wall clock: deadlines are checked against Redis's own clock)."""
    return int(time.time() * 1000)


def default_consumer_name() -> str:
    """``<host>-<pid>``: unique among live persisters, stable for the process."""
    return f"{socket.gethostname()}-{os.getpid()}"


class OutboxConsumer:
    """Persist the outbox streams into PostgreSQL, exactly once, acking after commit.

    ``ledger`` makes the creator credit of spends a hub may not have credited;
    ``on_spends`` (optional) is awaited once per batch with its spends to a
    creator and their deadline, after the credits and before the XACK (the
    room's idempotent emission plugs in here). Both may run more than once for
    one spend, never zero times. After the XACK, ``ledger`` retires the
    persisted spends' Redis records to its recent window.
    """

    def __init__(
        self,
        redis: Redis,
        pool: asyncpg.Pool,
        keys: Keys,
        ledger: Ledger,
        *,
        on_spends: OnSpends | None = None,
        group: str = GROUP,
        consumer: str | None = None,
        streams: Sequence[str] | None = None,
        batch_size: int = 500,
        block_ms: int = 1000,
        claim_idle_ms: int = 10_000,
        maintenance_interval_s: float = 1.0,
        backoff_initial_s: float = 0.05,
        backoff_max_s: float = 5.0,
        credit_pipeline: int = 256,
        shutdown_timeout_s: float = 10.0,
        dead_consumer_idle_ms: int = 3_600_000,
    ) -> None:
        self.redis = redis
        self.pool = pool
        self.keys = keys
        self.ledger = ledger
        self.on_spends = on_spends
        self.group = group
        self.consumer = consumer or default_consumer_name()
        self.streams = list(streams) if streams is not None else keys.outboxes()
        self.batch_size = batch_size
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.maintenance_interval_s = maintenance_interval_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.credit_pipeline = max(1, credit_pipeline)
        self.shutdown_timeout_s = shutdown_timeout_s
        self.dead_consumer_idle_ms = dead_consumer_idle_ms
        self._recovering = True
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._reading: asyncio.Future[list[OutboxEntry]] | None = None
        self._next_claim = 0.0
        self._next_maintenance = 0.0
        self._next_cleanup = 0.0
        self._failures = 0
        self._phase = "read"
        self._read_at_ms = 0
        #: Whether maintenance sets the lag gauges (off when a ShardedPersister sums them).
        self.report_lag = True

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> asyncio.Task[None]:
        """Run the loop in a background task (the app's lifespan uses this)."""
        if self._task is None or self._task.done():
            self._stopping.clear()
            self._task = asyncio.create_task(self.run(), name=f"outbox-consumer:{self.consumer}")
        return self._task

    async def stop(self) -> None:
        """Ordered shutdown: stop reading, let the batch in flight finish or abandon it."""
        self._stopping.set()
        if self._reading is not None:
            self._reading.cancel()
        task = self._task
        if task is None or task.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), self.shutdown_timeout_s)
        except TimeoutError:
            log.warning(
                "persister: batch still in flight after %.1fs, abandoning it unacked",
                self.shutdown_timeout_s,
            )
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stopping.is_set()

    async def run(self) -> None:
        """Consume until :meth:`stop`; survives Redis and PostgreSQL outages."""
        ready = False
        while not self._stopping.is_set():
            try:
                self._phase = "read"
                if not ready:
                    await self.ensure_groups()
                    ready = True
                await self._periodic()
                read_at_ms = _wall_ms()
                entries = await self._read_interruptibly()
                if entries is None:
                    break
                if entries:
                    await self.handle(entries, read_at_ms=read_at_ms)
                self._failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if isinstance(exc, ResponseError) and "NOGROUP" in str(exc):
                    ready = False
                await self._back_off(exc)
        log.info("persister %s stopped", self.consumer)

    async def _read_interruptibly(self) -> list[OutboxEntry] | None:
        """Read a batch; None if :meth:`stop` was called before or during the read."""
        if self._stopping.is_set():
            return None
        self._reading = asyncio.ensure_future(self.read())
        try:
            return await self._reading
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._stopping.is_set() and (task is None or not task.cancelling()):
                return None
            raise
        finally:
            self._reading = None

    async def _back_off(self, exc: Exception) -> None:
        self._failures += 1
        self._recovering = True
        metrics.RETRIES.labels(self._phase).inc()
        delay = min(self.backoff_max_s, self.backoff_initial_s * 2 ** (self._failures - 1))
        delay *= 0.5 + random.random() / 2
        log.warning(
            "persister: %s failed, batch abandoned unacked (%s: %s); retry in %.2fs",
            self._phase,
            type(exc).__name__,
            exc,
            delay,
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)

    # -- setup and maintenance ---------------------------------------------------
    async def ensure_groups(self) -> None:
        """Create the consumer group on every outbox (from its first entry) if missing."""
        for stream in self.streams:
            try:
                await self.redis.xgroup_create(stream, self.group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        self._recovering = True

    async def _periodic(self) -> None:
        now = time.monotonic()
        if now >= self._next_claim:
            self._next_claim = now + max(self.claim_idle_ms / 2000, 0.05)
            await self.reclaim()
        if now >= self._next_maintenance:
            self._next_maintenance = now + self.maintenance_interval_s
            await self.maintain()
        if now >= self._next_cleanup:
            self._next_cleanup = now + 60.0
            await self.forget_dead_consumers()

    async def reclaim(self) -> int:
        """Claim entries pending longer than ``claim_idle_ms`` on other (dead) consumers."""
        claimed = 0
        for stream in self.streams:
            start = "0-0"
            while True:
                reply = await self.redis.xautoclaim(
                    stream,
                    self.group,
                    self.consumer,
                    self.claim_idle_ms,
                    start_id=start,
                    count=self.batch_size,
                )
                start = _s(reply[0])
                claimed += len(reply[1])
                if start == "0-0":
                    break
        if claimed:
            metrics.RECLAIMED.inc(claimed)
            self._recovering = True
            log.info("persister %s: claimed %d idle pending entries", self.consumer, claimed)
        return claimed

    async def maintain(self) -> int:
        """Update the lag gauges and trim acknowledged entries; return entries trimmed."""
        mine = await outbox_progress(self.redis, self.keys, self.group, streams=self.streams)
        if self.report_lag:
            metrics.LAG_ENTRIES.set(sum(p.pending + p.undelivered for p in mine))
            oldest = [id_ms(i) for p in mine if (i := p.oldest_unacked)]
            metrics.LAG_SECONDS.set(max(0.0, time.time() - min(oldest) / 1000) if oldest else 0.0)
        trimmed = 0
        pipe = self.redis.pipeline(transaction=False)
        asked = False
        for p in mine:
            if p.grouped and p.trim_floor and p.length:
                pipe.xtrim(p.stream, minid=p.trim_floor, approximate=False)
                asked = True
        if asked:
            trimmed = sum(int(n) for n in await pipe.execute())
        if trimmed:
            metrics.TRIMMED.inc(trimmed)
        return trimmed

    async def forget_dead_consumers(self) -> None:
        """Delete consumers with nothing pending that were idle for a long time."""
        for stream in self.streams:
            with contextlib.suppress(ResponseError):
                for c in await self.redis.xinfo_consumers(stream, self.group):
                    name = _s(c["name"])
                    idle = int(c["idle"])
                    if (
                        name != self.consumer
                        and int(c["pending"]) == 0
                        and idle > self.dead_consumer_idle_ms
                    ):
                        await self.redis.xgroup_delconsumer(stream, self.group, name)

    # -- one batch -----------------------------------------------------------------
    async def read(self) -> list[OutboxEntry]:
        """The next batch: our pending entries while recovering, else new ones (blocking)."""
        if self._recovering:
            entries = await self._xreadgroup("0", block=None)
            if entries:
                return entries
            self._recovering = False
        return await self._xreadgroup(">", block=self.block_ms)

    async def _xreadgroup(self, start: str, block: int | None) -> list[OutboxEntry]:
        reply = await self.redis.xreadgroup(
            self.group,
            self.consumer,
            dict.fromkeys(self.streams, start),
            count=self.batch_size,
            block=block,
        )
        entries: list[OutboxEntry] = []
        for stream, items in reply or []:
            name = _s(stream)
            entries.extend(
                # redis-py built a fresh dict per entry already: no copy (None: deleted).
                OutboxEntry(
                    name, _s(entry_id), fields if type(fields) is dict else dict(fields or {})
                )
                for entry_id, fields in items
            )
        return entries

    async def run_once(self) -> int:
        """Read and handle one batch (tests and tools); return the entries handled."""
        read_at_ms = _wall_ms()
        entries = await self.read()
        if entries:
            await self.handle(entries, read_at_ms=read_at_ms)
        return len(entries)

    async def handle(
        self, entries: Sequence[OutboxEntry], *, read_at_ms: int | None = None
    ) -> None:
        """Repair, persist, dead-letter, acknowledge and retire one batch; raise to abandon it.

        ``read_at_ms``: when the read that delivered ``entries`` began (wall
        clock, unix ms; default now): the repairs' deadline counts from it.
        """
        started = time.perf_counter()
        not_after = self.ledger.settle_deadline(_wall_ms() if read_at_ms is None else read_at_ms)
        events: list[LedgerEvent] = []
        origin: dict[str, OutboxEntry] = {}
        dead: list[tuple[OutboxEntry, str]] = []
        for entry in entries:
            if not entry.fields:
                continue  # deleted from the stream while pending: nothing to persist
            try:
                event = parse_entry(entry.id, entry.fields)
            except MalformedEntry as exc:
                dead.append((entry, exc.reason))
                continue
            events.append(event)
            origin.setdefault(event.event_id, entry)
        self._phase = "repair"
        spends = await self._repair_spends(events, not_after)
        outboxes = sorted({e.stream for e in entries})
        self._phase = "replicas"  # with GIFTING_REDIS_WAIT_REPLICAS: nothing a failover undoes
        await self.ledger.replicated(outboxes)
        fresh, refused = await self._emit_and_persist(spends, events, not_after, outboxes)
        dead.extend((origin[e.event_id], reason) for e, reason in refused)
        self._phase = "ack"
        if dead:
            await self._dead_letter(dead)
        await self._ack(entries)
        refused_ids = {e.event_id for e, _ in refused}
        await self._retire(
            [
                e.entry
                for e in events
                if isinstance(e.entry, SpendEntry) and e.event_id not in refused_ids
            ]
        )
        for e in fresh:
            metrics.EVENTS_PERSISTED.labels(e.type).inc()
        metrics.DUPLICATES.inc(len(events) - len(fresh) - len(refused))
        metrics.BATCH_SIZE.observe(len(entries))
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)

    async def _emit_and_persist(
        self,
        spends: list[SpendEntry],
        events: Sequence[LedgerEvent],
        not_after: int,
        outboxes: list[str],
    ) -> tuple[list[LedgerEvent], list[tuple[LedgerEvent, str]]]:
        """The room emissions (``on_spends``) and the PostgreSQL transaction, at the same time.

        Both idempotent and independent (the emissions are no money: the
        credits were repaired before, so PostgreSQL never holds a spend whose
        credit Redis has not applied, which the audit relies on); the batch
        is acknowledged only once both are done. Both always run to their
        end: a failure of one is raised after the other finished.
        """

        async def emit() -> None:
            if spends and self.on_spends is not None:
                await self.on_spends(spends, not_after)
                await self.ledger.replicated(outboxes)  # the emissions too

        done = await asyncio.gather(emit(), self._persist(events), return_exceptions=True)
        for phase, result in zip(("repair", "postgres"), done, strict=True):
            if isinstance(result, BaseException):
                self._phase = phase
                raise result
        persisted = done[1]
        assert not isinstance(persisted, BaseException)
        return persisted

    async def _repair_spends(
        self, events: Sequence[LedgerEvent], not_after: int
    ) -> list[SpendEntry]:
        """Grant every badge bought, credit every spend's creator (replays when done).

        Returns the spends to a creator and the box drops, for the hook (the
        room's emission, which creates a dropped box: :mod:`gifting.store.boxes`).

        The credits are the same credit.lua calls as the hub's, idempotent by
        the spend's event id (``Ledger.repair_credits``: one EXISTS each first,
        then pipelines of ``credit_pipeline`` calls, one round trip each), and
        refused by Redis past ``not_after`` (the batch is then abandoned, and
        read again with a fresh deadline).
        """
        badges = [
            e.entry for e in events if isinstance(e.entry, SpendEntry) and e.entry.kind == "badge"
        ]
        if badges:  # paid for, so owned: the debit's process may have died before its grant
            await self.ledger.grant_badges([(b.user, b.item) for b in badges])
        # A treasure box's drop (no creator) is repaired too: the emission creates its box.
        spends = [
            e.entry
            for e in events
            if isinstance(e.entry, SpendEntry) and (e.entry.creator or e.entry.kind == "box")
        ]
        if spends:
            await self.ledger.repair_credits(
                spends, chunk=self.credit_pipeline, not_after=not_after
            )
        return spends

    async def _retire(self, spends: Sequence[SpendEntry]) -> None:
        """Shorten the persisted, acknowledged spends' Redis records to the recent window."""
        if not spends:
            return
        try:
            metrics.RETIRED.inc(await self.ledger.retire(spends))
        except Exception as exc:
            metrics.RETIRE_FAILURES.inc()
            log.warning(
                "persister: could not retire %d spends' Redis records (%s: %s); "
                "they keep no expiry",
                len(spends), type(exc).__name__, exc,
            )  # fmt: skip

    async def _persist(
        self, events: Sequence[LedgerEvent]
    ) -> tuple[list[LedgerEvent], list[tuple[LedgerEvent, str]]]:
        """Write the batch; on a data error, isolate the rows PostgreSQL refuses."""
        if not events:
            return [], []
        try:
            async with self.pool.acquire() as conn:
                return await write_batch(conn, events), []
        except _DATA_ERRORS as exc:
            log.error("persister: PostgreSQL refused a batch (%s); writing it entry by entry", exc)
        fresh: list[LedgerEvent] = []
        refused: list[tuple[LedgerEvent, str]] = []
        async with self.pool.acquire() as conn:
            for e in events:
                try:
                    fresh.extend(await write_batch(conn, [e]))
                except _DATA_ERRORS as exc:
                    refused.append((e, f"database refused: {exc}"[:500]))
        return fresh, refused

    async def _dead_letter(self, dead: Sequence[tuple[OutboxEntry, str]]) -> None:
        now = str(int(time.time() * 1000))
        pipe = self.redis.pipeline(transaction=False)
        for entry, reason in dead:
            fields: dict[str | bytes, str | bytes] = {
                "reason": reason,
                "source_stream": entry.stream,
                "source_id": entry.id,
                "failed_at": now,
                "consumer": self.consumer,
            }
            for k, v in entry.fields.items():
                fields[b"field:" + (k if isinstance(k, bytes) else str(k).encode())] = v
            pipe.xadd(self.keys.dead_letters(), fields)
            log.error("persister: dead-lettered %s %s: %s", entry.stream, entry.id, reason)
        await pipe.execute()
        metrics.DEAD_LETTERS.inc(len(dead))

    async def _ack(self, entries: Sequence[OutboxEntry]) -> None:
        by_stream: dict[str, list[str]] = {}
        for e in entries:
            by_stream.setdefault(e.stream, []).append(e.id)
        pipe = self.redis.pipeline(transaction=False)
        for stream, ids in by_stream.items():
            pipe.xack(stream, self.group, *ids)
        await pipe.execute()
