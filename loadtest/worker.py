"""One generator process: fund its viewers, connect, send, drain, report.

Run by the storm with :func:`worker_main` in a spawned process. It talks
with the parent over a pipe, in phases::

    worker -> ("ready", setup seconds)        viewers funded, everyone connected
    parent -> ("start", t0 monotonic ns)      the common start time
    worker -> ("sent", {room: acks})          sends done, every reply in
    parent -> ("expect", {room: acks})        the acks of each room over all processes
    worker -> ("result", WorkerResult)        overlays drained, connections closed

On any failure the worker sends ``("error", text)`` and exits.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import traceback
from itertools import count
from multiprocessing.connection import Connection
from typing import Any, Final
from urllib.parse import quote

from gifting.auth import mint_token
from loadtest.clients import BROKE_GIVE_UP, OverlayClient, Req, Shared, ViewerClient
from loadtest.config import BAD_FRAMES, BROKE_COINS, pick_gift, shot_times
from loadtest.plan import OverlayReport, Shot, WalletReport, WorkerPlan, WorkerResult
from loadtest.setup import fund
from loadtest.stats import Recorder

__all__ = ["Worker", "worker_main"]

CONNECT_CONCURRENCY: Final = 64
_BAD: Final = dict(BAD_FRAMES)
_BAD_NAMES: Final = [name for name, _ in BAD_FRAMES]


def worker_main(plan: WorkerPlan, conn: Connection) -> None:
    """Entry point of a generator process (uvloop when installed)."""
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        runner = asyncio.run
    try:
        runner(Worker(plan, conn).run())
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        raise
    finally:
        conn.close()


class Worker:
    """The generator of one process (see the module docstring for its phases)."""

    def __init__(self, plan: WorkerPlan, conn: Connection) -> None:
        self.plan = plan
        self.conn = conn
        self.recorder = Recorder(int(plan.bucket_s * 1e9))
        self.shared = Shared(self.recorder, plan.mix.retry_share, plan.seed * 1000 + plan.index,
                             plan.record)  # fmt: skip
        self.rng = random.Random(plan.seed * 7919 + plan.index)
        self.viewers: list[ViewerClient] = []
        self.overlays: list[OverlayClient] = []
        self._ids = count(1)
        self._sending = False
        self.schedule_lag_ns = 0
        self._balances: dict[str, int] = {}

    # -- pipe --------------------------------------------------------------------
    async def _recv(self, expected: str) -> Any:
        kind, value = await asyncio.to_thread(self.conn.recv)
        if kind != expected:
            raise RuntimeError(f"worker {self.plan.index}: expected {expected!r}, got {kind!r}")
        return value

    # -- phases ------------------------------------------------------------------
    async def run(self) -> None:
        """All phases, in order."""
        p = self.plan
        started = time.monotonic()
        shots = self._shots()
        await self._fund(shots)
        await self._connect()
        setup_s = time.monotonic() - started
        self.conn.send(("ready", setup_s))
        t0: int = await self._recv("start")
        self.recorder.t0 = t0
        await asyncio.sleep(max(0.0, (t0 - time.monotonic_ns()) / 1e9))
        cpu_start = time.process_time()
        self._sending = True
        if p.mode == "timed":
            await self._send_timed(shots, t0)
        else:
            await self._send_window(shots, t0)
        self._sending = False
        send_s = (time.monotonic_ns() - t0) / 1e9
        await self._drain_replies(p.drain_timeout_s)
        per_room = {room: len(acks) for room, acks in self.shared.acked.items()}
        self.conn.send(("sent", per_room))
        expected: dict[int, int] = await self._recv("expect")
        await self._drain_overlays(expected, p.drain_timeout_s)
        cpu_s = time.process_time() - cpu_start
        self.shared.closing = True
        for viewer in self.viewers:
            viewer.close()
        for overlay in self.overlays:
            overlay.close()
        await asyncio.sleep(0.05)
        self.conn.send(("result", self._result(setup_s, send_s, cpu_s)))

    def _shots(self) -> list[Shot]:
        """The timed sends (given by the parent for a trace, else from the pattern)."""
        p = self.plan
        if p.shots or p.mode == "window" or p.rate is None or p.pattern is None:
            return p.shots
        out: list[Shot] = []
        n = len(p.viewers)
        for t in shot_times(p.pattern, p.duration_s, p.rate, p.burst_factor, p.rate_share):  # type: ignore[arg-type]
            viewer = self.rng.randrange(n)
            if p.mix.bad_share and self.rng.random() < p.mix.bad_share:
                out.append(Shot(t * 1000, viewer, bad=self.rng.choice(_BAD_NAMES)))
                continue
            gift, k = pick_gift(self.rng)
            out.append(Shot(t * 1000, viewer, gift, k))
        return out

    async def _fund(self, shots: list[Shot]) -> None:
        p = self.plan
        needs = [0] * len(p.viewers)
        for s in shots:
            if not s.bad:
                needs[s.viewer] += p.prices.get(s.gift, 0) * s.count
        wants: list[tuple[str, int]] = []
        for i, spec in enumerate(p.viewers):
            if spec.coins is not None:
                coins = spec.coins
            elif spec.broke:
                coins = BROKE_COINS
            elif p.mode == "window" and not p.shots:
                coins = p.coins_per_viewer
            else:
                coins = needs[i]
            wants.append((spec.user, coins))
        redis = None
        if p.setup == "store":
            from gifting.store.cluster import connect

            redis = connect(p.redis_url)
            await redis.initialize()  # a cluster client: before concurrent use
        try:
            balances = await fund(
                how=p.setup, base_url=p.base_url, webhook_secret=p.webhook_secret, wants=wants,
                packages=p.packages, run_id=p.run_id, redis=redis, key_prefix=p.key_prefix,
            )  # fmt: skip
        finally:
            if redis is not None:
                await redis.aclose()
        for spec in p.viewers:
            self.shared.local_users.add(spec.user)
        self._balances = balances

    async def _connect(self) -> None:
        p = self.plan
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        for spec in p.viewers:
            room = p.rooms[spec.room]
            url = f"{p.ws_url}/v1/ws/viewer?stream={quote(room.stream)}"
            token = mint_token(p.jwt_secret, spec.user, None, (), 6 * 3600)
            v = ViewerClient(self.shared, spec, url, token, room.name)
            v.model.balance = v.model.funded = v.spendable = self._balances[spec.user]
            self.viewers.append(v)
        for room_index, number in p.overlays:
            room = p.rooms[room_index]
            query = f"stream={quote(room.stream)}&key={quote(room.overlay_key)}"
            url = f"{p.ws_url}/v1/ws/overlay?{query}"
            self.overlays.append(OverlayClient(self.shared, OverlayReport(room_index, number), url))

        async def open_one(client: ViewerClient | OverlayClient) -> None:
            async with gate:
                await client.connect()

        await asyncio.gather(*(open_one(o) for o in self.overlays))
        async with asyncio.timeout(30):
            for o in self.overlays:
                await o.snapshot.wait()
        await asyncio.gather(*(open_one(v) for v in self.viewers))

    # -- sending -----------------------------------------------------------------
    def _req(self, shot_gift: str, count_: int, cid: str | None, bad: str) -> Req:
        if bad:
            cid = f"b{self.plan.index}-{next(self._ids)}"
            template = _BAD[bad]
            frame = template.replace("{id}", cid).encode()
            return Req(cid, frame, 0, "", 0, bad, False, keyed="{id}" in template)
        if cid is None:
            cid = f"g{self.plan.index}-{next(self._ids)}"
        frame = b'{"op":"gift","id":"%s","gift":"%s","count":%d}' % (
            cid.encode(), shot_gift.encode(), count_,
        )  # fmt: skip
        return Req(cid, frame, self.plan.prices.get(shot_gift, 0) * count_, shot_gift, count_, "",
                   False)  # fmt: skip

    async def _send_timed(self, shots: list[Shot], t0: int) -> None:
        viewers = self.viewers
        i, n = 0, len(shots)
        lag = 0
        while i < n:
            now = time.monotonic_ns()
            due = t0 + int(shots[i].t_ms * 1e6)
            if due > now:
                await asyncio.sleep((due - now) / 1e9)
                continue
            lag = max(lag, now - due)
            while i < n and t0 + int(shots[i].t_ms * 1e6) <= now:
                s = shots[i]
                viewers[s.viewer].send(self._req(s.gift, s.count, s.id, s.bad), now)
                i += 1
        self.schedule_lag_ns = lag
        end = t0 + int(self.plan.duration_s * 1e9)
        await asyncio.sleep(max(0.0, (end - time.monotonic_ns()) / 1e9))

    async def _send_window(self, shots: list[Shot], t0: int) -> None:
        """Closed loop: every viewer keeps ``window`` requests in flight until the end."""
        for s in shots:  # a trace replayed as fast as possible: each viewer's gifts in order
            self.viewers[s.viewer].planned.append((s.gift, s.count, s.id))
        self.shared.on_idle = self._refill
        for v in self.viewers:
            self._refill(v)
        deadline = t0 + int(self.plan.duration_s * 1e9)
        while time.monotonic_ns() < deadline:
            if shots and all(not v.planned and not v.outstanding for v in self.viewers):
                break
            await asyncio.sleep(0.05)
        self.shared.on_idle = None

    def _refill(self, v: ViewerClient) -> None:
        if not self._sending:
            return
        p = self.plan
        now = time.monotonic_ns()
        while v.outstanding < p.window:
            if v.planned:
                gift, k, cid = v.planned.popleft()
                v.send(self._req(gift, k, cid, ""), now)
                continue
            if self.plan.shots or v.done:
                return
            if p.mix.bad_share and self.rng.random() < p.mix.bad_share:
                v.send(self._req("", 0, None, self.rng.choice(_BAD_NAMES)), now)
                continue
            gift, k = pick_gift(self.rng)
            cost = p.prices.get(gift, 0) * k
            if not v.spec.broke and cost > v.spendable:
                gift, k = "rose", 1
                cost = p.prices.get(gift, 1)
                if cost > v.spendable:
                    v.done = True
                    return
            if v.spec.broke and v.refusals >= BROKE_GIVE_UP:
                v.done = True
                return
            v.spendable -= cost
            v.send(self._req(gift, k, None, ""), now)

    # -- draining ----------------------------------------------------------------
    # Both drains poll (every 20 ms): their condition spans every client of the process.
    async def _drain_replies(self, limit_s: float) -> None:
        deadline = time.monotonic() + limit_s
        while any(v.outstanding for v in self.viewers) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)

    async def _drain_overlays(self, expected: dict[int, int], limit_s: float) -> None:
        deadline = time.monotonic() + limit_s

        def behind() -> bool:
            return any(o.report.gifts < expected.get(o.report.room, 0) for o in self.overlays)

        while behind() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        # Let stragglers (duplicates, late non-gift events) show before counting.
        await asyncio.sleep(0.2)

    # -- the result --------------------------------------------------------------
    def _result(self, setup_s: float, send_s: float, cpu_s: float) -> WorkerResult:
        c = self.shared.counts
        examples: list[str] = []
        for v in self.viewers:
            examples.extend(f"{v.spec.user}: {e}" for e in v.model.examples)
        rec = self.recorder
        return WorkerResult(
            index=self.plan.index,
            pid=os.getpid(),
            viewers=len(self.viewers),
            overlays=[o.report for o in self.overlays],
            wallets=[
                WalletReport(
                    v.spec.user,
                    v.spec.room,
                    v.model.funded,
                    v.model.balance,
                    v.model.debited,
                    v.model.acked,
                )
                for v in self.viewers
            ],
            acked=self.shared.acked,
            frames_sent=c.frames_sent,
            gifts_sent=c.gifts_sent,
            retries_sent=c.retries_sent,
            bad_sent=c.bad_sent,
            new_acks=c.new_acks,
            replays=c.replays,
            refused_funds=c.refused_funds,
            refused_bad=c.refused_bad,
            retryable=c.retryable,
            mismatches=c.mismatches + c.stray_replies,
            mismatch_examples=examples[:20]
            + ([f"{c.stray_replies} replies matched no request"] if c.stray_replies else []),
            unanswered=sum(v.outstanding for v in self.viewers),
            errors_by_code=dict(c.errors_by_code),
            viewer_reconnects=c.viewer_reconnects,
            closes_by_code=dict(c.closes_by_code),
            histograms=rec.histograms(),
            series=rec.series,
            schedule_lag_ms_max=round(self.schedule_lag_ns / 1e6, 3),
            setup_s=round(setup_s, 3),
            send_s=round(send_s, 3),
            last_ack_s=round(max(0, self.shared.last_ack_ns - rec.t0) / 1e9, 3),
            cpu_s=round(cpu_s, 3),
            trace=self.shared.trace,
        )
