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
7. Redis wallets (coins, diamonds, held, paid, received, earned) = the ledger's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

import asyncpg
from redis.asyncio import Redis

from gifting.core.accounts import (
    DIAMOND_ISSUANCE,
    EXTERNAL_PAYMENTS,
    PLATFORM_REVENUE,
)
from gifting.core.catalog import Catalog
from gifting.core.money import diamonds_earned
from gifting.persister.progress import wait_caught_up
from gifting.persister.writer import Connection
from gifting.store.keys import Keys

__all__ = ["AuditReport", "Check", "Mismatch", "run_audit", "wait_caught_up"]

WALLET_FIELDS: Final = ("coins", "diamonds", "held", "paid", "received", "earned")
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
                   FILTER (WHERE type = 'spend' AND payload->>'creator' = ''), 0) AS sb
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
    c = report.check("coins purchased - refunded = coin balances + coins spent")
    c.expect("coins (all users)", led.purchased - led.refunded, balances + spent)
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


async def _check_credits(
    conn: Connection,
    led: _Ledger,
    report: AuditReport,
    bps: int,
) -> None:
    c = report.check("every spend to a creator is credited once, with its coins")
    missing = await conn.fetch(
        """
        SELECT s.event_id, s.payload->>'creator' AS creator, s.payload->>'coins' AS coins
        FROM ledger_events s
        WHERE s.type = 'spend' AND s.payload->>'creator' <> ''
          AND NOT EXISTS (SELECT 1 FROM ledger_events c
                          WHERE c.event_id = 'c' || substr(s.event_id, 2))
        ORDER BY s.event_id LIMIT 1000
        """
    )
    for r in missing:
        c.mismatches.append(
            Mismatch(
                f"creator:{r['creator']}:received",
                int(r["coins"]),
                0,
                f"spend {r['event_id']} has no credit",
            )
        )
    creators = {k.split(":")[1] for k in led.accounts if k.startswith("creator:")}
    creators |= set(led.credited)
    earned_total = 0
    d = report.check("per creator: diamonds earned = floor(coins received x bps / 10,000)")
    for creator in sorted(creators):
        received = led.accounts.get(f"creator:{creator}:received", 0)
        coins, diamonds = led.credited.get(creator, (0, 0))
        earned_total += diamonds
        c.expect(f"creator:{creator}:received", received, coins, "coins credited")
        d.expect(
            f"user:{creator}:earned",
            diamonds_earned(received, bps),
            diamonds,
            f"{received} coins received at {bps} bps",
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


async def redis_wallets(redis: Redis, keys: Keys) -> dict[str, dict[str, int]]:
    """Every wallet hash under ``keys.prefix``: user -> the money fields (missing = 0)."""
    pattern = re.compile(rf"{re.escape(keys.prefix)}:\{{w\d+\}}:wallet:([^:]+)")
    users: list[str] = []
    async for raw in redis.scan_iter(match=f"{keys.prefix}:*:wallet:*", count=1000):
        key = raw.decode() if isinstance(raw, bytes) else str(raw)
        match = pattern.fullmatch(key)
        if match is not None:
            users.append(match[1])
    wallets: dict[str, dict[str, int]] = {}
    for start in range(0, len(users), 500):
        chunk = users[start : start + 500]
        pipe = redis.pipeline(transaction=False)
        for user in chunk:
            pipe.hmget(keys.wallet(user), list(WALLET_FIELDS))
        for user, values in zip(chunk, await pipe.execute(), strict=True):
            wallets[user] = {
                f: int(v) if v is not None else 0
                for f, v in zip(WALLET_FIELDS, values, strict=True)
            }
    return wallets


_REDIS_NAMES: Final = {
    "coins": "user:{}:coins",
    "diamonds": "user:{}:diamonds",
    "held": "user:{}:held",
    "paid": "user:{}:paid",
    "received": "creator:{}:received",
    "earned": "user:{}:earned",
}


def _check_redis(led: _Ledger, wallets: dict[str, dict[str, int]], report: AuditReport) -> None:
    c = report.check("Redis wallets = balances derived from the ledger")
    zero = dict.fromkeys(WALLET_FIELDS, 0)
    for user in sorted(set(wallets) | set(led.users)):
        have = wallets.get(user, zero)
        want = led.users.get(user, zero)
        for f in WALLET_FIELDS:
            note = (
                "no Redis wallet"
                if user not in wallets
                else ("not in the ledger" if user not in led.users else "redis vs ledger")
            )
            c.expect(_REDIS_NAMES[f].format(user), want[f], have[f], note)
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


async def run_audit(pool: asyncpg.Pool, redis: Redis, keys: Keys, catalog: Catalog) -> AuditReport:
    """Check every conservation rule over PostgreSQL and Redis against it; never raises on drift.

    Read in one REPEATABLE READ transaction, so the ledger side is one
    consistent snapshot even while the persister writes.
    """
    report = AuditReport()
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        led = await _read_ledger(conn)
        await _check_postings_balanced(conn, report)
        _check_coins(led, report)
        await _check_aggregates(conn, led, report)
        await _check_credits(conn, led, report, catalog.creator_share_bps)
        _check_diamonds(led, report)
        await _check_badges_owned(conn, report)
    _check_redis(led, await redis_wallets(redis, keys), report)
    return report
