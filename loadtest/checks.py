"""The end-of-run checks: every acked gift debited, delivered and persisted exactly once.

After the generators are done (every reply in, every overlay drained),
:func:`verify` compares, for the run's viewers and rooms:

1. every reply against the wallet model (:mod:`loadtest.model`): acks,
   balances, replays of retried ids, refusals of bad frames and of spends the
   balance did not cover;
2. acked spends (distinct event ids) = debits: each viewer's Redis balance is
   what its model says (funded - the coins of its acked gifts);
3. each overlay saw each acked gift of its room exactly once, every event in
   seq order with no gap;
4. once the persister has caught up, the PostgreSQL spend events of the run's
   streams are exactly the acked events (count, coins and a hash of the ids);
5. ``gifting audit`` (:func:`gifting.persister.audit.run_audit`) passes.

Any failure makes the run fail; :class:`Verification` renders what broke.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from redis.asyncio import Redis

from gifting.core.catalog import load_catalog
from gifting.persister.audit import run_audit
from gifting.persister.progress import wait_caught_up
from gifting.store.cluster import connect
from gifting.store.keys import Keys
from loadtest.plan import RoomInfo, WorkerResult, event_hash

__all__ = ["Check", "RoomTotals", "Verification", "room_totals", "summary", "verify"]

_SHOWN = 8


@dataclass
class Check:
    """One check: its name, whether it held, and what was compared."""

    name: str
    ok: bool
    detail: str = ""


@dataclass
class RoomTotals:
    """The first acks of one room over all generator processes."""

    acks: int = 0
    coins: int = 0
    hash_sum: int = 0
    events: set[str] = field(default_factory=set)


@dataclass
class Verification:
    """All checks of a run and the headline equality."""

    checks: list[Check] = field(default_factory=list)
    acked: int = 0
    acked_coins: int = 0
    debited_coins: int = 0
    overlays_ok: int = 0
    persisted: int | None = None
    overlay_deliveries: list[int] = field(default_factory=list)
    persister_catch_up_s: float | None = None
    audit: str = ""
    #: The engagement mix's figures (loadtest.engagement), when it ran.
    engagement: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """Whether every check held."""
        return all(c.ok for c in self.checks)

    def add(self, name: str, ok: bool, detail: str = "") -> None:
        """Record one check."""
        self.checks.append(Check(name, ok, detail))

    def headline(self) -> str:
        """acked = debited = delivered to each overlay = persisted, in one line."""
        overlays = len(self.overlay_deliveries)
        return (
            f"acked spends {self.acked} ({self.acked_coins} coins) | debited "
            f"{self.debited_coins} coins in the wallets | {self.overlays_ok}/{overlays} overlays "
            f"saw every acked gift of their room once | persisted {self.persisted}"
        )

    def render(self) -> str:
        """One line per check, failures with their detail."""
        lines = [f"checks: {'PASSED' if self.ok else 'FAILED'}"]
        for c in self.checks:
            mark = "ok  " if c.ok else "FAIL"
            lines.append(f"  [{mark}] {c.name}" + (f": {c.detail}" if c.detail else ""))
        return "\n".join(lines)


def room_totals(results: Sequence[WorkerResult]) -> dict[int, RoomTotals]:
    """The first acks of each room over all processes."""
    rooms: dict[int, RoomTotals] = {}
    for r in results:
        for room, acks in r.acked.items():
            t = rooms.setdefault(room, RoomTotals())
            for event, coins in acks:
                t.acks += 1
                t.coins += coins
                t.hash_sum += event_hash(event)
                t.events.add(event)
    return rooms


def _check_replies(v: Verification, results: Sequence[WorkerResult]) -> None:
    mismatches = sum(r.mismatches for r in results)
    examples = [e for r in results for e in r.mismatch_examples][:_SHOWN]
    v.add(
        "every reply matched the wallet model (acks, balances, retries, refusals)",
        mismatches == 0,
        f"{mismatches} mismatches: " + "; ".join(examples) if mismatches else "",
    )
    unanswered = sum(r.unanswered for r in results)
    v.add(
        "every frame sent got its reply",
        unanswered == 0,
        f"{unanswered} frames still unanswered at the end" if unanswered else "",
    )


async def _check_wallets(
    v: Verification, results: Sequence[WorkerResult], redis: Redis, keys: Keys
) -> None:
    wallets = [w for r in results for w in r.wallets]
    pipe = redis.pipeline(transaction=False)
    for w in wallets:
        pipe.hget(keys.wallet(w.user), "coins")
    found = [int(x or 0) for x in await pipe.execute()]
    wrong = [
        f"{w.user}: redis {have}, funded {w.funded} - acked {w.debited} = "
        f"{w.funded - w.debited} (model balance {w.balance})"
        for w, have in zip(wallets, found, strict=True)
        if have != w.funded - w.debited
    ]
    v.debited_coins = sum(w.funded - have for w, have in zip(wallets, found, strict=True))
    model_debits = sum(w.debited for w in wallets)
    detail = ""
    if wrong:
        detail = f"{len(wrong)} wallets differ: " + "; ".join(wrong[:_SHOWN])
    elif not v.debited_coins == model_debits == v.acked_coins:
        detail = (
            f"debited {v.debited_coins} coins, the acks say {model_debits} (rooms: {v.acked_coins})"
        )
    v.add("debits: every viewer's Redis balance = funded - its acked gifts", not detail, detail)


def _check_overlays(
    v: Verification, results: Sequence[WorkerResult], rooms: dict[int, RoomTotals]
) -> None:
    bad: list[str] = []
    for r in results:
        for o in r.overlays:
            want = rooms.get(o.room, RoomTotals())
            v.overlay_deliveries.append(o.gifts)
            problems = []
            if o.gifts != want.acks or o.gift_hash_sum != want.hash_sum:
                problems.append(f"saw {o.gifts} gifts of {want.acks} acked")
            if o.duplicates:
                problems.append(f"{o.duplicates} duplicates")
            if o.out_of_order:
                problems.append(f"{o.out_of_order} out of seq order")
            if o.gaps:
                problems.append(f"{o.gaps} seq gaps")
            if o.errors:
                problems.append("errors: " + ", ".join(o.errors[:3]))
            if not problems:
                v.overlays_ok += 1
            else:
                bad.append(f"room {o.room} overlay {o.number}: " + ", ".join(problems))
    v.add(
        "each overlay saw each acked gift of its room exactly once, in seq order",
        not bad,
        "; ".join(bad[:_SHOWN]),
    )


async def _check_persisted(
    v: Verification,
    pool: asyncpg.Pool,
    streams: list[str],
    rooms: dict[int, RoomTotals],
) -> None:
    row = await pool.fetchrow(
        """
        SELECT COUNT(*) AS n, COALESCE(SUM((payload->>'coins')::bigint), 0)::bigint AS coins,
               COALESCE(SUM(('x' || substr(md5(event_id), 1, 16))::bit(64)::bigint), 0) AS h
        FROM ledger_events WHERE type = 'spend' AND stream_id = ANY($1::text[])
        """,
        streams,
    )
    assert row is not None
    n, coins, h = int(row["n"]), int(row["coins"]), int(row["h"])
    v.persisted = n
    want_n = sum(t.acks for t in rooms.values())
    want_coins = sum(t.coins for t in rooms.values())
    want_h = sum(t.hash_sum for t in rooms.values())
    ok = n == want_n and coins == want_coins and h == want_h
    detail = ""
    if not ok:
        ids = {
            str(r["event_id"])
            for r in await pool.fetch(
                "SELECT event_id FROM ledger_events WHERE type = 'spend' "
                "AND stream_id = ANY($1::text[])",
                streams,
            )
        }
        acked = set().union(*(t.events for t in rooms.values())) if rooms else set()
        missing, extra = sorted(acked - ids), sorted(ids - acked)
        detail = (
            f"PostgreSQL has {n} spends ({coins} coins), acked {want_n} ({want_coins} coins); "
            f"missing {len(missing)} {missing[:_SHOWN]}, unexpected {len(extra)} {extra[:_SHOWN]}"
        )
    v.add("persisted: PostgreSQL spend events = the acked spends", ok, detail)


def with_extra(
    rooms: dict[int, RoomTotals], extra: Mapping[int, Mapping[str, int]]
) -> dict[int, RoomTotals]:
    """``rooms`` plus other acked spends (event -> coins per room index), as new totals."""
    out = {i: dataclasses.replace(t, events=set(t.events)) for i, t in rooms.items()}
    for room, spends in extra.items():
        t = out.setdefault(room, RoomTotals())
        for event, coins in spends.items():
            t.acks += 1
            t.coins += coins
            t.hash_sum += event_hash(event)
            t.events.add(event)
    return out


async def verify(
    results: Sequence[WorkerResult],
    rooms_info: Sequence[RoomInfo],
    *,
    redis_url: str,
    database_url: str,
    key_prefix: str,
    catch_up_timeout_s: float = 60.0,
    extra_gifts: Mapping[int, Mapping[str, int]] | None = None,
    extra_spends: Mapping[int, Mapping[str, int]] | None = None,
) -> Verification:
    """Run every check of the module docstring; never raises on a failed check.

    ``extra_gifts``: gifts acked to others than the generators in the run's
    rooms (the engagement mix's), per room index: each overlay must show them
    too, and PostgreSQL hold them. ``extra_spends``: other acked spends in the
    rooms that overlays do not count as gifts (box drops): PostgreSQL only.
    """
    v = Verification()
    rooms = room_totals(results)
    shown = with_extra(rooms, extra_gifts or {})
    spent = with_extra(shown, extra_spends or {})
    v.acked = sum(t.acks for t in rooms.values())
    v.acked_coins = sum(t.coins for t in rooms.values())
    distinct = len(set().union(*(t.events for t in rooms.values()))) if rooms else 0
    first_acks = sum(r.new_acks for r in results)
    v.add(
        "acked spends are distinct: one event id per first ack",
        distinct == v.acked == first_acks,
        "" if distinct == v.acked == first_acks else f"{first_acks} first acks, {distinct} ids",
    )
    _check_replies(v, results)
    _check_overlays(v, results, shown)
    keys = Keys(key_prefix)
    redis = connect(redis_url)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    assert pool is not None
    try:
        await _check_wallets(v, results, redis, keys)
        started = time.monotonic()
        caught_up = await wait_caught_up(redis, keys, catch_up_timeout_s)
        v.persister_catch_up_s = round(time.monotonic() - started, 3)
        v.add(
            "the persister caught up (nothing pending in the outboxes)",
            caught_up,
            "" if caught_up else f"still behind after {catch_up_timeout_s:.0f}s",
        )
        await _check_persisted(v, pool, [r.stream for r in rooms_info], spent)
        catalog = load_catalog(os.environ.get("GIFTING_CATALOG") or None)
        report = await run_audit(pool, redis, keys, catalog)
        v.audit = report.render()
        failed = [c.name for c in report.checks if not c.ok]
        v.add("gifting audit passes", report.ok, "; ".join(failed))
    finally:
        await pool.close()
        await redis.aclose()
    return v


def summary(v: Verification) -> dict[str, Any]:
    """The verification as JSON-friendly data."""
    return {
        "ok": v.ok,
        "headline": v.headline(),
        "acked": v.acked,
        "acked_coins": v.acked_coins,
        "overlays_ok": v.overlays_ok,
        "debited_coins": v.debited_coins,
        "persisted": v.persisted,
        "overlay_gifts": v.overlay_deliveries,
        "persister_catch_up_s": v.persister_catch_up_s,
        "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in v.checks],
    }
