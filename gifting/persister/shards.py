"""The persister per outbox shard: any number of processes share the shards by leases.

On a Redis Cluster one XREADGROUP cannot read several outboxes (they live in
different slots), so each outbox shard gets its own
:class:`~gifting.persister.consumer.OutboxConsumer` (one XREADGROUP per
shard, its own batches, acks, reclaims and trims) and the shards are shared
between the ``gifting persist`` processes, wherever they run:

* every process heartbeats into one sorted set (``Keys.persisters``) and
  counts the live ones, ``n``; its fair share is ``ceil(shards / n)``;
* a shard belongs to whoever holds its lease (``Keys.persister_lease``, in
  the shard's own slot: ``SET NX PX``, renewed every third of its TTL by
  :class:`~gifting.store.leases.Leases`); a process takes free shards up to
  its share and starts a consumer on each;
* a process over its share (another one joined) stops the consumers of its
  extra shards — ordered: the batch in flight finishes and is acknowledged
  — and only then releases their leases;
* a process that dies stops renewing: its leases expire after
  ``lease_ms`` and the others take its shards; the entries it had read but
  not acknowledged are claimed by the new owner's consumer after
  ``claim_idle_ms`` (XAUTOCLAIM, as on a single Redis);
* a lease that could not be renewed (it expired: this process was paused, or
  Redis failed over) stops its consumer at once.

Exactly once into PostgreSQL does not depend on the leases: every event has
a unique id (``ON CONFLICT DO NOTHING``) and entries are acknowledged only
after their transaction committed, so two owners of one shard for a moment
(a paused process) write nothing twice. Leases only keep the work from being
done twice.

``shards`` pins a process to those shards (``gifting persist --shards``):
it takes their leases as soon as they are free and does not count itself in
the heartbeat set, so the others share the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import zlib
from collections.abc import Callable, Sequence
from typing import Final

from redis.asyncio import Redis
from redis.exceptions import RedisError

from gifting.persister import metrics
from gifting.persister.consumer import OutboxConsumer, default_consumer_name
from gifting.persister.progress import id_ms, outbox_progress
from gifting.store.keys import Keys
from gifting.store.leases import Leases

__all__ = ["DEFAULT_LEASE_MS", "ShardedPersister", "fair_share"]

log = logging.getLogger("gifting.persister")

#: A dead persister's shards are taken by the others after this long.
DEFAULT_LEASE_MS: Final = 10_000


def fair_share(shards: int, live: int) -> int:
    """How many shards each of ``live`` persisters should own (``ceil``: none left over)."""
    return math.ceil(shards / max(1, live))


class ShardedPersister:
    """One :class:`OutboxConsumer` per outbox shard this process leases.

    ``make_consumer(stream, name)`` builds the consumer of one outbox (the
    service passes one configured from the settings).
    """

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        make_consumer: Callable[[str, str], OutboxConsumer],
        *,
        consumer: str | None = None,
        shards: Sequence[int] | None = None,
        lease_ms: int = DEFAULT_LEASE_MS,
        stop_timeout_s: float = 15.0,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.consumer = consumer or default_consumer_name()
        self.pinned = sorted(set(shards)) if shards is not None else None
        if self.pinned is not None and not all(0 <= s < keys.shards for s in self.pinned):
            raise ValueError(f"a pinned shard must be in 0..{keys.shards - 1}")
        self.lease_ms = lease_ms
        self.stop_timeout_s = stop_timeout_s
        self._make_consumer = make_consumer
        self._leases = Leases(redis, self.consumer, lease_ms)
        self._consumers: dict[int, OutboxConsumer] = {}
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Shards are tried from a place that depends on the name, so that
        # persisters starting together do not all race for shard 0 first.
        self._start_at = zlib.crc32(self.consumer.encode()) % keys.shards

    # -- what the hosts use (OutboxConsumer's shape) ---------------------------------
    @property
    def owned(self) -> list[int]:
        """The shards this process consumes now."""
        return sorted(self._consumers)

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stopping.is_set()

    def start(self) -> asyncio.Task[None]:
        """Run the lease loop in a background task."""
        if self._task is None or self._task.done():
            self._stopping.clear()
            self._task = asyncio.create_task(self.run(), name=f"persister-shards:{self.consumer}")
        return self._task

    async def stop(self) -> None:
        """Stop every consumer (ordered), release their leases and leave the group."""
        self._stopping.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(self._task), self.stop_timeout_s)
            if not self._task.done():
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        await self._drop(list(self._consumers), release=True)
        if self.pinned is None:
            with contextlib.suppress(RedisError, OSError):
                await self._leases.leave(self.keys.persisters())

    async def run(self) -> None:
        """Balance until :meth:`stop`: heartbeat, renew, give up extras, take free shards."""
        every = self.lease_ms / 3000
        while not self._stopping.is_set():
            try:
                await self.balance()
                await self._report_lag()
            except (RedisError, OSError) as exc:
                log.warning("persister %s: lease round failed (%s)", self.consumer, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), every)

    # -- one round ---------------------------------------------------------------------
    async def balance(self) -> None:
        """One round of the lease loop (tests call it directly)."""
        keys = self.keys
        if self.pinned is None:
            live = await self._leases.heartbeat(keys.persisters())
            share = fair_share(keys.shards, live)
            candidates = [(self._start_at + i) % keys.shards for i in range(keys.shards)]
        else:
            share = len(self.pinned)
            candidates = list(self.pinned)
        lost = [s for s in self._consumers if not await self._leases.renew(keys.persister_lease(s))]
        if lost:
            log.warning("persister %s: lost the leases of shards %s", self.consumer, lost)
            await self._drop(lost, release=False)
        extra = len(self._consumers) - share
        if extra > 0:
            await self._drop(sorted(self._consumers)[-extra:], release=True)
        for shard in candidates:
            if len(self._consumers) >= share:
                break
            if shard not in self._consumers and await self._leases.take(
                keys.persister_lease(shard)
            ):
                self._add(shard)
        metrics.OWNED_SHARDS.set(len(self._consumers))

    def _add(self, shard: int) -> None:
        consumer = self._make_consumer(self.keys.outbox(shard), self.consumer)
        consumer.report_lag = False  # the sum over this process's shards is reported here
        self._consumers[shard] = consumer
        consumer.start()
        log.info("persister %s: consuming shard %d", self.consumer, shard)

    async def _drop(self, shards: Sequence[int], *, release: bool) -> None:
        # Forgotten only once stopped: if this is cancelled halfway, stop() stops them again.
        consumers = [(s, self._consumers[s]) for s in shards if s in self._consumers]
        await asyncio.gather(*(c.stop() for _, c in consumers), return_exceptions=True)
        for shard, _ in consumers:
            self._consumers.pop(shard, None)
            if release:
                with contextlib.suppress(RedisError, OSError):
                    await self._leases.release(self.keys.persister_lease(shard))
            log.info("persister %s: left shard %d", self.consumer, shard)

    async def _report_lag(self) -> None:
        streams = [self.keys.outbox(s) for s in self._consumers]
        if not streams:
            metrics.LAG_ENTRIES.set(0)
            metrics.LAG_SECONDS.set(0)
            return
        progress = await outbox_progress(self.redis, self.keys, streams=streams)
        metrics.LAG_ENTRIES.set(sum(p.pending + p.undelivered for p in progress))
        oldest = [id_ms(i) for p in progress if (i := p.oldest_unacked)]
        metrics.LAG_SECONDS.set(max(0.0, time.time() - min(oldest) / 1000) if oldest else 0.0)
