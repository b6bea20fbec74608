"""Deadlines in Redis: taken leased, finished once, moved when scheduled anew, run by anyone."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from redis.asyncio import Redis

from gifting.store.deadlines import DeadlineRunner, Deadlines, DueTask, NotYet
from gifting.store.keys import Keys

pytestmark = pytest.mark.cluster


async def test_a_due_deadline_is_taken_once_until_its_lease_runs_out(
    redis: Redis, keys: Keys
) -> None:
    dl = Deadlines(redis, keys, lease_ms=1_000)
    try:
        await dl.schedule("box_open|b1", 1_000)
        await dl.schedule("box_open|b2", 5_000)
        assert await dl.take(999) == []
        (task,) = await dl.take(1_000)
        assert (task.kind, task.rest, task.score) == ("box_open", "b1", 2_000)
        assert await dl.take(1_500) == []  # leased: nobody else takes it meanwhile
        again = await dl.take(2_000)  # the taker died: it comes due again
        assert [t.member for t in again] == ["box_open|b1"]
        assert await dl.done(again[0])
        assert [t.member for t in await dl.take(10_000)] == ["box_open|b2"]
    finally:
        await dl.aclose()


async def test_a_deadline_scheduled_anew_while_taken_is_not_removed(
    redis: Redis, keys: Keys
) -> None:
    dl = Deadlines(redis, keys)
    try:
        await dl.schedule("hype|s1", 100)
        (task,) = await dl.take(100)
        await dl.schedule("hype|s1", 9_000)  # extended while the handler ran
        assert not await dl.done(task)
        assert await redis.zscore(keys.due(), "hype|s1") == 9_000
        stale = DueTask(keys.due(), "hype|s1", task.score)
        assert not await dl.done(stale, again_at=50)  # nor moved
        assert await redis.zscore(keys.due(), "hype|s1") == 9_000
    finally:
        await dl.aclose()


async def test_the_runner_finishes_retries_and_postpones_by_its_handlers(
    redis: Redis, keys: Keys
) -> None:
    now = [1_000]
    ran: list[str] = []
    fail_once = {"flaky"}

    async def handle(rest: str) -> None:
        ran.append(rest)
        if rest in fail_once:
            fail_once.discard(rest)
            raise RuntimeError("redis went away")
        if rest == "later":
            raise NotYet(now[0] + 500)

    dl = Deadlines(redis, keys, lease_ms=100)
    runner = DeadlineRunner(dl, {"t": handle}, clock=lambda: now[0])
    try:
        for rest in ("ok", "flaky", "later"):
            await dl.schedule(f"t|{rest}", 1_000)
        await dl.schedule("mystery|x", 1_000)  # no handler: dropped, not retried forever
        assert await runner.run_due() == 1  # "ok" finished
        assert sorted(ran) == ["flaky", "later", "ok"]
        assert await redis.zscore(keys.due(), "t|later") == 1_500
        assert await redis.zscore(keys.due(), "mystery|x") is None
        assert await redis.zscore(keys.due(), "t|ok") is None
        now[0] = 1_100  # the failed one's lease ran out
        ran.clear()
        assert await runner.run_due() == 1
        assert ran == ["flaky"]
        now[0] = 1_500
        ran.clear()
        await runner.run_due()
        assert ran == ["later"]
    finally:
        await dl.aclose()


async def test_two_runners_at_once_run_a_deadline_once(redis: Redis, keys: Keys) -> None:
    ran: list[str] = []

    async def handle(rest: str) -> None:
        ran.append(rest)
        await asyncio.sleep(0.05)

    runners = [
        DeadlineRunner(Deadlines(redis, keys), {"t": handle}, clock=lambda: 10_000)
        for _ in range(2)
    ]
    try:
        for i in range(50):
            await Deadlines(redis, keys).schedule(f"t|{i}", i)
        done = await asyncio.gather(*(r.run_due() for r in runners))
        assert sum(done) == 50
        assert sorted(ran) == sorted(str(i) for i in range(50))
    finally:
        for r in runners:
            await r.stop()


async def test_stop_leaves_no_handler_running_and_the_task_to_another_runner(
    redis: Redis, keys: Keys
) -> None:
    started, cancelled = asyncio.Event(), []

    async def hang(rest: str) -> None:
        started.set()
        try:
            await asyncio.Event().wait()  # Redis hangs
        except asyncio.CancelledError:
            cancelled.append(rest)
            raise

    dl = Deadlines(redis, keys, lease_ms=200)
    await dl.schedule("t|stuck", 0)
    runner = DeadlineRunner(dl, {"t": hang}, interval_s=0.01)
    runner.start()
    await asyncio.wait_for(started.wait(), 5)
    await asyncio.wait_for(runner.stop(), 5)
    assert cancelled == ["stuck"]  # cancelled and awaited, not left behind
    ran: list[str] = []

    async def finish(rest: str) -> None:
        ran.append(rest)

    other = DeadlineRunner(Deadlines(redis, keys), {"t": finish})
    try:
        await asyncio.sleep(0.25)  # the stopped runner's lease runs out
        assert await other.run_due() == 1
        assert ran == ["stuck"]
    finally:
        await other.stop()


async def test_a_batch_handler_gets_a_kinds_due_tasks_at_once_and_each_its_outcome(
    redis: Redis, keys: Keys
) -> None:
    calls: list[list[str]] = []

    async def batch(rests: Sequence[str]) -> list[int | Exception | None]:
        calls.append(list(rests))
        return [None if r == "done" else 9_000 if r == "later" else RuntimeError("x")
                for r in rests]  # fmt: skip

    dl = Deadlines(redis, keys, lease_ms=100)
    runner = DeadlineRunner(dl, {}, batch_handlers={"s": batch}, clock=lambda: 1_000)
    try:
        for i, rest in enumerate(("done", "later", "fails")):
            await dl.schedule(f"s|{rest}", 100 + i)
        assert await runner.run_due() == 1
        assert calls == [["done", "later", "fails"]]  # one call, in due order
        assert await redis.zscore(keys.due(), "s|done") is None
        assert await redis.zscore(keys.due(), "s|later") == 9_000
        assert await redis.zscore(keys.due(), "s|fails") == 1_100  # leased: tried again later
    finally:
        await runner.stop()
