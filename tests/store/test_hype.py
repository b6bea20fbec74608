"""Room hype in Redis: started, leveled and extended by emit.lua; ended once by any runner.

The catalog here: 2 distinct gifters and 100 coins within 1 s start a hype;
levels need 100, 200, 400 coins. Doughnut = 30 coins, rose = 1. The hype's
times are Redis's clock (real time): the tests wait for the 1 s window.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import pytest
from redis.asyncio import Redis

from gifting.clock import now_ms
from gifting.core.catalog import Catalog
from gifting.core.catalog_model import Hype
from gifting.core.entries import SpendEntry
from gifting.core.hype import hype_ended_event, hype_event, hype_instance
from gifting.core.pricing import price_gift
from gifting.store.deadlines import DeadlineRunner, Deadlines
from gifting.store.due_tasks import DueContext, due_handlers
from gifting.store.hype import hype_task
from gifting.store.keys import Keys
from gifting.store.ledger import Ledger, SpendOrder
from gifting.store.rooms import RoomLog
from gifting.store.spends import spend_entry

from .support import FakeClock, buy

pytestmark = pytest.mark.cluster
STREAM = "s1"
HYPE = Hype(gifters=2, coins=100, window_s=1, levels=(100, 200, 400))


@pytest.fixture
def hyped(catalog: Catalog) -> Catalog:
    return dataclasses.replace(catalog, hype=HYPE)


async def spend(ledger: Ledger, user: str, client_id: str, gift: str, count: int) -> SpendEntry:
    """Debit one gift to STREAM (as a hub does) and return its outbox entry; not emitted."""
    order = SpendOrder(user, user.title(), client_id, price_gift(ledger.catalog, gift, count),
                       STREAM, "cara")  # fmt: skip
    (result,) = await ledger.debit_many([order], live={STREAM: True}, now=now_ms())
    assert not isinstance(result, Exception), result
    return spend_entry(order, result, now_ms())


async def room(
    redis: Redis, keys: Keys, kinds: tuple[str, ...] = ("hype", "hype_ended")
) -> list[dict[str, Any]]:
    rows = await redis.xrange(keys.room_history(STREAM))
    bodies = [json.loads(f[b"d"]) for _, f in rows]
    return [b for b in bodies if b["kind"] in kinds]


def runner(redis: Redis, keys: Keys, catalog: Catalog, ledger: Ledger) -> DeadlineRunner:
    """A deadline runner as any process builds it (its own clients' objects)."""
    roomlog = RoomLog(redis, keys, catalog)
    deadlines = Deadlines(redis, keys)
    ctx = DueContext(redis, keys, catalog, roomlog, ledger, deadlines, 3000, now_ms)
    return DeadlineRunner(deadlines, due_handlers(ctx))


@pytest.fixture
async def funded(redis: Redis, keys: Keys, hyped: Catalog, clock: FakeClock) -> Ledger:
    ledger = Ledger(redis, keys, hyped, clock=clock)
    for user in ("ann", "bob", "cyd", "dan"):
        await buy(ledger, user, "coins_1400")
    return ledger


async def test_a_hype_starts_levels_once_under_racing_hubs_and_ends_once(
    redis: Redis, keys: Keys, hyped: Catalog, funded: Ledger
) -> None:
    hub_a, hub_b = RoomLog(redis, keys, hyped), RoomLog(redis, keys, hyped)
    ann = await spend(funded, "ann", "a1", "doughnut", 2)  # 60 coins: one gifter, no hype
    await hub_a.emit_spend(ann)
    assert await room(redis, keys) == []
    bob = await spend(funded, "bob", "b1", "doughnut", 2)  # 120 coins, 2 gifters: level 1 ...
    await hub_b.emit_spend(bob)
    hype = await room(redis, keys)
    instance = hype_instance(bob.event)
    # ... at once past level 1's 100: level 2 with 20 toward its 200.
    assert [(e["event"], e["level"], e["progress"], e["target"]) for e in hype] == [
        (f"{instance}.1", 1, 120, 100), (f"{instance}.2", 2, 20, 200),
    ]  # fmt: skip
    # The bodies emit.lua built are the ones gifting/core/hype.py describes.
    first = hype[0]
    assert first == hype_event(STREAM, instance, first["ts"], 1, 120, 100, first["expires_at"])
    assert first["expires_at"] - first["ts"] == 1000
    # Two hubs racing the spends that cross level 3 (20 + 200): announced once.
    cyd = await spend(funded, "cyd", "c1", "doughnut", 4)  # 120
    dan = await spend(funded, "dan", "d1", "doughnut", 4)  # 120
    await asyncio.gather(hub_a.emit_spend(cyd), hub_b.emit_spend(dan), hub_a.emit_spend(dan),
                         hub_b.emit_spend(cyd))  # fmt: skip
    # The persister's repair of the same spends: replays, nothing more.
    await hub_a.emit_spends([ann, bob, cyd, dan])
    hype = await room(redis, keys)
    assert [e["level"] for e in hype] == [1, 2, 3]
    assert hype[2]["progress"] == 20 + 240 - 200
    # Nobody scheduled the end on the hub path; the repair pass did.
    assert await redis.zscore(keys.due(), hype_task(STREAM)) is not None
    state = await hub_a.hype.state(STREAM)
    assert state is not None and (state.id, state.level, state.progress) == (instance, 3, 60)
    # Two runners (two processes) race the deadline: before the expiry, not yet.
    one, two = runner(redis, keys, hyped, funded), runner(redis, keys, hyped, funded)
    await asyncio.gather(one.run_due(), two.run_due())
    assert await room(redis, keys, ("hype_ended",)) == []
    await asyncio.sleep(max(state.expires - now_ms(), 0) / 1000 + 0.05)
    for _ in range(3):
        await asyncio.gather(one.run_due(), two.run_due())
    ended = await room(redis, keys, ("hype_ended",))
    assert ended == [hype_ended_event(STREAM, instance, ended[0]["ts"], 3)]
    assert await hub_a.hype.state(STREAM) is None
    assert await redis.zscore(keys.due(), hype_task(STREAM)) is None
    await one.stop()
    await two.stop()
    await hub_a.aclose()
    await hub_b.aclose()


async def test_spends_extend_the_expiry_and_the_deadline_follows(
    redis: Redis, keys: Keys, hyped: Catalog, funded: Ledger
) -> None:
    hub = RoomLog(redis, keys, hyped)
    for user in ("ann", "bob"):
        await hub.emit_spend(await spend(funded, user, f"{user}1", "doughnut", 2))
    started = await hub.hype.state(STREAM)
    assert started is not None and started.level == 2
    await hub.hype.ensure([STREAM])
    assert await redis.zscore(keys.due(), hype_task(STREAM)) == started.expires
    await asyncio.sleep(0.6)
    await hub.emit_spend(await spend(funded, "ann", "ann2", "rose", 1))
    later = await hub.hype.state(STREAM)
    assert later is not None and later.id == started.id
    assert later.expires >= started.expires + 500  # 1 s after the last spend
    assert later.progress == started.progress + 1
    # At the first expiry the runner finds it extended: the deadline moves to the new one.
    run = runner(redis, keys, hyped, funded)
    await asyncio.sleep(max(started.expires - now_ms(), 0) / 1000 + 0.05)
    await run.run_due()
    assert await room(redis, keys, ("hype_ended",)) == []
    assert await redis.zscore(keys.due(), hype_task(STREAM)) == later.expires
    await asyncio.sleep(max(later.expires - now_ms(), 0) / 1000 + 0.05)
    await run.run_due()
    assert [e["level"] for e in await room(redis, keys, ("hype_ended",))] == [2]
    await run.stop()
    await hub.aclose()


async def test_a_spend_after_the_expiry_ends_the_hype_before_the_deadline_does(
    redis: Redis, keys: Keys, hyped: Catalog, funded: Ledger
) -> None:
    hub = RoomLog(redis, keys, hyped)
    for user in ("ann", "bob"):
        await hub.emit_spend(await spend(funded, user, f"{user}1", "doughnut", 2))
    await hub.hype.ensure([STREAM])
    state = await hub.hype.state(STREAM)
    assert state is not None
    await asyncio.sleep(max(state.expires - now_ms(), 0) / 1000 + 0.05)
    late = await spend(funded, "cyd", "c1", "rose", 1)
    await hub.emit_spend(late)
    kinds = await room(redis, keys, ("gift", "hype", "hype_ended"))
    assert [e["kind"] for e in kinds] == ["gift", "gift", "hype", "hype", "gift", "hype_ended"]
    assert kinds[-2]["event"] == late.event
    # The deadline then finds no hype: no second hype_ended.
    run = runner(redis, keys, hyped, funded)
    await run.run_due()
    assert len(await room(redis, keys, ("hype_ended",))) == 1
    # One gifter alone starts nothing new.
    assert await hub.hype.state(STREAM) is None
    await run.stop()
    await hub.aclose()


async def test_without_hype_in_the_catalog_nothing_is_kept(
    redis: Redis, keys: Keys, catalog: Catalog, clock: FakeClock
) -> None:
    ledger = Ledger(redis, keys, dataclasses.replace(catalog, hype=None), clock=clock)
    hub = RoomLog(redis, keys, ledger.catalog)
    for user in ("ann", "bob", "cyd"):
        await buy(ledger, user, "coins_1400")
        await hub.emit_spend(await spend(ledger, user, f"{user}1", "doughnut", 20))
    assert await room(redis, keys) == []
    assert not await redis.exists(keys.stream_hype(STREAM), keys.stream_hype_window(STREAM))
    await hub.aclose()


async def test_a_running_hype_keeps_no_window_and_the_next_needs_momentum_of_its_own(
    redis: Redis, keys: Keys, hyped: Catalog, funded: Ledger
) -> None:
    log = RoomLog(redis, keys, hyped)
    # ann + bob: 2 gifters, 120 coins within the window: a hype starts (at level 1, and
    # its 120 coins reach level 1's 100 at once: level 2).
    for i, user in enumerate(("ann", "bob", "ann", "bob")):
        await log.emit_spend(await spend(funded, user, f"a{i}", "doughnut", 1))
    assert [e["level"] for e in await room(redis, keys, ("hype",))] == [1, 2]
    # While it runs, its spends keep no window (one read and one write each).
    for i in range(5):
        await log.emit_spend(await spend(funded, "cyd", f"c{i}", "rose", 1))
    assert await redis.exists(keys.stream_hype_window(STREAM)) == 0
    assert await redis.hkeys(keys.stream_hype(STREAM)) == [
        b"id", b"level", b"progress", b"expires"
    ]  # fmt: skip
    await asyncio.sleep(1.1)  # it runs out
    # This spend ends it inline and is the first of a new window: one gifter, 30 coins,
    # no new hype although the room had two gifters and 125 coins a moment ago.
    await log.emit_spend(await spend(funded, "dan", "d0", "doughnut", 1))
    assert [e["kind"] for e in await room(redis, keys)] == ["hype", "hype", "hype_ended"]
    # A second gifter within the window starts the next one: a new instance.
    for i in range(3):
        await log.emit_spend(await spend(funded, "ann", f"n{i}", "doughnut", 1))
    events = await room(redis, keys)
    assert [e["kind"] for e in events] == ["hype", "hype", "hype_ended", "hype", "hype"]
    assert events[3]["event"].split(".")[0] != events[0]["event"].split(".")[0]
