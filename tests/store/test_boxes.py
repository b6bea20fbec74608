"""Treasure boxes on Redis: shares, one claim each, and every coin once through crashes.

Real Redis, single and a 3-master cluster. The drop's time is set so that the
box is open now by Redis's clock (claims read the time in the script), and
the close is called by hand (the deadline runner calls the same handler).
Crashes are simulated by running the steps partially: a drop debited but
never settled, a claim recorded but never credited, a close cut after some
credits; then the same handler runs again (or twice at once) and every coin
must have moved exactly once.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis

from gifting.core.boxes import box_id_of, claim_event_id, drop_tasks, params_of, price_box, share_of
from gifting.core.catalog import Catalog
from gifting.core.entries import BoxClaimArgs, SpendEntry
from gifting.core.errors import (
    AlreadyClaimed,
    BadRequest,
    BoxClosed,
    BoxNotOpen,
    Conflict,
    UnknownBox,
)
from gifting.store.box_calls import credit_call
from gifting.store.boxes import Boxes, BoxMissing
from gifting.store.deadlines import NotYet
from gifting.store.keys import Keys
from gifting.store.ledger import Ledger, SpendOrder, spend_entry
from gifting.store.rooms import RoomLog

from .support import CREATOR, STREAM, FakeClock, buy, of_type, outbox_entries, snapshot

pytestmark = pytest.mark.cluster


@dataclass
class World:
    redis: Redis
    keys: Keys
    ledger: Ledger
    rooms: RoomLog
    boxes: Boxes
    clock: FakeClock

    async def coins(self, user: str) -> int:
        return (await self.ledger.wallet(user)).coins

    async def drop(
        self,
        user: str,
        cid: str,
        coins: int,
        winners: int,
        *,
        opens_in_s: int = 10,
        open_now: bool = True,
        settle: bool = True,
    ) -> SpendEntry:
        """Drop a box (debit, then the hub's settle step unless ``settle`` is False)."""
        real = int(time.time() * 1000)
        # open_now: dropped opens_in_s ago (open now); else dropped now (opens later).
        self.clock.ms = real - opens_in_s * 1000 - 500 if open_now else real
        order = SpendOrder(
            user, user.title(), cid, price_box(coins, winners, opens_in_s), STREAM, CREATOR
        )
        result = await self.ledger.spend(order, live=True)
        entry = spend_entry(order, result, self.clock.ms)
        if settle:  # as the hub's settle step: the emission (creates the box), the schedule
            await self.rooms.emit_spend(entry)
            await self.rooms.schedule_boxes([entry])
        return entry

    async def claim(self, user: str, box: str, cid: str = "k1") -> tuple[int, int]:
        c = await self.boxes.claim(STREAM, box, user, user.title(), cid)
        return c.share, c.balance

    async def close(self, box: str) -> None:
        """The close deadline, after the claim window (moved to the past by hand)."""
        await self.window_over(box)
        await self.boxes.close(f"{STREAM}|{box}")

    async def window_over(self, box: str) -> None:
        key = self.keys.box(STREAM, box)
        if await self.redis.hget(key, "state") == b"open":
            await self.redis.hset(key, "closes_at", int(time.time() * 1000) - 1)

    async def events(self, kind: str) -> list[dict[str, object]]:
        import json

        rows = await self.redis.xrange(self.keys.room_history(STREAM))
        bodies = [json.loads(f[b"d"]) for _, f in rows]
        return [b for b in bodies if b["kind"] == kind]


@pytest.fixture
async def world(
    redis: Redis, keys: Keys, ledger: Ledger, catalog: Catalog, clock: FakeClock
) -> World:
    rooms = RoomLog(redis, keys, catalog, clock=clock)
    boxes = Boxes(redis, keys, rooms, clock=clock)
    yield World(redis, keys, ledger, rooms, boxes, clock)
    await boxes.aclose()
    await rooms.aclose()


async def _funded(w: World, *users: str, package: str = "coins_350") -> None:
    for u in users:
        await buy(w.ledger, u, package)


async def _in_box(w: World, box: str) -> int:
    """Coins still in a box by Redis: its coins minus the shares credited (0 once settled)."""
    fields = await w.redis.hgetall(w.keys.box(STREAM, box))
    if fields[b"state"] == b"settled":
        return 0
    claims = await w.redis.hgetall(w.keys.box_claims(STREAM, box))
    credited = 0
    for user, value in claims.items():
        if await w.redis.exists(w.keys.box_credited(user.decode(), box)):
            credited += int(value.decode().strip("[]").split(",")[1])
    return int(fields[b"coins"]) - credited


async def _total(w: World, users: list[str]) -> int:
    return sum([await w.coins(u) for u in users])


def test_shares_split_by_claim_order() -> None:
    assert [share_of(101, 4, i) for i in range(1, 5)] == [26, 25, 25, 25]
    assert sum(share_of(100, 7, i) for i in range(1, 8)) == 100
    for n, k in [(100, 1), (100, 100), (12345, 37), (10**12, 99)]:
        shares = [share_of(n, k, i) for i in range(1, k + 1)]
        assert sum(shares) == n and max(shares) - min(shares) <= 1
    with pytest.raises(ValueError):
        share_of(100, 4, 5)


async def test_101_coins_for_4_winners_pay_26_25_25_25_in_claim_order(world: World) -> None:
    w = world
    users = ["drop", "a", "b", "c", "d"]
    await _funded(w, *users)
    before = await _total(w, users)
    drop = await w.drop("drop", "b1", 101, 4)
    box = box_id_of(drop.event)
    assert await w.coins("drop") == 350 - 101
    got = [await w.claim(u, box) for u in ["a", "b", "c", "d"]]
    assert [s for s, _ in got] == [26, 25, 25, 25]
    assert [b for _, b in got] == [376, 375, 375, 375]
    with pytest.raises(BoxClosed):  # K claims taken
        await w.claim("drop", box)
    await w.close(box)
    assert await w.coins("drop") == 249  # nothing to return
    assert await _total(w, users) == before
    entries = await outbox_entries(w.redis, w.keys)
    claims = of_type(entries, "box_claim")
    assert sorted(int(e["coins"]) for e in claims) == [25, 25, 25, 26]
    (back,) = of_type(entries, "box_return")
    assert (back["coins"], back["claimed"], back["claims"]) == ("0", "101", "4")
    closed = await w.events("box_closed")
    assert [(e["claimed"], e["returned"], e["claims"]) for e in closed] == [(101, 0, 4)]
    assert len(await w.events("box_claimed")) == 4
    assert len(await w.events("box_dropped")) == 1


async def test_fewer_claimers_than_winners_return_the_rest(world: World) -> None:
    w = world
    users = ["drop", "a", "b"]
    await _funded(w, *users)
    before = await _total(w, users)
    drop = await w.drop("drop", "b1", 100, 4)
    box = box_id_of(drop.event)
    assert await _total(w, users) + await _in_box(w, box) == before  # all 100 in the box
    assert [(await w.claim(u, box))[0] for u in ["a", "b"]] == [25, 25]
    assert await _in_box(w, box) == 50
    assert await _total(w, users) + await _in_box(w, box) == before  # mid-flight
    await w.close(box)
    assert await _in_box(w, box) == 0 and await _total(w, users) == before
    assert await w.coins("drop") == 350 - 100 + 50
    (closed,) = await w.events("box_closed")
    assert (closed["claimed"], closed["returned"]) == (50, 50)
    with pytest.raises(BoxClosed):  # sealed: no claim after the close, whatever the clock
        await w.claim("late", box)


async def test_no_claimer_returns_everything(world: World) -> None:
    w = world
    await _funded(w, "drop")
    drop = await w.drop("drop", "b1", 300, 10)
    await w.close(box_id_of(drop.event))
    assert await w.coins("drop") == 350
    (back,) = of_type(await outbox_entries(w.redis, w.keys), "box_return")
    assert back["coins"] == "300"


async def test_one_claim_per_user_and_the_same_id_replays(world: World) -> None:
    w = world
    await _funded(w, "drop", "a")
    box = box_id_of((await w.drop("drop", "b1", 100, 3)).event)
    first = await w.boxes.claim(STREAM, box, "a", "A", "k1")
    again = await w.boxes.claim(STREAM, box, "a", "A", "k1")
    assert (again.share, again.order, again.balance) == (first.share, first.order, first.balance)
    assert again.replayed and not first.replayed
    with pytest.raises(AlreadyClaimed):
        await w.boxes.claim(STREAM, box, "a", "A", "k2")
    assert await w.coins("a") == 350 + 34
    assert len(of_type(await outbox_entries(w.redis, w.keys), "box_claim")) == 1
    await w.close(box)
    # After the close the same id still gets its answer; another is refused.
    assert (await w.boxes.claim(STREAM, box, "a", "A", "k1")).share == 34
    with pytest.raises(AlreadyClaimed):
        await w.boxes.claim(STREAM, box, "a", "A", "k3")
    assert await w.coins("a") == 384
    assert await w.coins("drop") == 350 - 100 + 66


async def test_claims_before_open_of_unknown_boxes_and_bad_drops_change_nothing(
    world: World,
) -> None:
    w = world
    await _funded(w, "drop", "a")
    box = box_id_of((await w.drop("drop", "b1", 100, 3, opens_in_s=60, open_now=False)).event)
    state = await snapshot(w.redis, w.keys.prefix)
    with pytest.raises(BoxNotOpen):
        await w.claim("a", box)
    with pytest.raises(UnknownBox):
        await w.claim("a", "q0000nosuchbox")
    with pytest.raises(BadRequest):
        await w.claim("a", "bad box id")
    bad_drops: list[tuple[object, object, object]] = [
        (99, 3, 10), (100, 0, 10), (100, 101, 10), (100, 3, 9), (100, 3, 301), (True, 3, 10),
        (100, 3.0, 10), (2**63, 3, 10), (-1, 3, 10), ("100", 3, 10),
    ]  # fmt: skip
    for bad in bad_drops:
        with pytest.raises(BadRequest):
            price_box(*bad)
    assert await snapshot(w.redis, w.keys.prefix) == state


async def test_the_same_drop_id_with_other_parameters_conflicts(world: World) -> None:
    w = world
    await _funded(w, "drop")
    await w.drop("drop", "b1", 100, 3)
    with pytest.raises(Conflict):
        await w.drop("drop", "b1", 100, 4)
    again = await w.drop("drop", "b1", 100, 3)  # a retry: the same drop, debited once
    assert await w.coins("drop") == 250
    assert len(of_type(await outbox_entries(w.redis, w.keys), "spend")) == 1
    assert params_of(again.item, again.coins).winners == 3


async def test_claims_racing_from_many_tasks_credit_at_most_k_and_every_coin_once(
    world: World,
) -> None:
    w = world
    claimers = [f"v{i}" for i in range(40)]
    await _funded(w, "drop")
    before = await _total(w, ["drop", *claimers])
    box = box_id_of((await w.drop("drop", "b1", 100, 7)).event)

    async def claim(u: str) -> int | None:
        try:
            return (await w.claim(u, box, "c"))[0]
        except BoxClosed:
            return None

    shares = await asyncio.gather(*(claim(u) for u in claimers * 2))  # each twice, same id
    won = [s for s in shares if s is not None]
    assert len(won) == 14  # 7 winners, each answered twice
    assert sorted(won) == sorted([15, 15, 14, 14, 14, 14, 14] * 2)
    await asyncio.gather(w.close(box), w.close(box))
    assert await _total(w, ["drop", *claimers]) == before
    assert await w.coins("drop") == 250
    assert len(of_type(await outbox_entries(w.redis, w.keys), "box_claim")) == 7


async def test_a_drop_whose_process_died_before_the_box_existed_is_created_by_the_repair(
    world: World,
) -> None:
    w = world
    await _funded(w, "drop", "a")
    drop = await w.drop("drop", "b1", 100, 2, settle=False)  # debited; the hub died here
    box = box_id_of(drop.event)
    with pytest.raises(BoxMissing):
        await w.boxes.open(f"{STREAM}|{box}")
    with pytest.raises(BoxMissing):
        await w.close(box)
    with pytest.raises(UnknownBox):
        await w.claim("a", box)
    await w.rooms.emit_spends([drop], not_after=int(time.time() * 1000) + 60_000)  # the repair
    await w.rooms.emit_spends([drop], not_after=int(time.time() * 1000) + 60_000)  # and again
    assert len(await w.events("box_dropped")) == 1
    await w.boxes.open(f"{STREAM}|{box}")
    await w.boxes.open(f"{STREAM}|{box}")
    assert len(await w.events("box_opened")) == 1
    assert (await w.claim("a", box))[0] == 50
    await w.close(box)
    assert await w.coins("drop") == 300 and await w.coins("a") == 400


async def test_a_claim_recorded_but_never_credited_is_credited_once_by_the_close(
    world: World,
) -> None:
    w = world
    await _funded(w, "drop", "a", "b")
    box = box_id_of((await w.drop("drop", "b1", 101, 2)).event)
    k = w.keys
    # Only the claim script runs: the process died before crediting and emitting.
    for user in ["a", "b"]:
        status, *_ = await w.boxes._scripts.run(
            "box_claim", [k.box(STREAM, box), k.box_claims(STREAM, box)], [user, "k1", user]
        )
        assert status == "ok"
    assert await w.coins("a") == 350
    assert await _in_box(w, box) == 101  # recorded, not credited: still in the box
    assert await _total(w, ["drop", "a", "b"]) + 101 == 3 * 350
    await w.close(box)
    await w.close(box)
    assert (await w.coins("a"), await w.coins("b")) == (350 + 51, 350 + 50)
    assert await w.coins("drop") == 350 - 101
    assert len(of_type(await outbox_entries(w.redis, w.keys), "box_claim")) == 2
    assert len(await w.events("box_claimed")) == 2
    assert len(await w.events("box_closed")) == 1


async def test_a_close_cut_half_way_completes_once_when_run_again(world: World) -> None:
    w = world
    users = ["drop", "a", "b", "c"]
    await _funded(w, *users)
    before = await _total(w, users)
    box = box_id_of((await w.drop("drop", "b1", 100, 5)).event)
    k = w.keys
    await w.claim("a", box)  # recorded, credited, shown
    for u in ["b", "c"]:  # recorded only: their processes died before crediting
        await w.boxes._scripts.run(
            "box_claim", [k.box(STREAM, box), k.box_claims(STREAM, box)], [u, "k1", u]
        )

    # The close died after sealing and crediting b (not c), before the return.
    await w.window_over(box)
    await w.boxes._scripts.run_raw("box_seal", [k.box(STREAM, box), k.box_claims(STREAM, box)], [])
    credit_b = credit_call(
        k, BoxClaimArgs(user="b", box=box, stream=STREAM, dropper="drop", order=2, coins=20),
        claim_event_id(box, "b"), w.clock.ms,
    )  # fmt: skip
    await w.boxes._scripts.run(credit_b.name, credit_b.keys, credit_b.args)
    assert (await w.coins("a"), await w.coins("b"), await w.coins("c")) == (370, 370, 350)
    with pytest.raises(BoxClosed):
        await w.claim("late", box)
    assert await w.coins("drop") == 250
    # Two processes run the deadline at once, then a third run later.
    await asyncio.gather(w.close(box), w.close(box))
    await w.close(box)
    assert await w.coins("drop") == 250 + 40
    assert (await w.coins("a"), await w.coins("b"), await w.coins("c")) == (370, 370, 370)
    assert await _total(w, users) == before
    entries = await outbox_entries(w.redis, w.keys)
    assert len(of_type(entries, "box_return")) == 1 and len(of_type(entries, "box_claim")) == 3
    assert len(await w.events("box_closed")) == 1
    assert sorted(e["user"] for e in await w.events("box_claimed")) == ["a", "b", "c"]
    assert await w.redis.hget(k.box(STREAM, box), "state") == b"settled"


async def test_a_drop_schedules_its_open_and_close_and_they_wait_for_redis_time(
    world: World,
) -> None:
    w = world
    await _funded(w, "drop")
    drop = await w.drop("drop", "b1", 100, 2, opens_in_s=20, open_now=False)
    box = box_id_of(drop.event)
    (o, o_due), (c, c_due) = drop_tasks(STREAM, drop.event, drop.ts, drop.item, drop.coins)
    assert (o, c) == (f"box_open|{STREAM}|{box}", f"box_close|{STREAM}|{box}")
    assert (o_due, c_due) == (drop.ts + 20_000, drop.ts + 50_000)
    due = await w.redis.zrange(w.keys.due(), 0, -1, withscores=True)
    assert {(m.decode(), int(s)) for m, s in due} == {(o, o_due), (c, c_due)}
    # A runner whose clock is ahead of Redis's runs them too early: not yet.
    with pytest.raises(NotYet) as opening:
        await w.boxes.open(f"{STREAM}|{box}")
    assert opening.value.due_ms == o_due
    with pytest.raises(NotYet) as closing:
        await w.boxes.close(f"{STREAM}|{box}")
    assert closing.value.due_ms == c_due
    assert await w.events("box_opened") == [] and await w.coins("drop") == 250
    assert await w.redis.hget(w.keys.box(STREAM, box), "state") == b"open"


async def test_the_deadline_runner_opens_and_closes_a_box_once(
    world: World, redis: Redis, keys: Keys, catalog: Catalog
) -> None:
    from gifting.store.deadlines import DeadlineRunner, Deadlines
    from gifting.store.due_tasks import DueContext, due_handlers

    w = world
    await _funded(w, "drop", "a")
    drop = await w.drop("drop", "b1", 100, 2)  # open now
    box = box_id_of(drop.event)
    await w.claim("a", box)
    await w.window_over(box)  # the window is over: the close is due now
    deadlines = Deadlines(redis, keys)
    await deadlines.schedule(f"box_close|{STREAM}|{box}", int(time.time() * 1000) - 1)
    ctx = DueContext(redis, keys, catalog, w.rooms, w.ledger, deadlines, combo_window_ms=3000)
    # Two runners (two processes) at once.
    runners = [DeadlineRunner(Deadlines(redis, keys), due_handlers(ctx)) for _ in range(2)]
    done = sum(await asyncio.gather(*(r.run_due() for r in runners)))
    assert done == 2  # the open and the close, each run by one of them
    assert len(await w.events("box_opened")) == 1
    assert len(await w.events("box_closed")) == 1
    assert await w.coins("drop") == 300 and await w.coins("a") == 400
    assert await redis.zcard(keys.due()) == 0
    for r in runners:
        await r.deadlines.aclose()
    await deadlines.aclose()


async def test_a_box_drop_counts_as_shown_so_the_streams_end_need_not_wait(
    world: World, redis: Redis, keys: Keys, catalog: Catalog
) -> None:
    from gifting.store.streams import Streams

    w = world
    streams = Streams(redis, keys, catalog)
    stream = (await streams.create("host", "Host", "boxes")).stream
    await _funded(w, "drop")
    order = SpendOrder("drop", "Drop", "b1", price_box(100, 2, 10), stream, "host")
    result = await w.ledger.spend(order, live=True)
    await w.rooms.emit_spend(spend_entry(order, result, w.clock.ms))
    assert await streams.debited(stream) == 1
    assert await streams.shown(stream) == 1  # else the end would wait for it in vain
    assert await streams.wait_shown(stream, 0.1)
