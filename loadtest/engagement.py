"""The engagement side of a storm: guests, videos, goals and treasure boxes under load.

While the generator processes send their gift storm, the storm's parent runs
this in the first ``ENGAGED_ROOMS`` rooms (DESIGN §10), with users of its own
so the storm's wallet model stays exact:

* **guests**: the room's creator puts two guests on stage; three gifters send
  roses ``"to"`` a guest (and confettis to the host) over their own sockets;
* **videos**: the creator registers a video; two gifters gift it over HTTP
  (a retry of each id too: same answer, one debit);
* **goals**: a coins goal and a confetti-count goal with steps are set before
  the storm; halfway through, the goals are replaced (the coins goal kept,
  the count goal swapped for another);
* **boxes**: one viewer drops a treasure box at the start (opens after
  ``BOX_OPENS_IN_S``); four claimers race for its three shares when it opens.

Its acked gifts in the rooms go into the storm's overlay and persisted
checks; :meth:`Engagement.verify` adds its own: guests earn on their own
running totals (Redis and PostgreSQL), video totals and ledger rows are the
acks, each goal step is reached once and the coins goal's progress is every
coin gifted in the room (host and guests) since it was set, and each box's coins are
claimed in shares differing by at most one plus returned, in wallets and in
the ledger. ``gifting audit`` (the storm's own check) covers the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import asyncpg
import httpx
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect

from gifting.auth import mint_token
from gifting.core.catalog import load_catalog
from gifting.core.money import diamonds_earned
from gifting.persister.audit import run_audit
from gifting.persister.progress import wait_caught_up
from gifting.store.cluster import connect as connect_redis
from gifting.store.keys import Keys
from loadtest.plan import RoomInfo
from loadtest.setup import Catalog, fund

__all__ = ["ENGAGED_ROOMS", "Engagement", "EngagementReport"]

#: How many of the storm's rooms get the engagement mix.
ENGAGED_ROOMS: Final = 2
GUESTS: Final = 2
GUEST_GIFTERS: Final = 3
VIDEO_GIFTERS: Final = 2
CLAIMERS: Final = 4
BOX_COINS: Final = 1001
BOX_WINNERS: Final = 3
BOX_OPENS_IN_S: Final = 10
#: The claim window (DESIGN §10): a box closes this long after it opens.
CLAIM_WINDOW_S: Final = 30
#: The count goal's gift: one the storm's mix never sends, so its count is exact.
COUNT_GIFT: Final = "confetti"
#: Seconds between two sends of one engagement gifter.
SEND_EVERY_S: Final = 0.2


@dataclass
class Check:
    """One engagement check (same shape as the storm's)."""

    name: str
    ok: bool
    detail: str = ""


@dataclass
class RoomAcks:
    """The engagement's acked spends shown in one room (added to the storm's room checks)."""

    gifts: dict[str, int] = field(default_factory=dict)  # gift event -> coins
    drops: dict[str, int] = field(default_factory=dict)  # box drop event -> coins


@dataclass
class _Room:
    info: RoomInfo
    guests: list[str]
    gifters: list[str]
    video_gifters: list[str]
    dropper: str
    claimers: list[str]
    video: str = ""
    acks: RoomAcks = field(default_factory=RoomAcks)
    to_guest: Counter[str] = field(default_factory=Counter)  # guest -> coins acked to them
    to_host: int = 0  # coins acked to the host by engagement gifters
    count_gifts: int = 0  # COUNT_GIFT gifts acked (to the host)
    video_coins: int = 0
    video_gifts: int = 0
    video_events: set[str] = field(default_factory=set)
    box: str = ""
    dropper_funded: int = 0
    dropped_coins: int = 0
    count_before_change: int = 0  # COUNT_GIFT acks before the goals were replaced
    count_after_change: int = 0
    claims: dict[str, int] = field(default_factory=dict)  # claimer -> share
    claim_refusals: Counter[str] = field(default_factory=Counter)
    events: list[dict[str, Any]] = field(default_factory=list)  # the engagement overlay's
    errors: list[str] = field(default_factory=list)


@dataclass
class EngagementReport:
    """What the engagement did and whether its checks held."""

    checks: list[Check] = field(default_factory=list)
    guest_gifts: int = 0
    video_gifts: int = 0
    boxes: int = 0
    claims: int = 0
    goal_steps: int = 0

    @property
    def ok(self) -> bool:
        """Whether every check held."""
        return all(c.ok for c in self.checks)

    def summary(self) -> dict[str, Any]:
        """The figures as JSON-friendly data (the checks go with the storm's)."""
        return {
            "ok": self.ok, "guest_gifts": self.guest_gifts, "video_gifts": self.video_gifts,
            "boxes": self.boxes, "claims": self.claims, "goal_steps": self.goal_steps,
        }  # fmt: skip

    def add(self, name: str, ok: bool, detail: str = "") -> None:
        """Record one check."""
        self.checks.append(Check(name, ok, detail))


class Engagement:
    """Runs the engagement mix in a storm's first rooms and checks it."""

    def __init__(
        self,
        rooms: Sequence[RoomInfo],
        *,
        base_url: str,
        jwt_secret: str,
        webhook_secret: str,
        catalog: Catalog,
        run: str,
        duration_s: float,
    ) -> None:
        self.base_url = base_url
        self.ws_url = "ws" + base_url.removeprefix("http")
        self.jwt_secret = jwt_secret
        self.webhook_secret = webhook_secret
        self.catalog = catalog
        self.bps = catalog.creator_share_bps
        #: Enough for a gifter's sends over the run (a confetti a second, roses between).
        self.gifter_coins = int(200 * duration_s) + 2_000
        self.rooms = [
            _Room(
                info,
                guests=[f"{run}-e{info.index}-guest{i}" for i in range(GUESTS)],
                gifters=[f"{run}-e{info.index}-fan{i}" for i in range(GUEST_GIFTERS)],
                video_gifters=[f"{run}-e{info.index}-vfan{i}" for i in range(VIDEO_GIFTERS)],
                dropper=f"{run}-e{info.index}-dropper",
                claimers=[f"{run}-e{info.index}-claim{i}" for i in range(CLAIMERS)],
            )
            for info in rooms[:ENGAGED_ROOMS]
        ]
        self.run_id = run
        self.report = EngagementReport()
        self._overlays: list[asyncio.Task[None]] = []
        self._claims: list[asyncio.Task[None]] = []
        self._http = httpx.AsyncClient(base_url=base_url, timeout=30.0)
        self._goals_set_at = 0.0

    # -- setup ------------------------------------------------------------------
    def _auth(self, user: str, creator: bool = False) -> dict[str, str]:
        roles = ["creator"] if creator else []
        return {"Authorization": f"Bearer {mint_token(self.jwt_secret, user, None, roles, 7200)}"}

    async def _put(self, path: str, body: Any, user: str) -> dict[str, Any]:
        r = await self._http.put(path, json=body, headers=self._auth(user, creator=True))
        if r.status_code != 200:
            raise RuntimeError(f"PUT {path}: {r.status_code} {r.text}")
        out: dict[str, Any] = r.json()
        return out

    async def setup(self) -> None:
        """Fund the engagement's users, put guests on stage, register videos, set goals."""
        wants = [
            (u, self.gifter_coins) for r in self.rooms for u in (*r.gifters, *r.video_gifters)
        ] + [(r.dropper, BOX_COINS) for r in self.rooms]
        balances = await fund(
            how="api", base_url=self.base_url, webhook_secret=self.webhook_secret, wants=wants,
            packages=self.catalog.packages, run_id=f"{self.run_id}-eng",
        )  # fmt: skip
        for r in self.rooms:
            r.dropper_funded = balances[r.dropper]
        for r in self.rooms:
            s, creator = r.info.stream, r.info.creator
            guests = [{"user": g, "name": g.rsplit("-", 1)[-1].title()} for g in r.guests]
            await self._put(f"/v1/streams/{s}/guests", {"guests": guests}, creator)
            made = await self._http.post(
                "/v1/videos", json={"title": f"clip of {r.info.name}"},
                headers=self._auth(creator, creator=True),
            )  # fmt: skip
            if made.status_code != 201:
                raise RuntimeError(f"POST /v1/videos: {made.status_code} {made.text}")
            r.video = made.json()["video"]
            await self._put(f"/v1/streams/{s}/goals", {"goals": self._goals(first=True)}, creator)
            self._overlays.append(asyncio.create_task(self._watch(r)))
        self._goals_set_at = time.monotonic()

    @staticmethod
    def _goals(*, first: bool) -> list[dict[str, Any]]:
        coins = {"id": "coins", "title": "Coins", "target": 10**9, "gift": None,
                 "steps": [100, 1_000, 10_000]}  # fmt: skip
        if first:
            count = {"id": "confetti", "title": "Confetti", "target": 40, "gift": COUNT_GIFT,
                     "steps": [3, 6, 20]}  # fmt: skip
        else:
            count = {"id": "roses", "title": "Roses", "target": 10**6, "gift": "rose",
                     "steps": [1]}  # fmt: skip
        return [coins, count]

    async def _watch(self, r: _Room) -> None:
        """The engagement's overlay of room ``r``: every event, for the checks."""
        url = f"{self.ws_url}/v1/ws/overlay?stream={r.info.stream}&key={r.info.overlay_key}"
        async with connect(url, max_size=None) as ws:
            async for frame in ws:
                msg = json.loads(frame)
                for e in msg["events"] if msg.get("op") == "batch" else [msg]:
                    if e.get("op") == "event":
                        r.events.append(e)

    # -- the run -------------------------------------------------------------------
    async def send(self, duration_s: float, start: float | None = None) -> None:
        """Drop the boxes, send guest and video gifts for ``duration_s``, change goals halfway.

        ``start``: the storm's common start (``time.monotonic()`` seconds); sends begin then.
        """
        if start is not None:
            await asyncio.sleep(max(0.0, start - time.monotonic()))
        deadline = time.monotonic() + duration_s
        jobs = []
        for r in self.rooms:
            jobs.append(self._drop(r))
            jobs += [self._guest_gifter(r, i, deadline) for i in range(GUEST_GIFTERS)]
            jobs += [self._video_gifter(r, u, deadline) for u in r.video_gifters]
            jobs.append(self._change_goals(r, duration_s / 2))
        await asyncio.gather(*jobs)

    async def _viewer(self, r: _Room, user: str) -> ClientConnection:
        token = mint_token(self.jwt_secret, user, user.rsplit("-", 1)[-1].title(), [], 7200)
        url = f"{self.ws_url}/v1/ws/viewer?stream={r.info.stream}&token={token}"
        ws = await connect(url, max_size=None)
        await ws.recv()  # snapshot
        return ws

    @staticmethod
    async def _request(ws: ClientConnection, msg: dict[str, Any]) -> dict[str, Any]:
        await ws.send(json.dumps(msg))
        async with asyncio.timeout(30):
            while True:
                reply = json.loads(await ws.recv())
                if reply.get("op") in ("ack", "error") and reply.get("id") == msg["id"]:
                    out: dict[str, Any] = reply
                    return out

    async def _guest_gifter(self, r: _Room, i: int, deadline: float) -> None:
        user = r.gifters[i]
        async with await self._viewer(r, user) as ws:
            n = 0
            while time.monotonic() < deadline:
                guest = r.guests[(i + n) % GUESTS]
                if n % 5 == 4:  # a confetti to the host: counts toward the count goal
                    msg: dict[str, Any] = {"op": "gift", "id": f"{user}-{n}", "gift": COUNT_GIFT}
                else:
                    msg = {"op": "gift", "id": f"{user}-{n}", "gift": "rose", "count": 1 + n % 3,
                           "to": guest}  # fmt: skip
                reply = await self._request(ws, msg)
                if reply["op"] == "ack":
                    coins = self.catalog.prices[msg["gift"]] * int(msg.get("count", 1))
                    r.acks.gifts[reply["event"]] = coins
                    if "to" in msg:
                        r.to_guest[guest] += coins
                    else:
                        r.to_host += coins
                        r.count_gifts += 1
                else:
                    r.errors.append(f"{user} {msg['id']}: {reply.get('code')}")
                n += 1
                await asyncio.sleep(SEND_EVERY_S)

    async def _video_gifter(self, r: _Room, user: str, deadline: float) -> None:
        n = 0
        while time.monotonic() < deadline:
            count = 1 + n % 4
            body: dict[str, Any] = {"id": f"{user}-{n}", "gift": "rose", "count": count}
            first = await self._http.post(
                f"/v1/videos/{r.video}/gifts", json=body, headers=self._auth(user)
            )
            if first.status_code != 200:
                r.errors.append(f"video gift {body['id']}: {first.status_code} {first.text}")
            else:
                r.video_coins += self.catalog.prices["rose"] * count
                r.video_gifts += count
                r.video_events.add(first.json()["event"])
                if n % 4 == 0:  # a retry of the same id: the same answer, no second debit
                    again = await self._http.post(
                        f"/v1/videos/{r.video}/gifts", json=body, headers=self._auth(user)
                    )
                    if again.status_code != 200 or again.json()["event"] != first.json()["event"]:
                        r.errors.append(f"video retry {body['id']}: {again.text}")
            n += 1
            await asyncio.sleep(SEND_EVERY_S * 2)

    async def _change_goals(self, r: _Room, after_s: float) -> None:
        await asyncio.sleep(after_s)
        r.count_before_change = r.count_gifts
        await self._put(
            f"/v1/streams/{r.info.stream}/goals", {"goals": self._goals(first=False)},
            r.info.creator,
        )  # fmt: skip
        r.count_after_change = r.count_gifts

    async def _drop(self, r: _Room) -> None:
        async with await self._viewer(r, r.dropper) as ws:
            box = {"op": "box", "id": f"{r.dropper}-box", "coins": BOX_COINS,
                   "winners": BOX_WINNERS, "opens_in_s": BOX_OPENS_IN_S}  # fmt: skip
            reply = await self._request(ws, box)
            if reply["op"] != "ack":
                r.errors.append(f"box drop: {reply}")
                return
            r.box = str(reply.get("box") or "q" + reply["event"][1:])
            r.dropped_coins = BOX_COINS
            r.acks.drops[reply["event"]] = BOX_COINS
        self._claims += [asyncio.create_task(self._claim(r, u)) for u in r.claimers]

    async def _claim(self, r: _Room, user: str) -> None:
        """Wait for the box to open (on this claimer's own socket), then claim it."""
        async with await self._viewer(r, user) as ws:
            async with asyncio.timeout(BOX_OPENS_IN_S + CLAIM_WINDOW_S):
                while True:
                    msg = json.loads(await ws.recv())
                    batch = msg["events"] if msg.get("op") == "batch" else [msg]
                    if any(e.get("kind") == "box_opened" and e.get("box") == r.box for e in batch):
                        break
            reply = await self._request(ws, {"op": "claim", "id": f"{user}-c", "box": r.box})
            if reply["op"] == "ack":
                r.claims[user] = int(reply["share"])
            else:
                r.claim_refusals[str(reply.get("code"))] += 1

    def room_acks(self) -> dict[int, RoomAcks]:
        """The engagement's acked spends per storm room index (for the storm's checks)."""
        return {r.info.index: r.acks for r in self.rooms}

    async def finish(self) -> None:
        """Wait for every claim and every box to close (bounded), then stop watching."""
        if self._claims:
            await asyncio.gather(*self._claims, return_exceptions=True)
        limit = time.monotonic() + BOX_OPENS_IN_S + CLAIM_WINDOW_S + 30
        while time.monotonic() < limit and not all(  # noqa: ASYNC110 - polls the overlays' events
            any(e.get("kind") == "box_closed" for e in r.events) for r in self.rooms if r.box
        ):
            await asyncio.sleep(0.25)
        await asyncio.sleep(1.0)  # the last events of the close reach the overlay

    async def aclose(self) -> None:
        """Close the overlays and the HTTP client."""
        for task in self._overlays + self._claims:
            task.cancel()
        for task in self._overlays + self._claims:
            with contextlib.suppress(BaseException):
                await task
        await self._http.aclose()

    # -- checks ---------------------------------------------------------------------
    async def verify_at(
        self, redis_url: str, database_url: str, key_prefix: str, storm_room_coins: dict[int, int]
    ) -> EngagementReport:
        """:meth:`verify` against the run's Redis and PostgreSQL, once the persister caught up."""
        redis = connect_redis(redis_url)
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
        assert pool is not None
        keys = Keys(key_prefix)
        try:
            caught_up = await wait_caught_up(redis, keys, 60.0)
            self.report.add("engagement: the persister caught up after the boxes closed", caught_up)
            report = await self.verify(redis, pool, keys, storm_room_coins)
            catalog = load_catalog(os.environ.get("GIFTING_CATALOG") or None)
            audit = await run_audit(pool, redis, keys, catalog)
            failed = [c.name for c in audit.checks if not c.ok]
            report.add("gifting audit passes after the boxes closed", audit.ok, "; ".join(failed))
            return report
        finally:
            await pool.close()
            await redis.aclose()

    async def verify(
        self, redis: Redis, pool: asyncpg.Pool, keys: Keys, storm_room_coins: dict[int, int]
    ) -> EngagementReport:
        """Every engagement check (see the module docstring); never raises on a failed one.

        ``storm_room_coins``: the coins the storm's own acked gifts brought each room.
        """
        rep = self.report
        errors = [e for r in self.rooms for e in r.errors]
        rep.add("engagement: every send was acked as expected", not errors, "; ".join(errors[:8]))
        await self._check_guests(rep, redis, pool, keys)
        await self._check_videos(rep, pool)
        await self._check_goals(rep, storm_room_coins)
        await self._check_boxes(rep, redis, pool, keys)
        rep.guest_gifts = sum(len(r.acks.gifts) for r in self.rooms)
        rep.video_gifts = sum(len(r.video_events) for r in self.rooms)
        rep.boxes = sum(1 for r in self.rooms if r.box)
        rep.claims = sum(len(r.claims) for r in self.rooms)
        return rep

    async def _check_guests(
        self, rep: EngagementReport, redis: Redis, pool: asyncpg.Pool, keys: Keys
    ) -> None:
        bad: list[str] = []
        shown_bad: list[str] = []
        for r in self.rooms:
            names = {e["event"]: e for e in r.events if e.get("kind") == "gift"}
            for event in r.acks.gifts:
                shown = names.get(event)
                if shown is None or "receiver" not in shown:
                    shown_bad.append(event)
            for guest in r.guests:
                coins = r.to_guest[guest]
                diamonds = int(await redis.hget(keys.wallet(guest), "diamonds") or 0)
                received = int(await redis.hget(keys.wallet(guest), "received") or 0)
                persisted = await pool.fetchval(
                    "SELECT COALESCE(SUM((payload->>'coins')::bigint), 0) FROM ledger_events "
                    "WHERE type = 'credit' AND user_id = $1",
                    guest,
                )
                want = diamonds_earned(coins, self.bps)
                if (received, diamonds, int(persisted)) != (coins, want, coins):
                    bad.append(
                        f"{guest}: received {received}, diamonds {diamonds}, persisted "
                        f"{persisted}; acked {coins} coins -> {want} diamonds"
                    )
        rep.add(
            "guests: each guest earned on their own running total (Redis and PostgreSQL)",
            not bad,
            "; ".join(bad[:8]),
        )
        rep.add(
            "guests: every acked gift reached the room with its receiver",
            not shown_bad,
            f"{len(shown_bad)} not shown, e.g. {shown_bad[:4]}" if shown_bad else "",
        )

    async def _check_videos(self, rep: EngagementReport, pool: asyncpg.Pool) -> None:
        bad: list[str] = []
        for r in self.rooms:
            got = (await self._http.get(f"/v1/videos/{r.video}")).json()
            totals = got["totals"]
            rows = await pool.fetch(
                "SELECT event_id FROM ledger_events WHERE type = 'spend' AND video_id = $1",
                r.video,
            )
            persisted = {str(x["event_id"]) for x in rows}
            if (totals["coins"], totals["gifts"]) != (r.video_coins, r.video_gifts):
                bad.append(
                    f"{r.video}: totals {totals}, acked {r.video_coins} coins {r.video_gifts} gifts"
                )
            if persisted != r.video_events:
                bad.append(
                    f"{r.video}: {len(persisted)} ledger spends, {len(r.video_events)} acked"
                )
        rep.add(
            "videos: totals and ledger spends are the acked video gifts (retries debited once)",
            not bad,
            "; ".join(bad[:8]),
        )

    async def _check_goals(self, rep: EngagementReport, storm_room_coins: dict[int, int]) -> None:
        bad: list[str] = []
        for r in self.rooms:
            reached = [
                (e["goal"], e.get("step")) for e in r.events if e.get("kind") == "goal_reached"
            ]
            rep.goal_steps += len(reached)
            dup = [k for k, n in Counter(reached).items() if n > 1]
            if dup:
                bad.append(f"room {r.info.index}: reached twice {dup}")
            count_steps = sorted(s for g, s in reached if g == "confetti" and s is not None)
            # The count goal was replaced halfway: the steps of what was acked by then
            # (a gift in flight during the change may or may not have counted).
            least = [s for s in (3, 6, 20) if s <= r.count_before_change]
            most = [s for s in (3, 6, 20) if s <= r.count_after_change]
            if not (count_steps[: len(least)] == least and set(count_steps) <= set(most)):
                bad.append(f"room {r.info.index}: confetti steps {count_steps}, acked "
                           f"{r.count_before_change}..{r.count_after_change} confettis "
                           "before the change")  # fmt: skip
            view = (await self._http.get(f"/v1/streams/{r.info.stream}")).json()
            goals = {g["id"]: g for g in view["goals"]}
            # Every gift in the room counts, the host's and the guests' (boxes do not).
            gifted = storm_room_coins.get(r.info.index, 0) + r.to_host + sum(r.to_guest.values())
            if goals.get("coins", {}).get("progress") != gifted:
                bad.append(
                    f"room {r.info.index}: coins goal at {goals.get('coins')}, the room was "
                    f"gifted {gifted} coins since it was set"
                )
            coin_steps = sorted(s for g, s in reached if g == "coins" and s is not None)
            if coin_steps != [s for s in (100, 1_000, 10_000) if s <= gifted]:
                bad.append(f"room {r.info.index}: coins steps {coin_steps} for {gifted}")
        rep.add(
            "goals: each step reached once; the coins goal (kept across the change) counts "
            "every coin gifted in the room",
            not bad,
            "; ".join(bad[:8]),
        )

    async def _check_boxes(
        self, rep: EngagementReport, redis: Redis, pool: asyncpg.Pool, keys: Keys
    ) -> None:
        bad: list[str] = []
        for r in self.rooms:
            if not r.box:
                continue
            closed = [e for e in r.events if e.get("kind") == "box_closed" and e["box"] == r.box]
            if len(closed) != 1:
                bad.append(f"{r.box}: {len(closed)} box_closed events")
                continue
            returned = int(closed[0]["returned"])
            shares = sorted(r.claims.values(), reverse=True)
            claimed = sum(shares)
            if len(shares) > BOX_WINNERS or (shares and shares[0] - shares[-1] > 1):
                bad.append(f"{r.box}: shares {shares} for {BOX_WINNERS} winners")
            if claimed + returned != r.dropped_coins:
                bad.append(f"{r.box}: claimed {claimed} + returned {returned} != {BOX_COINS}")
            if len(shares) == BOX_WINNERS and r.claim_refusals != Counter(
                {"box_closed": CLAIMERS - BOX_WINNERS}
            ):
                bad.append(f"{r.box}: refusals {dict(r.claim_refusals)}")
            for user in r.claimers:
                coins = int(await redis.hget(keys.wallet(user), "coins") or 0)
                if coins != r.claims.get(user, 0):
                    bad.append(f"{user}: {coins} coins, claimed {r.claims.get(user, 0)}")
            dropper = int(await redis.hget(keys.wallet(r.dropper), "coins") or 0)
            if dropper != r.dropper_funded - r.dropped_coins + returned:
                bad.append(
                    f"{r.dropper}: {dropper} coins, want {r.dropper_funded} - {r.dropped_coins} "
                    f"+ {returned} returned"
                )
            row = await pool.fetchrow(
                "SELECT COALESCE(SUM((payload->>'coins')::bigint) FILTER "
                "(WHERE type = 'box_claim'), 0) AS claimed, "
                "COALESCE(SUM((payload->>'coins')::bigint) FILTER "
                "(WHERE type = 'box_return'), 0) AS returned "
                "FROM ledger_events WHERE payload->>'box' = $1",
                r.box,
            )
            assert row is not None
            if (int(row["claimed"]), int(row["returned"])) != (claimed, returned):
                bad.append(f"{r.box}: ledger claimed {row['claimed']} returned {row['returned']}")
        rep.add(
            "boxes: dropped = claimed (shares differing by at most one) + returned, in wallets "
            "and in the ledger",
            not bad,
            "; ".join(bad[:8]),
        )
