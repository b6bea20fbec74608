"""Helpers of the persister tests: traffic through the real Ledger, and exactly-once checks."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable
from dataclasses import dataclass, field

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from gifting.core.catalog import Catalog
from gifting.core.errors import GiftingError
from gifting.core.ids import credit_event_id
from gifting.core.pricing import price_badge, price_effect, price_gift
from gifting.persister.audit import AuditReport, run_audit
from gifting.persister.progress import last_ids, wait_caught_up
from gifting.store.keys import Keys
from gifting.store.ledger import Ledger, SpendOrder


@dataclass
class Traffic:
    """What a traffic run got acknowledged (event ids of settled operations)."""

    events: set[str] = field(default_factory=set)
    spends_to_creators: set[str] = field(default_factory=set)
    failures: int = 0

    def expected(self) -> set[str]:
        """Every event the ledger must hold: the acked ones and one credit per creator spend."""
        return self.events | {credit_event_id(e) for e in self.spends_to_creators}


async def outbox_events(redis: Redis, keys: Keys) -> dict[str, dict[str, str]]:
    """Every entry still in the outbox streams, by event id."""
    out: dict[str, dict[str, str]] = {}
    for stream in keys.outboxes():
        for _id, fields in await redis.xrange(stream):
            f = {k.decode(errors="replace"): v.decode(errors="replace") for k, v in fields.items()}
            if "event" in f:
                out[f["event"]] = f
    return out


async def persisted(pool: asyncpg.Pool) -> dict[str, str]:
    """Every persisted ledger event id and its type."""
    return {
        r["event_id"]: r["type"]
        for r in await pool.fetch("SELECT event_id, type FROM ledger_events")
    }


async def caught_up(redis: Redis, keys: Keys, timeout: float = 20.0) -> None:
    """Wait for the persister group to have consumed everything, or fail the test."""
    assert await wait_caught_up(redis, keys, timeout), "the persister did not catch up"


async def assert_exactly_once(
    pool: asyncpg.Pool, redis: Redis, keys: Keys, catalog: Catalog, expected: Iterable[str]
) -> AuditReport:
    """Every expected event is persisted (ids are unique by construction), and the audit passes.

    The audit proves nothing was posted twice: Redis balances equal the
    balances derived from the postings, and every per-stream and per-creator
    aggregate equals what the postings say.
    """
    have = await persisted(pool)
    missing = set(expected) - set(have)
    assert not missing, f"{len(missing)} events lost, e.g. {sorted(missing)[:3]}"
    report = await run_audit(pool, redis, keys, catalog)
    assert report.ok, report.render()
    return report


async def spend_gift(
    ledger: Ledger,
    catalog: Catalog,
    traffic: Traffic,
    sender: str,
    creator: str,
    stream: str,
    gift: str = "rose",
    count: int = 1,
    *,
    hub_credit: bool = False,
) -> None:
    """One gift through the ledger; the hub's credit only when ``hub_credit``."""
    priced = price_gift(catalog, gift, count)
    order = SpendOrder(
        sender, sender.title(), f"m{random.getrandbits(48):x}", priced, stream, creator
    )
    try:
        result = await ledger.spend(order, live=True)
    except GiftingError:
        traffic.failures += 1
        return
    traffic.events.add(result.event)
    traffic.spends_to_creators.add(result.event)
    if hub_credit:
        await ledger.credit_creator(
            spend_event=result.event,
            creator=creator,
            coins=priced.coins,
            stream=stream,
            sender=sender,
        )


async def storm(
    ledger: Ledger,
    catalog: Catalog,
    redis: Redis,
    keys: Keys,
    *,
    viewers: int = 30,
    creators: int = 4,
    spends: int = 2400,
    tasks: int = 48,
    seed: int = 7,
) -> Traffic:
    """Thousands of purchases, spends, refunds and cash-outs from many concurrent tasks."""
    rng = random.Random(seed)
    traffic = Traffic()
    viewer_ids = [f"v{i}" for i in range(viewers)]
    creator_ids = [f"cr{i}" for i in range(creators)]
    streams = {c: f"s-{c}" for c in creator_ids}
    purchases: list[str] = []

    async def buy(user: str, n: int) -> None:
        pid = f"p-{user}-{n}-{rng.getrandbits(32):x}"
        result = await ledger.purchase(pid, user, "coins_7000", 9999, "USD")
        purchases.append(pid)
        traffic.events.add(await _purchase_event(redis, keys, user, pid))
        assert result.coins == 7000

    await asyncio.gather(*(buy(u, n) for u in viewer_ids for n in range(3)))

    gifts = ["rose", "finger_heart", "rosa", "perfume", "cap", "hand_hearts", "money_gun"]
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(spends):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            sender = rng.choice(viewer_ids)
            creator = rng.choice(creator_ids)
            roll = i % 20
            if roll == 0:
                await _other_spend(ledger, catalog, traffic, sender, "badge", "supporter")
            elif roll == 1:
                await _other_spend(
                    ledger,
                    catalog,
                    traffic,
                    sender,
                    "effect",
                    "confetti",
                    creator,
                    streams[creator],
                )
            else:
                await spend_gift(
                    ledger,
                    catalog,
                    traffic,
                    sender,
                    creator,
                    streams[creator],
                    rng.choice(gifts),
                    rng.randint(1, 3),
                    hub_credit=i % 2 == 0,
                )
            if i % 300 == 150:
                pid = rng.choice(purchases)
                refund = await ledger.refund(pid)
                if not refund.replayed:
                    traffic.events.add(await _refund_event(redis, keys, refund.user, pid))

    await asyncio.gather(*(worker() for _ in range(tasks)))
    return traffic


async def _other_spend(
    ledger: Ledger,
    catalog: Catalog,
    traffic: Traffic,
    sender: str,
    kind: str,
    item: str,
    creator: str = "",
    stream: str = "",
) -> None:
    priced = price_badge(catalog, item) if kind == "badge" else price_effect(catalog, item)
    order = SpendOrder(
        sender, sender.title(), f"m{random.getrandbits(48):x}", priced, stream, creator
    )
    try:
        result = await ledger.spend(order, live=True)
    except GiftingError:
        traffic.failures += 1
        return
    traffic.events.add(result.event)
    if creator:
        traffic.spends_to_creators.add(result.event)


async def _purchase_event(redis: Redis, keys: Keys, user: str, purchase_id: str) -> str:
    raw = await redis.hget(keys.purchase(user, purchase_id), "event")
    assert raw is not None
    return str(raw.decode())


async def _refund_event(redis: Redis, keys: Keys, user: str, purchase_id: str) -> str:
    raw = await redis.hget(keys.purchase(user, purchase_id), "refund_event")
    assert raw is not None
    return str(raw.decode())


async def cash_out_all(
    ledger: Ledger,
    catalog: Catalog,
    creators: Iterable[str],
    traffic: Traffic,
    redis: Redis,
    keys: Keys,
) -> int:
    """Each creator with enough diamonds cashes out twice: one paid, one failed."""
    done = 0
    unit = catalog.cashout_min_diamonds
    for i, creator in enumerate(creators):
        wallet = await ledger.wallet(creator)
        if wallet.diamonds < 2 * unit:
            continue
        for outcome in ("paid", "failed"):
            cashout = await ledger.request_cashout(creator, unit, f"req-{i}-{outcome}")
            traffic.events.add(await _hold_event(redis, keys, cashout.cashout))
            await ledger.settle_cashout(cashout.cashout, outcome)
            done += 1
    return done


async def _hold_event(redis: Redis, keys: Keys, cashout_id: str) -> str:
    from gifting.store.cashouts import cashout_shard

    raw = await redis.hget(keys.cashout(cashout_shard(cashout_id), cashout_id), "event")
    assert raw is not None
    return str(raw.decode())


def ignore_redis_errors(exc: BaseException) -> bool:
    """True for the errors a client sees while Redis restarts (outcome unknown)."""
    return isinstance(exc, (RedisError, OSError))


async def storm_until(
    stop: asyncio.Event, ledger: Ledger, catalog: Catalog, redis: Redis, keys: Keys, seed: int
) -> int:
    """Storm round after round (each as :func:`storm`, smaller) until ``stop``; the rounds run."""
    rounds = 0
    while not stop.is_set():
        await storm(ledger, catalog, redis, keys, spends=800, tasks=16, seed=seed + rounds)
        rounds += 1
    return rounds


async def audits_under_traffic(
    ledger: Ledger,
    pool: asyncpg.Pool,
    redis: Redis,
    keys: Keys,
    catalog: Catalog,
    *,
    overlapped: int = 2,
    seed: int = 11,
    timeout_s: float = 120.0,
) -> list[tuple[AuditReport, bool]]:
    """Audit while a storm goes on, until ``overlapped`` audits had traffic all through.

    Each report comes with whether traffic moved during it (the outboxes grew,
    and the storm was still going when the audit ended). The storm goes on
    for as long as that takes, so a slow, busy machine only makes it longer.
    """
    stop = asyncio.Event()
    traffic = asyncio.create_task(storm_until(stop, ledger, catalog, redis, keys, seed))
    reports: list[tuple[AuditReport, bool]] = []
    try:
        async with asyncio.timeout(timeout_s):
            while sum(moved for _, moved in reports) < overlapped:
                before = await last_ids(redis, keys.outboxes())
                report = await run_audit(pool, redis, keys, catalog, catch_up_s=20)
                moved = await last_ids(redis, keys.outboxes()) != before
                reports.append((report, moved and not traffic.done()))
    finally:
        stop.set()
        await traffic
    return reports
