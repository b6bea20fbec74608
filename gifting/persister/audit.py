"""``gifting audit``: money conservation over the ledger, and Redis against the ledger.

Run at a quiescent point (no traffic, persister caught up — see
:func:`wait_caught_up`): every rule of docs/contract.md §2 is checked over
PostgreSQL, each side of a rule derived independently where the schema allows
(event payloads and side tables on one side, postings on the other), then
every Redis wallet is compared field by field with the balances the ledger
derives. A mismatch names the account and both figures.

Rules checked (``*`` = over all users):

1. every event's postings sum to zero per currency;
2. coins purchased − refunded = coin balances* + coins spent;
3. coins spent = coins received by creators* + coins spent on badges
   (and the per-stream / per-creator aggregates agree with the postings);
4. every spend to a creator has exactly one credit, of the same coins;
5. for each creator, diamonds earned = floor(coins received × bps / 10,000);
6. for each user, diamonds earned = diamond balance + held + paid out;
7. Redis wallets (coins, diamonds, held, paid, received, earned) = the ledger's;
8. treasure boxes: coins dropped = coins claimed + coins returned + coins in
   open boxes, per box and in the ``boxes:escrow`` account
   (:mod:`gifting.persister.box_audit`). Rule 2's coins spent then counts the
   coins in open boxes: a box's coins are spent by its dropper only until
   claimed or returned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

import asyncpg
from redis.asyncio import Redis

from gifting.core.accounts import (
    BOX_ESCROW,
    DIAMOND_ISSUANCE,
    EXTERNAL_PAYMENTS,
    PLATFORM_REVENUE,
)
from gifting.core.catalog import Catalog
from gifting.core.ids import credit_event_id
from gifting.core.money import diamonds_earned
from gifting.persister.box_audit import BoxRow, box_problems, in_flight, read_boxes
from gifting.persister.progress import (
    last_ids,
    parse_id,
    wait_caught_up,
    wait_persisted_through,
)
from gifting.persister.wallet_audit import (
    WALLET_FIELDS,
    WalletRead,
    ledger_at,
    ledger_past,
    read_wallets,
    scan_wallet_users,
    wallet_positions,
)
from gifting.persister.writer import Connection
from gifting.store.keys import Keys

__all__ = ["AuditReport", "Check", "Mismatch", "run_audit", "wait_caught_up"]

_SHOWN_PER_CHECK: Final = 50
_USER_ACCOUNT: Final = re.compile(r"(user|creator):([^:]+):(coins|diamonds|held|paid|received)")


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One broken equality: ``account`` should be ``expected`` but is ``found``."""

    account: str
    expected: int
    found: int
    note: str = ""

    def render(self) -> str:
        """One line: the account, both figures and the difference."""
        diff = self.found - self.expected
        extra = f" ({self.note})" if self.note else ""
        return (
            f"{self.account}: expected {self.expected}, found {self.found} (diff {diff:+d}){extra}"
        )


@dataclass(slots=True)
class Check:
    """One rule of the audit and what broke it."""

    name: str
    mismatches: list[Mismatch] = field(default_factory=list)
    checked: int = 0

    @property
    def ok(self) -> bool:
        """True if nothing broke the rule."""
        return not self.mismatches

    def expect(self, account: str, expected: int, found: int, note: str = "") -> None:
        """Record one comparison (a mismatch if the figures differ)."""
        self.checked += 1
        if expected != found:
            self.mismatches.append(Mismatch(account, expected, found, note))


@dataclass(slots=True)
class AuditReport:
    """The outcome of :func:`run_audit`: every check, totals, and notes."""

    checks: list[Check] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True if every check passed."""
        return all(c.ok for c in self.checks)

    @property
    def mismatches(self) -> list[Mismatch]:
        """Every mismatch of every check."""
        return [m for c in self.checks for m in c.mismatches]

    def check(self, name: str) -> Check:
        """The check called ``name`` (created on first use)."""
        for c in self.checks:
            if c.name == name:
                return c
        c = Check(name)
        self.checks.append(c)
        return c

    def render(self) -> str:
        """A readable multi-line report (failures first listed under their check)."""
        lines = [f"gifting audit: {'OK' if self.ok else 'FAILED'}"]
        lines += [f"  note: {n}" for n in self.notes]
        if self.totals:
            lines.append("totals:")
            width = max(len(k) for k in self.totals)
            lines += [f"  {k.ljust(width)}  {v:>16,d}" for k, v in self.totals.items()]
        lines.append("checks:")
        for c in self.checks:
            status = "ok  " if c.ok else "FAIL"
            lines.append(
                f"  [{status}] {c.name} ({c.checked} compared, {len(c.mismatches)} mismatched)"
            )
            for m in c.mismatches[:_SHOWN_PER_CHECK]:
                lines.append(f"         {m.render()}")
            if len(c.mismatches) > _SHOWN_PER_CHECK:
                lines.append(f"         ... and {len(c.mismatches) - _SHOWN_PER_CHECK} more")
        return "\n".join(lines)


@dataclass(slots=True)
class _Ledger:
    """Balances and per-type totals read from PostgreSQL."""

    accounts: dict[str, int]
    purchased: int
    refunded: int
    spent_creators: int
    spent_badges: int
    credited: dict[str, tuple[int, int]]  # creator -> (coins, diamonds)
    users: dict[str, dict[str, int]]
    box_dropped: int = 0
    box_claimed: int = 0
    box_returned: int = 0

    @property
    def in_boxes(self) -> int:
        """Coins dropped in treasure boxes, neither claimed nor returned (from the payloads)."""
        return self.box_dropped - self.box_claimed - self.box_returned


def _user_balances(
    accounts: dict[str, int], credited: dict[str, tuple[int, int]]
) -> dict[str, dict[str, int]]:
    users: dict[str, dict[str, int]] = {}
    for account, amount in accounts.items():
        match = _USER_ACCOUNT.fullmatch(account)
        if match is None:
            continue
        _, user, what = match.groups()
        users.setdefault(user, dict.fromkeys(WALLET_FIELDS, 0))[what] = amount
    for creator, (_, diamonds) in credited.items():
        users.setdefault(creator, dict.fromkeys(WALLET_FIELDS, 0))["earned"] = diamonds
    return users


async def _read_ledger(conn: Connection) -> _Ledger:
    rows = await conn.fetch(
        "SELECT account, currency, SUM(amount)::bigint AS balance FROM postings "
        "GROUP BY account, currency"
    )
    accounts = {f"{r['account']}": int(r["balance"]) for r in rows}
    sums = await conn.fetchrow(
        """
        SELECT
          COALESCE(SUM((payload->>'coins')::bigint) FILTER (WHERE type = 'purchase'), 0) AS p,
          COALESCE(SUM((payload->>'coins')::bigint) FILTER (WHERE type = 'refund'), 0) AS r,
          COALESCE(SUM((payload->>'coins')::bigint)
                   FILTER (WHERE type = 'spend' AND payload->>'creator' <> ''), 0) AS sc,
          COALESCE(SUM((payload->>'coins')::bigint)
                   FILTER (WHERE type = 'spend' AND payload->>'creator' = ''
                           AND payload->>'kind' <> 'box'), 0) AS sb,
          COALESCE(SUM((payload->>'coins')::bigint)
                   FILTER (WHERE type = 'spend' AND payload->>'kind' = 'box'), 0) AS bd,
          COALESCE(SUM((payload->>'coins')::bigint) FILTER (WHERE type = 'box_claim'), 0) AS bc,
          COALESCE(SUM((payload->>'coins')::bigint) FILTER (WHERE type = 'box_return'), 0) AS br
        FROM ledger_events
        """
    )
    assert sums is not None
    credit_rows = await conn.fetch(
        """
        SELECT user_id, SUM((payload->>'coins')::bigint)::bigint AS coins,
               SUM((payload->>'diamonds')::bigint)::bigint AS diamonds
        FROM ledger_events WHERE type = 'credit' GROUP BY user_id
        """
    )
    credited = {str(r["user_id"]): (int(r["coins"]), int(r["diamonds"])) for r in credit_rows}
    return _Ledger(
        accounts,
        int(sums["p"]),
        int(sums["r"]),
        int(sums["sc"]),
        int(sums["sb"]),
        credited,
        _user_balances(accounts, credited),
        int(sums["bd"]),
        int(sums["bc"]),
        int(sums["br"]),
    )


def _sum_where(accounts: dict[str, int], prefix: str, suffix: str) -> int:
    return sum(v for k, v in accounts.items() if k.startswith(prefix) and k.endswith(suffix))


async def _check_postings_balanced(conn: Connection, report: AuditReport) -> None:
    check = report.check("every event's postings sum to zero per currency")
    check.checked = int(await conn.fetchval("SELECT COUNT(*) FROM ledger_events"))
    rows = await conn.fetch(
        "SELECT event_id, currency, SUM(amount)::bigint AS s FROM postings "
        "GROUP BY event_id, currency HAVING SUM(amount) <> 0 ORDER BY event_id LIMIT 1000"
    )
    for r in rows:
        account = f"event {r['event_id']} ({r['currency']})"
        check.mismatches.append(Mismatch(account, 0, int(r["s"])))


def _check_coins(led: _Ledger, report: AuditReport) -> None:
    a = led.accounts
    balances = _sum_where(a, "user:", ":coins")
    spent = led.spent_creators + led.spent_badges
    report.totals.update(
        {
            "coins purchased": led.purchased,
            "coins refunded": led.refunded,
            "coin balances": balances,
            "coins spent": spent,
            "coins spent on badges": led.spent_badges,
        }
    )
    if led.box_dropped:
        report.totals["coins in open boxes"] = led.in_boxes
    c = report.check("coins purchased - refunded = coin balances + coins spent")
    c.expect("coins (all users)", led.purchased - led.refunded, balances + spent + led.in_boxes)
    c.expect(EXTERNAL_PAYMENTS, -(led.purchased - led.refunded), a.get(EXTERNAL_PAYMENTS, 0))
    received = _sum_where(a, "creator:", ":received")
    report.totals["coins received by creators"] = received
    c = report.check("coins spent = coins received by creators + coins spent on badges")
    c.expect("coins spent", spent, received + a.get(PLATFORM_REVENUE, 0))
    c.expect(PLATFORM_REVENUE, led.spent_badges, a.get(PLATFORM_REVENUE, 0))
    c.expect("creator:*:received", led.spent_creators, received)


async def _check_aggregates(
    conn: Connection,
    led: _Ledger,
    report: AuditReport,
) -> None:
    c = report.check("stream totals and creator earnings agree with the ledger")
    streams = await conn.fetchval("SELECT COALESCE(SUM(coins), 0)::bigint FROM stream_totals")
    c.expect("stream_totals (all streams)", led.spent_creators, int(streams))
    rows = await conn.fetch(
        "SELECT creator_id, SUM(coins)::bigint AS coins, SUM(credited_coins)::bigint AS cc, "
        "SUM(diamonds)::bigint AS d FROM creator_earnings GROUP BY creator_id"
    )
    seen = set()
    for r in rows:
        creator = str(r["creator_id"])
        seen.add(creator)
        coins, diamonds = led.credited.get(creator, (0, 0))
        c.expect(
            f"creator_earnings:{creator}:coins",
            led.accounts.get(f"creator:{creator}:received", 0),
            int(r["coins"]),
        )
        c.expect(f"creator_earnings:{creator}:credited_coins", coins, int(r["cc"]))
        c.expect(f"creator_earnings:{creator}:diamonds", diamonds, int(r["d"]))
    for creator, (coins, diamonds) in led.credited.items():
        if creator not in seen and (coins or diamonds):
            c.expect(f"creator_earnings:{creator}:coins", coins, 0, "no earnings row")


_UNMATCHED: Final = """
WITH s AS (
  SELECT event_id, payload->>'creator' AS creator, (payload->>'coins')::bigint AS coins
  FROM ledger_events WHERE type = 'spend' AND payload->>'creator' <> ''
), c AS (
  SELECT event_id, user_id AS creator, payload->>'spend_event' AS spend_event,
         (payload->>'coins')::bigint AS coins
  FROM ledger_events WHERE type = 'credit'
)
SELECT s.event_id AS spend, c.event_id AS credit, COALESCE(s.creator, c.creator) AS creator,
       s.coins AS spend_coins, c.coins AS credit_coins, c.spend_event
FROM s FULL JOIN c ON c.spend_event = s.event_id
WHERE s.event_id IS NULL OR c.event_id IS NULL OR s.coins <> c.coins
   OR s.creator <> c.creator
ORDER BY 1, 2 LIMIT 100000
"""


@dataclass(frozen=True, slots=True)
class _Unmatched:
    """A spend to a creator and its credit, where the snapshot lacks one or they differ."""

    spend: str | None
    credit: str | None
    creator: str
    spend_coins: int | None
    credit_coins: int | None
    spend_event: str | None  # the credit's spend, as the credit names it


async def _unmatched_pairs(conn: Connection) -> list[_Unmatched]:
    rows = await conn.fetch(_UNMATCHED)
    return [
        _Unmatched(
            r["spend"],
            r["credit"],
            str(r["creator"]),
            None if r["spend_coins"] is None else int(r["spend_coins"]),
            None if r["credit_coins"] is None else int(r["credit_coins"]),
            r["spend_event"],
        )
        for r in rows
    ]


async def _settle_in_flight(
    pool: asyncpg.Pool,
    redis: Redis,
    keys: Keys,
    unmatched: list[_Unmatched],
    catch_up_s: float,
) -> set[str]:
    """The event ids missing from the snapshot that are in the ledger once it caught up.

    A spend and its credit live in two shards' outboxes, persisted
    independently: the snapshot may hold one without the other. Both were
    applied in Redis before either was persisted (the hub credits right after
    the debit; the persister repairs a credit before it writes the spend), so
    once every outbox is persisted through the id it last generated, a
    missing half is in the ledger or lost.
    """
    wanted = sorted(set(_missing_halves(unmatched)))
    if not wanted:
        return set()
    await wait_persisted_through(redis, keys, await last_ids(redis, keys.outboxes()), catch_up_s)
    rows = await pool.fetch(
        "SELECT event_id FROM ledger_events WHERE event_id = ANY($1::text[])", wanted
    )
    return {str(r["event_id"]) for r in rows}


def _missing_halves(unmatched: list[_Unmatched]) -> list[str]:
    out: list[str] = []
    for u in unmatched:
        if u.credit is None and u.spend is not None:
            out.append(credit_event_id(u.spend))
        elif u.spend is None and u.spend_event is not None:
            out.append(u.spend_event)
    return out


async def _check_credits(
    pool: asyncpg.Pool,
    redis: Redis,
    keys: Keys,
    led: _Ledger,
    unmatched: list[_Unmatched],
    report: AuditReport,
    catch_up_s: float,
) -> None:
    c = report.check("every spend to a creator is credited once, with its coins")
    found = await _settle_in_flight(pool, redis, keys, unmatched, catch_up_s)
    # received (spends) - credited (credits) per creator, as the snapshot holds them,
    # is the coins of the halves still in flight when it was taken.
    in_flight: dict[str, int] = {}
    flights = 0
    for u in unmatched:
        if u.spend is not None and u.credit is not None:
            c.mismatches.append(
                Mismatch(
                    f"creator:{u.creator}:received",
                    u.spend_coins or 0,
                    u.credit_coins or 0,
                    f"spend {u.spend} and its credit {u.credit} differ",
                )
            )
        elif u.spend is not None:
            if credit_event_id(u.spend) in found:
                flights += 1
                in_flight[u.creator] = in_flight.get(u.creator, 0) + (u.spend_coins or 0)
            else:
                c.mismatches.append(
                    Mismatch(
                        f"creator:{u.creator}:received",
                        u.spend_coins or 0,
                        0,
                        f"spend {u.spend} has no credit",
                    )
                )
        elif u.credit is not None:
            if u.spend_event in found:
                flights += 1
                in_flight[u.creator] = in_flight.get(u.creator, 0) - (u.credit_coins or 0)
            else:
                c.mismatches.append(
                    Mismatch(
                        f"creator:{u.creator}:received",
                        0,
                        u.credit_coins or 0,
                        f"credit {u.credit} has no spend",
                    )
                )
    if flights:
        report.notes.append(
            f"{flights} spends or credits were persisted after the snapshot "
            "(the other half of their pair was in it); each was then found in the ledger"
        )
    creators = {k.split(":")[1] for k in led.accounts if k.startswith("creator:")}
    creators |= set(led.credited)
    for creator in sorted(creators):
        received = led.accounts.get(f"creator:{creator}:received", 0)
        coins, _ = led.credited.get(creator, (0, 0))
        flying = in_flight.get(creator, 0)
        note = "coins credited" + (f" + {flying} in flight" if flying else "")
        c.expect(f"creator:{creator}:received", received, coins + flying, note)


def _check_earnings(
    led: _Ledger,
    at: dict[str, dict[str, int]],
    walleted: set[str],
    report: AuditReport,
    bps: int,
) -> None:
    """Per creator: diamonds earned = floor(coins credited x bps / 10,000), on the running total.

    Each credit adds the diamonds of the creator's running total, so the rule
    holds for every prefix of a creator's credits: the ones up to the wallet's
    position (all persisted), or all of them for a creator without a wallet.
    """
    d = report.check("per creator: diamonds earned = floor(coins credited x bps / 10,000)")
    creators = set(led.credited) | {u for u, f in at.items() if f["received"] or f["earned"]}
    earned_total = 0
    for creator in sorted(creators):
        earned_total += led.credited.get(creator, (0, 0))[1]
        if creator in walleted:
            fields = at.get(creator, dict.fromkeys(WALLET_FIELDS, 0))
            coins, diamonds = fields["received"], fields["earned"]
        else:
            coins, diamonds = led.credited.get(creator, (0, 0))
        d.expect(
            f"user:{creator}:earned",
            diamonds_earned(coins, bps),
            diamonds,
            f"{coins} coins credited at {bps} bps",
        )
    report.totals["diamonds earned"] = earned_total
    d.expect(DIAMOND_ISSUANCE, -earned_total, led.accounts.get(DIAMOND_ISSUANCE, 0))


def _check_diamonds(led: _Ledger, report: AuditReport) -> None:
    c = report.check("per user: diamonds earned = diamond balance + held + paid out")
    for user, b in sorted(led.users.items()):
        if any(b[k] for k in ("earned", "diamonds", "held", "paid")):
            c.expect(
                f"user:{user}:earned",
                b["earned"],
                b["diamonds"] + b["held"] + b["paid"],
                f"diamonds {b['diamonds']} + held {b['held']} + paid {b['paid']}",
            )
    report.totals["diamonds held"] = sum(b["held"] for b in led.users.values())
    report.totals["diamonds paid out"] = sum(b["paid"] for b in led.users.values())


_REDIS_NAMES: Final = {
    "coins": "user:{}:coins",
    "diamonds": "user:{}:diamonds",
    "held": "user:{}:held",
    "paid": "user:{}:paid",
    "received": "creator:{}:received",
    "earned": "user:{}:earned",
}
_ZERO: Final = dict.fromkeys(WALLET_FIELDS, 0)


def _compare_wallet(
    c: Check, user: str, want: dict[str, int], have: dict[str, int], note: str
) -> bool:
    """Compare one wallet field by field; True if every field agreed."""
    before = len(c.mismatches)
    for f in WALLET_FIELDS:
        c.expect(_REDIS_NAMES[f].format(user), want[f], have[f], note)
    return len(c.mismatches) == before


def _check_wallets_at_positions(
    wallets: dict[str, WalletRead], at: dict[str, dict[str, int]], report: AuditReport
) -> None:
    c = report.check("Redis wallets = the ledger at each wallet's outbox position")
    for user in sorted(wallets):
        wallet = wallets[user]
        note = "redis vs ledger" + (f" at {wallet.pos}" if wallet.pos else "")
        _compare_wallet(c, user, at.get(user, _ZERO), wallet.fields, note)
    report.totals["redis wallets"] = len(wallets)


async def _check_badges_owned(conn: Connection, report: AuditReport) -> None:
    """badges_owned holds one row per badge spend, of that spend's user and badge."""
    c = report.check("badges owned = badge spends (one row each)")
    spends = int(
        await conn.fetchval(
            "SELECT COUNT(*) FROM ledger_events WHERE type = 'spend' AND payload->>'kind' = 'badge'"
        )
    )
    rows = int(await conn.fetchval("SELECT COUNT(*) FROM badges_owned"))
    report.totals["badges owned"] = rows
    c.expect("badges_owned (rows)", spends, rows)
    wrong = await conn.fetch(
        """
        SELECT COALESCE(s.event_id, b.event_id) AS event_id, s.event_id IS NULL AS orphan
        FROM (SELECT event_id, user_id, payload->>'item' AS badge FROM ledger_events
              WHERE type = 'spend' AND payload->>'kind' = 'badge') s
        FULL JOIN badges_owned b ON b.event_id = s.event_id
        WHERE s.event_id IS NULL OR b.event_id IS NULL
           OR b.user_id <> s.user_id OR b.badge <> s.badge
        ORDER BY 1 LIMIT 1000
        """
    )
    for r in wrong:
        note = "a row without its badge spend" if r["orphan"] else "no row, or another badge"
        c.mismatches.append(Mismatch(f"badges_owned:{r['event_id']}", 1, 0, note))


async def _check_ledger_past_wallets(
    pool: asyncpg.Pool,
    redis: Redis,
    keys: Keys,
    past: dict[str, str],
    report: AuditReport,
) -> None:
    """Ledger events past the wallet read: newer than the read, or events Redis never applied.

    Each such wallet is read again: if its ``pos`` reached the ledger's last
    event of the user, the events were newer than the first read. Otherwise
    Redis lacks events the ledger holds (a wallet lost, or a failover that
    dropped acknowledged writes): the wallet is compared with the ledger over
    all the user's events, field by field.
    """
    c = report.check("Redis wallets = the ledger at each wallet's outbox position")
    if not past:
        return
    now = await read_wallets(redis, keys, past)
    behind: dict[str, tuple[int, int]] = {}
    moved = 0
    for user, last in past.items():
        wallet = now.get(user)
        if wallet is not None and wallet.pos is not None and parse_id(wallet.pos) >= parse_id(last):
            moved += 1
        else:
            behind[user] = (2**62, 0)
    if moved:
        report.notes.append(f"{moved} wallets changed while the audit ran (compared at their read)")
    if not behind:
        return
    async with pool.acquire() as conn:
        full = await ledger_at(conn, behind)
    for user in sorted(behind):
        wallet = now.get(user)
        note = (
            "no Redis wallet"
            if wallet is None
            else f"the ledger has events up to {past[user]} the wallet never applied "
            f"(wallet at {wallet.pos})"
        )
        agreed = _compare_wallet(
            c, user, full.get(user, _ZERO), wallet.fields if wallet else _ZERO, note
        )
        if agreed:
            c.mismatches.append(Mismatch(f"wallet:{user}:pos", 1, 0, note))


def _check_persisted(
    reached: bool, targets: dict[str, str], report: AuditReport, catch_up_s: float
) -> None:
    c = report.check("the persister reached every wallet's outbox position")
    c.checked = len(targets)
    if not reached:
        c.mismatches.append(
            Mismatch(
                "outboxes",
                0,
                1,
                f"not persisted through the wallets' positions after {catch_up_s:.0f}s: "
                "Redis wallets are not compared",
            )
        )


async def _check_boxes(
    pool: asyncpg.Pool,
    redis: Redis,
    keys: Keys,
    led: _Ledger,
    rows: list[BoxRow],
    report: AuditReport,
    catch_up_s: float,
) -> None:
    """Rule 8: per box and overall, dropped = claimed + returned + in open boxes.

    A box short of a piece persisted from another shard is read again once
    every outbox is persisted through its last id (see
    :mod:`gifting.persister.box_audit`); only what is still wrong then is reported.
    """
    c = report.check("coins dropped = coins claimed + coins returned + coins in open boxes")
    c.checked = len(rows)
    if rows:
        report.totals["coins dropped in boxes"] = led.box_dropped
        report.totals["coins claimed from boxes"] = led.box_claimed
        report.totals["coins returned from boxes"] = led.box_returned
    c.expect(BOX_ESCROW, led.in_boxes, led.accounts.get(BOX_ESCROW, 0), "coins in open boxes")
    if not any(in_flight(b) for b in rows):
        open_coins = sum(b.open_coins for b in rows)
        c.expect("boxes (dropped - claimed - returned)", open_coins, led.in_boxes, "open boxes")
    flying = sorted(b.box for b in rows if in_flight(b))
    if flying:
        await wait_persisted_through(
            redis, keys, await last_ids(redis, keys.outboxes()), catch_up_s
        )
        async with pool.acquire() as conn:
            again = {b.box: b for b in await read_boxes(conn, flying)}
        rows = [again.get(b.box, b) for b in rows]
    for b in rows:
        for account, expected, found, note in box_problems(b):
            c.expect(account, expected, found, note or "box")


async def run_audit(
    pool: asyncpg.Pool,
    redis: Redis,
    keys: Keys,
    catalog: Catalog,
    *,
    catch_up_s: float = 30.0,
) -> AuditReport:
    """Check every conservation rule over PostgreSQL and Redis against it; never raises on drift.

    Needs no quiet moment: the wallets are read first (each with its outbox
    position), the persister is awaited up to those positions (at most
    ``catch_up_s``), then PostgreSQL is read in one REPEATABLE READ snapshot
    and each wallet compared with the ledger at its own position
    (:mod:`gifting.persister.wallet_audit`). Spends and credits the snapshot
    holds one half of are looked up again once the persister caught up with
    what Redis had generated.
    """
    report = AuditReport()
    wallets = await read_wallets(redis, keys, await scan_wallet_users(redis, keys))
    targets = wallet_positions(wallets, keys)
    reached = await wait_persisted_through(redis, keys, targets, catch_up_s)
    _check_persisted(reached, targets, report, catch_up_s)
    positions = {u: w.position() for u, w in wallets.items()}
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        led = await _read_ledger(conn)
        await _check_postings_balanced(conn, report)
        _check_coins(led, report)
        await _check_aggregates(conn, led, report)
        unmatched = await _unmatched_pairs(conn)
        at = await ledger_at(conn, positions)
        past = await ledger_past(conn, positions)
        _check_diamonds(led, report)
        await _check_badges_owned(conn, report)
        boxes = await read_boxes(conn)
    await _check_boxes(pool, redis, keys, led, boxes, report, catch_up_s)
    await _check_credits(pool, redis, keys, led, unmatched, report, catch_up_s)
    _check_earnings(led, at, set(wallets), report, catalog.creator_share_bps)
    if reached:
        _check_wallets_at_positions(wallets, at, report)
        await _check_ledger_past_wallets(pool, redis, keys, past, report)
    return report
