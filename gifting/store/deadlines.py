"""Deadlines kept in Redis and run by whichever process is alive.

A deadline (a streak's end, a box opening, a hype running out) is a member
``"<kind>|<rest>"`` of a sorted set scored by its due time in unix ms: the
global set (:meth:`Keys.due`) or a wallet shard's (:meth:`Keys.shard_due`,
where spend.lua schedules a streak's end with the debit). Every hub process
and every ``gifting persist`` runs a :class:`DeadlineRunner`: each interval it
takes what is due, leased (due_take.lua moves the score to now + lease, so
others leave it alone while it runs), calls the handler of its kind, and
removes it (due_done.lua) unless it was scheduled anew meanwhile. A runner
that dies mid-task leaves it leased: it comes due again when the lease runs
out, and another runner takes it. No deadline depends on one process being
alive, and a handler may run twice: every handler is idempotent (it emits
with a deterministic event id, behind the room's once-marker).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from redis.asyncio import Redis

from gifting.clock import now_ms
from gifting.store.keys import Keys
from gifting.store.scripts import ScriptCall, Scripts

log = logging.getLogger(__name__)

#: How long a taken deadline is the taker's alone; past it, another runner may take it.
DUE_LEASE_MS: Final = 5_000
#: How often a runner looks for due deadlines.
DUE_INTERVAL_S: Final = 0.2
#: At most this many deadlines of one set per look.
DUE_BATCH: Final = 100


class NotYet(Exception):
    """Raised by a handler whose deadline turned out not to be due: run it again at ``due_ms``."""

    def __init__(self, due_ms: int) -> None:
        super().__init__(f"not due before {due_ms}")
        self.due_ms = due_ms


@dataclass(frozen=True, slots=True)
class DueTask:
    """One taken deadline: its set, member and the score it is leased with."""

    key: str
    member: str
    score: int

    @property
    def kind(self) -> str:
        """What to do: the member up to its first ``|`` (selects the handler)."""
        return self.member.partition("|")[0]

    @property
    def rest(self) -> str:
        """What to do it to: the member after its first ``|`` (the handler's argument)."""
        return self.member.partition("|")[2]


#: Runs one deadline, given its :attr:`DueTask.rest`; raising leaves it for a later try.
Handler = Callable[[str], Awaitable[None]]
#: Runs every due deadline of one kind at once (a streak end each, in a storm), given
#: their rests in due order; answers for each ``None`` (done), a due time (run it again
#: then) or the exception that failed it (left for a later try).
BatchHandler = Callable[[Sequence[str]], Awaitable[Sequence[int | Exception | None]]]


class Deadlines:
    """Schedule, take and finish deadlines in Redis."""

    def __init__(self, redis: Redis, keys: Keys, *, lease_ms: int = DUE_LEASE_MS) -> None:
        self.redis = redis
        self.keys = keys
        self.lease_ms = lease_ms
        self.scripts = Scripts(redis)

    async def schedule(self, task: str, due_ms: int) -> None:
        """Schedule ``task`` (``"<kind>|<rest>"``) in the global set at ``due_ms``.

        Scheduling a task already there moves it to the new time.
        """
        await self.redis.zadd(self.keys.due(), {task: due_ms})

    async def take(self, now: int, limit: int = DUE_BATCH) -> list[DueTask]:
        """The deadlines due at ``now`` in every set, each leased to the caller."""
        sets = self.keys.due_sets()
        calls = [ScriptCall("due_take", [k], [now, limit, self.lease_ms]) for k in sets]
        tasks: list[DueTask] = []
        for key, reply in zip(sets, await self.scripts.run_many(calls, lane="due"), strict=True):
            if isinstance(reply, Exception):
                log.warning("deadlines of %s unavailable: %s", key, reply)
                continue
            for i in range(0, len(reply), 2):
                tasks.append(DueTask(key, reply[i], int(reply[i + 1])))
        return tasks

    async def done_many(self, finished: Sequence[tuple[DueTask, int | None]]) -> None:
        """:meth:`done` for each (task, again_at), in one round trip."""
        calls = [
            ScriptCall("due_done", [t.key], [t.member, t.score, "" if again is None else again])
            for t, again in finished
        ]
        for reply in await self.scripts.run_many(calls, lane="due"):
            if isinstance(reply, Exception):
                raise reply

    async def done(self, task: DueTask, again_at: int | None = None) -> bool:
        """Remove ``task`` (or move it to ``again_at``) unless it was scheduled anew since taken.

        Returns whether it was still the caller's.
        """
        args: list[str | int] = [task.member, task.score, "" if again_at is None else again_at]
        (kept,) = await self.scripts.run("due_done", [task.key], args)
        return kept == "1"

    async def aclose(self) -> None:
        """Close the pipeline connections of :meth:`take`."""
        await self.scripts.close()


class DeadlineRunner:
    """Runs the due deadlines of every set, every ``interval_s``, by their kind's handler."""

    def __init__(
        self,
        deadlines: Deadlines,
        handlers: Mapping[str, Handler],
        *,
        batch_handlers: Mapping[str, BatchHandler] | None = None,
        interval_s: float = DUE_INTERVAL_S,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.deadlines = deadlines
        self.handlers = dict(handlers)
        #: Kinds run a take at a time (one round trip for all, not three each).
        self.batch_handlers = dict(batch_handlers or {})
        self.interval_s = interval_s
        self.clock = clock
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start looking for due deadlines."""
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Stop; a deadline cut short stays leased and comes due again for another runner."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.deadlines.aclose()

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_due()
            except Exception as exc:
                log.warning("deadlines: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(self.interval_s)

    async def run_due(self) -> int:
        """Take what is due now and run it; return how many deadlines were finished."""
        tasks = await self.deadlines.take(self.clock())
        if not tasks:
            return 0
        batched: dict[str, list[DueTask]] = {}
        by_set: dict[str, list[DueTask]] = {}
        for task in tasks:  # in due order within each set (due_take.lua's)
            if task.kind in self.batch_handlers:
                batched.setdefault(task.kind, []).append(task)
            else:
                by_set.setdefault(task.key, []).append(task)
        # The rest in due order within a set, the sets side by side.
        results = await asyncio.gather(
            *(self._run_batch(kind, ts) for kind, ts in batched.items()),
            *(self._run_in_order(ts) for ts in by_set.values()),
        )
        return sum(results)

    async def _run_batch(self, kind: str, tasks: list[DueTask]) -> int:
        try:
            outcomes = await self.batch_handlers[kind]([t.rest for t in tasks])
        except Exception as exc:
            log.warning(
                "%d deadlines of kind %r failed (%s: %s); retried after their lease",
                len(tasks), kind, type(exc).__name__, exc,
            )  # fmt: skip
            return 0
        finished: list[tuple[DueTask, int | None]] = []
        for task, outcome in zip(tasks, outcomes, strict=True):
            if isinstance(outcome, Exception):
                log.warning("deadline %r failed (%s); retried after its lease", task.member,
                            outcome)  # fmt: skip
            else:
                finished.append((task, outcome))
        await self.deadlines.done_many(finished)
        return sum(1 for _, again in finished if again is None)

    async def _run_in_order(self, tasks: list[DueTask]) -> int:
        return sum([await self._run(t) for t in tasks])

    async def _run(self, task: DueTask) -> int:
        handler = self.handlers.get(task.kind)
        if handler is None:
            log.warning("deadline %r of an unknown kind: dropped", task.member)
            await self.deadlines.done(task)
            return 0
        try:
            await handler(task.rest)
        except NotYet as later:
            await self.deadlines.done(task, again_at=later.due_ms)
            return 0
        except Exception as exc:
            log.warning(
                "deadline %r failed (%s: %s); retried after its lease",
                task.member, type(exc).__name__, exc,
            )  # fmt: skip
            return 0
        await self.deadlines.done(task)
        return 1
