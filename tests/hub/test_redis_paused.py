"""Redis paused (SIGSTOP): the hub answers ``unavailable`` in bounded time, then recovers.

A paused Redis keeps its TCP connections open and answers nothing, so only a
socket timeout ends the wait. A spend caught in it has an unknown outcome
(its EVALSHA may sit in Redis's socket buffer and run on SIGCONT): the client
gets ``unavailable`` and retries with the same id, which debits once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import asyncpg

from gifting.embedded import EmbeddedRedis
from gifting.persister.audit import run_audit
from gifting.persister.progress import wait_caught_up
from tests.hub.conftest import encode, recv_until, serve

#: The hub's Redis timeout in this test, and how long the client may wait for its answer.
TIMEOUT_S = 1.0
ANSWER_WITHIN_S = 4.0


def _answer(msg: dict[str, Any], client_id: str) -> bool:
    return msg["op"] in ("ack", "error") and msg.get("id") == client_id


class _PauseAfterLiveRead:
    """The pipeline's Streams, pausing Redis right after the batch's live read (armed once).

    So the pause lands on the debit itself (the lean EVALSHA pipeline), not on
    the read before it.
    """

    def __init__(self, real: Any, pid: int) -> None:
        self._real = real
        self._pid = pid
        self.armed = False

    async def admission_many(self, ids: Any) -> tuple[dict[str, bool], Any]:
        """The gift path's read: live flags and guest lists (gifting/hub/spends.py)."""
        read = await self._real.admission_many(ids)
        if self.armed:
            self.armed = False
            os.kill(self._pid, signal.SIGSTOP)
        return read

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


async def _gift_while_paused(ws: Any, client_id: str, pause: Any) -> float:
    """Send a gift with Redis paused by ``pause()``; return how long the answer took."""
    started = time.monotonic()
    try:
        pause()
        await ws.send(encode({"op": "gift", "id": client_id, "gift": "rose"}))
        answer = await recv_until(ws, lambda m: _answer(m, client_id), timeout=ANSWER_WITHIN_S + 2)
        waited = time.monotonic() - started
    finally:
        await asyncio.sleep(0.3)  # the armed pause may land just after the answer
        for _ in range(3):
            os.kill(pause.pid, signal.SIGCONT)
    assert answer["op"] == "error" and answer["code"] == "unavailable", answer
    return waited


async def _retry_until_acked(ws: Any, client_id: str) -> str:
    """Retry ``client_id`` (same id) until acked twice; both acks name one event."""
    acks = []
    for _ in range(50):
        await ws.send(encode({"op": "gift", "id": client_id, "gift": "rose"}))
        reply = await recv_until(ws, lambda m: _answer(m, client_id), timeout=10)
        if reply["op"] == "ack":
            acks.append(reply["event"])
            if len(acks) == 2:
                break
        else:
            assert reply["code"] == "unavailable", reply
            await asyncio.sleep(0.1)
    assert len(acks) == 2 and acks[0] == acks[1], acks
    return str(acks[0])


async def test_redis_paused_gets_unavailable_in_bounded_time_then_recovers(
    private_redis: EmbeddedRedis, db_url: str, key_prefix: str
) -> None:
    pid = private_redis.pid
    assert pid is not None
    async with serve(
        private_redis.url, db_url, key_prefix, with_persister=True,
        GIFTING_PERSISTER_IN_PROCESS=True, GIFTING_REDIS_TIMEOUT_S=TIMEOUT_S,
        GIFTING_RATE_PER_S=1000, GIFTING_RATE_BURST=1000,
    ) as hub:  # fmt: skip
        assert hub.state.hub is not None
        pipeline = hub.state.hub.pipeline
        injected = _PauseAfterLiveRead(pipeline.streams, pid)
        pipeline.streams = injected
        stream, _ = await hub.stream("cleo")
        await hub.fund("pat")
        async with hub.viewer(stream, "pat") as ws:
            await ws.send(encode({"op": "gift", "id": "warm", "gift": "rose"}))
            assert (await recv_until(ws, lambda m: _answer(m, "warm")))["op"] == "ack"

            def pause_now() -> None:
                os.kill(pid, signal.SIGSTOP)

            def pause_after_live_read() -> None:
                injected.armed = True

            pause_now.pid = pause_after_live_read.pid = pid  # type: ignore[attr-defined]
            # Paused before the batch: its live read waits on Redis.
            waited = await _gift_while_paused(ws, "before-read", pause_now)
            assert waited < ANSWER_WITHIN_S, f"answered after {waited:.1f}s"
            await _retry_until_acked(ws, "before-read")
            # Paused between the live read and the debit: the EVALSHA waits on Redis.
            waited = await _gift_while_paused(ws, "in-debit", pause_after_live_read)
            assert waited < ANSWER_WITHIN_S, f"answered after {waited:.1f}s"
            await _retry_until_acked(ws, "in-debit")

        assert (await hub.state.ledger.wallet("pat")).coins == 700 - 3  # each gift once
        assert await wait_caught_up(hub.state.redis, hub.state.keys, 30)
        pool = await asyncpg.create_pool(db_url, min_size=1, max_size=2)
        assert pool is not None
        try:
            spends = dict(
                await pool.fetch(
                    "SELECT payload->>'client_id', count(*) FROM ledger_events "
                    "WHERE type = 'spend' GROUP BY 1"
                )
            )
            assert spends == {"warm": 1, "before-read": 1, "in-debit": 1}
            report = await run_audit(pool, hub.state.redis, hub.state.keys, hub.state.catalog)
            assert report.ok, report.render()
        finally:
            await pool.close()
